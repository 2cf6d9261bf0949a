import { readFile, writeFile } from 'node:fs/promises';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { Worker } from 'bullmq';
import { Redis } from 'ioredis';
import { parseClusterRegistry } from '../../src/clusters/cluster-registry.ts';
import { createClusterClient, loadKubeConfig } from '../../src/engine/cluster-client.ts';
import { readInventory } from '../../src/engine/inventory.ts';
import { GitHubApp } from '../../src/github/github-app.ts';
import { createLogger } from '../../src/logging/create-logger.ts';
import { createJobProducer, type JobProducer } from '../../src/queue/job-producer.ts';
import type { PlumblineJob, SyncJob } from '../../src/queue/jobs.ts';
import { createGitHubReporter } from '../../src/reporting/github-reporter.ts';
import { createWriteBudget } from '../../src/reporting/write-budget.ts';
import { createJobConsumer } from '../../workers/job-consumer.ts';
import { processResyncJob } from '../../workers/process-resync-job.ts';
import { processSyncJob, type SyncDependencies, type SyncResult } from '../../workers/process-sync-job.ts';
import { createWorkerMetrics } from '../../workers/worker-metrics.ts';
import { testEnvironment, uniqueName } from '../helpers/environment.ts';
import { kubeClients } from '../helpers/kube.ts';
import { parsePrometheusText, sampleSum } from '../helpers/prometheus-text.ts';
import { createSourceFixture, pushJob, type SourceFixture, statusStates } from '../helpers/source-fixture.ts';
import { workerDependencies } from '../helpers/worker-deps.ts';

const env = testEnvironment();
const STATUSES = 'POST /repos/{owner}/{repo}/statuses/{sha}';

/** A TCP proxy in front of the apiserver that can be cut: "the apiserver unreachable for a while". */
async function cuttableProxy(target: URL): Promise<{ port: number; up: boolean; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  const state = { up: true };
  const server: Server = createServer((client) => {
    sockets.add(client);
    client.on('close', () => sockets.delete(client));
    if (!state.up) {
      client.destroy();
      return;
    }
    const upstream = connect(Number(target.port), target.hostname);
    upstream.on('error', () => client.destroy());
    client.on('error', () => upstream.destroy());
    client.pipe(upstream).pipe(client);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  return {
    port,
    get up() {
      return state.up;
    },
    set up(value: boolean) {
      state.up = value;
      // Cutting also drops the connections already open, as a network failure would.
      if (!value) for (const socket of sockets) socket.destroy();
    },
    async close() {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

async function until(condition: () => boolean | Promise<boolean>, what: string, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

describe('fault drills', () => {
  let f: SourceFixture;
  let redis: Redis;

  const syncJob = (after: string, before?: string): SyncJob => pushJob(f, after, { before });
  const states = (sha: string, context: string) => statusStates(f, sha, context);
  /** Queues a job as the receiver does: the newest-job record first, then the job. */
  const enqueue = async (producer: JobProducer, job: SyncJob) => {
    const latest = producer.latestRecord(job);
    await redis.set(latest.key, latest.value, 'EX', latest.ttlSeconds);
    await producer.add(job);
  };
  const consume = (prefix: string, deps: SyncDependencies, results: SyncResult[]): Worker =>
    createJobConsumer<SyncResult | undefined>({
      connection: redis,
      prefix,
      queue: 'sync',
      concurrency: 2,
      process: async (job: PlumblineJob, run) => {
        if (job.type !== 'sync') return undefined;
        const result = await processSyncJob(job, deps, run);
        results.push(result);
        return result;
      },
      onError: () => {},
    }) as unknown as Worker;

  beforeAll(async () => {
    f = await createSourceFixture();
    redis = new Redis(env.redisUrl, { maxRetriesPerRequest: null });
  });
  afterAll(async () => {
    redis.disconnect();
    await f.close();
  });

  it('the apiserver unreachable for a while: retried with backoff, `error` after the last attempt, recovered by the next resync', async () => {
    const namespace = uniqueName('outage');
    const cluster = uniqueName('outage');
    const prefix = uniqueName('outage');
    const original = await readFile(env.kubeconfig, 'utf8');
    const server = new URL(/server: (\S+)/.exec(original)?.[1] ?? '');
    const proxy = await cuttableProxy(server);
    const kubeconfig = join(f.dir, 'through-proxy.kubeconfig');
    await writeFile(kubeconfig, original.replace(server.origin, `https://127.0.0.1:${proxy.port}`));
    const registry = parseClusterRegistry(
      `clusters:\n  - {name: ${cluster}, repo: ${f.repository.fullName}, path: clusters/outage, kubeconfig: ${kubeconfig}, interval: 1m}\n`,
    );
    const metrics = createWorkerMetrics();
    const deps = workerDependencies(f, { registry, redis, prefix, metrics });
    const producer = createJobProducer(redis, {
      prefix,
      coalesceMs: 0,
      onError: () => {},
      retry: { attempts: 3, backoffMs: 200 },
    });
    const results: SyncResult[] = [];
    const worker = consume(prefix, deps, results);
    try {
      const sha = await f.work.commit('outage', {
        'clusters/outage/app.yaml': `apiVersion: v1\nkind: Namespace\nmetadata:\n  name: ${namespace}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\n  namespace: ${namespace}\ndata:\n  mode: strict\n`,
      });
      await f.work.push();
      proxy.up = false;
      await enqueue(producer, syncJob(sha));
      await until(() => results.length > 0, 'the job to give up');
      expect(results[0]?.outcomes).toEqual([expect.objectContaining({ status: 'error' })]);
      expect(states(sha, `plumbline/${cluster}`)).toEqual(['error']);
      expect(f.github.latestStatus(f.repository.fullName, sha, `plumbline/${cluster}`)?.description).toMatch(
        /^not applied after 3 attempt\(s\)/,
      );

      // The apiserver is back. No push comes: the next resync sees the head is not applied and syncs it.
      proxy.up = true;
      const resync = await processResyncJob(
        { type: 'resync', cluster },
        {
          ...deps,
          enqueueSync: (job) => producer.add(job),
          syncInFlight: (job) => producer.inFlight(job),
          nextResyncAt: async () => undefined,
        },
      );
      expect(resync?.missedPush).toBe(sha);
      await until(() => results.length > 1, 'the re-queued job');
      expect(results[1]?.outcomes).toEqual([expect.objectContaining({ status: 'applied' })]);
      expect(states(sha, `plumbline/${cluster}`)).toEqual(['error', 'success']);
      expect(f.github.latestStatus(f.repository.fullName, sha, 'plumbline')?.state).toBe('success');
      const live = await kubeClients(env.kubeconfig).core.readNamespacedConfigMap({ name: 'settings', namespace });
      expect(live.data?.mode).toBe('strict');
      // A webhook was seen for that commit: this was a retry, not a missed push.
      expect(sampleSum(parsePrometheusText(await metrics.registry.metrics()), 'plumbline_webhook_missed_total')).toBe(
        0,
      );
    } finally {
      await worker.close();
      await producer.close();
      await proxy.close();
    }
  }, 120_000);

  it('GitHub answering 500s and rate limits for a while: the statuses arrive late but correct, no job is lost', async () => {
    const namespace = uniqueName('github-outage');
    const cluster = uniqueName('github-outage');
    const prefix = uniqueName('github-outage');
    const registry = parseClusterRegistry(
      `clusters:\n  - {name: ${cluster}, repo: ${f.repository.fullName}, path: clusters/github-outage, kubeconfig: ${env.kubeconfig}}\n`,
    );
    // An App client that does not retry 5xx itself: the job's own retries have to carry the statuses.
    const app = new GitHubApp({
      appId: String(f.github.appId),
      privateKey: f.github.privateKeyPem,
      baseUrl: f.github.apiUrl,
      logger: createLogger('silent'),
      serverErrorRetries: 0,
    });
    const base = workerDependencies(f, { registry, redis, prefix });
    const deps: SyncDependencies = {
      ...base,
      reporter: createGitHubReporter({
        redis,
        prefix,
        octokitFor: (id) => app.installationOctokit(id),
        budget: createWriteBudget(redis, { prefix, perMinute: 6_000, burst: 100 }),
        logger: createLogger('silent'),
      }),
    };
    const producer = createJobProducer(redis, {
      prefix,
      coalesceMs: 0,
      onError: () => {},
      retry: { attempts: 6, backoffMs: 200 },
    });
    const results: SyncResult[] = [];
    const worker = consume(prefix, deps, results);
    try {
      const sha = await f.work.commit('github outage', {
        'clusters/github-outage/app.yaml': `apiVersion: v1\nkind: Namespace\nmetadata:\n  name: ${namespace}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\n  namespace: ${namespace}\ndata:\n  mode: strict\n`,
      });
      await f.work.push();
      // The next eight status writes fail: 500s, then a secondary rate limit, then a 429 with retry-after.
      f.github.script(STATUSES, { status: 500, body: { message: 'Server Error' } }, 6);
      f.github.script(STATUSES, {
        status: 403,
        body: { message: 'You have exceeded a secondary rate limit. Please wait a few minutes before you try again.' },
        headers: { 'retry-after': '1' },
      });
      f.github.script(STATUSES, {
        status: 429,
        body: { message: 'Too Many Requests' },
        headers: { 'retry-after': '1' },
      });
      await enqueue(producer, syncJob(sha));
      // The roll-up and the cluster's status are written concurrently (a lane per context), each retried on its own.
      await until(
        () => states(sha, 'plumbline').at(-1) === 'success' && states(sha, `plumbline/${cluster}`).at(-1) === 'success',
        'the roll-up and the cluster status to arrive',
        90_000,
      );
      const refused = f.github.callsTo(STATUSES).filter((c) => c.path.endsWith(sha) && c.status >= 400);
      expect(refused.length).toBe(8);
      expect(f.github.latestStatus(f.repository.fullName, sha, `plumbline/${cluster}`)).toMatchObject({
        state: 'success',
        description: expect.stringMatching(/^(already applied; )?(2 created|no changes) in/),
      });
      // Applied exactly as the commit says, whatever number of attempts reporting took.
      const inventory = await readInventory(
        createClusterClient(loadKubeConfig({ kubeconfig: env.kubeconfig })),
        cluster,
      );
      expect(inventory?.revision).toBe(sha);
    } finally {
      await worker.close();
      await producer.close();
    }
  }, 150_000);

  it('two pushes in quick succession with a slow worker: the newer commit ends up on every cluster', async () => {
    const namespaces = [uniqueName('race'), uniqueName('race')];
    const clusters = [uniqueName('race-a'), uniqueName('race-b')];
    const prefix = uniqueName('race');
    const registry = parseClusterRegistry(
      `clusters:\n${clusters
        .map(
          (c, i) =>
            `  - {name: ${c}, repo: ${f.repository.fullName}, path: clusters/race-${i}, kubeconfig: ${i === 0 ? env.kubeconfig : env.kubeconfigB}}`,
        )
        .join('\n')}\n`,
    );
    const deps = workerDependencies(f, { registry, redis, prefix });
    const files = (version: string) =>
      Object.fromEntries(
        namespaces.map((ns, i) => [
          `clusters/race-${i}/app.yaml`,
          `apiVersion: v1\nkind: Namespace\nmetadata:\n  name: ${ns}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\n  namespace: ${ns}\ndata:\n  version: "${version}"\n`,
        ]),
      );
    const producer = createJobProducer(redis, { prefix, coalesceMs: 0, onError: () => {} });
    const results: SyncResult[] = [];
    // A slow worker: the first cluster's lock is busy for two seconds when the jobs arrive.
    const { withClusterLock } = await import('../../src/engine/cluster-lock.ts');
    const busy = withClusterLock(
      redis,
      { prefix, cluster: clusters[0] ?? '', leaseMs: 10_000, waitMs: 1_000 },
      () => new Promise((resolve) => setTimeout(resolve, 2_000)),
    );
    const worker = consume(prefix, deps, results);
    try {
      const older = await f.work.commit('race v1', files('1'));
      await f.work.push();
      await enqueue(producer, syncJob(older));
      const newer = await f.work.commit('race v2', files('2'));
      await f.work.push();
      await enqueue(producer, syncJob(newer, older));
      await busy;
      await until(
        () => states(newer, 'plumbline').at(-1) === 'success' && states(older, 'plumbline').at(-1) !== 'pending',
        'both commits to settle',
      );
      for (const [i, kubeconfig] of [env.kubeconfig, env.kubeconfigB].entries()) {
        const client = createClusterClient(loadKubeConfig({ kubeconfig }));
        expect((await readInventory(client, clusters[i] ?? ''))?.revision).toBe(newer);
        const live = await kubeClients(kubeconfig).core.readNamespacedConfigMap({
          name: 'settings',
          namespace: namespaces[i] ?? '',
        });
        expect(live.data?.version).toBe('2');
      }
      // The older commit was applied before the newer one or not at all — never after it.
      const order = results.map((r) => r.sha);
      expect(order.lastIndexOf(older) < order.lastIndexOf(newer) || !order.includes(older)).toBe(true);
    } finally {
      await worker.close();
      await producer.close();
    }
  }, 120_000);
});
