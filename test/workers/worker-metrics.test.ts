import type { ChildProcess } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import type { Server } from 'node:http';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { Worker } from 'bullmq';
import { Redis } from 'ioredis';
import { parseClusterRegistry } from '../../src/clusters/cluster-registry.ts';
import { createJobProducer, type JobProducer } from '../../src/queue/job-producer.ts';
import type { PlumblineJob } from '../../src/queue/jobs.ts';
import { createJobConsumer } from '../../workers/job-consumer.ts';
import { processResyncJob } from '../../workers/process-resync-job.ts';
import { processSyncJob, type SyncDependencies, type SyncResult } from '../../workers/process-sync-job.ts';
import { serveWorkerHealth } from '../../workers/serve-worker-health.ts';
import { createWorkerMetrics, type WorkerMetrics } from '../../workers/worker-metrics.ts';
import { testEnvironment, uniqueName } from '../helpers/environment.ts';
import { type Sample, sampleSum, scrape } from '../helpers/prometheus-text.ts';
import {
  createSourceFixture,
  pushJob,
  type SourceFixture,
  spawnWorkerProcess,
  statusStates,
} from '../helpers/source-fixture.ts';
import { workerDependencies } from '../helpers/worker-deps.ts';

const env = testEnvironment();
const FOLDER = 'clusters/metrics';
/** Where workers used to relay their counters for the receiver to export (removed: each worker serves its own). */
const RELAYED_COUNTERS = (prefix: string) => `${prefix}:metrics:counters`;

async function until(condition: () => boolean, what: string, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

const app = (namespace: string) =>
  `apiVersion: v1\nkind: Namespace\nmetadata:\n  name: ${namespace}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\n  namespace: ${namespace}\ndata:\n  mode: strict\n`;

describe("a worker's own /metrics, after sync jobs through the real path", () => {
  let f: SourceFixture;
  let redis: Redis;
  let producer: JobProducer;
  let worker: Worker<PlumblineJob, SyncResult | undefined>;
  let health: Server;
  let metrics: WorkerMetrics;
  let deps: SyncDependencies;
  const results: SyncResult[] = [];
  const failures: string[] = [];
  const cluster = uniqueName('metrics');
  const namespace = uniqueName('metrics');
  const prefix = uniqueName('metrics');
  let sha: string;

  const metricsUrl = () => {
    const address = health.address();
    if (!address || typeof address === 'string') throw new Error('the health server has no port');
    return `http://127.0.0.1:${address.port}/metrics`;
  };
  const runJob = async () => {
    const count = results.length;
    await producer.add(pushJob(f, sha));
    await until(() => results.length > count || failures.length > 0, 'the sync job');
    expect(failures).toEqual([]);
    return results.at(-1);
  };

  beforeAll(async () => {
    f = await createSourceFixture();
    redis = new Redis(env.redisUrl, { maxRetriesPerRequest: null });
    const registry = parseClusterRegistry(
      `clusters:\n  - {name: ${cluster}, repo: ${f.repository.fullName}, path: ${FOLDER}, kubeconfig: ${env.kubeconfig}}\n`,
    );
    metrics = createWorkerMetrics();
    deps = workerDependencies(f, { registry, redis, prefix, metrics });
    producer = createJobProducer(redis, { prefix, coalesceMs: 0, onError: () => {} });
    worker = createJobConsumer<SyncResult | undefined>({
      connection: redis,
      prefix,
      queue: 'sync',
      concurrency: 1,
      process: async (job) => (job.type === 'sync' ? processSyncJob(job, deps) : undefined),
      observeWait: (seconds) => metrics.jobWaited('sync', seconds),
      onError: () => {},
    });
    worker.on('completed', (job) => {
      if (job.returnvalue) results.push(job.returnvalue);
    });
    worker.on('failed', (_job, error) => failures.push(error.message));
    health = await serveWorkerHealth(0, { ready: async () => true, metrics: metrics.registry });
    sha = await f.work.commit('app', { [`${FOLDER}/app.yaml`]: app(namespace) });
    await f.work.push();
  });
  afterAll(async () => {
    await worker.close();
    await producer.close();
    await new Promise((resolve) => health.close(resolve));
    redis.disconnect();
    await f.close();
  });

  it('times the reconcile and its phases, push → applied and the queue wait; counts apiserver and GitHub requests', async () => {
    const result = await runJob();
    expect(result?.outcomes).toEqual([expect.objectContaining({ cluster, status: 'applied' })]);
    const samples = await scrape(metricsUrl());
    expect(sampleSum(samples, 'plumbline_worker_reconcile_seconds_count', { cluster, outcome: 'applied' })).toBe(1);
    // Every phase the sync went through was timed (the final health wait included).
    const unobserved = ['render', 'observe', 'apply', 'record', 'health'].filter(
      (phase) => sampleSum(samples, 'plumbline_worker_reconcile_phase_seconds_count', { phase }) < 1,
    );
    expect(unobserved).toEqual([]);
    expect(sampleSum(samples, 'plumbline_worker_push_to_applied_seconds_count', { cluster, trigger: 'push' })).toBe(1);
    expect(sampleSum(samples, 'plumbline_worker_queue_wait_seconds_count', { queue: 'sync' })).toBe(1);
    // A new cluster: its inventory is not there yet (404), then the objects and the inventory are created (201).
    const apiserver = (verb: string, code: string) =>
      sampleSum(samples, 'plumbline_worker_apiserver_requests_total', { cluster, verb, code });
    expect(apiserver('GET', '404')).toBeGreaterThan(0);
    expect(apiserver('PATCH', '201')).toBeGreaterThan(0);
    expect(sampleSum(samples, 'plumbline_worker_apiserver_request_seconds_count', { cluster, verb: 'PATCH' })).toBe(
      apiserver('PATCH', '201') + apiserver('PATCH', '200'),
    );
    // GitHub: the repository looked up by id, the installation token, the statuses.
    expect(
      sampleSum(samples, 'plumbline_worker_github_requests_total', { method: 'GET', code: '200' }),
    ).toBeGreaterThan(0);
    expect(
      sampleSum(samples, 'plumbline_worker_github_requests_total', { method: 'POST', code: '201' }),
    ).toBeGreaterThan(0);
    expect(renderCache(samples)).toEqual({ hit: 0, miss: 1 });
  });

  it('a second identical job renders from the cache and reads and patches what exists (200)', async () => {
    const result = await runJob();
    expect(result?.outcomes).toEqual([expect.objectContaining({ cluster, status: 'applied', repeated: true })]);
    const samples = await scrape(metricsUrl());
    expect(renderCache(samples)).toEqual({ hit: 1, miss: 1 });
    expect(sampleSum(samples, 'plumbline_worker_reconcile_seconds_count', { cluster, outcome: 'applied' })).toBe(2);
    const apiserver = (verb: string, code: string) =>
      sampleSum(samples, 'plumbline_worker_apiserver_requests_total', { cluster, verb, code });
    expect(apiserver('GET', '200')).toBeGreaterThan(0);
    expect(apiserver('PATCH', '200')).toBeGreaterThan(0);
    // The commit was applied already: no new push → applied latency.
    expect(sampleSum(samples, 'plumbline_worker_push_to_applied_seconds_count', { cluster })).toBe(1);
  });

  it('counts resyncs itself: nothing is relayed through Redis any more', async () => {
    await processResyncJob(
      { type: 'resync', cluster },
      { ...deps, enqueueSync: async () => {}, syncInFlight: async () => false, nextResyncAt: async () => undefined },
    );
    const samples = await scrape(metricsUrl());
    expect(sampleSum(samples, 'plumbline_resyncs_total', { cluster })).toBe(1);
    expect(await redis.exists(RELAYED_COUNTERS(prefix))).toBe(0);
  });
});

function renderCache(samples: readonly Sample[]): { hit: number; miss: number } {
  const lookups = (result: string) =>
    sampleSum(samples, 'plumbline_worker_render_cache_lookups_total', { level: 'cluster', result });
  return { hit: lookups('hit'), miss: lookups('miss') };
}

/** A port nothing listens on right now. */
async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  await new Promise((resolve) => server.close(resolve));
  if (!address || typeof address === 'string') throw new Error('no port');
  return address.port;
}

describe('`plumbline worker` serves /metrics on its health port', () => {
  let f: SourceFixture;
  let redis: Redis;
  let child: ChildProcess | undefined;

  beforeAll(async () => {
    f = await createSourceFixture();
    redis = new Redis(env.redisUrl, { maxRetriesPerRequest: null });
  });
  afterAll(async () => {
    child?.kill('SIGKILL');
    redis.disconnect();
    await f.close();
  });

  it('with its reconciles, apiserver and GitHub requests, queue wait, render cache and process metrics', async () => {
    const prefix = uniqueName('metrics-process');
    const cluster = uniqueName('metrics-process');
    const namespace = uniqueName('metrics-process');
    const registryFile = join(f.dir, 'clusters.yaml');
    await writeFile(
      registryFile,
      `clusters:\n  - {name: ${cluster}, repo: ${f.repository.fullName}, path: ${FOLDER}, kubeconfig: ${env.kubeconfig}}\n`,
    );
    const sha = await f.work.commit('app', { [`${FOLDER}/app.yaml`]: app(namespace) });
    await f.work.push();
    const port = await freePort();
    const spawned = spawnWorkerProcess(f, {
      redisUrl: env.redisUrl,
      prefix,
      registryFile,
      env: { PLUMBLINE_WORKER_HEALTH_PORT: String(port) },
    });
    child = spawned.child;
    const producer = createJobProducer(redis, { prefix, coalesceMs: 0, onError: () => {} });
    try {
      await producer.add(pushJob(f, sha));
      await until(() => statusStates(f, sha, 'plumbline').includes('success'), 'the worker to apply the commit');
    } finally {
      await producer.close();
    }
    const samples = await scrape(`http://127.0.0.1:${port}/metrics`);
    expect(sampleSum(samples, 'plumbline_worker_reconcile_seconds_count', { cluster, outcome: 'applied' })).toBe(1);
    expect(sampleSum(samples, 'plumbline_worker_push_to_applied_seconds_count', { cluster })).toBe(1);
    expect(sampleSum(samples, 'plumbline_worker_queue_wait_seconds_count', { queue: 'sync' })).toBe(1);
    expect(
      sampleSum(samples, 'plumbline_worker_apiserver_requests_total', { cluster, verb: 'PATCH', code: '201' }),
    ).toBeGreaterThan(0);
    expect(sampleSum(samples, 'plumbline_worker_github_requests_total', { method: 'POST' })).toBeGreaterThan(0);
    expect(renderCache(samples)).toEqual({ hit: 0, miss: 1 });
    expect(samples.some((s) => s.name === 'plumbline_worker_process_resident_memory_bytes')).toBe(true);
    child.kill('SIGTERM');
    await spawned.exited;
    child = undefined;
  }, 120_000);
});
