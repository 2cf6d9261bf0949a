import type { ChildProcess } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { Queue, Worker } from 'bullmq';
import { Redis } from 'ioredis';
import { parseClusterRegistry } from '../../src/clusters/cluster-registry.ts';
import { withClusterLock } from '../../src/engine/cluster-lock.ts';
import { createLogger } from '../../src/logging/create-logger.ts';
import type { SyncJob } from '../../src/queue/jobs.ts';
import { finalizeFailedJobs } from '../../workers/finalize-failed-jobs.ts';
import { createJobConsumer, MAX_STALLED_COUNT } from '../../workers/job-consumer.ts';
import { testEnvironment, uniqueName } from '../helpers/environment.ts';
import {
  createSourceFixture,
  INSTALLATION_ID,
  pushJob,
  type SourceFixture,
  spawnWorkerProcess,
  statusStates,
} from '../helpers/source-fixture.ts';
import { startSyncConsumer, workerDependencies } from '../helpers/worker-deps.ts';

const env = testEnvironment();

async function until(condition: () => boolean, what: string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** Polls until `attempt` yields something (BullMQ's state moves on its own timers). */
async function eventually<T>(attempt: () => Promise<T | undefined>, what: string, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await attempt();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

describe('a worker that dies mid-job', () => {
  let f: SourceFixture;
  let redis: Redis;
  let child: ChildProcess | undefined;
  const cluster = uniqueName('crash');
  const namespace = uniqueName('crash');

  const job = (sha: string): SyncJob => pushJob(f, sha);
  const states = (sha: string, context: string) => statusStates(f, sha, context);

  beforeAll(async () => {
    f = await createSourceFixture();
    redis = new Redis(env.redisUrl, { maxRetriesPerRequest: null });
    await f.work.commit('app', {
      'clusters/local/dev/app.yaml': `apiVersion: v1\nkind: Namespace\nmetadata:\n  name: ${namespace}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\n  namespace: ${namespace}\ndata:\n  mode: crash-test\n`,
    });
    await f.work.push();
  });
  afterAll(async () => {
    child?.kill('SIGKILL');
    redis.disconnect();
    await f.close();
  });

  it('is killed with SIGKILL; another worker takes the job over and the final statuses still arrive', async () => {
    const prefix = uniqueName('crash');
    const registryYaml = `clusters:\n  - {name: ${cluster}, repo: ${f.repository.fullName}, path: clusters/local/dev, kubeconfig: ${env.kubeconfig}}\n`;
    const registryFile = join(f.dir, 'clusters.yaml');
    await writeFile(registryFile, registryYaml);
    const sha = await f.work.head();

    // Hold the cluster's lock so that the first worker is certainly mid-job when it is killed.
    let release: () => void = () => {};
    const held = new Promise<void>((resolve) => {
      release = resolve;
    });
    const holding = withClusterLock(redis, { prefix, cluster, leaseMs: 60_000, waitMs: 5_000 }, () => held);

    const spawned = spawnWorkerProcess(f, { redisUrl: env.redisUrl, prefix, registryFile });
    child = spawned.child;
    const worker = spawned.child;
    const exited = spawned.exited;
    const queue = new Queue('sync', { connection: redis, prefix });
    await queue.add('sync', job(sha), { attempts: 3 });
    await until(() => states(sha, 'plumbline').includes('pending'), 'the first worker to start the job');
    worker.kill('SIGKILL');
    await exited;
    release();
    await holding;

    const deps = workerDependencies(f, {
      registry: parseClusterRegistry(registryYaml),
      redis,
      prefix,
    });
    const { worker: survivor, results } = startSyncConsumer(redis, prefix, deps);
    try {
      await until(() => results.length > 0, 'the surviving worker to finish the job', 40_000);
    } finally {
      await survivor.close();
      await queue.close();
    }
    expect(results[0]?.outcomes).toEqual([expect.objectContaining({ cluster, status: 'applied' })]);
    // The pending status the dead worker wrote is not written again; the final one arrives.
    expect(states(sha, 'plumbline')).toEqual(['pending', 'success']);
    expect(states(sha, `plumbline/${cluster}`)).toEqual(['pending', 'success']);
    expect(f.github.violations).toEqual([]);
  });

  it('a job its workers gave up on (stalled too often) ends its pending statuses with `error`', async () => {
    const prefix = uniqueName('abandoned');
    const sha = await f.work.commit('another', { 'README.md': 'abandoned\n' });
    await f.work.push();
    const deps = workerDependencies(f, {
      registry: parseClusterRegistry(
        `clusters:\n  - {name: ${cluster}, repo: ${f.repository.fullName}, path: clusters/local/dev, kubeconfig: ${env.kubeconfig}}\n`,
      ),
      redis,
      prefix,
    });
    const finalizer = finalizeFailedJobs({
      connection: redis,
      prefix,
      reporter: deps.reporter,
      logger: createLogger('silent'),
    });
    const report = deps.reporter.forCommit({ repository: job(sha).repository, installationId: INSTALLATION_ID, sha });
    report.status({ context: 'plumbline', state: 'pending', description: 'applying this commit' });
    report.status({ context: `plumbline/${cluster}`, state: 'pending', description: 'applying this commit' });
    await report.flush();

    // A worker that takes the job and dies before renewing its lock, more often than the stall limit allows:
    // a manual BullMQ worker that takes the job and never renews nor finishes it, with the stall checks a
    // consumer runs (the same limit, a short lock so that the lease runs out quickly).
    const queue = new Queue('sync', { connection: redis, prefix });
    const dying = new Worker('sync', null, {
      connection: redis,
      prefix,
      lockDuration: 300,
      stalledInterval: 300,
      maxStalledCount: MAX_STALLED_COUNT,
    });
    let ran = false;
    let survivor: Worker | undefined;
    try {
      await new Promise((resolve) => setTimeout(resolve, 500)); // QueueEvents is listening
      const added = await queue.add('sync', job(sha));
      await dying.startStalledCheckTimer();
      for (let stall = 1; stall <= MAX_STALLED_COUNT + 1; stall++) {
        await eventually(() => dying.getNextJob(`dying-${stall}`, { block: false }), `take ${stall} of the job`);
        await eventually(
          async () => ((await queue.getJob(added.id ?? ''))?.stalledCounter ?? 0) >= stall || undefined,
          `stall ${stall} of the job`,
        );
      }
      await dying.close();
      // BullMQ fails it when a worker next takes it, without running it again.
      survivor = createJobConsumer({
        connection: redis,
        prefix,
        queue: 'sync',
        concurrency: 1,
        process: async () => {
          ran = true;
        },
        onError: () => {},
      });
      await until(() => states(sha, 'plumbline').includes('error'), 'the abandoned job to be finalized');
      await until(() => states(sha, `plumbline/${cluster}`).includes('error'), 'the cluster status to be finalized');
      expect(await (await queue.getJob(added.id ?? ''))?.getState()).toBe('failed');
      expect(ran).toBe(false);
    } finally {
      await dying.close();
      await survivor?.close();
      await queue.close();
      await finalizer.close();
    }
    expect(states(sha, 'plumbline')).toEqual(['pending', 'error']);
    expect(f.github.latestStatus(f.repository.fullName, sha, 'plumbline')?.description).toMatch(
      /^not finished: the worker running it stopped/,
    );
  });
});
