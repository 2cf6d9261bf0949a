/**
 * B10 (docs/performance.md): fetching one new commit of a repository with a long history into a warm
 * cache — Plumbline's GitMirror against the best plain-git strategy (depth-1 fetch of the SHA into a
 * persistent bare repository), both through the GitHub stand-in's smart-HTTP server, interleaved.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { credentialEnv, GitMirror } from '../src/source/git-mirror.ts';
import { runCommand } from '../src/support/run-command.ts';
import { createSourceFixture } from '../test/helpers/source-fixture.ts';
import { median, spread } from './stats.ts';

export interface B10Result {
  readonly historyCommits: number;
  readonly oursMs: number[];
  readonly plainMs: number[];
  readonly ratio: number;
}

/** A long linear history in one `git fast-import` run (thousands of commits in a second or two). */
async function importHistory(workDir: string, commits: number): Promise<void> {
  const lines: string[] = [];
  for (let n = 1; n <= commits; n += 1) {
    const content = `apiVersion: v1\nkind: ConfigMap\nmetadata: {name: app-${n % 50}}\ndata: {revision: "${n}"}\n`;
    const message = `revision ${n}`;
    lines.push(
      'commit refs/heads/main',
      `mark :${n}`,
      `committer Bench <bench@plumbline.invalid> ${1_700_000_000 + n} +0000`,
      `data ${Buffer.byteLength(message)}`,
      message,
      ...(n > 1 ? [`from :${n - 1}`] : []),
      `M 100644 inline apps/app-${n % 50}.yaml`,
      `data ${Buffer.byteLength(content)}`,
      content,
    );
  }
  const result = await runCommand('git', ['-C', workDir, 'fast-import', '--quiet'], {
    input: `${lines.join('\n')}\n`,
    timeoutMs: 120_000,
  });
  if (result.code !== 0) throw new Error(`fast-import failed: ${result.stderr}`);
  await runCommand('git', ['-C', workDir, 'reset', '--quiet', '--hard', 'main'], { timeoutMs: 60_000 });
}

export async function runB10(reps: number, log: (line: string) => void, historyCommits = 5_000): Promise<B10Result> {
  const f = await createSourceFixture('bench/long-history');
  const plainDir = await mkdtemp(join(tmpdir(), 'plumbline-b10-plain-'));
  try {
    await importHistory(f.work.dir, historyCommits);
    await f.work.push();
    const remote = await f.remote();
    const mirror = new GitMirror({ cacheDir: join(f.dir, 'bench-mirrors'), timeoutMs: 120_000 });
    const plainRepo = join(plainDir, 'repo.git');
    await runCommand('git', ['init', '--bare', '--quiet', plainRepo], { timeoutMs: 10_000 });
    const env = {
      GIT_CONFIG_GLOBAL: '/dev/null',
      GIT_CONFIG_NOSYSTEM: '1',
      GIT_TERMINAL_PROMPT: '0',
      ...credentialEnv(remote),
    };
    const plainFetch = async (sha: string) => {
      const r = await runCommand(
        'git',
        ['-C', plainRepo, 'fetch', '--quiet', '--no-tags', '--depth=1', remote.cloneUrl, sha],
        { env, timeoutMs: 120_000 },
      );
      if (r.code !== 0) throw new Error(`plain fetch failed: ${r.stderr}`);
    };
    // Warm both caches with the current head.
    const head = await f.work.head();
    await mirror.fetch(remote, head);
    await plainFetch(head);

    const ours: number[] = [];
    const plain: number[] = [];
    for (let rep = 0; rep < reps + 1; rep += 1) {
      for (const side of rep % 2 === 0 ? (['ours', 'plain'] as const) : (['plain', 'ours'] as const)) {
        const sha = await f.work.commit(`bench ${rep} ${side}`, {
          [`apps/app-${rep}.yaml`]: `rep: ${rep}\nside: ${side}\n`,
        });
        await f.work.push();
        const started = performance.now();
        if (side === 'ours') await mirror.fetch(remote, sha);
        else await plainFetch(sha);
        const ms = performance.now() - started;
        if (rep > 0) (side === 'ours' ? ours : plain).push(ms); // rep 0 is the warm-up
      }
    }
    const result = { historyCommits, oursMs: ours, plainMs: plain, ratio: median(ours) / median(plain) };
    log(
      `B10 warm fetch of 1 new commit (history ${historyCommits}): ours ${median(ours).toFixed(1)} ms (±${spread(ours).toFixed(1)}), ` +
        `plain git ${median(plain).toFixed(1)} ms (±${spread(plain).toFixed(1)}), ratio ${result.ratio.toFixed(2)}`,
    );
    return result;
  } finally {
    await f.close();
    await rm(plainDir, { recursive: true, force: true });
  }
}
