import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { CommitNotFoundError, ForeignRemoteError, GitError, GitMirror } from '../../src/source/git-mirror.ts';
import { runCommand } from '../../src/support/run-command.ts';
import { createSourceFixture, type SourceFixture } from '../helpers/source-fixture.ts';

/** Objects stored in a bare repository (loose and packed). */
async function objectCount(gitDir: string): Promise<number> {
  const result = await runCommand('git', ['--git-dir', gitDir, 'count-objects', '-v'], { timeoutMs: 10_000 });
  const field = (name: string) => Number(new RegExp(`^${name}: (\\d+)`, 'm').exec(result.stdout.toString())?.[1] ?? 0);
  return field('count') + field('in-pack');
}

describe('fetching exactly the pushed commit', () => {
  let f: SourceFixture;
  const history: string[] = [];

  beforeAll(async () => {
    f = await createSourceFixture();
    // A long history the mirror should never have to download.
    for (let n = 0; n < 30; n += 1) {
      history.push(await f.work.commit(`change ${n}`, { [`apps/app-${n}.yaml`]: `kind: ConfigMap\nn: ${n}\n` }));
    }
    await f.work.push();
  });
  afterAll(async () => {
    await f.close();
  });

  it('fetches one commit at depth 1 into a cold mirror and exports exactly its tree', async () => {
    const head = history.at(-1)!;
    await f.mirror.fetch(await f.remote(), head);
    const target = join(f.dir, 'export-head');
    await f.mirror.exportTree(f.repository.id, head, target);
    expect(await readFile(join(target, 'apps/app-29.yaml'), 'utf8')).toBe('kind: ConfigMap\nn: 29\n');
    // 1 commit + 2 trees + 30 blobs: none of the 29 older commits came along.
    expect(await objectCount(f.mirror.pathOf(f.repository.id))).toBe(33);
  });

  it('moves only the new objects when a new commit is fetched into a warm mirror', async () => {
    const mirror = f.mirror.pathOf(f.repository.id);
    const before = await objectCount(mirror);
    const next = await f.work.commit('one more', { 'apps/app-29.yaml': 'kind: ConfigMap\nn: changed\n' });
    await f.work.push();
    await f.mirror.fetch(await f.remote(), next);
    // the new commit, its root tree, the apps/ tree and one changed blob
    expect((await objectCount(mirror)) - before).toBe(4);
    history.push(next);
  });

  it('does nothing when the commit is already present', async () => {
    const calls = f.github.calls.length;
    await f.mirror.fetch(await f.remote(), history.at(-1)!);
    expect(f.github.calls.length).toBe(calls);
  });

  it('survives two workers fetching different commits of one repository at once', async () => {
    const a = await f.work.commit('a', { 'apps/a.yaml': 'a: 1\n' });
    const b = await f.work.commit('b', { 'apps/b.yaml': 'b: 1\n' });
    await f.work.push();
    const remote = await f.remote();
    await Promise.all([f.mirror.fetch(remote, a), f.mirror.fetch(remote, b), f.mirror.fetch(remote, b)]);
    for (const sha of [a, b]) {
      const check = await runCommand(
        'git',
        ['--git-dir', f.mirror.pathOf(f.repository.id), 'cat-file', '-e', `${sha}^{commit}`],
        {
          timeoutMs: 10_000,
        },
      );
      expect(check.code).toBe(0);
    }
    history.push(a, b);
  });

  it('gives a clear terminal error for a SHA that does not exist', async () => {
    const missing = 'deadbeef'.repeat(5);
    const fetching = f.mirror.fetch(await f.remote(), missing);
    await expect(fetching).rejects.toThrow(CommitNotFoundError);
    await expect(f.mirror.fetch(await f.remote(), missing)).rejects.toThrow(`commit ${missing} does not exist`);
  });

  it('refuses anything that is not a SHA before running git', async () => {
    await expect(f.mirror.fetch(await f.remote(), 'main; rm -rf /')).rejects.toThrow(CommitNotFoundError);
  });

  it('is refused by the server without a valid installation token, with a retryable error', async () => {
    const remote = { ...(await f.remote()), token: 'ghs_not-a-real-token' };
    const fresh = await f.work.commit('unseen', { 'apps/unseen.yaml': 'x: 1\n' });
    await f.work.push();
    await expect(f.mirror.fetch(remote, fresh)).rejects.toThrow(GitError);
  });

  it('never shows the token in a process list or in a URL the server saw', async () => {
    const next = await f.work.commit('watched', { 'apps/watched.yaml': 'w: 1\n' });
    await f.work.push();
    await f.mirror.fetch(await f.remote(), next);
    expect(f.github.leakedInProcessList).toEqual([]);
    const tokens = f.github.issuedTokens();
    expect(tokens.length).toBeGreaterThan(0);
    const paths = f.github.calls.map((call) => call.path).join('\n');
    for (const token of tokens) expect(paths).not.toContain(token);

    // The stand-in's scan does see a process whose command line carries a token, so the empty list above
    // means something: a node process started with the token as an argument, present while git fetches.
    const canary = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60_000)', tokens[0]!], { stdio: 'ignore' });
    try {
      await once(canary, 'spawn');
      const another = await f.work.commit('watched again', { 'apps/watched.yaml': 'w: 2\n' });
      await f.work.push();
      await f.mirror.fetch(await f.remote(), another);
      const leaks = f.github.leakedInProcessList;
      expect(leaks.length).toBeGreaterThan(0);
      expect(leaks.filter((leak) => !leak.startsWith(`pid ${canary.pid}: `))).toEqual([]);
    } finally {
      canary.kill();
    }
  });

  it('proves ancestry by deepening the shallow history only as needed', async () => {
    const remote = await f.remote();
    const old = history[0]!;
    const head = history.at(-1)!;
    await expect(f.mirror.isAncestor(remote, old, head)).resolves.toBe(true);
    await expect(f.mirror.isAncestor(remote, head, old)).resolves.toBe(false);
  });

  it('sees that a force-pushed commit does not descend from the one applied before', async () => {
    const applied = history.at(-1)!;
    await f.work.resetHard(history[10]!);
    const rewritten = await f.work.commit('rewrite', { 'apps/rewritten.yaml': 'r: 1\n' });
    await f.work.push('main', { force: true });
    await expect(f.mirror.isAncestor(await f.remote(), applied, rewritten)).resolves.toBe(false);
  });

  it('lists changed paths from git, not from a webhook', async () => {
    const from = history[0]!;
    const to = history[2]!;
    await expect(f.mirror.changedPaths(f.repository.id, from, to)).resolves.toEqual([
      'apps/app-1.yaml',
      'apps/app-2.yaml',
    ]);
  });

  it('sent only requests that GitHub would accept', () => {
    expect(f.github.unexpected).toEqual([]);
    expect(f.github.violations).toEqual([]);
  });
  describe('keeping mirrors bounded, and on the GitHub host', () => {
    const packCount = async (mirror: GitMirror) =>
      (await readdir(join(mirror.pathOf(f.repository.id), 'objects', 'pack'))).filter((n) => n.endsWith('.pack'))
        .length;

    it('repacks a mirror past its pack count, keeping every fetched commit', async () => {
      // Fetches of more than 100 objects arrive as packs (fewer are unpacked into loose objects).
      const big: string[] = [];
      for (let n = 0; n < 4; n += 1) {
        const files = Object.fromEntries(
          Array.from({ length: 120 }, (_, i) => [`bulk-${n}/file-${i}.yaml`, `kind: ConfigMap\nn: ${n}-${i}\n`]),
        );
        big.push(await f.work.commit(`bulk ${n}`, files));
      }
      await f.work.push();
      const mirror = new GitMirror({ cacheDir: join(f.dir, 'bounded-packs'), timeoutMs: 60_000, maxPacks: 2 });
      const remote = await f.remote();
      for (const sha of big.slice(0, 3)) await mirror.fetch(remote, sha);
      expect(await packCount(mirror)).toBe(3);
      await mirror.fetch(remote, big[3] as string);
      expect(await packCount(mirror)).toBe(2);
      // Commits fetched without a ref survive the repack: each still exports.
      for (const sha of big) await mirror.exportTree(f.repository.id, sha, join(f.dir, `repacked-${sha.slice(0, 7)}`));
      history.push(...big);
    });

    it('drops a mirror past its size cap before the next fetch, which rebuilds it', async () => {
      const mirror = new GitMirror({ cacheDir: join(f.dir, 'bounded-size'), timeoutMs: 60_000, maxMirrorBytes: 1 });
      const remote = await f.remote();
      const [first, second] = [history[0] as string, history[1] as string];
      await mirror.fetch(remote, first);
      await mirror.exportTree(f.repository.id, first, join(f.dir, 'before-drop'));
      await mirror.fetch(remote, second);
      await mirror.exportTree(f.repository.id, second, join(f.dir, 'after-drop'));
      // The first commit went with the dropped mirror.
      await expect(mirror.exportTree(f.repository.id, first, join(f.dir, 'gone'))).rejects.toThrow(GitError);
    });

    it('refuses a remote outside the configured GitHub host before git runs', async () => {
      const mirror = new GitMirror({
        cacheDir: join(f.dir, 'host-bound'),
        timeoutMs: 60_000,
        allowedOrigin: 'https://github.example.com',
      });
      const calls = f.github.calls.length;
      await expect(mirror.fetch(await f.remote(), history[0] as string)).rejects.toThrow(ForeignRemoteError);
      await expect(mirror.headOf(await f.remote(), 'main')).rejects.toThrow(ForeignRemoteError);
      expect(f.github.calls.length).toBe(calls);
    });
  });
});
