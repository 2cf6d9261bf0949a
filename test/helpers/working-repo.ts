import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { runCommand } from '../../src/support/run-command.ts';

const identity = {
  GIT_AUTHOR_NAME: 'Plumbline Test',
  GIT_AUTHOR_EMAIL: 'test@plumbline.invalid',
  GIT_COMMITTER_NAME: 'Plumbline Test',
  GIT_COMMITTER_EMAIL: 'test@plumbline.invalid',
  GIT_CONFIG_GLOBAL: '/dev/null',
  GIT_CONFIG_NOSYSTEM: '1',
};

/** A developer's clone of a stand-in repository: write files, commit, push (directly to the bare repository). */
export class WorkingRepo {
  private constructor(readonly dir: string) {}

  static async create(bareDir: string): Promise<WorkingRepo> {
    const dir = await mkdtemp(join(tmpdir(), 'plumbline-work-'));
    const repo = new WorkingRepo(dir);
    await repo.git('init', '--quiet', '--initial-branch=main');
    await repo.git('remote', 'add', 'origin', bareDir);
    return repo;
  }

  /** Writes (or, with `null`, deletes) files, relative to the repository root. */
  async write(files: Readonly<Record<string, string | null>>): Promise<void> {
    for (const [path, content] of Object.entries(files)) {
      const target = join(this.dir, path);
      if (content === null) {
        await rm(target, { force: true });
      } else {
        await mkdir(dirname(target), { recursive: true });
        await writeFile(target, content);
      }
    }
  }

  /** Commits everything and returns the new commit's SHA. */
  async commit(message: string, files?: Readonly<Record<string, string | null>>): Promise<string> {
    if (files) await this.write(files);
    await this.git('add', '--all');
    await this.git('commit', '--quiet', '--allow-empty', '-m', message);
    return this.head();
  }

  async head(): Promise<string> {
    return (await this.git('rev-parse', 'HEAD')).trim();
  }

  async push(branch = 'main', options: { force?: boolean } = {}): Promise<void> {
    await this.git('push', '--quiet', ...(options.force ? ['--force'] : []), 'origin', `HEAD:refs/heads/${branch}`);
  }

  async resetHard(ref: string): Promise<void> {
    await this.git('reset', '--quiet', '--hard', ref);
  }

  async git(...args: string[]): Promise<string> {
    const result = await runCommand('git', ['-C', this.dir, ...args], { env: identity, timeoutMs: 60_000 });
    if (result.code !== 0) throw new Error(`git ${args[0]} failed: ${result.stderr}`);
    return result.stdout.toString('utf8');
  }

  async remove(): Promise<void> {
    await rm(this.dir, { recursive: true, force: true });
  }
}
