import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { RbacAuthorizationV1Api } from '@kubernetes/client-node';
import { readBaselines } from '../../src/engine/baseline-store.ts';
import { createClusterClient } from '../../src/engine/cluster-client.ts';
import { scanDrift } from '../../src/engine/drift.ts';
import { readInventory } from '../../src/engine/inventory.ts';
import type { RenderedObject } from '../../src/engine/manifest.ts';
import { reconcileCluster } from '../../src/engine/reconcile-cluster.ts';
import { testEnvironment, uniqueName } from '../helpers/environment.ts';
import { createTestNamespace, kubeClients } from '../helpers/kube.ts';

const env = testEnvironment();
const kube = kubeClients(env.kubeconfig);

/**
 * A tenant's ServiceAccount may read its own namespaces only (the chart's narrow RBAC, or impersonation):
 * the resync's drift scan must not depend on a cluster-wide LIST, which it uses when a kind spans many
 * namespaces.
 */
describe('drift scan under RBAC that allows no cluster-wide LIST', () => {
  const cluster = uniqueName('narrow');
  const account = uniqueName('narrow');
  const namespaces: string[] = [];
  const cleanups: (() => Promise<void>)[] = [];
  const rbac = kube.config.makeApiClient(RbacAuthorizationV1Api);
  let home = '';
  const tenantClient = () => createClusterClient(kube.config, { serviceAccount: `${home}/${account}` });

  beforeAll(async () => {
    let cleanHome: () => Promise<void>;
    [home, cleanHome] = await createTestNamespace(kube.core, 'narrow-home');
    cleanups.push(cleanHome);
    await kube.core.createNamespacedServiceAccount({ namespace: home, body: { metadata: { name: account } } });
    for (let i = 0; i < 5; i += 1) {
      const [namespace, cleanup] = await createTestNamespace(kube.core, `narrow-${i}`);
      namespaces.push(namespace);
      cleanups.push(cleanup);
      await rbac.createNamespacedRole({
        namespace,
        body: {
          metadata: { name: 'configmaps' },
          rules: [{ apiGroups: [''], resources: ['configmaps'], verbs: ['get', 'list', 'create', 'patch', 'update'] }],
        },
      });
      await rbac.createNamespacedRoleBinding({
        namespace,
        body: {
          metadata: { name: 'configmaps' },
          roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'configmaps' },
          subjects: [{ kind: 'ServiceAccount', name: account, namespace: home }],
        },
      });
    }
    const objects: RenderedObject[] = namespaces.flatMap((namespace) =>
      ['settings', 'features'].map((name) => ({
        manifest: { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name, namespace }, data: { a: '1' } },
        source: { file: 'clusters/narrow/app.yaml', line: 1 },
      })),
    );
    const client = tenantClient();
    // RBAC bindings take a moment to reach the authorizer's cache.
    for (let attempt = 0; ; attempt += 1) {
      const outcome = await reconcileCluster({
        client,
        clusterName: cluster,
        revision: 'a'.repeat(40),
        objects,
        prune: true,
        pruneGuards: { maxShare: 1, override: false },
        apply: { concurrency: 4, conflicts: 'take-ownership', establishTimeoutMs: 10_000 },
      }).catch((error: unknown) => error as Error);
      if (!(outcome instanceof Error) && outcome.status !== 'failed') break;
      if (attempt > 50) throw new Error(`could not apply as the tenant: ${JSON.stringify(outcome)}`);
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  });
  afterAll(async () => {
    for (const cleanup of cleanups) await cleanup().catch(() => undefined);
  });

  it('falls back to one LIST per namespace when the cluster-wide LIST is forbidden', async () => {
    const client = tenantClient();
    const records = client.forRecords?.() ?? client;
    const inventory = await readInventory(records, cluster);
    if (!inventory) throw new Error('no inventory');
    expect(inventory.objects).toHaveLength(10);
    const scan = await scanDrift(client, cluster, inventory, await readBaselines(records, cluster), 4);
    expect(scan.drifted).toEqual([]);
    // One refused cluster-wide LIST, then one per namespace; no GET per object.
    expect(scan.requests).toBe(1 + namespaces.length);
  });
});
