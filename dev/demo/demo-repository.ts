import { cp, mkdir, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { runCommand } from '../../src/support/run-command.ts';

/**
 * The demo's working copy of the sample GitOps repository: what a developer's clone is in real life.
 * Every git call is an argument list (no shell), with the user's git configuration ignored.
 */
export class DemoRepository {
  private constructor(readonly dir: string) {}

  /** A clone-to-be of `bareDir` holding the files of `sampleDir`, not yet committed. */
  static async create(dir: string, bareDir: string, sampleDir: string): Promise<DemoRepository> {
    await mkdir(dir, { recursive: true });
    await cp(sampleDir, dir, { recursive: true });
    const repo = new DemoRepository(dir);
    await repo.git('init', '--quiet', '--initial-branch=main');
    await repo.git('remote', 'add', 'origin', bareDir);
    return repo;
  }

  /** Writes (or, with `null`, deletes) files, commits them all, and returns the new commit's SHA. */
  async commit(message: string, files: Readonly<Record<string, string | null>> = {}): Promise<string> {
    for (const [path, content] of Object.entries(files)) {
      const target = join(this.dir, path);
      if (content === null) await rm(target, { force: true });
      else {
        await mkdir(dirname(target), { recursive: true });
        await writeFile(target, content);
      }
    }
    await this.git('add', '--all');
    await this.git('commit', '--quiet', '--message', message);
    return (await this.git('rev-parse', 'HEAD')).trim();
  }

  async push(): Promise<void> {
    await this.git('push', '--quiet', 'origin', 'HEAD:refs/heads/main');
  }

  private async git(...args: string[]): Promise<string> {
    const result = await runCommand('git', ['-C', this.dir, ...args], {
      env: {
        GIT_CONFIG_NOSYSTEM: '1',
        GIT_CONFIG_GLOBAL: '/dev/null',
        GIT_AUTHOR_NAME: 'Demo Developer',
        GIT_AUTHOR_EMAIL: 'developer@plumbline.invalid',
        GIT_COMMITTER_NAME: 'Demo Developer',
        GIT_COMMITTER_EMAIL: 'developer@plumbline.invalid',
      },
      timeoutMs: 30_000,
    });
    if (result.code !== 0) throw new Error(`git ${args[0]} failed: ${result.stderr.trim()}`);
    return result.stdout.toString();
  }
}
