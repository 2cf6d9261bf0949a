import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { AppsV1Api } from '@kubernetes/client-node';
import { Redis } from 'ioredis';
import { createClusterClient } from '../../src/engine/cluster-client.ts';
import { LockBusyError, LockLostError, withClusterLock } from '../../src/engine/cluster-lock.ts';
import { assessHealth, waitForHealth } from '../../src/engine/health.ts';
import type { Manifest } from '../../src/engine/manifest.ts';
import { testEnvironment, uniqueName } from '../helpers/environment.ts';
import { createTestNamespace, kubeClients } from '../helpers/kube.ts';

const env = testEnvironment();
const kube = kubeClients(env.kubeconfig);
const client = createClusterClient(kube.config);

describe('health', () => {
  it('reads Deployment, Job and Ready-condition health from status', () => {
    const deployment = (status: Record<string, unknown>, generation = 2) =>
      assessHealth({
        apiVersion: 'apps/v1',
        kind: 'Deployment',
        metadata: { name: 'd', generation },
        spec: { replicas: 2 },
        status,
      });
    expect(deployment({ observedGeneration: 1, updatedReplicas: 2, availableReplicas: 2 })).toMatchObject({
      state: 'progressing',
    });
    expect(
      deployment({
        observedGeneration: 2,
        updatedReplicas: 2,
        availableReplicas: 2,
        conditions: [{ type: 'Available', status: 'True' }],
      }),
    ).toEqual({ state: 'healthy' });
    expect(
      deployment({
        observedGeneration: 2,
        conditions: [
          { type: 'Progressing', status: 'False', reason: 'ProgressDeadlineExceeded', message: 'timed out' },
        ],
      }),
    ).toEqual({
      state: 'failed',
      message: 'timed out',
    });
    expect(
      assessHealth({
        apiVersion: 'batch/v1',
        kind: 'Job',
        metadata: { name: 'j' },
        status: { conditions: [{ type: 'Failed', status: 'True', message: 'BackoffLimitExceeded' }] },
      }),
    ).toEqual({
      state: 'failed',
      message: 'BackoffLimitExceeded',
    });
    expect(
      assessHealth({
        apiVersion: 'x/v1',
        kind: 'Database',
        metadata: { name: 'db' },
        status: { conditions: [{ type: 'Ready', status: 'False', message: 'provisioning' }] },
      }),
    ).toEqual({
      state: 'progressing',
      message: 'provisioning',
    });
    expect(assessHealth({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'c' } })).toEqual({
      state: 'healthy',
    });
  });

  it('waits until a controller reports the Deployment available through the /status subresource', async () => {
    const [namespace, cleanup] = await createTestNamespace(kube.core, 'health');
    try {
      const apps = kube.config.makeApiClient(AppsV1Api);
      const manifest: Manifest = {
        apiVersion: 'apps/v1',
        kind: 'Deployment',
        metadata: { name: 'web', namespace },
        spec: {
          replicas: 1,
          selector: { matchLabels: { app: 'web' } },
          template: {
            metadata: { labels: { app: 'web' } },
            spec: { containers: [{ name: 'web', image: 'nginx:1.27' }] },
          },
        },
      };
      await client.apply(manifest, { dryRun: false, force: true });
      const waiting = waitForHealth(client, [manifest], { timeoutMs: 20_000, pollMs: 100, concurrency: 4 });
      await new Promise((resolve) => setTimeout(resolve, 300));
      const live = await apps.readNamespacedDeployment({ name: 'web', namespace });
      await apps.replaceNamespacedDeploymentStatus({
        name: 'web',
        namespace,
        body: {
          ...live,
          status: {
            observedGeneration: live.metadata?.generation ?? 1,
            replicas: 1,
            updatedReplicas: 1,
            readyReplicas: 1,
            availableReplicas: 1,
            conditions: [
              {
                type: 'Available',
                status: 'True',
                reason: 'MinimumReplicasAvailable',
                lastTransitionTime: new Date(),
                lastUpdateTime: new Date(),
              },
            ],
          },
        },
      });
      expect(await waiting).toEqual([]);
      const stuck = await waitForHealth(client, [{ ...manifest, metadata: { ...manifest.metadata } }], {
        timeoutMs: 0,
        concurrency: 1,
      });
      expect(stuck).toEqual([]);
    } finally {
      await cleanup();
    }
  });

  it('reports what is still progressing when the deadline passes', async () => {
    const [namespace, cleanup] = await createTestNamespace(kube.core, 'slow');
    try {
      const manifest: Manifest = {
        apiVersion: 'apps/v1',
        kind: 'Deployment',
        metadata: { name: 'never', namespace },
        spec: {
          selector: { matchLabels: { a: 'b' } },
          template: { metadata: { labels: { a: 'b' } }, spec: { containers: [{ name: 'c', image: 'x' }] } },
        },
      };
      await client.apply(manifest, { dryRun: false, force: true });
      expect(await waitForHealth(client, [manifest], { timeoutMs: 500, pollMs: 100, concurrency: 1 })).toEqual([
        { object: `Deployment/${namespace}/never`, health: { state: 'progressing', message: expect.any(String) } },
      ]);
    } finally {
      await cleanup();
    }
  });
});

describe('the cluster lock', () => {
  let redis: Redis;
  beforeAll(() => {
    redis = new Redis(env.redisUrl);
  });
  afterAll(() => {
    redis.disconnect();
  });

  it('lets two racing workers reconcile one cluster one at a time', async () => {
    const options = { prefix: uniqueName('lock'), cluster: 'gcp-production', leaseMs: 5_000, waitMs: 10_000 };
    const intervals: [number, number][] = [];
    const work = async () => {
      const start = performance.now();
      await new Promise((resolve) => setTimeout(resolve, 200));
      intervals.push([start, performance.now()]);
    };
    await Promise.all([
      withClusterLock(redis, options, work),
      withClusterLock(redis, options, work),
      withClusterLock(redis, options, work),
    ]);
    intervals.sort((a, b) => a[0] - b[0]);
    for (let i = 1; i < intervals.length; i += 1) expect(intervals[i]![0]).toBeGreaterThanOrEqual(intervals[i - 1]![1]);
  });

  it('gives up with a retryable error when the cluster stays busy, and frees the lock after a crash-free run', async () => {
    const options = { prefix: uniqueName('lock'), cluster: 'c', leaseMs: 5_000, waitMs: 300 };
    await withClusterLock(redis, options, async () => {
      await expect(withClusterLock(redis, options, async () => 'never')).rejects.toThrow(LockBusyError);
    });
    await expect(withClusterLock(redis, options, async () => 'free again')).resolves.toBe('free again');
  });

  it('fails the fencing check once the lease was lost to another worker', async () => {
    const options = { prefix: uniqueName('lock'), cluster: 'c', leaseMs: 5_000, waitMs: 300 };
    await withClusterLock(redis, options, async (lock) => {
      await redis.set(lock.lease.key, 'someone-else');
      await expect(lock.assertHeld()).rejects.toThrow(LockLostError);
    });
  });
});
