import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { freePort } from '../../dev/local-stack/free-port.ts';
import { isRunning, stopProcess } from '../../dev/local-stack/processes.ts';
import { type RedisRecord, startRedisServer } from '../../dev/local-stack/redis-server.ts';
import { parseClusterRegistry } from '../../src/clusters/cluster-registry.ts';
import { withClusterLock } from '../../src/engine/cluster-lock.ts';
import { packageRoot } from '../../src/support/package-root.ts';
import { testEnvironment, uniqueName } from '../helpers/environment.ts';
import { createSourceFixture, pushJob, type SourceFixture, statusStates } from '../helpers/source-fixture.ts';
import { startSyncConsumer, workerDependencies } from '../helpers/worker-deps.ts';

const env = testEnvironment();
/** The grace the processes under test get when it is meant to run out: short, so that the drill is quick. */
const GRACE_MS = 5_000;
/**
 * How long the test waits for an exit. Generous (a loaded 2-core machine): the point is "exits in bounded
 * time" against "never exits" (before the fix: still alive 60 s after SIGTERM, until SIGKILL).
 */
const EXIT_WITHIN_MS = GRACE_MS + 25_000;
const GAVE_UP = 'shutdown gave up on what it could not finish';

interface PlumblineProcess {
  readonly child: ChildProcess;
  /** Every line it wrote to stdout (pino's JSON lines), as they come. */
  readonly lines: string[];
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Resolves once a line containing `text` was written. */
  logged(text: string): Promise<void>;
  /** The JSON log entry whose message is `msg`, if there was one. */
  entry(msg: string): Record<string, unknown> | undefined;
}

function spawnPlumbline(command: string, environment: NodeJS.ProcessEnv): PlumblineProcess {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli.ts', command], {
    cwd: packageRoot(),
    env: { ...process.env, LOG_LEVEL: 'info', ...environment },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const lines: string[] = [];
  const waiting: { text: string; resolve: () => void }[] = [];
  createInterface({ input: child.stdout! }).on('line', (line) => {
    lines.push(line);
    for (const w of waiting.filter((w) => line.includes(w.text))) w.resolve();
  });
  const entries = () =>
    lines.flatMap((line) => {
      try {
        return [JSON.parse(line) as Record<string, unknown>];
      } catch {
        return [];
      }
    });
  return {
    child,
    lines,
    exited: new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal }))),
    logged: (text) =>
      lines.some((line) => line.includes(text))
        ? Promise.resolve()
        : new Promise((resolve) => {
            waiting.push({ text, resolve });
          }),
    entry: (msg) => entries().find((e) => e.msg === msg),
  };
}

/** How long the exit took and its code, or `undefined` if the process was still alive after `withinMs`. */
async function exitWithin(
  p: PlumblineProcess,
  withinMs: number,
): Promise<{ ms: number; code: number | null; signal: NodeJS.Signals | null } | undefined> {
  const started = Date.now();
  let timer: NodeJS.Timeout | undefined;
  const outcome = await Promise.race([
    p.exited.then((exit) => ({ ms: Date.now() - started, ...exit })),
    new Promise<undefined>((resolve) => {
      timer = setTimeout(() => resolve(undefined), withinMs);
    }),
  ]);
  clearTimeout(timer);
  return outcome;
}

async function until(condition: () => boolean, what: string, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Runs its own durable Redis (AOF, fsync always), which it kills and restarts from its file. */
describe('drill: SIGTERM while Redis is unreachable, or while a job outlasts the grace', () => {
  let f: SourceFixture;
  let dir: string;
  let port: number;
  let redis: RedisRecord;
  const spawned: ChildProcess[] = [];

  beforeAll(async () => {
    f = await createSourceFixture();
    dir = await mkdtemp(join(tmpdir(), 'plumbline-shutdown-drill-'));
    port = await freePort();
    redis = await startRedisServer(dir, port, { name: 'shutdown', durable: true });
  });
  afterAll(async () => {
    for (const child of spawned) child.kill('SIGKILL');
    await stopProcess(redis.pid, redis.command);
    await f.close();
    await rm(dir, { recursive: true, force: true });
  });

  const appEnvironment = (prefix: string, registryFile: string, extra: NodeJS.ProcessEnv = {}) => ({
    REDIS_URL: redis.url,
    PLUMBLINE_QUEUE_PREFIX: prefix,
    PLUMBLINE_CLUSTERS: registryFile,
    GITHUB_APP_ID: String(f.github.appId),
    GITHUB_PRIVATE_KEY: f.github.privateKeyPem,
    GITHUB_API_URL: f.github.apiUrl,
    GITHUB_WEBHOOK_SECRET: 'shutdown-drill',
    PORT: '0',
    PLUMBLINE_CACHE_DIR: join(dir, `cache-${prefix}`),
    // Another worker takes over a job whose worker is gone 2 s after its last lock renewal.
    PLUMBLINE_JOB_LOCK_MS: '2000',
    PLUMBLINE_SHUTDOWN_GRACE_MS: String(GRACE_MS),
    ...extra,
  });

  /**
   * A cluster of its own with a commit to apply, and `plumbline all` running a job for it that waits for
   * the cluster's lock, which the test holds: the job is certainly in progress until the test lets go.
   */
  async function jobInProgress(extra: NodeJS.ProcessEnv = {}) {
    const prefix = uniqueName('shutdown');
    const cluster = uniqueName('shutdown');
    const path = `clusters/${cluster}`;
    const sha = await f.work.commit(cluster, {
      [`${path}/app.yaml`]: `apiVersion: v1\nkind: Namespace\nmetadata:\n  name: ${cluster}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\n  namespace: ${cluster}\ndata:\n  mode: shutdown-drill\n`,
    });
    await f.work.push();
    const registryYaml = `clusters:\n  - {name: ${cluster}, repo: ${f.repository.fullName}, path: ${path}, kubeconfig: ${env.kubeconfig}}\n`;
    const registryFile = join(dir, `${prefix}.yaml`);
    await writeFile(registryFile, registryYaml);

    const connection = new Redis(redis.url, { maxRetriesPerRequest: null });
    connection.on('error', () => {});
    let release: () => void = () => {};
    const held = new Promise<void>((resolve) => {
      release = resolve;
    });
    const holding = withClusterLock(connection, { prefix, cluster, leaseMs: 60_000, waitMs: 5_000 }, () => held).catch(
      () => undefined,
    );
    const queue = new Queue('sync', { connection, prefix });
    queue.on('error', () => {});
    const plumbline = spawnPlumbline('all', appEnvironment(prefix, registryFile, extra));
    spawned.push(plumbline.child);
    await Promise.all([plumbline.logged('worker started'), plumbline.logged('receiver listening')]);
    await queue.add('sync', pushJob(f, sha), { attempts: 3 });
    await until(() => statusStates(f, sha, 'plumbline').includes('pending'), 'the worker to start the job');
    return {
      cluster,
      sha,
      plumbline,
      /** Lets the job have the cluster's lock. */
      async release() {
        release();
        await holding;
      },
      /** A worker in this process, as another replica would be, that finishes the jobs left to it. */
      async takeOver() {
        const deps = workerDependencies(f, { registry: parseClusterRegistry(registryYaml), redis: connection, prefix });
        const { worker, results } = startSyncConsumer(connection, prefix, deps);
        try {
          await until(() => results.length > 0, 'another worker to take the job over and finish it');
        } finally {
          await worker.close();
        }
        return results;
      },
      async close() {
        plumbline.child.kill('SIGKILL');
        release();
        await queue.close().catch(() => undefined);
        connection.disconnect();
      },
    };
  }

  it('`plumbline all` exits within its grace, saying what it gave up on; its job is taken over once Redis is back', async () => {
    const job = await jobInProgress();
    try {
      process.kill(redis.pid, 'SIGKILL');
      await job.plumbline.logged('redis unavailable; retrying');
      job.plumbline.child.kill('SIGTERM');
      const exit = await exitWithin(job.plumbline, EXIT_WITHIN_MS);

      expect(exit).toBeDefined(); // before the fix: still "shutting down", until SIGKILL
      expect(exit?.code).toBe(1); // not a clean shutdown, and the exit code says so
      const gaveUp = job.plumbline.entry(GAVE_UP);
      expect(gaveUp?.gaveUp).toEqual(expect.arrayContaining(['worker: sync jobs', 'worker: redis']));
      expect(gaveUp?.graceMs).toBe(GRACE_MS);
      process.stdout.write(
        `without Redis: exited ${exit?.ms} ms after SIGTERM (grace ${GRACE_MS} ms); ${JSON.stringify(gaveUp)}\n`,
      );

      // Redis comes back from its file: the job is still there, claimed by a lock that has expired.
      redis = await startRedisServer(dir, port, { name: 'shutdown', durable: true });
      await job.release();
      const back = Date.now();
      const results = await job.takeOver();
      process.stdout.write(
        `without Redis: another worker finished the job ${Date.now() - back} ms after Redis was back\n`,
      );
      expect(results[0]?.outcomes).toEqual([expect.objectContaining({ cluster: job.cluster, status: 'applied' })]);
      expect(statusStates(f, job.sha, 'plumbline')).toEqual(['pending', 'success']);
      expect(statusStates(f, job.sha, `plumbline/${job.cluster}`)).toEqual(['pending', 'success']);
    } finally {
      await job.close();
      // The other tests need it, whatever happened here.
      if (!(await isRunning(redis.pid, redis.command)))
        redis = await startRedisServer(dir, port, { name: 'shutdown', durable: true });
    }
  }, 180_000);

  it('with Redis up, a job that outlasts the grace is given up on (exit 1) and another worker takes it over', async () => {
    const job = await jobInProgress();
    try {
      job.plumbline.child.kill('SIGTERM');
      const exit = await exitWithin(job.plumbline, EXIT_WITHIN_MS);
      expect(exit).toBeDefined();
      expect(exit?.code).toBe(1);
      // Only jobs in progress (a resync may be waiting for the lock too): Redis closed as it should.
      const gaveUp = job.plumbline.entry(GAVE_UP);
      expect(gaveUp?.gaveUp).toEqual(expect.arrayContaining(['worker: sync jobs']));
      expect(((gaveUp?.gaveUp ?? []) as string[]).filter((step) => !step.endsWith(' jobs'))).toEqual([]);
      expect(gaveUp?.failed).toEqual([]);
      process.stdout.write(`job outlasting the grace: exited ${exit?.ms} ms after SIGTERM (grace ${GRACE_MS} ms)\n`);

      await job.release();
      const released = Date.now();
      const results = await job.takeOver();
      process.stdout.write(`job outlasting the grace: finished by another worker ${Date.now() - released} ms later\n`);
      expect(results[0]?.outcomes).toEqual([expect.objectContaining({ cluster: job.cluster, status: 'applied' })]);
      expect(statusStates(f, job.sha, 'plumbline')).toEqual(['pending', 'success']);
    } finally {
      await job.close();
    }
  }, 180_000);

  it('with Redis up, a job that ends within the grace finishes before a clean exit (0)', async () => {
    const job = await jobInProgress({ PLUMBLINE_SHUTDOWN_GRACE_MS: '60000' });
    try {
      job.plumbline.child.kill('SIGTERM');
      await job.plumbline.logged('shutting down');
      await sleep(1_000);
      await job.release();
      const exit = await exitWithin(job.plumbline, 90_000);
      expect(exit?.code).toBe(0);
      expect(job.plumbline.entry(GAVE_UP)).toBeUndefined();
      expect(job.plumbline.entry('worker stopped')).toBeDefined();
      expect(job.plumbline.entry('receiver stopped')).toBeDefined();
      // The job ran to its end in the process that was stopping: nothing is left for another worker.
      expect(statusStates(f, job.sha, 'plumbline')).toEqual(['pending', 'success']);
      expect(statusStates(f, job.sha, `plumbline/${job.cluster}`)).toEqual(['pending', 'success']);
    } finally {
      await job.close();
    }
  }, 180_000);

  it('a SIGTERM during a start-up that waits for an unreachable Redis ends within the grace', async () => {
    const registryFile = join(dir, 'start-up.yaml');
    await writeFile(
      registryFile,
      `clusters:\n  - {name: start-up, repo: ${f.repository.fullName}, path: clusters/start-up, kubeconfig: ${env.kubeconfig}}\n`,
    );
    const nowhere = `redis://127.0.0.1:${await freePort()}`;
    const plumbline = spawnPlumbline('worker', { ...appEnvironment('start-up', registryFile), REDIS_URL: nowhere });
    spawned.push(plumbline.child);
    try {
      await plumbline.logged('redis unavailable; retrying');
      plumbline.child.kill('SIGTERM');
      const exit = await exitWithin(plumbline, EXIT_WITHIN_MS);
      expect(exit?.code).toBe(1);
      expect(plumbline.entry(GAVE_UP)?.gaveUp).toEqual(['start-up: starting']);
    } finally {
      plumbline.child.kill('SIGKILL');
    }
  }, 120_000);

  it('a second signal ends a shutdown at once, with 128 + its number', async () => {
    const registryFile = join(dir, 'second-signal.yaml');
    await writeFile(
      registryFile,
      `clusters:\n  - {name: second, repo: ${f.repository.fullName}, path: clusters/second, kubeconfig: ${env.kubeconfig}}\n`,
    );
    const nowhere = `redis://127.0.0.1:${await freePort()}`;
    // A grace far longer than the test waits: only the second signal can end this shutdown in time.
    const plumbline = spawnPlumbline('worker', {
      ...appEnvironment('second-signal', registryFile),
      REDIS_URL: nowhere,
      PLUMBLINE_SHUTDOWN_GRACE_MS: '600000',
    });
    spawned.push(plumbline.child);
    try {
      await plumbline.logged('redis unavailable; retrying');
      plumbline.child.kill('SIGTERM');
      await plumbline.logged('shutting down');
      await sleep(500);
      plumbline.child.kill('SIGINT');
      const exit = await exitWithin(plumbline, 30_000);
      expect(exit?.code).toBe(130);
      expect(plumbline.entry('second signal: exiting at once')).toBeDefined();
    } finally {
      plumbline.child.kill('SIGKILL');
    }
  }, 120_000);
});
