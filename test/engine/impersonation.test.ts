import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { KubeConfig, RbacAuthorizationV1Api } from '@kubernetes/client-node';
import { createClusterClient, serviceAccountUser } from '../../src/engine/cluster-client.ts';
import { LockLostError } from '../../src/engine/cluster-lock.ts';
import { INVENTORY_NAMESPACE, readInventory } from '../../src/engine/inventory.ts';
import type { RenderedObject } from '../../src/engine/manifest.ts';
import { reconcileCluster } from '../../src/engine/reconcile-cluster.ts';
import { testEnvironment, uniqueName } from '../helpers/environment.ts';
import { createTestNamespace, kubeClients } from '../helpers/kube.ts';

const env = testEnvironment();
const kube = kubeClients(env.kubeconfig);

async function until<T>(probe: () => Promise<T | undefined>, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

const configMap = (namespace: string, name: string): RenderedObject => ({
  manifest: { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name, namespace }, data: { a: '1' } },
  source: { file: 'apps/tenant.yaml', line: 4 },
});

/** A kubeconfig for a ServiceAccount, from a TokenRequest: how a worker pod authenticates. */
async function kubeConfigOf(namespace: string, name: string): Promise<KubeConfig> {
  const { status } = await kube.core.createNamespacedServiceAccountToken({
    name,
    namespace,
    body: { spec: { audiences: [], expirationSeconds: 600 } },
  });
  const cluster = kube.config.getCurrentCluster();
  if (!cluster || !status?.token) throw new Error('no token');
  const config = new KubeConfig();
  config.loadFromOptions({
    clusters: [cluster],
    users: [{ name, token: status.token }],
    contexts: [{ name, cluster: cluster.name, user: name }],
    currentContext: name,
  });
  return config;
}

describe("impersonating the registry entry's ServiceAccount", () => {
  let tenant: string;
  let other: string;
  const account = uniqueName('tenant');
  const cleanups: (() => Promise<void>)[] = [];
  const rbac = kube.config.makeApiClient(RbacAuthorizationV1Api);

  beforeAll(async () => {
    let cleanup: () => Promise<void>;
    [tenant, cleanup] = await createTestNamespace(kube.core, 'tenant');
    cleanups.push(cleanup);
    [other, cleanup] = await createTestNamespace(kube.core, 'other');
    cleanups.push(cleanup);
    // The tenant's account may manage ConfigMaps in its own namespace, and nothing anywhere else.
    await kube.core.createNamespacedServiceAccount({ namespace: tenant, body: { metadata: { name: account } } });
    await rbac.createNamespacedRole({
      namespace: tenant,
      body: {
        metadata: { name: 'configmaps' },
        rules: [
          { apiGroups: [''], resources: ['configmaps'], verbs: ['get', 'list', 'create', 'patch', 'update', 'delete'] },
        ],
      },
    });
    await rbac.createNamespacedRoleBinding({
      namespace: tenant,
      body: {
        metadata: { name: 'configmaps' },
        roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'configmaps' },
        subjects: [{ kind: 'ServiceAccount', name: account, namespace: tenant }],
      },
    });
  });
  afterAll(async () => {
    for (const cleanup of cleanups) await cleanup();
  });

  const reconcile = (clusterName: string, revision: string, objects: RenderedObject[]) =>
    reconcileCluster({
      client: createClusterClient(kube.config, { serviceAccount: `${tenant}/${account}` }),
      clusterName,
      revision,
      objects,
      prune: true,
      pruneGuards: { maxShare: 1, override: true },
      apply: { concurrency: 4, conflicts: 'take-ownership', establishTimeoutMs: 30_000 },
      // No namespace limit in the registry: the apiserver's RBAC is the final wall.
      limits: {
        namespaces: undefined,
        clusterScoped: undefined,
        deniedKinds: [],
        serviceAccount: `${tenant}/${account}`,
      },
    });

  it('a commit writing outside what the account may write fails as the commit’s fault, and nothing is written', async () => {
    const cluster = uniqueName('rbac');
    const outcome = await reconcile(cluster, 'a'.repeat(40), [
      configMap(tenant, 'inside'),
      configMap(other, 'outside'),
    ]);
    expect(outcome.status).toBe('failed');
    const failed = outcome.changeSet.changes.filter((c) => c.action === 'failed');
    expect(failed).toEqual([
      expect.objectContaining({
        object: `ConfigMap/${other}/outside`,
        source: { file: 'apps/tenant.yaml', line: 4 },
        message: expect.stringContaining(
          `refused by the cluster's RBAC for system:serviceaccount:${tenant}:${account}, the registry entry's serviceAccount`,
        ),
      }),
    ]);
    await expect(kube.core.readNamespacedConfigMap({ name: 'inside', namespace: tenant })).rejects.toThrow();
  });

  it("inside it works, and Plumbline's records stay on Plumbline's own identity", async () => {
    const cluster = uniqueName('rbac-ok');
    const first = await reconcile(cluster, 'a'.repeat(40), [configMap(tenant, 'one'), configMap(tenant, 'two')]);
    expect(first.status).toBe('applied');
    // The account has no access to plumbline-system at all: the inventory was written as Plumbline.
    expect(await readInventory(createClusterClient(kube.config), cluster)).toMatchObject({ revision: 'a'.repeat(40) });
    const second = await reconcile(cluster, 'b'.repeat(40), [configMap(tenant, 'one')]);
    expect(second.changeSet.changes).toEqual(
      expect.arrayContaining([expect.objectContaining({ object: `ConfigMap/${tenant}/two`, action: 'deleted' })]),
    );
  });

  it('Plumbline itself needs only `impersonate` on that ServiceAccount, and its own records', async () => {
    // Plumbline's own identity: a ServiceAccount that may impersonate the tenant's account, and manage
    // ConfigMaps in plumbline-system (its records) — nothing else, in particular no access to the tenant's
    // namespace of its own.
    const worker = uniqueName('worker');
    await kube.core.createNamespacedServiceAccount({ namespace: tenant, body: { metadata: { name: worker } } });
    const records = `${worker}-records`;
    await rbac.createNamespacedRole({
      namespace: INVENTORY_NAMESPACE,
      body: {
        metadata: { name: records },
        rules: [{ apiGroups: [''], resources: ['configmaps'], verbs: ['get', 'list', 'create', 'patch', 'update'] }],
      },
    });
    await rbac.createNamespacedRoleBinding({
      namespace: INVENTORY_NAMESPACE,
      body: {
        metadata: { name: records },
        roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: records },
        subjects: [{ kind: 'ServiceAccount', name: worker, namespace: tenant }],
      },
    });
    cleanups.push(async () => {
      await rbac.deleteNamespacedRoleBinding({ name: records, namespace: INVENTORY_NAMESPACE });
      await rbac.deleteNamespacedRole({ name: records, namespace: INVENTORY_NAMESPACE });
    });
    const asWorker = createClusterClient(await kubeConfigOf(tenant, worker), {
      serviceAccount: `${tenant}/${account}`,
    });
    const run = (cluster: string) =>
      reconcileCluster({
        client: asWorker,
        clusterName: cluster,
        revision: 'a'.repeat(40),
        objects: [configMap(tenant, uniqueName('as-worker'))],
        prune: true,
        pruneGuards: { maxShare: 1, override: true },
        apply: { concurrency: 4, conflicts: 'take-ownership', establishTimeoutMs: 30_000 },
      });
    // Not yet allowed to impersonate: the installation's problem, retried — never the commit's failure.
    await expect(run(uniqueName('no-grant'))).rejects.toMatchObject({ kind: 'unavailable', status: 403 });
    await rbac.createNamespacedRole({
      namespace: tenant,
      body: {
        metadata: { name: 'impersonate-tenant' },
        rules: [{ apiGroups: [''], resources: ['serviceaccounts'], verbs: ['impersonate'], resourceNames: [account] }],
      },
    });
    await rbac.createNamespacedRoleBinding({
      namespace: tenant,
      body: {
        metadata: { name: 'impersonate-tenant' },
        roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'impersonate-tenant' },
        subjects: [{ kind: 'ServiceAccount', name: worker, namespace: tenant }],
      },
    });
    const cluster = uniqueName('granted');
    const outcome = await until(async () => {
      try {
        return await run(cluster);
      } catch (error) {
        // RBAC takes effect within moments; until then the same retryable refusal.
        if (error instanceof LockLostError || (error as { status?: number }).status !== 403) throw error;
        return undefined;
      }
    });
    expect(outcome.status).toBe('applied');
    expect(await readInventory(createClusterClient(kube.config), cluster)).toMatchObject({ revision: 'a'.repeat(40) });
  });

  it('names the account as Kubernetes does: namespace/name, or a name in plumbline-system', () => {
    expect(serviceAccountUser('team-a/deployer')).toBe('system:serviceaccount:team-a:deployer');
    expect(serviceAccountUser('plumbline-tenant')).toBe('system:serviceaccount:plumbline-system:plumbline-tenant');
  });
});
