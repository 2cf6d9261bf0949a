import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { TenancyLimits } from '../../src/clusters/cluster-registry.ts';
import { readBaselines } from '../../src/engine/baseline-store.ts';
import { createClusterClient } from '../../src/engine/cluster-client.ts';
import { correctDrift } from '../../src/engine/correct-drift.ts';
import { scanDrift } from '../../src/engine/drift.ts';
import { inventoryName, readInventory, writeInventory } from '../../src/engine/inventory.ts';
import type { RenderedObject } from '../../src/engine/manifest.ts';
import { type ReconcileFailure, reconcileCluster } from '../../src/engine/reconcile-cluster.ts';
import { describeFailure } from '../../src/reporting/describe-outcome.ts';
import { testEnvironment, uniqueName } from '../helpers/environment.ts';
import { createTestNamespace, kubeClients } from '../helpers/kube.ts';

const env = testEnvironment();
const kube = kubeClients(env.kubeconfig);
const client = createClusterClient(kube.config);

const configMap = (namespace: string, name: string, line = 1): RenderedObject => ({
  manifest: { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name, namespace }, data: { a: '1' } },
  source: { file: 'apps/objects.yaml', line },
});
const limitsFor = (namespaces: string[]): TenancyLimits => ({
  namespaces,
  clusterScoped: [],
  deniedKinds: [],
  serviceAccount: undefined,
});

const reconcile = (clusterName: string, revision: string, objects: RenderedObject[], limits?: TenancyLimits) =>
  reconcileCluster({
    client,
    clusterName,
    revision,
    objects,
    prune: true,
    pruneGuards: { maxShare: 1, override: true },
    apply: { concurrency: 8, conflicts: 'take-ownership', establishTimeoutMs: 30_000 },
    limits,
  });

describe('tenancy limits in a reconcile', () => {
  let allowed: string;
  let other: string;
  const cleanups: (() => Promise<void>)[] = [];
  const exists = async (namespace: string, name: string) =>
    kube.core.readNamespacedConfigMap({ name, namespace }).then(
      () => true,
      () => false,
    );

  beforeAll(async () => {
    let cleanup: () => Promise<void>;
    [allowed, cleanup] = await createTestNamespace(kube.core, 'tenant');
    cleanups.push(cleanup);
    [other, cleanup] = await createTestNamespace(kube.core, 'other');
    cleanups.push(cleanup);
  });
  afterAll(async () => {
    for (const cleanup of cleanups) await cleanup();
  });

  it('fails a commit with an object outside them before anything is written, naming its file, line and the limit', async () => {
    const cluster = uniqueName('limits');
    const objects = [configMap(allowed, 'inside-1'), configMap(allowed, 'inside-2'), configMap(other, 'outside', 13)];
    const outcome = await reconcile(cluster, 'a'.repeat(40), objects, limitsFor([allowed]));
    expect(outcome.status).toBe('failed');
    expect(outcome.changeSet.changes).toEqual([
      {
        object: `ConfigMap/${other}/outside`,
        action: 'failed',
        source: { file: 'apps/objects.yaml', line: 13 },
        message: `ConfigMap/${other}/outside: namespace ${other} is outside the namespaces of the registry entry of cluster ${cluster} (${allowed})`,
      },
    ]);
    expect(await exists(allowed, 'inside-1')).toBe(false);
    expect(await readInventory(client, cluster)).toBeUndefined();
  });

  it('a preview of such a commit says it would be refused', async () => {
    const cluster = uniqueName('preview');
    const outcome = await reconcileCluster({
      client,
      clusterName: cluster,
      revision: 'p'.repeat(40),
      objects: [configMap(allowed, 'inside'), configMap(other, 'outside')],
      prune: true,
      pruneGuards: { maxShare: 0.5, override: false },
      apply: { concurrency: 8, conflicts: 'take-ownership', establishTimeoutMs: 30_000 },
      limits: limitsFor([allowed]),
      dryRun: true,
    });
    expect(outcome).toMatchObject({ status: 'failed', failure: { reason: 'tenancy' } });
    expect(describeFailure((outcome as { failure: ReconcileFailure }).failure, cluster, true)).toMatch(
      /1 object\(s\) outside the tenancy limits of cluster .*; it would be refused/,
    );
  });

  it("refuses a commit that writes Plumbline's records, even with no limits set", async () => {
    const victim = uniqueName('victim');
    await writeInventory(client, victim, { revision: 'v'.repeat(40), objects: [] });
    const forged: RenderedObject = {
      manifest: {
        apiVersion: 'v1',
        kind: 'ConfigMap',
        metadata: { name: inventoryName(victim), namespace: 'plumbline-system' },
        data: { revision: 'f'.repeat(40), objects: '[]' },
      },
      source: { file: 'apps/forged.yaml', line: 1 },
    };
    const outcome = await reconcile(uniqueName('attacker'), 'a'.repeat(40), [configMap(allowed, 'x'), forged]);
    expect(outcome).toMatchObject({
      status: 'failed',
      changeSet: {
        changes: [expect.objectContaining({ object: `ConfigMap/plumbline-system/${inventoryName(victim)}` })],
      },
    });
    expect((await readInventory(client, victim))?.revision).toBe('v'.repeat(40));
  });

  it('drift correction leaves an object alone once the limits no longer cover it', async () => {
    const cluster = uniqueName('narrowed');
    const objects = [configMap(allowed, 'kept-out')];
    expect((await reconcile(cluster, 'a'.repeat(40), objects)).status).toBe('applied');
    await kube.core.deleteNamespacedConfigMap({ name: 'kept-out', namespace: allowed });
    const inventory = await readInventory(client, cluster);
    if (!inventory) throw new Error('no inventory');
    const baselines = await readBaselines(client, cluster);
    const { drifted } = await scanDrift(client, cluster, inventory, baselines, 4);
    expect(drifted).toHaveLength(1);
    const correction = {
      client,
      clusterName: cluster,
      inventory,
      baselines,
      drifted,
      desired: objects,
      concurrency: 4,
    };
    // The operator narrowed the entry to another namespace since the commit was applied.
    expect((await correctDrift({ ...correction, limits: limitsFor([other]) })).changes).toEqual([
      expect.objectContaining({
        action: 'skipped',
        message: expect.stringMatching(/^left alone: outside the tenancy limits/),
      }),
    ]);
    expect(await exists(allowed, 'kept-out')).toBe(false);
    expect((await correctDrift({ ...correction, limits: limitsFor([allowed]) })).changes).toEqual([
      expect.objectContaining({ action: 'created' }),
    ]);
    expect(await exists(allowed, 'kept-out')).toBe(true);
  });
});

describe('prune with two registry entries on one apiserver', () => {
  let namespace: string;
  let cleanup: () => Promise<void>;
  beforeAll(async () => {
    [namespace, cleanup] = await createTestNamespace(kube.core, 'twoentries');
  });
  afterAll(async () => {
    await cleanup();
  });

  it("never deletes the other entry's objects, even when an inventory is tampered with to list them", async () => {
    const [a, b] = [uniqueName('entry-a'), uniqueName('entry-b')];
    expect(
      (await reconcile(a, 'a'.repeat(40), [configMap(namespace, 'of-a'), configMap(namespace, 'a-2')])).status,
    ).toBe('applied');
    expect((await reconcile(b, 'b'.repeat(40), [configMap(namespace, 'of-b')])).status).toBe('applied');
    // Someone with write access to plumbline-system adds b's object to a's inventory.
    const inventory = await readInventory(client, a);
    if (!inventory) throw new Error('no inventory');
    const tampered = {
      ...inventory,
      objects: [...inventory.objects, { apiVersion: 'v1', kind: 'ConfigMap', namespace, name: 'of-b' }],
    };
    await writeInventory(client, a, tampered, inventory);

    const next = await reconcile(a, 'c'.repeat(40), [configMap(namespace, 'of-a')]);
    expect(next.status).toBe('applied');
    const byObject = Object.fromEntries(next.changeSet.changes.map((c) => [c.object, c]));
    expect(byObject[`ConfigMap/${namespace}/of-b`]).toMatchObject({
      action: 'skipped',
      message: `left alone: labelled plumbline.dev/cluster=${b}, another registry entry's object`,
    });
    expect(byObject[`ConfigMap/${namespace}/a-2`]).toMatchObject({ action: 'deleted' });
    await expect(kube.core.readNamespacedConfigMap({ name: 'of-b', namespace })).resolves.toBeDefined();
    // And b, pruning its own object later, still can.
    expect((await reconcile(b, 'd'.repeat(40), [configMap(namespace, 'other-of-b')])).changeSet.changes).toEqual(
      expect.arrayContaining([expect.objectContaining({ object: `ConfigMap/${namespace}/of-b`, action: 'deleted' })]),
    );
  });

  it("never deletes Plumbline's own records, even when its own inventory is tampered with to list them", async () => {
    const cluster = uniqueName('records');
    expect((await reconcile(cluster, 'a'.repeat(40), [configMap(namespace, 'r-1')])).status).toBe('applied');
    const baseline = {
      apiVersion: 'v1',
      kind: 'ConfigMap',
      namespace: 'plumbline-system',
      name: `plumbline-baseline-${cluster}-0`,
    };
    const inventory = await readInventory(client, cluster);
    if (!inventory) throw new Error('no inventory');
    await writeInventory(client, cluster, { ...inventory, objects: [...inventory.objects, baseline] }, inventory);

    const next = await reconcile(cluster, 'b'.repeat(40), [configMap(namespace, 'r-1')]);
    expect(next.changeSet.changes).toEqual(
      expect.arrayContaining([
        expect.objectContaining({
          object: `ConfigMap/plumbline-system/${baseline.name}`,
          action: 'skipped',
          message: expect.stringMatching(/^left alone: outside the tenancy limits \(plumbline-system holds/),
        }),
      ]),
    );
    await expect(
      kube.core.readNamespacedConfigMap({ name: baseline.name, namespace: 'plumbline-system' }),
    ).resolves.toBeDefined();
  });
});
