import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { PatchStrategy } from '@kubernetes/client-node';
import { readBaselines } from '../../src/engine/baseline-store.ts';
import { createClusterClient } from '../../src/engine/cluster-client.ts';
import { correctDrift } from '../../src/engine/correct-drift.ts';
import { scanDrift } from '../../src/engine/drift.ts';
import { readInventory } from '../../src/engine/inventory.ts';
import type { RenderedObject } from '../../src/engine/manifest.ts';
import { reconcileCluster } from '../../src/engine/reconcile-cluster.ts';
import { testEnvironment, uniqueName } from '../helpers/environment.ts';
import { applyAsManager, createTestNamespace, kubeClients } from '../helpers/kube.ts';

const env = testEnvironment();
const kube = kubeClients(env.kubeconfig);
const client = createClusterClient(kube.config);

/** A `kubectl edit`: a merge patch recorded as an Update by field manager `kubectl-edit`. */
function kubectlEdit(
  object: { apiVersion: string; kind: string; metadata: { name: string; namespace: string } },
  patch: object,
) {
  return kube.objects.patch(
    { ...object, ...patch },
    undefined,
    undefined,
    'kubectl-edit',
    undefined,
    PatchStrategy.MergePatch,
  );
}

describe('drift: what Plumbline set, compared with what is live', () => {
  let namespace: string;
  let cleanup: () => Promise<void>;
  const cluster = uniqueName('drift');
  let objects: RenderedObject[];

  const scan = async () => {
    const inventory = await readInventory(client, cluster);
    if (!inventory) throw new Error('no inventory');
    return scanDrift(client, cluster, inventory, await readBaselines(client, cluster), 8);
  };

  beforeAll(async () => {
    [namespace, cleanup] = await createTestNamespace(kube.core, 'drift');
    const source = { file: 'clusters/drift/app.yaml' };
    objects = [
      {
        manifest: {
          apiVersion: 'v1',
          kind: 'ConfigMap',
          metadata: { name: 'settings', namespace },
          data: { mode: 'strict', level: 'info', auth_mode: 'oidc' },
        },
        source,
      },
      {
        manifest: { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'doomed', namespace }, data: { a: '1' } },
        source,
      },
      {
        // Quantities written the way people write them; the server normalizes `0.5` to `500m`.
        manifest: {
          apiVersion: 'apps/v1',
          kind: 'Deployment',
          metadata: { name: 'web', namespace },
          spec: {
            selector: { matchLabels: { app: 'web' } },
            template: {
              metadata: { labels: { app: 'web' } },
              spec: {
                containers: [
                  {
                    name: 'web',
                    image: 'nginx:1.27',
                    ports: [{ containerPort: 80 }],
                    resources: { requests: { cpu: '0.5', memory: '128Mi' } },
                  },
                ],
              },
            },
          },
        },
        source,
      },
      {
        manifest: {
          apiVersion: 'v1',
          kind: 'Service',
          metadata: { name: 'web', namespace },
          spec: { selector: { app: 'web' }, ports: [{ port: 80 }] },
        },
        source,
      },
    ];
    const outcome = await reconcileCluster({
      client,
      clusterName: cluster,
      revision: 'a'.repeat(40),
      objects,
      prune: true,
      pruneGuards: { maxShare: 0.5, override: false },
      apply: { concurrency: 8, conflicts: 'take-ownership', establishTimeoutMs: 30_000 },
    });
    expect(outcome.status).toBe('applied');
    // Unmanaged neighbours of the same kinds, which a label-selected scan never transfers.
    for (let i = 0; i < 5; i += 1) {
      await kube.core.createNamespacedConfigMap({
        namespace,
        body: { metadata: { name: `neighbour-${i}` }, data: { x: '1' } },
      });
    }
  });
  afterAll(async () => {
    await cleanup();
  });

  it('finds nothing right after an apply: defaulting and quantity formatting are not drift', async () => {
    const result = await scan();
    expect(result.drifted).toEqual([]);
    expect(result.checked).toBe(4);
    // One LIST per kind and namespace: ConfigMaps, Deployments, Services.
    expect(result.requests).toBe(3);
  });

  it('a field changed by `kubectl edit` is drift, named with the manager that changed it', async () => {
    await kubectlEdit(
      { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'settings', namespace } },
      { data: { mode: 'permissive' } },
    );
    const result = await scan();
    expect(result.drifted).toEqual([
      expect.objectContaining({
        object: `ConfigMap/${namespace}/settings`,
        kind: 'changed',
        fields: [{ path: 'data.mode', expected: '"strict"', actual: '"permissive"', changedBy: ['kubectl-edit'] }],
      }),
    ]);
  });

  it('a field Git does not set, changed by another manager, is left alone (an HPA scaling a Deployment)', async () => {
    await applyAsManager(kube, 'horizontal-pod-autoscaler', {
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name: 'web', namespace },
      spec: { replicas: 4 },
    });
    const result = await scan();
    expect(result.drifted.map((d) => d.object)).toEqual([`ConfigMap/${namespace}/settings`]);
  });

  it('an image changed by a controller, and a deleted object, are drift too', async () => {
    await applyAsManager(kube, 'rogue-controller', {
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name: 'web', namespace },
      spec: {
        selector: { matchLabels: { app: 'web' } },
        template: {
          metadata: { labels: { app: 'web' } },
          spec: { containers: [{ name: 'web', image: 'nginx:evil' }] },
        },
      },
    }).catch(async () => {
      // Plumbline owns the image: another apply needs force, as a controller would use.
      await kube.objects.patch(
        {
          apiVersion: 'apps/v1',
          kind: 'Deployment',
          metadata: { name: 'web', namespace },
          spec: { template: { spec: { containers: [{ name: 'web', image: 'nginx:evil' }] } } },
        },
        undefined,
        undefined,
        'rogue-controller',
        true,
        PatchStrategy.ServerSideApply,
      );
    });
    await kube.core.deleteNamespacedConfigMap({ name: 'doomed', namespace });
    const result = await scan();
    const byObject = Object.fromEntries(result.drifted.map((d) => [d.object, d]));
    expect(byObject[`ConfigMap/${namespace}/doomed`]).toMatchObject({ kind: 'deleted' });
    expect(byObject[`Deployment/${namespace}/web`]?.fields).toEqual([
      {
        path: 'spec.template.spec.containers[web].image',
        expected: '"nginx:1.27"',
        actual: '"nginx:evil"',
        changedBy: ['rogue-controller'],
      },
    ]);
  });

  it('correction re-applies only the drifted objects, takes the fields back and recreates the deleted one', async () => {
    const inventory = await readInventory(client, cluster);
    const before = await scan();
    const changeSet = await correctDrift({
      client,
      clusterName: cluster,
      inventory: inventory!,
      baselines: await readBaselines(client, cluster),
      drifted: before.drifted,
      desired: objects,
      concurrency: 8,
    });
    expect(changeSet.changes.map((c) => `${c.action} ${c.object}`).sort()).toEqual(
      [
        `configured ConfigMap/${namespace}/settings`,
        `configured Deployment/${namespace}/web`,
        `created ConfigMap/${namespace}/doomed`,
      ].sort(),
    );
    expect((await kube.core.readNamespacedConfigMap({ name: 'settings', namespace })).data?.mode).toBe('strict');
    await expect(kube.core.readNamespacedConfigMap({ name: 'doomed', namespace })).resolves.toBeDefined();
    const deployment = (await kube.objects.read({
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name: 'web', namespace },
    })) as { spec: { replicas: number; template: { spec: { containers: { image: string }[] } } } };
    expect(deployment.spec.template.spec.containers[0]?.image).toBe('nginx:1.27');
    // The HPA's replicas were never Plumbline's: still what the HPA set.
    expect(deployment.spec.replicas).toBe(4);
    expect((await scan()).drifted).toEqual([]);
  });

  it('a `kubectl patch` (JSON patch) is drift too, and a value put back by hand is not', async () => {
    const patch = (value: string) =>
      kube.core.patchNamespacedConfigMap({
        name: 'settings',
        namespace,
        body: [{ op: 'replace', path: '/data/level', value }],
        fieldManager: 'kubectl-patch',
      });
    await patch('debug');
    expect((await scan()).drifted).toEqual([
      expect.objectContaining({
        fields: [{ path: 'data.level', expected: '"info"', actual: '"debug"', changedBy: ['kubectl-patch'] }],
      }),
    ]);
    await patch('info');
    expect((await scan()).drifted).toEqual([]);
  });

  it('masks secret-looking values in drift reports', async () => {
    // A key Git never set is not drift…
    await kubectlEdit(
      { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'settings', namespace } },
      { data: { extra_token: 'ghp_abcdefghijklmnopqrstuvwxyz0123456789' } },
    );
    expect((await scan()).drifted).toEqual([]);
    // …and a changed value under a secret-looking key is reported without the value.
    await kubectlEdit(
      { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'settings', namespace } },
      { data: { auth_mode: 'hunter2' } },
    );
    const result = await scan();
    expect(result.drifted[0]?.fields).toEqual([
      { path: 'data.auth_mode', expected: '••••••', actual: '••••••', changedBy: ['kubectl-edit'] },
    ]);
    expect(JSON.stringify(result)).not.toContain('hunter2');
    expect(JSON.stringify(result)).not.toContain('oidc');
  });
});
