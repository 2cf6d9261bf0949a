import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { ApiextensionsV1Api, type KubernetesObject, VersionApi } from '@kubernetes/client-node';
import { customResourceDefinition } from '../../../src/engine/custom-resource-definition.ts';
import { testEnvironment, uniqueName } from '../../helpers/environment.ts';
import { applyAsManager, createTestNamespace, type KubeClients, kubeClients } from '../../helpers/kube.ts';

const env = testEnvironment();
const clusterA = kubeClients(env.kubeconfig);
const clusterB = kubeClients(env.kubeconfigB);

async function eventually<T>(probe: () => Promise<T | undefined>, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await sleep(200);
  }
}

type Manifest = KubernetesObject & Record<string, unknown>;

function serverSideApply(clients: KubeClients, object: Manifest): Promise<Manifest> {
  return applyAsManager(clients, 'plumbline', object);
}

describe('the Kubernetes control plane the tests run against', () => {
  let namespace: string;
  let deleteNamespace: () => Promise<void>;

  beforeAll(async () => {
    [namespace, deleteNamespace] = await createTestNamespace(clusterA.core, 'stack');
  });
  afterAll(async () => {
    await deleteNamespace();
  });

  it('is a real kube-apiserver reporting the pinned version', async () => {
    const version = await clusterA.config.makeApiClient(VersionApi).getCode();
    if (env.stack === 'local') expect(version.gitVersion).toBe(env.kubernetesVersion);
    else expect(version.gitVersion).toMatch(/^v1\.\d+/);
  });

  it('records field manager "plumbline" in managedFields after a server-side apply', async () => {
    const applied = await serverSideApply(clusterA, {
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: 'ssa-probe', namespace },
      data: { greeting: 'hello' },
    });
    const managers = applied.metadata?.managedFields?.map((entry) => [entry.manager, entry.operation]);
    expect(managers).toEqual([['plumbline', 'Apply']]);
  });

  it('establishes a CRD and then accepts a custom resource of it', async () => {
    const group = `${uniqueName('probe')}.plumbline.dev`;
    const extensions = clusterA.config.makeApiClient(ApiextensionsV1Api);
    const crdName = `widgets.${group}`;
    await serverSideApply(
      clusterA,
      customResourceDefinition({
        group,
        kind: 'Widget',
        plural: 'widgets',
        specSchema: { type: 'object', properties: { size: { type: 'integer' } } },
      }),
    );
    try {
      await eventually(async () => {
        const crd = await extensions.readCustomResourceDefinition({ name: crdName });
        return crd.status?.conditions?.some((c) => c.type === 'Established' && c.status === 'True') ? true : undefined;
      });
      const widget = await eventually(() =>
        serverSideApply(clusterA, {
          apiVersion: `${group}/v1`,
          kind: 'Widget',
          metadata: { name: 'small', namespace },
          spec: { size: 3 },
        }).catch(() => undefined),
      );
      expect(widget).toMatchObject({ kind: 'Widget', spec: { size: 3 } });
    } finally {
      await extensions.deleteCustomResourceDefinition({ name: crdName });
    }
  });

  it('runs the namespace controller, so a deleted namespace really goes away', async () => {
    const [doomed, deleteDoomed] = await createTestNamespace(clusterA.core, 'doomed');
    await serverSideApply(clusterA, {
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: 'x', namespace: doomed },
    });
    await deleteDoomed();
    await eventually(() =>
      clusterA.core.readNamespace({ name: doomed }).then(
        () => undefined,
        (error: { code?: number }) => (error.code === 404 ? true : undefined),
      ),
    );
  });

  it('keeps the two clusters independent', async () => {
    const [onlyOnA, cleanup] = await createTestNamespace(clusterA.core, 'only-a');
    try {
      const onB = await clusterB.core.readNamespace({ name: onlyOnA }).then(
        () => 'found',
        (error: { code?: number }) => error.code,
      );
      expect(onB).toBe(404);
      expect(clusterA.config.getCurrentCluster()?.server).not.toBe(clusterB.config.getCurrentCluster()?.server);
    } finally {
      await cleanup();
    }
  });
});
