import type { ChildProcess } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { parseClusterRegistry } from '../../src/clusters/cluster-registry.ts';
import { createClusterClient, loadKubeConfig } from '../../src/engine/cluster-client.ts';
import { inventoryName, readInventory } from '../../src/engine/inventory.ts';
import type { SyncJob } from '../../src/queue/jobs.ts';
import { testEnvironment, uniqueName } from '../helpers/environment.ts';
import { kubeClients } from '../helpers/kube.ts';
import { createSourceFixture, pushJob, type SourceFixture, spawnWorkerProcess } from '../helpers/source-fixture.ts';
import { manyConfigMaps, startSyncConsumer, workerDependencies } from '../helpers/worker-deps.ts';

const env = testEnvironment();
const OBJECTS = 800;

async function until<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs: number): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

describe('drill: a worker paused (SIGSTOP) past its lease in the middle of an apply, then resumed', () => {
  let f: SourceFixture;
  let redis: Redis;
  let child: ChildProcess | undefined;

  beforeAll(async () => {
    f = await createSourceFixture();
    redis = new Redis(env.redisUrl, { maxRetriesPerRequest: null });
  });
  afterAll(async () => {
    child?.kill('SIGCONT');
    child?.kill('SIGKILL');
    redis.disconnect();
    await f.close();
  });

  it('another worker takes over and applies the newer commit; the resumed one writes nothing more', async () => {
    const namespace = uniqueName('paused');
    const cluster = uniqueName('paused');
    const prefix = uniqueName('paused');
    const commit = (label: string) => {
      return { 'clusters/paused/objects.yaml': manyConfigMaps(namespace, OBJECTS, () => `commit: ${label}`) };
    };
    const older = await f.work.commit('older', commit('older'));
    await f.work.push();
    const registryYaml = `clusters:\n  - {name: ${cluster}, repo: ${f.repository.fullName}, path: clusters/paused, kubeconfig: ${env.kubeconfig}}\n`;
    const registryFile = join(f.dir, 'paused-clusters.yaml');
    await writeFile(registryFile, registryYaml);

    // The first worker: a real `plumbline worker` process with the default 30 s cluster lease.
    const spawned = spawnWorkerProcess(f, { redisUrl: env.redisUrl, prefix, registryFile });
    child = spawned.child;
    const stale = spawned.child;
    const queue = new Queue('sync', { connection: redis, prefix });
    await queue.add('sync', pushJob(f, older), { attempts: 3 });

    const core = kubeClients(env.kubeconfig).core;
    const configMaps = async () =>
      (await core.listNamespacedConfigMap({ namespace }).catch(() => ({ items: [] }))).items.filter((cm) =>
        cm.metadata?.name?.startsWith('cm-'),
      );
    // Pause it as soon as its writes have begun: some objects exist, not all.
    const atPause = await until(
      'the first writes',
      async () => {
        const n = (await configMaps()).length;
        return n > 0 ? n : undefined;
      },
      120_000,
    );
    stale.kill('SIGSTOP');
    expect(atPause).toBeGreaterThan(0);
    // Mid-apply, not after it: otherwise this drill proves nothing (raise OBJECTS on a faster machine).
    expect(atPause).toBeLessThan(OBJECTS);

    // A newer commit arrives; a second worker waits out the paused one's lease, takes the cluster over and
    // applies it (and the paused one's job too, which BullMQ hands it as stalled: superseded by then).
    const newer = await f.work.commit('newer', commit('newer'));
    await f.work.push();
    const job: SyncJob = pushJob(f, newer, { before: older });
    await queue.add('sync', job, { attempts: 3 });
    const base = workerDependencies(f, { registry: parseClusterRegistry(registryYaml), redis, prefix });
    const deps = { ...base, engine: { ...base.engine, lockWaitMs: 180_000 } };
    const { worker: takeover, results } = startSyncConsumer(redis, prefix, deps);
    const client = createClusterClient(loadKubeConfig({ kubeconfig: env.kubeconfig }));
    try {
      await until(
        'the newer commit applied by the second worker',
        async () => (results.some((r) => r.sha === newer) ? true : undefined),
        240_000,
      );
      expect(results.find((r) => r.sha === newer)?.outcomes).toEqual([
        expect.objectContaining({ cluster, status: 'applied' }),
      ]);
      const snapshot = async () => {
        const live = await configMaps();
        const inventory = await core.readNamespacedConfigMap({
          name: inventoryName(cluster),
          namespace: 'plumbline-system',
        });
        return {
          versions: Object.fromEntries(live.map((cm) => [cm.metadata?.name, cm.metadata?.resourceVersion])),
          commits: new Set(live.map((cm) => cm.data?.commit)),
          count: live.length,
          inventory: inventory.metadata?.resourceVersion,
        };
      };
      const afterTakeover = await snapshot();
      expect(afterTakeover.count).toBe(OBJECTS);
      expect([...afterTakeover.commits]).toEqual(['newer']);

      // Resume the paused worker, then stop it: SIGTERM waits for the job it was running to end, so once
      // it has exited it has done everything it was going to do.
      stale.kill('SIGCONT');
      stale.kill('SIGTERM');
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        spawned.exited,
        new Promise((_, reject) => {
          timer = setTimeout(() => reject(new Error('the resumed worker did not stop')), 120_000);
        }),
      ]).finally(() => clearTimeout(timer));
      child = undefined;

      const afterResume = await snapshot();
      expect(afterResume.versions).toEqual(afterTakeover.versions);
      expect([...afterResume.commits]).toEqual(['newer']);
      expect(afterResume.inventory).toBe(afterTakeover.inventory);
      const inventory = await readInventory(client, cluster);
      expect(inventory?.revision).toBe(newer);
      expect(inventory?.objects).toHaveLength(OBJECTS + 1);
    } finally {
      await takeover.close();
      await queue.close();
    }
    expect(f.github.latestStatus(f.repository.fullName, newer, `plumbline/${cluster}`)?.state).toBe('success');
  }, 420_000);
});
