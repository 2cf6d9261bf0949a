import { type ChildProcess, spawn } from 'node:child_process';
import { cp, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GitHubStandIn, type StandInRepository } from '../../dev/github-stand-in/github-stand-in.ts';
import { GitHubApp } from '../../src/github/github-app.ts';
import { createLogger } from '../../src/logging/create-logger.ts';
import type { PreviewJob, SyncJob } from '../../src/queue/jobs.ts';
import type { RedisTopologyEnv } from '../../src/redis/redis-topology.ts';
import { GitMirror } from '../../src/source/git-mirror.ts';
import { packageRoot } from '../../src/support/package-root.ts';
import { uniqueName } from './environment.ts';
import { WorkingRepo } from './working-repo.ts';

export const INSTALLATION_ID = 77;

/** A GitHub stand-in with one repository, a developer's clone of it, an App and a mirror cache. */
export interface SourceFixture {
  readonly dir: string;
  readonly github: GitHubStandIn;
  readonly repository: StandInRepository;
  readonly work: WorkingRepo;
  readonly app: GitHubApp;
  readonly mirror: GitMirror;
  remote(): Promise<{ repositoryId: number; cloneUrl: string; token: string }>;
  close(): Promise<void>;
}

export async function createSourceFixture(fullName = 'acme/platform-gitops'): Promise<SourceFixture> {
  const dir = await mkdtemp(join(tmpdir(), 'plumbline-source-'));
  const github = await new GitHubStandIn({ rootDir: join(dir, 'github') }).start();
  const repository = await github.createRepository(fullName, INSTALLATION_ID);
  const work = await WorkingRepo.create(repository.bareDir);
  const app = new GitHubApp({
    appId: String(github.appId),
    privateKey: github.privateKeyPem,
    baseUrl: github.apiUrl,
    logger: createLogger('silent'),
  });
  const mirror = new GitMirror({ cacheDir: join(dir, 'mirrors'), timeoutMs: 60_000 });
  return {
    dir,
    github,
    repository,
    work,
    app,
    mirror,
    async remote() {
      return {
        repositoryId: repository.id,
        cloneUrl: repository.cloneUrl,
        token: await app.installationToken(INSTALLATION_ID),
      };
    },
    async close() {
      await github.stop();
      await work.remove();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** Copies a repository fixture (test/fixtures/repositories/<name>) into a working clone. */
export async function copyRepositoryFixture(name: string, work: WorkingRepo): Promise<void> {
  await cp(join(packageRoot(), 'test', 'fixtures', 'repositories', name), work.dir, { recursive: true });
}

/** A push job for the fixture's repository, as the receiver would queue it for a push to main. */
export function pushJob(f: SourceFixture, after: string, extra: Partial<SyncJob> = {}): SyncJob {
  return {
    type: 'sync',
    trigger: 'push',
    deliveryId: uniqueName('delivery'),
    repository: { id: f.repository.id, fullName: f.repository.fullName },
    installationId: INSTALLATION_ID,
    branch: 'main',
    before: undefined,
    after,
    forced: false,
    receivedAt: new Date().toISOString(),
    ...extra,
  };
}

/** A pull request's preview job for a head commit of the fixture's repository (not from a fork). */
export function previewJob(f: SourceFixture, headSha: string, extra: Partial<PreviewJob> = {}): PreviewJob {
  return {
    type: 'preview',
    trigger: 'pull_request',
    deliveryId: uniqueName('delivery'),
    repository: { id: f.repository.id, fullName: f.repository.fullName },
    installationId: INSTALLATION_ID,
    number: 1,
    headSha,
    headRepositoryId: f.repository.id,
    baseBranch: 'main',
    receivedAt: new Date().toISOString(),
    ...extra,
  };
}

/** Everything Plumbline wrote to GitHub (statuses, check runs, annotations) as one text, to search for leaks. */
export function githubWrites(f: SourceFixture): string {
  return f.github.calls
    .filter((c) => c.method !== 'GET' && c.operation !== 'git')
    .map((c) => JSON.stringify(c.body))
    .join('\n');
}

/** The states a commit's context went through on the stand-in, oldest first. */
export function statusStates(f: SourceFixture, sha: string, context: string): string[] {
  return f.github
    .statuses(f.repository.fullName, sha)
    .filter((s) => s.context === context)
    .map((s) => s.state);
}

/**
 * `plumbline worker` as a separate process (so a test can SIGKILL it), wired to the fixture's GitHub
 * stand-in, with a short job lock so that another worker takes its job over quickly. `redisUrl`: a URL, or
 * the variables of another topology (Sentinel, Redis Cluster); no other topology variable is inherited.
 */
export function spawnWorkerProcess(
  f: SourceFixture,
  options: {
    readonly redisUrl: string | RedisTopologyEnv;
    readonly prefix: string;
    readonly registryFile: string;
    /** Receives what the worker writes (its log lines, `warn` and up); otherwise stderr goes to the test's. */
    readonly output?: string[];
    /** More of the worker's environment (PLUMBLINE_WORKER_HEALTH_PORT, …), set last. */
    readonly env?: Readonly<Record<string, string>>;
  },
): { readonly child: ChildProcess; readonly exited: Promise<unknown> } {
  const { REDIS_URL, REDIS_SENTINELS, REDIS_SENTINEL_NAME, REDIS_CLUSTER_NODES, ...inherited } = process.env;
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli.ts', 'worker'], {
    cwd: packageRoot(),
    env: {
      ...inherited,
      ...(typeof options.redisUrl === 'string' ? { REDIS_URL: options.redisUrl } : options.redisUrl),
      PLUMBLINE_QUEUE_PREFIX: options.prefix,
      PLUMBLINE_CLUSTERS: options.registryFile,
      GITHUB_APP_ID: String(f.github.appId),
      GITHUB_PRIVATE_KEY: f.github.privateKeyPem,
      GITHUB_API_URL: f.github.apiUrl,
      PLUMBLINE_CACHE_DIR: join(f.dir, `worker-cache-${options.prefix}`),
      PLUMBLINE_JOB_LOCK_MS: '2000',
      LOG_LEVEL: 'warn',
      ...options.env,
    },
    stdio: ['ignore', options.output ? 'pipe' : 'ignore', options.output ? 'pipe' : 'inherit'],
  });
  for (const stream of options.output ? [child.stdout, child.stderr] : [])
    stream?.on('data', (chunk: Buffer) => options.output?.push(chunk.toString('utf8')));
  return { child, exited: new Promise((resolve) => child.once('exit', resolve)) };
}
