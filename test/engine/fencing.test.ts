import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { Redis } from 'ioredis';
import { type ClusterClient, createClusterClient } from '../../src/engine/cluster-client.ts';
import { type Fence, LockLostError, withClusterLock } from '../../src/engine/cluster-lock.ts';
import { inventoryWriter, readInventory, writeInventory } from '../../src/engine/inventory.ts';
import type { RenderedObject } from '../../src/engine/manifest.ts';
import { reconcileCluster } from '../../src/engine/reconcile-cluster.ts';
import { applyObjects } from '../helpers/apply-objects.ts';
import { testEnvironment, uniqueName } from '../helpers/environment.ts';
import { createTestNamespace, kubeClients } from '../helpers/kube.ts';

const env = testEnvironment();
const kube = kubeClients(env.kubeconfig);
const client = createClusterClient(kube.config);

async function until(condition: () => boolean, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/** Stops this whole process — timers, sockets, everything — as SIGSTOP or a long GC pause would. */
function freezeProcess(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/**
 * The judgement of a lock holder that checked its lease an instant before it was paused: it still
 * believes it holds the lock. Only the apiserver's conditions can stop such a writer.
 */
const believesItHolds = (token: number): Fence => ({
  token,
  holder: `holder-${token}`,
  check: async () => {},
  confirm: async () => {},
  assertFresh: () => {},
});

describe('fencing the writes of a cluster lock holder', () => {
  let redis: Redis;
  let namespace: string;
  let cleanup: () => Promise<void>;
  beforeAll(async () => {
    redis = new Redis(env.redisUrl);
    [namespace, cleanup] = await createTestNamespace(kube.core, 'fence');
  });
  afterAll(async () => {
    redis.disconnect();
    await cleanup();
  });

  it('a holder paused past its lease in the middle of a stage starts no further write once it resumes', async () => {
    const cluster = uniqueName('paused');
    const leaseMs = 1_500;
    const objects: RenderedObject[] = Array.from({ length: 200 }, (_, i) => ({
      manifest: { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: `p-${i}`, namespace }, data: { i: `${i}` } },
      source: { file: 'c/objects.yaml', line: 1 + i * 6 },
    }));
    let resumed = false;
    const writes = { before: 0, after: 0 };
    const observed: ClusterClient = {
      ...client,
      apply: (manifest, options) => {
        if (!options.dryRun && manifest.metadata.namespace === namespace) writes[resumed ? 'after' : 'before'] += 1;
        return client.apply(manifest, options);
      },
    };
    await withClusterLock(redis, { prefix: uniqueName('fence'), cluster, leaseMs, waitMs: 5_000 }, async (lock) => {
      const running = reconcileCluster({
        client: observed,
        clusterName: cluster,
        revision: 'a'.repeat(40),
        objects,
        prune: true,
        pruneGuards: { maxShare: 0.5, override: false },
        apply: { concurrency: 2, conflicts: 'take-ownership', establishTimeoutMs: 30_000, fence: lock },
      });
      running.catch(() => {});
      await until(() => writes.before > 0);
      freezeProcess(leaseMs + 1_000);
      resumed = true;
      // Not the commit's failure: an infrastructure error, retried (or the job taken over).
      await expect(running).rejects.toThrow(LockLostError);
    });
    expect(writes.before).toBeLessThan(objects.length);
    expect(writes.after).toBe(0);
    expect((await readInventory(client, cluster))?.revision).not.toBe('a'.repeat(40));
  });

  it('a write whose guard refuses at the last moment is never sent', async () => {
    const manifest = { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: uniqueName('guarded'), namespace } };
    const refusal = new LockLostError('paused past the lease');
    await expect(
      client.apply(manifest, {
        dryRun: false,
        force: true,
        guard: () => {
          throw refusal;
        },
      }),
    ).rejects.toBe(refusal);
    expect(await client.get(manifest)).toBeUndefined();
  });

  it('a holder paused right after its check cannot overwrite an object a newer holder wrote meanwhile', async () => {
    const name = uniqueName('raced');
    const version = (commit: string): RenderedObject => ({
      manifest: { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name, namespace }, data: { commit } },
      source: { file: 'c/objects.yaml', line: 1 },
    });
    await client.apply(version('first').manifest, { dryRun: false, force: true });
    // The paused holder confirmed its lease before the stage and checked it before the write, then stopped;
    // a newer holder took over and wrote the object; when the paused one asks Redis again (after the
    // apiserver refused its write) it learns the truth.
    let takenOver = false;
    const paused: Fence = {
      ...believesItHolds(1),
      check: async () => {
        await client.apply(version('newer').manifest, { dryRun: false, force: true });
        takenOver = true;
      },
      confirm: async () => {
        if (takenOver) throw new LockLostError('another worker took over');
      },
    };
    const applying = applyObjects(client, [version('stale')], {
      concurrency: 1,
      conflicts: 'take-ownership',
      establishTimeoutMs: 10_000,
      fence: paused,
    });
    await expect(applying).rejects.toThrow(LockLostError);
    expect((await client.get(version('x').manifest))?.data).toEqual({ commit: 'newer' });
  });

  it('an inventory write over a version someone else has written since is refused, not an overwrite', async () => {
    const cluster = uniqueName('stale');
    await writeInventory(client, cluster, { revision: 'a'.repeat(40), objects: [] });
    const seenByStale = await readInventory(client, cluster);
    const seenByNewer = await readInventory(client, cluster);
    await writeInventory(client, cluster, { revision: 'b'.repeat(40), objects: [] }, seenByNewer);
    await expect(
      writeInventory(client, cluster, { revision: 'c'.repeat(40), objects: [] }, seenByStale),
    ).rejects.toThrow(LockLostError);
    expect((await readInventory(client, cluster))?.revision).toBe('b'.repeat(40));
  });

  it('once a newer holder has claimed the inventory, a former one can write neither objects nor the inventory', async () => {
    const cluster = uniqueName('claim');
    await writeInventory(client, cluster, { revision: 'a'.repeat(40), objects: [] });
    const stale = inventoryWriter(client, cluster, await readInventory(client, cluster), believesItHolds(1));
    const newer = inventoryWriter(client, cluster, await readInventory(client, cluster), believesItHolds(2));
    // The newer holder's first write claims the inventory, before anything else is written.
    await newer.fence?.check();
    await expect(stale.fence?.check()).rejects.toThrow(LockLostError);
    await expect(stale.write({ revision: 'c'.repeat(40), objects: [] })).rejects.toThrow(LockLostError);
    await newer.write({ revision: 'b'.repeat(40), objects: [] });
    expect(await readInventory(client, cluster)).toMatchObject({ revision: 'b'.repeat(40), fencingToken: 2 });
  });

  it('claims a cluster that has no inventory yet conditionally too', async () => {
    const cluster = uniqueName('fresh');
    const stale = inventoryWriter(client, cluster, undefined, believesItHolds(1));
    const newer = inventoryWriter(client, cluster, undefined, believesItHolds(2));
    await stale.fence?.check();
    await newer.fence?.check();
    await newer.write({ revision: 'b'.repeat(40), objects: [] });
    await expect(stale.write({ revision: 'a'.repeat(40), objects: [] })).rejects.toThrow(LockLostError);
    expect(await readInventory(client, cluster)).toMatchObject({ revision: 'b'.repeat(40), fencingToken: 2 });
  });
});

describe('the fence of the cluster lock', () => {
  let redis: Redis;
  beforeAll(() => {
    redis = new Redis(env.redisUrl);
  });
  afterAll(() => {
    redis.disconnect();
  });

  it('gives every acquisition a larger fencing token', async () => {
    const options = { prefix: uniqueName('token'), cluster: 'c', leaseMs: 5_000, waitMs: 1_000 };
    const first = await withClusterLock(redis, options, async (lock) => lock.token);
    const second = await withClusterLock(redis, options, async (lock) => lock.token);
    expect(first).toBeGreaterThan(0);
    expect(second).toBeGreaterThan(first);
  });

  it('checks before each write without a Redis round trip while the lease is known to be ours', async () => {
    // Every Redis round trip of the lock is one of its scripts (defineCommands names them plumbline*).
    let evals = 0;
    const counted = new Proxy(redis, {
      get(target, property, receiver) {
        const value = Reflect.get(target, property, receiver) as unknown;
        if (typeof property !== 'string' || !/^(eval|evalsha|plumbline)/.test(property) || typeof value !== 'function')
          return value;
        return (...args: unknown[]) => {
          evals += 1;
          return (value as (...a: unknown[]) => unknown).apply(target, args);
        };
      },
    });
    const options = { prefix: uniqueName('cheap'), cluster: 'c', leaseMs: 30_000, waitMs: 1_000 };
    await withClusterLock(counted, options, async (lock) => {
      const before = evals;
      await Promise.all(Array.from({ length: 1_000 }, () => lock.check()));
      expect(evals - before).toBe(0);
      // `confirm` (before each batch and each record) always asks; concurrent callers share one question.
      await Promise.all(Array.from({ length: 50 }, () => lock.confirm()));
      expect(evals - before).toBe(1);
    });
  });

  it('after a pause longer than the lease, the check asks Redis and finds the lock lost', async () => {
    const options = { prefix: uniqueName('pause'), cluster: 'c', leaseMs: 600, waitMs: 1_000 };
    await withClusterLock(redis, options, async (lock) => {
      await lock.check();
      freezeProcess(1_000);
      // Another worker takes over while this one is still frozen (simulated by taking the key now).
      await redis.set(lock.lease.key, 'another-worker', 'PX', 10_000);
      await expect(lock.check()).rejects.toThrow(LockLostError);
    });
  });
});
