import type { ChildProcess } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { parseClusterRegistry } from '../../src/clusters/cluster-registry.ts';
import { createClusterClient, loadKubeConfig } from '../../src/engine/cluster-client.ts';
import { readInventory } from '../../src/engine/inventory.ts';
import type { SyncJob } from '../../src/queue/jobs.ts';
import { testEnvironment, uniqueName } from '../helpers/environment.ts';
import { kubeClients } from '../helpers/kube.ts';
import { createSourceFixture, pushJob, type SourceFixture, spawnWorkerProcess } from '../helpers/source-fixture.ts';
import { manyConfigMaps, startSyncConsumer, workerDependencies } from '../helpers/worker-deps.ts';

const env = testEnvironment();
const OBJECTS = 600;

describe('drill: a worker killed with SIGKILL in the middle of an apply', () => {
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

  it('the job is taken over, the cluster ends in the commit’s state, and the commit gets its final status', async () => {
    const namespace = uniqueName('killed');
    const cluster = uniqueName('killed');
    const prefix = uniqueName('killed');
    const sha = await f.work.commit('many objects', {
      'clusters/killed/objects.yaml': manyConfigMaps(namespace, OBJECTS, (i) => `index: "${i}"`),
    });
    await f.work.push();
    const registryYaml = `clusters:\n  - {name: ${cluster}, repo: ${f.repository.fullName}, path: clusters/killed, kubeconfig: ${env.kubeconfig}}\n`;
    const registryFile = join(f.dir, 'killed-clusters.yaml');
    await writeFile(registryFile, registryYaml);

    const spawned = spawnWorkerProcess(f, { redisUrl: env.redisUrl, prefix, registryFile });
    child = spawned.child;
    const worker = spawned.child;
    const exited = spawned.exited;
    const queue = new Queue('sync', { connection: redis, prefix });
    const job: SyncJob = pushJob(f, sha);
    await queue.add('sync', job, { attempts: 3 });

    // Kill the worker as soon as its writes have begun: some objects exist, not all.
    const core = kubeClients(env.kubeconfig).core;
    const count = async () =>
      (await core.listNamespacedConfigMap({ namespace }).catch(() => ({ items: [] }))).items.filter((cm) =>
        cm.metadata?.name?.startsWith('cm-'),
      ).length;
    const deadline = Date.now() + 120_000;
    let atKill = 0;
    while (Date.now() < deadline) {
      atKill = await count();
      if (atKill > 0) break;
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    worker.kill('SIGKILL');
    await exited;
    expect(atKill).toBeGreaterThan(0);
    // Mid-apply, not after it: otherwise this drill proves nothing (raise OBJECTS on a faster machine).
    expect(atKill).toBeLessThan(OBJECTS);

    const deps = workerDependencies(f, { registry: parseClusterRegistry(registryYaml), redis, prefix });
    const { worker: survivor, results } = startSyncConsumer(redis, prefix, deps);
    try {
      const until = Date.now() + 120_000;
      while (results.length === 0 && Date.now() < until) await new Promise((resolve) => setTimeout(resolve, 100));
    } finally {
      await survivor.close();
      await queue.close();
    }
    expect(results[0]?.outcomes).toEqual([expect.objectContaining({ cluster, status: 'applied' })]);
    expect(await count()).toBe(OBJECTS);
    const cm = await core.readNamespacedConfigMap({ name: `cm-${OBJECTS - 1}`, namespace });
    expect(cm.data?.index).toBe(String(OBJECTS - 1));
    const inventory = await readInventory(createClusterClient(loadKubeConfig({ kubeconfig: env.kubeconfig })), cluster);
    expect(inventory?.revision).toBe(sha);
    expect(inventory?.objects).toHaveLength(OBJECTS + 1);
    expect(f.github.latestStatus(f.repository.fullName, sha, `plumbline/${cluster}`)?.state).toBe('success');
    expect(f.github.latestStatus(f.repository.fullName, sha, 'plumbline')?.state).toBe('success');
  }, 240_000);
});
