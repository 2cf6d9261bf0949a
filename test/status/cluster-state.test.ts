import { afterAll, describe, expect, it } from '@jest/globals';
import { Redis } from 'ioredis';
import { LockLostError, withClusterLock } from '../../src/engine/cluster-lock.ts';
import { redisKeys } from '../../src/redis/redis-keys.ts';
import { type ClusterStateStore, createClusterStateStore } from '../../src/status/cluster-state.ts';
import { testEnvironment, uniqueName } from '../helpers/environment.ts';

const env = testEnvironment();

const baseFor = (name: string) => ({
  name,
  repo: 'acme/platform-gitops',
  branch: 'main',
  path: `clusters/${name}`,
  suspended: false,
  selfHeal: true,
  intervalMs: 300_000,
});

describe('the cluster state store', () => {
  const redis = new Redis(env.redisUrl);
  const other = new Redis(env.redisUrl);
  const prefixes: string[] = [];
  /** A prefix of its own per test, so no test sees another's clusters or counters. */
  const freshPrefix = (): string => {
    const prefix = uniqueName('cluster-state');
    prefixes.push(prefix);
    return prefix;
  };
  const freshStore = (): ClusterStateStore => createClusterStateStore(redis, freshPrefix());

  afterAll(async () => {
    for (const prefix of prefixes) {
      const keys = await redis.keys(`${prefix}:*`);
      if (keys.length > 0) await redis.del(...keys);
    }
    redis.disconnect();
    other.disconnect();
  });

  it('returns undefined for a cluster it never heard of', async () => {
    const store = freshStore();
    await expect(store.get('nowhere')).resolves.toBeUndefined();
    await store.update(baseFor('somewhere'), {});
    await expect(store.get('nowhere')).resolves.toBeUndefined();
    await expect(store.get('somewhere')).resolves.toMatchObject({ name: 'somewhere' });
  });

  it('starts a new cluster with the base, the patch and zero totals', async () => {
    const store = freshStore();
    await store.update(baseFor('gcp-production'), { appliedRevision: 'a'.repeat(40) });
    await expect(store.get('gcp-production')).resolves.toEqual({
      ...baseFor('gcp-production'),
      appliedRevision: 'a'.repeat(40),
      totals: { driftDetected: 0, driftCorrected: 0, missedPushes: 0 },
    });
  });

  it('merges patches: later fields override, earlier ones are kept', async () => {
    const store = freshStore();
    const base = baseFor('gcp-production');
    const firstSync = { sha: 'a'.repeat(40), status: 'applied', description: '3 created', at: '2024-05-01T10:00:00Z' };
    const secondSync = { sha: 'b'.repeat(40), status: 'failed', description: 'timed out', at: '2024-05-01T11:00:00Z' };
    await store.update(base, {
      appliedRevision: 'a'.repeat(40),
      appliedAt: '2024-05-01T10:00:00Z',
      lastSync: firstSync,
    });
    await store.update(base, { lastResyncAt: '2024-05-01T10:30:00Z', lastResyncResult: 'in sync' });
    await store.update({ ...base, suspended: true, intervalMs: 60_000 }, { lastSync: secondSync });

    const state = await store.get('gcp-production');
    expect(state).toEqual({
      ...base,
      suspended: true,
      intervalMs: 60_000,
      appliedRevision: 'a'.repeat(40),
      appliedAt: '2024-05-01T10:00:00Z',
      lastSync: secondSync,
      lastResyncAt: '2024-05-01T10:30:00Z',
      lastResyncResult: 'in sync',
      totals: { driftDetected: 0, driftCorrected: 0, missedPushes: 0 },
    });
  });

  it('replaces drift as a whole, so a corrected drift can be followed by a new one', async () => {
    const store = freshStore();
    const base = baseFor('aws-staging');
    const objects = [
      {
        object: 'apps/v1/Deployment/shop/web',
        kind: 'changed' as const,
        fields: [{ path: 'spec.template.spec.containers[web].image', changedBy: ['kubectl-edit'] }],
      },
    ];
    await store.update(base, {
      drift: { objects, detectedAt: '2024-05-01T10:00:00Z', correctedAt: '2024-05-01T10:00:05Z' },
    });
    await store.update(base, { drift: { objects: [], detectedAt: '2024-05-01T11:00:00Z' } });
    await expect(store.get('aws-staging')).resolves.toMatchObject({
      drift: { objects: [], detectedAt: '2024-05-01T11:00:00Z' },
    });
    expect((await store.get('aws-staging'))?.drift).not.toHaveProperty('correctedAt');
  });

  it('adds to totals starting from zero, keeping the other totals', async () => {
    const store = freshStore();
    const base = baseFor('gcp-production');
    await store.update(base, { add: { driftDetected: 2 } });
    await expect(store.get('gcp-production')).resolves.toMatchObject({
      totals: { driftDetected: 2, driftCorrected: 0, missedPushes: 0 },
    });
    await store.update(base, { add: { driftDetected: 3, driftCorrected: 1 } });
    await store.update(base, { add: { missedPushes: 1 }, lastResyncResult: 'corrected' });
    await store.update(base, { lastResyncResult: 'in sync' });
    const state = await store.get('gcp-production');
    expect(state?.totals).toEqual({ driftDetected: 5, driftCorrected: 1, missedPushes: 1 });
    expect(state?.lastResyncResult).toBe('in sync');
    expect(state).not.toHaveProperty('add');
  });

  it('keeps clusters apart', async () => {
    const store = freshStore();
    await store.update(baseFor('one'), { add: { missedPushes: 4 }, appliedRevision: 'c'.repeat(40) });
    await store.update(baseFor('two'), { add: { missedPushes: 1 } });
    expect((await store.get('one'))?.totals.missedPushes).toBe(4);
    expect((await store.get('two'))?.totals.missedPushes).toBe(1);
    expect(await store.get('two')).not.toHaveProperty('appliedRevision');
  });

  it('lists every cluster sorted by name', async () => {
    const store = freshStore();
    await expect(store.list()).resolves.toEqual([]);
    for (const name of ['gcp-production', 'aws-staging', 'onprem-lab', 'aws-production']) {
      await store.update(baseFor(name), {});
    }
    await store.update(baseFor('aws-staging'), { appliedRevision: 'd'.repeat(40) });
    const clusters = await store.list();
    expect(clusters.map((c) => c.name)).toEqual(['aws-production', 'aws-staging', 'gcp-production', 'onprem-lab']);
    expect(clusters[1]).toMatchObject({
      name: 'aws-staging',
      path: 'clusters/aws-staging',
      appliedRevision: 'd'.repeat(40),
    });
  });

  it('treats a stored state that does not parse as absent, and replaces it on the next update', async () => {
    const prefix = freshPrefix();
    const store = createClusterStateStore(redis, prefix);
    await store.update(baseFor('fine'), {});
    await redis.hset(redisKeys(prefix).clusterStates, 'broken', '{"name":"broken","totals":', 'odd', '{"name":7}');
    await expect(store.get('broken')).resolves.toBeUndefined();
    expect((await store.list()).map((c) => c.name)).toEqual(['fine']);
    await store.update(baseFor('broken'), { appliedRevision: 'e'.repeat(40) });
    await expect(store.get('broken')).resolves.toMatchObject({ name: 'broken', appliedRevision: 'e'.repeat(40) });
  });

  it('lands every one of many concurrent updates from two processes', async () => {
    const prefix = freshPrefix();
    const stores = [createClusterStateStore(redis, prefix), createClusterStateStore(other, prefix)];
    const base = baseFor('gcp-production');
    await Promise.all(
      Array.from({ length: 40 }, (_, i) =>
        stores[i % 2]?.update(base, {
          add: { driftDetected: 1, ...(i % 4 === 0 ? { missedPushes: 1 } : {}) },
          reconciled: {
            sha: `${i}`.padStart(40, '0'),
            status: 'applied',
            description: `${i}`,
            at: '2024-05-01T10:00:00Z',
          },
        }),
      ),
    );
    const state = await stores[0]?.get('gcp-production');
    expect(state?.totals).toEqual({ driftDetected: 40, driftCorrected: 0, missedPushes: 10 });
    expect(state?.recent).toHaveLength(20);
  });

  it('writes under a fence only while its lease is held, and throws without writing once it is lost', async () => {
    const prefix = freshPrefix();
    const store = createClusterStateStore(redis, prefix);
    const base = baseFor('aws-staging');
    await withClusterLock(redis, { prefix, cluster: base.name, leaseMs: 10_000, waitMs: 0 }, async (lock) => {
      await store.update(base, { lastResyncResult: 'in sync' }, { fence: lock });
      expect((await store.get(base.name))?.lastResyncResult).toBe('in sync');

      // The lease expired and another worker took it (what a pause past the lease looks like from Redis).
      await other.set(redisKeys(prefix).clusterLease(base.name), 'another-worker', 'PX', 10_000);
      await expect(
        store.update(base, { lastResyncResult: '2 drifted', add: { driftDetected: 2 } }, { fence: lock }),
      ).rejects.toBeInstanceOf(LockLostError);
    });
    const state = await store.get(base.name);
    expect(state?.lastResyncResult).toBe('in sync');
    expect(state?.totals.driftDetected).toBe(0);
  });
});
