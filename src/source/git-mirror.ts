import { access, mkdir, mkdtemp, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { type CommandResult, runCommand } from '../support/run-command.ts';

/** The commit does not exist upstream: terminal, retrying cannot help. */
export class CommitNotFoundError extends Error {
  override readonly name = 'CommitNotFoundError';
}

/** Git failed for another reason (network, auth, server): worth retrying with backoff. */
export class GitError extends Error {
  override readonly name = 'GitError';
}

/** The remote is not on the GitHub host the worker was configured with: nothing is sent to it. */
export class ForeignRemoteError extends Error {
  override readonly name = 'ForeignRemoteError';
}

export interface GitMirrorOptions {
  /** Bare mirrors live in `<cacheDir>/<repository id>.git`, one per repository, shared by the workers of a machine. */
  readonly cacheDir: string;
  readonly timeoutMs: number;
  /**
   * The only origin git may contact (GitHub's web origin, e.g. `https://github.com`): a second wall behind
   * the repository resolver, so the installation token is never sent to another host. Unset: any (tests).
   */
  readonly allowedOrigin?: string;
  /** A mirror larger than this is dropped and fetched anew, shallow (default 2 GiB). */
  readonly maxMirrorBytes?: number;
  /** More pack files than this are repacked into one, unreachable objects kept (default 64). */
  readonly maxPacks?: number;
}

export interface Remote {
  readonly repositoryId: number;
  readonly cloneUrl: string;
  /** Installation token; undefined for public repositories. Only ever passed through the environment. */
  readonly token: string | undefined;
}

const SHA = /^[0-9a-f]{40}$/;

/** How far a shallow history is deepened, step by step, before fetching all of it. */
const DEEPEN_STEPS = [32, 256, 2048] as const;

/**
 * A persistent bare repository per GitHub repository. Fetches move only the objects a commit needs
 * (depth 1; deepened only when ancestry must be proven), and every fetch of one repository holds an
 * exclusive `flock` so several workers on one machine can share the cache.
 */
export class GitMirror {
  constructor(private readonly options: GitMirrorOptions) {}

  pathOf(repositoryId: number): string {
    return join(this.options.cacheDir, `${repositoryId}.git`);
  }

  /** Makes `sha` (and its tree) present in the mirror. */
  async fetch(remote: Remote, sha: string): Promise<void> {
    assertSha(sha);
    const mirror = this.pathOf(remote.repositoryId);
    if (await this.hasCommit(mirror, sha)) return;
    // Before, not after: the commit just fetched must still be there for the export that follows.
    await this.maintain(remote.repositoryId);
    if (!(await exists(join(mirror, 'HEAD')))) {
      await mkdir(this.options.cacheDir, { recursive: true });
      await this.locked(mirror, ['init', '--bare', '--quiet', mirror]);
    }
    const result = await this.fetchFromRemote(remote, '--depth=1', sha);
    if (result.code !== 0) throw fetchError(result, remote, sha);
  }

  /**
   * Keeps a mirror bounded. Every fetch adds a pack and nothing is ever collected (fetched commits have no
   * refs), so: many packs are repacked into one (keeping unreachable objects), and a mirror past its size
   * cap is dropped — the next fetch rebuilds it at depth 1, which costs one commit's objects.
   */
  async maintain(repositoryId: number): Promise<'kept' | 'repacked' | 'dropped'> {
    const mirror = this.pathOf(repositoryId);
    if (!(await exists(join(mirror, 'HEAD')))) return 'kept';
    const { packs, bytes } = await this.objectStats(mirror);
    if (bytes > (this.options.maxMirrorBytes ?? 2 * 1024 ** 3)) {
      // Renamed under the mirror's lock, so no fetch runs into a half-deleted directory.
      const trash = `${mirror}.dropped-${process.pid}-${Date.now()}`;
      const moved = await this.lockedCommand(mirror, 'mv', ['--no-target-directory', mirror, trash]);
      if (moved.code !== 0) throw new GitError(`could not drop the mirror: ${firstLine(moved.stderr)}`);
      await rm(trash, { recursive: true, force: true });
      return 'dropped';
    }
    if (packs > (this.options.maxPacks ?? 64)) {
      const result = await this.locked(mirror, [
        '-C',
        mirror,
        ...noGc,
        'repack',
        '-a',
        '-d',
        '-q',
        '--keep-unreachable',
      ]);
      if (result.code !== 0) throw new GitError(`git repack failed: ${firstLine(result.stderr)}`);
      return 'repacked';
    }
    return 'kept';
  }

  /** True when `ancestor` is in `descendant`'s history, deepening the shallow mirror only as far as needed. */
  async isAncestor(remote: Remote, ancestor: string, descendant: string): Promise<boolean> {
    assertSha(ancestor);
    assertSha(descendant);
    const mirror = this.pathOf(remote.repositoryId);
    await this.fetch(remote, ancestor);
    await this.fetch(remote, descendant);
    const check = async () =>
      (await git(['-C', mirror, 'merge-base', '--is-ancestor', ancestor, descendant], this.options)).code === 0;
    if (await check()) return true;
    for (const depth of [...DEEPEN_STEPS, undefined]) {
      const how = depth === undefined ? '--unshallow' : `--deepen=${depth}`;
      if (depth === undefined && !(await this.isShallow(mirror))) return false;
      const result = await this.fetchFromRemote(remote, how, descendant);
      // `--unshallow` on a complete history fails harmlessly; anything else is a real error.
      if (result.code !== 0 && !/complete repository/.test(result.stderr)) throw fetchError(result, remote, descendant);
      if (await check()) return true;
    }
    return false;
  }

  /**
   * The commit a branch points to upstream now (`git ls-remote`: one round trip, no objects), or
   * undefined when the branch does not exist. The resync uses it to find pushes whose webhook was lost.
   */
  async headOf(remote: Omit<Remote, 'repositoryId'>, branch: string): Promise<string | undefined> {
    if (branch.startsWith('-') || /[\s\\~^:?*[]|\.\.|@\{/.test(branch))
      throw new GitError(`not a branch name: ${branch}`);
    const ref = `refs/heads/${branch}`;
    this.assertAllowed(remote.cloneUrl);
    const result = await runCommand('git', ['ls-remote', '--quiet', remote.cloneUrl, ref], {
      env: { ...baseEnv, ...credentialEnv({ ...remote, repositoryId: 0 }) },
      timeoutMs: this.options.timeoutMs,
    });
    if (result.code !== 0) throw new GitError(`git ls-remote failed: ${firstLine(result.stderr)}`);
    const line = result.stdout
      .toString('utf8')
      .split('\n')
      .find((l) => l.endsWith(`\t${ref}`));
    const sha = line?.split('\t')[0];
    return sha && SHA.test(sha) ? sha : undefined;
  }

  /** Paths that differ between two commits' trees (both must have been fetched). */
  async changedPaths(repositoryId: number, from: string, to: string): Promise<string[]> {
    assertSha(from);
    assertSha(to);
    const result = await git(
      ['-C', this.pathOf(repositoryId), 'diff', '--name-only', '-z', '--no-renames', from, to],
      this.options,
    );
    if (result.code !== 0) throw new GitError(`git diff failed: ${firstLine(result.stderr)}`);
    return result.stdout.toString('utf8').split('\0').filter(Boolean);
  }

  /** Writes the tree of `sha` into `target` (created if needed), exactly as committed. */
  async exportTree(repositoryId: number, sha: string, target: string): Promise<void> {
    assertSha(sha);
    const mirror = this.pathOf(repositoryId);
    await mkdir(target, { recursive: true });
    const scratch = await mkdtemp(join(this.options.cacheDir, '.index-'));
    const env = { GIT_INDEX_FILE: join(scratch, 'index') };
    try {
      const read = await git(['--git-dir', mirror, 'read-tree', sha], this.options, env);
      if (read.code !== 0) throw new GitError(`git read-tree failed: ${firstLine(read.stderr)}`);
      const checkout = await git(
        ['--git-dir', mirror, '--work-tree', target, 'checkout-index', '--all', '--force'],
        this.options,
        env,
      );
      if (checkout.code !== 0) throw new GitError(`git checkout-index failed: ${firstLine(checkout.stderr)}`);
    } finally {
      await rm(scratch, { recursive: true, force: true });
    }
  }

  /** Packs and bytes (loose objects and packs) of a mirror, from `git count-objects`. */
  private async objectStats(mirror: string): Promise<{ packs: number; bytes: number }> {
    const result = await git(['-C', mirror, 'count-objects', '-v'], this.options);
    const field = (name: string) =>
      Number(new RegExp(`^${name}: (\\d+)$`, 'm').exec(result.stdout.toString('utf8'))?.[1] ?? 0);
    return { packs: field('packs'), bytes: (field('size') + field('size-pack')) * 1024 };
  }

  private async hasCommit(mirror: string, sha: string): Promise<boolean> {
    return (await git(['-C', mirror, 'cat-file', '-e', `${sha}^{commit}`], this.options)).code === 0;
  }

  private async isShallow(mirror: string): Promise<boolean> {
    const result = await git(['-C', mirror, 'rev-parse', '--is-shallow-repository'], this.options);
    return result.stdout.toString().trim() === 'true';
  }

  private assertAllowed(cloneUrl: string): void {
    const allowed = this.options.allowedOrigin;
    if (allowed === undefined) return;
    let origin: string | undefined;
    try {
      origin = new URL(cloneUrl).origin;
    } catch {
      origin = undefined;
    }
    if (origin !== new URL(allowed).origin)
      throw new ForeignRemoteError('refusing to contact a git remote outside the configured GitHub host');
  }

  /** One `git fetch` of a commit from the remote, `how` deep; never writes refs or FETCH_HEAD. */
  private fetchFromRemote(remote: Remote, how: string, sha: string): Promise<CommandResult> {
    this.assertAllowed(remote.cloneUrl);
    const mirror = this.pathOf(remote.repositoryId);
    const args = [
      '-C',
      mirror,
      ...noGc,
      'fetch',
      '--quiet',
      '--no-tags',
      '--no-write-fetch-head',
      how,
      remote.cloneUrl,
      sha,
    ];
    return this.locked(mirror, args, remote);
  }

  /** Runs git under the mirror's exclusive lock (util-linux `flock`: released by the kernel if we crash). */
  private locked(mirror: string, args: readonly string[], remote?: Remote): Promise<CommandResult> {
    return this.lockedCommand(mirror, 'git', args, remote ? credentialEnv(remote) : {});
  }

  private lockedCommand(
    mirror: string,
    command: string,
    args: readonly string[],
    env: Record<string, string> = {},
  ): Promise<CommandResult> {
    // --no-fork: flock execs the command, so a timeout's SIGKILL ends it and releases the lock with it.
    return runCommand(
      'flock',
      ['--no-fork', '--wait', String(Math.ceil(this.options.timeoutMs / 1000)), `${mirror}.lock`, command, ...args],
      { env: { ...baseEnv, ...env }, timeoutMs: this.options.timeoutMs },
    );
  }
}

/** The mirror never garbage-collects on its own: objects fetched without a ref must stay. */
const noGc = ['-c', 'gc.auto=0', '-c', 'maintenance.auto=false'];

/** No user or system config, no prompts, no credential helpers: only what we pass decides. */
const baseEnv = {
  GIT_CONFIG_NOSYSTEM: '1',
  GIT_CONFIG_GLOBAL: '/dev/null',
  GIT_TERMINAL_PROMPT: '0',
  GIT_ASKPASS: '/bin/false',
  GIT_PROTOCOL: 'version=2',
};

/**
 * The token travels as an HTTP header scoped to the clone URL, set through git's environment-config
 * variables: never in the URL, the argument list (visible in `ps`) or a log line.
 */
export function credentialEnv(remote: Remote): Record<string, string> {
  if (!remote.token) return {};
  const basic = Buffer.from(`x-access-token:${remote.token}`).toString('base64');
  return {
    GIT_CONFIG_COUNT: '3',
    GIT_CONFIG_KEY_0: `http.${remote.cloneUrl}.extraHeader`,
    GIT_CONFIG_VALUE_0: `Authorization: Basic ${basic}`,
    GIT_CONFIG_KEY_1: 'credential.helper',
    GIT_CONFIG_VALUE_1: '',
    // A redirect could lead the request (and its header) to another host: GitHub's clone URLs never redirect.
    GIT_CONFIG_KEY_2: 'http.followRedirects',
    GIT_CONFIG_VALUE_2: 'false',
  };
}

function git(
  args: readonly string[],
  options: GitMirrorOptions,
  env: Record<string, string> = {},
): Promise<CommandResult> {
  return runCommand('git', args, { env: { ...baseEnv, ...env }, timeoutMs: options.timeoutMs });
}

function fetchError(result: CommandResult, remote: Remote, sha: string): Error {
  const reason = firstLine(result.stderr);
  if (/not our ref|couldn't find remote ref|no such remote ref|unadvertised object/i.test(result.stderr)) {
    return new CommitNotFoundError(`commit ${sha} does not exist in repository ${remote.repositoryId}`);
  }
  return new GitError(`git fetch of ${sha.slice(0, 7)} failed: ${reason}`);
}

async function exists(path: string): Promise<boolean> {
  return access(path).then(
    () => true,
    () => false,
  );
}

function firstLine(text: string): string {
  return (text.split('\n').find((line) => line.trim()) ?? 'no output').slice(0, 300);
}

function assertSha(sha: string): void {
  if (!SHA.test(sha)) throw new CommitNotFoundError(`not a commit SHA: ${JSON.stringify(sha.slice(0, 60))}`);
}
