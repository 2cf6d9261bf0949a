import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { Worker } from 'bullmq';
import {
  parseClusterNodes,
  startRedisCluster,
  stopRedisCluster,
  withClient,
} from '../../dev/local-stack/redis-cluster.ts';
import { parseClusterRegistry } from '../../src/clusters/cluster-registry.ts';
import { createLogger } from '../../src/logging/create-logger.ts';
import type { PlumblineJob } from '../../src/queue/jobs.ts';
import { redisKeys } from '../../src/redis/redis-keys.ts';
import {
  connectRedis,
  keyPrefixFor,
  parseRedisTopology,
  type RedisConnection,
  type RedisTopology,
  type RedisTopologyEnv,
} from '../../src/redis/redis-topology.ts';
import { createJobConsumer } from '../../workers/job-consumer.ts';
import { processSyncJob, type SyncResult } from '../../workers/process-sync-job.ts';
import { testEnvironment, uniqueName } from '../helpers/environment.ts';
import { githubDelivery, pushPayload, send } from '../helpers/github-delivery.ts';
import { kubeClients } from '../helpers/kube.ts';
import { type ReceiverHarness, startReceiverHarness, WEBHOOK_SECRET } from '../helpers/receiver-harness.ts';
import {
  createSourceFixture,
  INSTALLATION_ID,
  type SourceFixture,
  spawnWorkerProcess,
  statusStates,
} from '../helpers/source-fixture.ts';
import { workerDependencies } from '../helpers/worker-deps.ts';

const env = testEnvironment();

const cases = (
  [
    ['a Redis Cluster', env.redisCluster],
    ['a Sentinel-managed primary', env.redisSentinel],
  ] as const
).flatMap(([name, variables]): Array<[string, RedisTopologyEnv]> => (variables ? [[name, variables]] : []));
if (env.stack === 'local' && cases.length < 2) {
  throw new Error(
    'the local stack names no Redis Cluster or Sentinel (PLUMBLINE_TEST_REDIS_*): run `npm run local:up`',
  );
}

function topologyOf(variables: RedisTopologyEnv): RedisTopology {
  const parsed = parseRedisTopology(variables);
  if (!parsed.ok) throw new Error(parsed.problem);
  return parsed.topology;
}

/** Every line a logger writes, kept for the assertions. */
function logSink(lines: string[]): Writable {
  return new Writable({
    write(chunk: Buffer, _encoding, done) {
      lines.push(chunk.toString('utf8'));
      done();
    },
  });
}

/** What a Redis Cluster says when a script or command spans slots, or the cluster cannot serve one. */
const CLUSTER_COMPLAINT = /CROSSSLOT|CLUSTERDOWN|TRYAGAIN|\bMOVED \d|\bASK \d/;

async function until(condition: () => boolean, what: string, timeoutMs = 50_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

(cases.length > 0 ? describe.each(cases) : describe.skip.each([['no other topology', {}]]))(
  'a push on %s: receiver → Redis → worker → statuses',
  (_name, variables) => {
    let f: SourceFixture;
    let harness: ReceiverHarness;
    let redis: RedisConnection;
    let worker: Worker<PlumblineJob, SyncResult | undefined>;
    const results: SyncResult[] = [];
    const failures: string[] = [];
    const errors: string[] = [];
    const workerLogs: string[] = [];
    const cluster = uniqueName('topology');
    const namespace = uniqueName('topology');
    const topology = topologyOf(variables);

    beforeAll(async () => {
      f = await createSourceFixture();
      await f.work.commit('app', {
        'clusters/local/dev/app.yaml': `apiVersion: v1\nkind: Namespace\nmetadata:\n  name: ${namespace}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\n  namespace: ${namespace}\ndata:\n  topology: ${topology.kind}\n`,
      });
      await f.work.push();
      harness = await startReceiverHarness(variables, { PLUMBLINE_PUSH_COALESCE_MS: '50' });
      // The worker's connection, as workers/start-worker.ts makes it.
      redis = connectRedis(topology, { maxRetriesPerRequest: null });
      redis.on('error', (error: Error) => errors.push(error.message));
      const registry = parseClusterRegistry(
        `clusters:\n  - {name: ${cluster}, repo: ${f.repository.fullName}, path: clusters/local/dev, kubeconfig: ${env.kubeconfig}}\n`,
      );
      const logger = createLogger('debug', logSink(workerLogs));
      const deps = workerDependencies(f, { registry, redis, prefix: harness.prefix, logger });
      worker = createJobConsumer<SyncResult | undefined>({
        connection: redis,
        prefix: harness.prefix,
        queue: 'sync',
        concurrency: 2,
        process: async (job, run) => (job.type === 'sync' ? processSyncJob(job, deps, run) : undefined),
        onError: (error) => errors.push(error.message),
        logger,
      });
      worker.on('completed', (job) => {
        if (job.returnvalue) results.push(job.returnvalue);
      });
      worker.on('failed', (_job, error) => failures.push(error.message));
    });
    afterAll(async () => {
      await worker?.close();
      await harness?.close();
      redis?.disconnect();
      await f?.close();
    });

    it('answers a signed push 202, runs its job once, applies it and reports pending → success', async () => {
      const sha = await f.work.head();
      const payload = pushPayload({ after: sha, repositoryId: f.repository.id });
      payload.installation = { id: INSTALLATION_ID };
      payload.repository = { id: f.repository.id, full_name: f.repository.fullName, clone_url: f.repository.cloneUrl };
      const delivery = githubDelivery('push', payload, WEBHOOK_SECRET);
      expect((await send(harness.baseUrl, delivery)).status).toBe(202);
      await until(() => results.length > 0 || failures.length > 0, 'the worker to finish the job');
      expect(failures).toEqual([]);
      expect(results).toEqual([
        expect.objectContaining({ outcomes: [expect.objectContaining({ cluster, status: 'applied' })] }),
      ]);

      // GitHub's redelivery of the same delivery is acknowledged, not queued again (the ledger script).
      expect((await send(harness.baseUrl, delivery)).status).toBe(200);
      const counts = await harness.queues.sync.getJobCounts('completed', 'failed', 'active', 'waiting', 'delayed');
      expect(counts).toEqual({ completed: 1, failed: 0, active: 0, waiting: 0, delayed: 0 });
      expect(results).toHaveLength(1);

      expect(statusStates(f, sha, `plumbline/${cluster}`)).toEqual(['pending', 'success']);
      expect(statusStates(f, sha, 'plumbline')).toEqual(['pending', 'success']);
      expect(f.github.violations).toEqual([]);
      const applied = await kubeClients(env.kubeconfig).core.readNamespacedConfigMap({ name: 'settings', namespace });
      expect(applied.data).toEqual({ topology: topology.kind });
    });

    it('ran the multi-key scripts (cluster lock, write budget, state, ledger) with every key on one slot', async () => {
      const keys = redisKeys(harness.prefix);
      // The lock was taken once (its fencing counter) and released; the write budget was drawn from.
      await expect(redis.get(keys.clusterFence(cluster))).resolves.toBe('1');
      await expect(redis.exists(keys.clusterLease(cluster))).resolves.toBe(0);
      await expect(redis.hget(keys.writeBudget(INSTALLATION_ID), 'tokens')).resolves.toEqual(expect.any(String));
      await expect(redis.hget(keys.clusterStates, cluster)).resolves.toContain(cluster);
      if (topology.kind === 'cluster') {
        const slotOf = async (key: string) => Number(await redis.call('CLUSTER', 'KEYSLOT', key));
        const slot = await slotOf(`${harness.prefix}:sync:id`);
        for (const key of [
          keys.clusterFence(cluster),
          keys.clusterLease(cluster),
          keys.writeBudget(INSTALLATION_ID),
          keys.clusterStates,
          keys.delivery('any'),
          keys.latestJob('any'),
        ])
          expect(await slotOf(key)).toBe(slot);
      }
      // No command of Plumbline's or BullMQ's was refused on the way.
      const logs = [...harness.logs, ...workerLogs, ...errors, ...failures].join('\n');
      expect(logs).not.toMatch(CLUSTER_COMPLAINT);
      const serious = [...harness.logs, ...workerLogs]
        .flatMap((chunk) => chunk.split('\n').filter(Boolean))
        .filter((line) => (JSON.parse(line) as { level: number }).level >= 50);
      expect(serious).toEqual([]);
      expect(errors).toEqual([]);
    });

    it('runs the next push in a real `plumbline worker` process connected by the same variables', async () => {
      await worker.close();
      const registryFile = join(f.dir, 'clusters.yaml');
      await writeFile(
        registryFile,
        `clusters:\n  - {name: ${cluster}, repo: ${f.repository.fullName}, path: clusters/local/dev, kubeconfig: ${env.kubeconfig}}\n`,
      );
      const output: string[] = [];
      let whileRunning = '';
      let stoppedBySigterm = false;
      const spawned = spawnWorkerProcess(f, { redisUrl: variables, prefix: harness.prefix, registryFile, output });
      try {
        const before = await f.work.head();
        const sha = await f.work.commit('next', {
          'clusters/local/dev/app.yaml': `apiVersion: v1\nkind: Namespace\nmetadata:\n  name: ${namespace}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\n  namespace: ${namespace}\ndata:\n  topology: ${topology.kind}\n  worker: process\n`,
        });
        await f.work.push();
        const payload = pushPayload({ after: sha, before, repositoryId: f.repository.id });
        payload.installation = { id: INSTALLATION_ID };
        payload.repository = {
          id: f.repository.id,
          full_name: f.repository.fullName,
          clone_url: f.repository.cloneUrl,
        };
        expect((await send(harness.baseUrl, githubDelivery('push', payload, WEBHOOK_SECRET))).status).toBe(202);
        await until(
          () => statusStates(f, sha, 'plumbline').includes('success') || spawned.child.exitCode !== null,
          'the worker process to report the push',
        );
        expect(spawned.child.exitCode).toBeNull();
        expect(statusStates(f, sha, `plumbline/${cluster}`)).toEqual(['pending', 'success']);
        expect(statusStates(f, sha, 'plumbline')).toEqual(['pending', 'success']);
        const applied = await kubeClients(env.kubeconfig).core.readNamespacedConfigMap({ name: 'settings', namespace });
        expect(applied.data).toEqual({ topology: topology.kind, worker: 'process' });
        // The roll-up is written inside the job; BullMQ marks the job completed just after.
        let counts: Record<string, number> = {};
        const deadline = Date.now() + 20_000;
        while (Date.now() < deadline) {
          counts = await harness.queues.sync.getJobCounts('completed', 'failed', 'active', 'waiting', 'delayed');
          if ((counts.active ?? 0) === 0 && (counts.completed ?? 0) + (counts.failed ?? 0) >= 2) break;
          await new Promise((resolve) => setTimeout(resolve, 100));
        }
        expect(counts).toEqual({ completed: 2, failed: 0, active: 0, waiting: 0, delayed: 0 });
      } finally {
        whileRunning = output.join('');
        spawned.child.kill('SIGTERM');
        let timer: NodeJS.Timeout | undefined;
        const stopped = await Promise.race([
          spawned.exited.then(() => true),
          new Promise<false>((resolve) => {
            timer = setTimeout(() => resolve(false), 25_000);
          }),
        ]);
        clearTimeout(timer);
        if (!stopped) spawned.child.kill('SIGKILL');
        await spawned.exited;
        stoppedBySigterm = stopped;
      }
      // No warning while it ran, nothing refused by the cluster, and SIGTERM stops it (its connections close).
      expect(whileRunning).toBe('');
      expect(output.join('')).not.toMatch(CLUSTER_COMPLAINT);
      expect(stoppedBySigterm).toBe(true);
    });
  },
);

/** Writes in a loop until stopped; every rejected command is kept. */
function writeLoop(
  redis: RedisConnection,
  key: string,
): { readonly stop: () => Promise<{ ok: number; rejected: string[] }> } {
  let running = true;
  let ok = 0;
  const rejected: string[] = [];
  const loop = (async () => {
    for (let i = 0; running; i += 1) {
      await redis.set(key, String(i), 'EX', 300).then(
        () => {
          ok += 1;
        },
        (error: Error) => rejected.push(error.message),
      );
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  })();
  return {
    async stop() {
      running = false;
      await loop;
      return { ok, rejected };
    },
  };
}

describe('a worker’s connection when the primary of its slot dies (a private topology)', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'topology-failover-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('on a Redis Cluster, waits through the failover to the replica instead of failing its commands', async () => {
    const record = await startRedisCluster({ dir: join(dir, 'cluster') });
    const redis = connectRedis(
      { kind: 'cluster', nodes: record.nodes.map((n) => ({ host: '127.0.0.1', port: n.port })) },
      { maxRetriesPerRequest: null },
    );
    redis.on('error', () => {});
    try {
      const key = `${keyPrefixFor('plumbline', { kind: 'cluster', nodes: [] })}:failover`;
      const first = record.nodes[0] as (typeof record.nodes)[number];
      const slot = Number(await withClient(first.port, (c) => c.call('CLUSTER', 'KEYSLOT', key)));
      const view = parseClusterNodes(String(await withClient(first.port, (c) => c.call('CLUSTER', 'NODES'))));
      const owner = view.find((n) => n.flags.includes('master') && n.ranges.some(([a, b]) => slot >= a && slot <= b));
      const victim = record.nodes.find((n) => n.port === owner?.port);
      if (!victim) throw new Error(`no node owns slot ${slot}`);
      const writes = writeLoop(redis, key);
      await new Promise((resolve) => setTimeout(resolve, 500));
      process.kill(victim.pid, 'SIGKILL');
      // Until the replica of the killed primary owns the slot (the cluster's failover, seconds).
      const survivor = record.nodes.find((n) => n !== victim) as (typeof record.nodes)[number];
      const deadline = Date.now() + 45_000;
      for (;;) {
        const now = parseClusterNodes(String(await withClient(survivor.port, (c) => c.call('CLUSTER', 'NODES'))));
        const newOwner = now.find(
          (n) => n.flags.includes('master') && n.ranges.some(([a, b]) => slot >= a && slot <= b),
        );
        if (newOwner && newOwner.port !== victim.port && !newOwner.flags.some((f) => f.includes('fail'))) break;
        if (Date.now() > deadline) throw new Error('the replica did not take the slot over');
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
      await new Promise((resolve) => setTimeout(resolve, 1_000));
      const { ok, rejected } = await writes.stop();
      expect(rejected).toEqual([]);
      expect(ok).toBeGreaterThan(0);
      await expect(redis.get(key)).resolves.toEqual(expect.stringMatching(/^\d+$/));
    } finally {
      redis.disconnect();
      await stopRedisCluster(record);
    }
  }, 90_000);
});
