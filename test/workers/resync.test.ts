import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { PatchStrategy } from '@kubernetes/client-node';
import { Queue, Worker } from 'bullmq';
import { Redis } from 'ioredis';
import { type ClusterRegistry, parseClusterRegistry } from '../../src/clusters/cluster-registry.ts';
import { type ClusterClient, createClusterClient, loadKubeConfig } from '../../src/engine/cluster-client.ts';
import { readInventory } from '../../src/engine/inventory.ts';
import { QUEUE_NAMES, type ResyncJob, type SyncJob } from '../../src/queue/jobs.ts';
import { processResyncJob, type ResyncDependencies } from '../../workers/process-resync-job.ts';
import { processSyncJob } from '../../workers/process-sync-job.ts';
import { scheduleResyncs } from '../../workers/schedule-resyncs.ts';
import { createWorkerMetrics } from '../../workers/worker-metrics.ts';
import { testEnvironment, uniqueName } from '../helpers/environment.ts';
import { kubeClients } from '../helpers/kube.ts';
import { parsePrometheusText, sampleSum } from '../helpers/prometheus-text.ts';
import { createSourceFixture, pushJob, type SourceFixture } from '../helpers/source-fixture.ts';
import { workerDependencies } from '../helpers/worker-deps.ts';

const env = testEnvironment();
const kube = kubeClients(env.kubeconfig);
const FOLDER = 'clusters/local/dev';

/** Counts the writes a resync sends to the cluster. */
function countingClient(inner: ClusterClient, writes: string[]): ClusterClient {
  return {
    ...inner,
    apply: (manifest, options) => {
      if (!options.dryRun) writes.push(`apply ${manifest.kind}/${manifest.metadata.name}`);
      return inner.apply(manifest, options);
    },
    delete: (manifest) => {
      writes.push(`delete ${manifest.kind}/${manifest.metadata.name}`);
      return inner.delete(manifest);
    },
  };
}

describe('continuous reconciliation: the scheduled resync', () => {
  let f: SourceFixture;
  let redis: Redis;
  const namespace = uniqueName('resync');
  const cluster = uniqueName('resync');
  const prefix = uniqueName('resync');
  const clusterWrites: string[] = [];
  const queued: SyncJob[] = [];
  let applied: string;
  /** The metrics of the one worker process these resyncs run in. */
  const metrics = createWorkerMetrics();
  const counted = async (name: string, labels: Record<string, string> = {}) =>
    sampleSum(parsePrometheusText(await metrics.registry.metrics()), name, labels);

  const registry = (selfHeal: boolean): ClusterRegistry =>
    parseClusterRegistry(
      `clusters:\n  - {name: ${cluster}, repo: ${f.repository.fullName}, path: ${FOLDER}, kubeconfig: ${env.kubeconfig}, selfHeal: ${selfHeal}}\n`,
    );
  const dependencies = (selfHeal: boolean): ResyncDependencies => {
    const deps = workerDependencies(f, { registry: registry(selfHeal), redis, prefix, metrics });
    const client = createClusterClient(loadKubeConfig({ kubeconfig: env.kubeconfig }));
    return {
      ...deps,
      clusterClient: () => countingClient(client, clusterWrites),
      enqueueSync: async (job) => {
        queued.push(job);
      },
      nextResyncAt: async () => undefined,
      syncInFlight: async () => false,
    };
  };
  const githubWrites = (from: number) =>
    f.github.calls
      .slice(from)
      .filter((c) => c.method !== 'GET' && c.operation !== 'git' && !c.path.endsWith('/access_tokens'));
  const editMode = (value: string) =>
    kube.objects.patch(
      { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'settings', namespace }, data: { mode: value } },
      undefined,
      undefined,
      'kubectl-edit',
      undefined,
      PatchStrategy.MergePatch,
    );
  const liveMode = async () => (await kube.core.readNamespacedConfigMap({ name: 'settings', namespace })).data?.mode;
  const syncJob = (after: string, before?: string): SyncJob => pushJob(f, after, { before });

  beforeAll(async () => {
    f = await createSourceFixture();
    redis = new Redis(env.redisUrl, { maxRetriesPerRequest: null });
    applied = await f.work.commit('app', {
      [`${FOLDER}/app.yaml`]: `apiVersion: v1\nkind: Namespace\nmetadata:\n  name: ${namespace}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\n  namespace: ${namespace}\ndata:\n  mode: strict\n  cpu: "0.5"\n`,
    });
    await f.work.push();
    const result = await processSyncJob(syncJob(applied), dependencies(true));
    expect(result.outcomes).toEqual([expect.objectContaining({ status: 'applied' })]);
  });
  afterAll(async () => {
    redis.disconnect();
    await f.close();
  });

  it('a resync with nothing to do writes nothing: not to the cluster, not to GitHub', async () => {
    const from = f.github.calls.length;
    clusterWrites.length = 0;
    const result = await processResyncJob({ type: 'resync', cluster }, dependencies(true));
    expect(result).toMatchObject({ drifted: 0, corrected: 0 });
    expect(result).not.toHaveProperty('missedPush');
    expect(clusterWrites).toEqual([]);
    expect(githubWrites(from)).toEqual([]);
  });

  it('a field edited by hand is found, attributed and put back; the episode is recorded once', async () => {
    await editMode('permissive');
    const from = f.github.calls.length;
    clusterWrites.length = 0;
    const result = await processResyncJob({ type: 'resync', cluster }, dependencies(true));
    expect(result).toMatchObject({ drifted: 1, corrected: 1 });
    expect(await liveMode()).toBe('strict');
    // Only the drifted object was written (and the records that describe it).
    expect(clusterWrites.filter((w) => !w.includes('plumbline-'))).toEqual(['apply ConfigMap/settings']);
    // Corrected drift does not change what the commit's status says.
    expect(githubWrites(from)).toEqual([]);
    const state = await dependencies(true).state.get(cluster);
    expect(state?.drift).toMatchObject({
      objects: [
        {
          object: `ConfigMap/${namespace}/settings`,
          kind: 'changed',
          fields: [{ path: 'data.mode', changedBy: ['kubectl-edit'] }],
        },
      ],
      correctedAt: expect.any(String),
    });
    expect(state?.totals).toMatchObject({ driftDetected: 1, driftCorrected: 1 });
    expect(await counted('plumbline_drift_objects_detected_total', { cluster })).toBe(1);
    expect(await counted('plumbline_drift_objects_corrected_total', { cluster })).toBe(1);
    // The worker exports them itself: nothing is relayed through a Redis hash.
    expect(await redis.exists(`${prefix}:metrics:counters`)).toBe(0);
    // The next resync is clean again and writes nothing.
    clusterWrites.length = 0;
    expect(await processResyncJob({ type: 'resync', cluster }, dependencies(true))).toMatchObject({ drifted: 0 });
    expect(clusterWrites).toEqual([]);
  });

  it('a deleted object is recreated', async () => {
    await kube.core.deleteNamespacedConfigMap({ name: 'settings', namespace });
    const result = await processResyncJob({ type: 'resync', cluster }, dependencies(true));
    expect(result).toMatchObject({ drifted: 1, corrected: 1 });
    expect(await liveMode()).toBe('strict');
  });

  it('with selfHeal off, drift is reported (once, on the applied commit) and not corrected', async () => {
    await editMode('lenient');
    const from = f.github.calls.length;
    const first = await processResyncJob({ type: 'resync', cluster }, dependencies(false));
    expect(first).toMatchObject({ drifted: 1, corrected: 0 });
    expect(await liveMode()).toBe('lenient');
    const status = f.github.latestStatus(f.repository.fullName, applied, `plumbline/${cluster}`);
    expect(status).toMatchObject({
      state: 'error',
      description: expect.stringMatching(/^not what this commit says: 1 drifted: ConfigMap\/.*data\.mode changed\)/),
    });
    // Who edited it is read from the cluster: the status page shows it, GitHub is not told.
    expect(status?.description).not.toContain('kubectl-edit');
    // The same drift on the next resync is the same episode: nothing more is written.
    const writes = githubWrites(from).length;
    await processResyncJob({ type: 'resync', cluster }, dependencies(false));
    expect(githubWrites(from)).toHaveLength(writes);
    // Put back by hand: the cluster matches the commit again, and the status says so.
    await editMode('strict');
    await processResyncJob({ type: 'resync', cluster }, dependencies(false));
    expect(f.github.latestStatus(f.repository.fullName, applied, `plumbline/${cluster}`)).toMatchObject({
      state: 'success',
      description: 'applied; the cluster matches this commit again',
    });
  });

  it('a pushed commit whose webhook never came is found by the next resync, queued once, and applied', async () => {
    const missed = await f.work.commit('missed', {
      [`${FOLDER}/app.yaml`]: `apiVersion: v1\nkind: Namespace\nmetadata:\n  name: ${namespace}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\n  namespace: ${namespace}\ndata:\n  mode: strict\n  cpu: "0.5"\n  added: later\n`,
    });
    await f.work.push();
    queued.length = 0;
    const result = await processResyncJob({ type: 'resync', cluster }, dependencies(true));
    expect(result?.missedPush).toBe(missed);
    expect(queued).toEqual([expect.objectContaining({ trigger: 'resync', after: missed, before: applied })]);
    // Found again before the queued job ran: not queued (or counted) twice.
    await processResyncJob({ type: 'resync', cluster }, dependencies(true));
    expect(queued).toHaveLength(1);
    expect(await counted('plumbline_webhook_missed_total')).toBe(1);
    // The queued job is an ordinary sync: it applies the commit and reports on it.
    await processSyncJob(queued[0]!, dependencies(true));
    expect((await kube.core.readNamespacedConfigMap({ name: 'settings', namespace })).data?.added).toBe('later');
    const inventory = await readInventory(createClusterClient(kube.config), cluster);
    expect(inventory?.revision).toBe(missed);
    expect(f.github.latestStatus(f.repository.fullName, missed, 'plumbline')?.state).toBe('success');
  });

  it('two workers produce one resync per interval', async () => {
    const schedulerPrefix = uniqueName('schedules');
    const short: ClusterRegistry = {
      ...registry(true),
      clusters: [{ ...registry(true).clusters[0]!, name: 'every-second', intervalMs: 1_000 }],
    };
    const runs: number[] = [];
    const connections = [
      new Redis(env.redisUrl, { maxRetriesPerRequest: null }),
      new Redis(env.redisUrl, { maxRetriesPerRequest: null }),
    ];
    const queues = connections.map(
      (connection) => new Queue<ResyncJob>(QUEUE_NAMES.resync, { connection, prefix: schedulerPrefix }),
    );
    const workers = connections.map(
      (connection) =>
        new Worker<ResyncJob>(
          QUEUE_NAMES.resync,
          async (job) => {
            runs.push(job.timestamp);
          },
          { connection, prefix: schedulerPrefix },
        ),
    );
    const started = Date.now();
    try {
      // Both replicas declare the same schedules, as every worker does at start.
      await Promise.all(queues.map((queue) => scheduleResyncs(queue, short)));
      await new Promise((resolve) => setTimeout(resolve, 4_500));
    } finally {
      await Promise.all(workers.map((w) => w.close()));
      await queues[0]?.removeJobScheduler('resync:every-second');
      await Promise.all(queues.map((q) => q.close()));
      for (const c of connections) c.disconnect();
    }
    const seconds = (Date.now() - started) / 1000;
    expect(runs.length).toBeGreaterThanOrEqual(3);
    expect(runs.length).toBeLessThanOrEqual(Math.ceil(seconds) + 1);
    expect(new Set(runs).size).toBe(runs.length);
  });
});
