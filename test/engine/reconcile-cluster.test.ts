import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { countActions } from '../../src/engine/change-set.ts';
import { createClusterClient } from '../../src/engine/cluster-client.ts';
import { InventoryUnreadableError, readInventory } from '../../src/engine/inventory.ts';
import type { RenderedObject } from '../../src/engine/manifest.ts';
import { reconcileCluster } from '../../src/engine/reconcile-cluster.ts';
import { KUBECTL_KUSTOMIZE, renderCluster } from '../../src/engine/render-cluster.ts';
import { testEnvironment, uniqueName } from '../helpers/environment.ts';
import { applyAsManager, createTestNamespace, kubeClients } from '../helpers/kube.ts';

const env = testEnvironment();
const kube = kubeClients(env.kubeconfig);
const client = createClusterClient(kube.config);

const configMap = (namespace: string, name: string, data: Record<string, string> = { a: '1' }): RenderedObject => ({
  manifest: { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name, namespace }, data },
  source: { file: 'c/objects.yaml' },
});

describe('reconciling a cluster: inventory and prune', () => {
  let namespace: string;
  let cleanup: () => Promise<void>;
  let scratch: string;

  const reconcile = (clusterName: string, revision: string, objects: RenderedObject[], override = false) =>
    reconcileCluster({
      client,
      clusterName,
      revision,
      objects,
      prune: true,
      pruneGuards: { maxShare: 0.5, override },
      apply: { concurrency: 16, conflicts: 'take-ownership', establishTimeoutMs: 30_000 },
    });
  const names = async () =>
    (await kube.core.listNamespacedConfigMap({ namespace })).items
      .map((cm) => cm.metadata?.name ?? '')
      .filter((n) => n !== 'kube-root-ca.crt')
      .sort();

  beforeAll(async () => {
    [namespace, cleanup] = await createTestNamespace(kube.core, 'prune');
    scratch = await mkdtemp(join(tmpdir(), 'plumbline-reconcile-'));
  });
  afterAll(async () => {
    await cleanup();
    await rm(scratch, { recursive: true, force: true });
  });

  it('records what it applied, prunes what a later commit drops, and never touches anything else', async () => {
    const cluster = uniqueName('inv');
    await kube.core.createNamespacedConfigMap({
      namespace,
      body: { metadata: { name: 'not-ours' }, data: { x: '1' } },
    });
    const first = await reconcile(cluster, 'a'.repeat(40), [
      configMap(namespace, 'one'),
      configMap(namespace, 'two'),
      configMap(namespace, 'three'),
    ]);
    expect(first.status).toBe('applied');
    expect(await readInventory(client, cluster)).toMatchObject({
      revision: 'a'.repeat(40),
      objects: expect.arrayContaining([expect.objectContaining({ name: 'two' })]),
    });

    const second = await reconcile(cluster, 'b'.repeat(40), [
      configMap(namespace, 'one'),
      configMap(namespace, 'three'),
    ]);
    expect(second.status).toBe('applied');
    expect(countActions(second.changeSet)).toMatchObject({ deleted: 1, unchanged: 2 });
    expect(await names()).toEqual(['not-ours', 'one', 'three']);
    expect((await readInventory(client, cluster))?.objects.map((o) => o.name).sort()).toEqual(['one', 'three']);
  });

  it('prunes the old ConfigMap when configMapGenerator renames it on a content change', async () => {
    const cluster = uniqueName('gen');
    const tree = join(scratch, 'gen');
    await mkdir(join(tree, 'c'), { recursive: true });
    const render = async (content: string) => {
      await writeFile(
        join(tree, 'c', 'kustomization.yaml'),
        `namespace: ${namespace}\nconfigMapGenerator:\n  - name: settings\n    files: [app.properties]\n`,
      );
      await writeFile(join(tree, 'c', 'app.properties'), content);
      const result = await renderCluster(tree, 'c', { kustomize: KUBECTL_KUSTOMIZE, timeoutMs: 60_000 });
      if (!result.ok) throw new Error(JSON.stringify(result.problems));
      return [...result.objects];
    };
    const v1 = await render('level=info\n');
    const v2 = await render('level=debug\n');
    const [name1, name2] = [v1[0]!.manifest.metadata.name, v2[0]!.manifest.metadata.name];
    expect(name1).not.toBe(name2);
    expect((await reconcile(cluster, '1'.repeat(40), v1)).status).toBe('applied');
    // Moving from v1 to v2 prunes 1 of 1 objects: a rename is the one case where a full prune is expected.
    expect((await reconcile(cluster, '2'.repeat(40), v2, true)).status).toBe('applied');
    const present = await names();
    expect(present).toContain(name2);
    expect(present).not.toContain(name1);
  });

  it.each([
    ['not JSON', '[{"apiVersion": "v1",'],
    ['an entry without a name', JSON.stringify([{ apiVersion: 'v1', kind: 'ConfigMap', namespace: 'x' }])],
    ['an entry of the wrong shape', JSON.stringify([{ apiVersion: 'v1', kind: 'ConfigMap', name: 7 }])],
  ])(
    'applies and prunes nothing over an inventory holding %s, and says which ConfigMap to repair',
    async (_, objects) => {
      const cluster = uniqueName('unreadable');
      await reconcile(cluster, 'a'.repeat(40), [configMap(namespace, 'stays'), configMap(namespace, 'dropped')]);
      const record = { name: `plumbline-inventory-${cluster}`, namespace: 'plumbline-system' };
      await client.apply(
        { apiVersion: 'v1', kind: 'ConfigMap', metadata: record, data: { revision: 'a'.repeat(40), objects } },
        { dryRun: false, force: true },
      );
      const next = reconcile(cluster, 'b'.repeat(40), [configMap(namespace, 'stays', { a: '2' })]);
      await expect(next).rejects.toBeInstanceOf(InventoryUnreadableError);
      await expect(next).rejects.toThrow(`the inventory plumbline-system/plumbline-inventory-${cluster} is `);
      expect(await names()).toEqual(expect.arrayContaining(['dropped', 'stays']));
      expect((await kube.core.readNamespacedConfigMap({ name: 'stays', namespace })).data).toEqual({ a: '1' });
    },
  );

  it('refuses an empty render instead of deleting everything', async () => {
    const cluster = uniqueName('empty');
    await reconcile(cluster, 'a'.repeat(40), [configMap(namespace, 'keep-me')]);
    const outcome = await reconcile(cluster, 'b'.repeat(40), []);
    expect(outcome).toMatchObject({ status: 'failed', failure: { reason: 'empty-render', inventoried: 1 } });
    expect(await names()).toContain('keep-me');
  });

  it('refuses to prune more than half of the inventory unless told to', async () => {
    const cluster = uniqueName('share');
    const all = ['p1', 'p2', 'p3', 'p4'].map((n) => configMap(namespace, n));
    await reconcile(cluster, 'a'.repeat(40), all);
    const refused = await reconcile(cluster, 'b'.repeat(40), [all[0]!]);
    expect(refused).toMatchObject({
      status: 'failed',
      failure: { reason: 'prune-share', stale: 3, inventoried: 4, maxShare: 0.5 },
    });
    expect(await names()).toEqual(expect.arrayContaining(['p1', 'p2', 'p3', 'p4']));
    expect((await reconcile(cluster, 'b'.repeat(40), [all[0]!], true)).status).toBe('applied');
    expect(await names()).not.toContain('p2');
  });

  it('prunes many objects of one kind read with a single LIST, leaving objects it no longer manages', async () => {
    const cluster = uniqueName('bulk');
    const many = Array.from({ length: 12 }, (_, i) => configMap(namespace, `bulk-${i}`));
    await reconcile(cluster, 'a'.repeat(40), many);
    // Someone else took over bulk-11 entirely: it is no longer Plumbline's to delete.
    await kube.core.replaceNamespacedConfigMap({
      name: 'bulk-11',
      namespace,
      body: { metadata: { name: 'bulk-11', namespace, managedFields: [{}] }, data: { a: 'theirs' } },
    });
    const outcome = await reconcile(cluster, 'b'.repeat(40), many.slice(0, 2), true);
    expect(countActions(outcome.changeSet)).toMatchObject({ deleted: 9, skipped: 1 });
    expect((await names()).filter((n) => n.startsWith('bulk-')).sort()).toEqual(['bulk-0', 'bulk-1', 'bulk-11']);
  });

  it('remembers what a failed first commit wrote in its first stage, so the next commit can prune it', async () => {
    const cluster = uniqueName('firststage');
    const [role, fresh] = [uniqueName('role'), uniqueName('fresh')];
    const clusterRole: RenderedObject = {
      manifest: {
        apiVersion: 'rbac.authorization.k8s.io/v1',
        kind: 'ClusterRole',
        metadata: { name: role },
        rules: [],
      },
      source: undefined,
    };
    const freshNamespace: RenderedObject = {
      manifest: { apiVersion: 'v1', kind: 'Namespace', metadata: { name: fresh } },
      source: undefined,
    };
    const invalid: RenderedObject = {
      manifest: {
        apiVersion: 'v1',
        kind: 'Service',
        metadata: { name: 'bad', namespace: fresh },
        spec: { ports: [{ port: 99999 }] },
      },
      source: undefined,
    };
    const failed = await reconcile(cluster, 'a'.repeat(40), [clusterRole, freshNamespace, invalid]);
    expect(failed.status).toBe('failed');
    expect(await readInventory(client, cluster)).toMatchObject({
      revision: '',
      objects: expect.arrayContaining([expect.objectContaining({ name: role })]),
    });

    const next = await reconcile(cluster, 'b'.repeat(40), [configMap(namespace, 'after-failure')], true);
    expect(next.status).toBe('applied');
    expect(next.changeSet.changes).toEqual(
      expect.arrayContaining([expect.objectContaining({ object: `ClusterRole/${role}`, action: 'deleted' })]),
    );
    await kube.core.deleteNamespace({ name: fresh });
  });

  it('prunes a Namespace only when it carries the opt-in annotation', async () => {
    const cluster = uniqueName('nsprune');
    const [kept, optedIn] = [uniqueName('kept'), uniqueName('optin')];
    const ns = (name: string, annotations?: Record<string, string>): RenderedObject => ({
      manifest: { apiVersion: 'v1', kind: 'Namespace', metadata: { name, ...(annotations ? { annotations } : {}) } },
      source: undefined,
    });
    const anchor = configMap(namespace, 'anchor');
    await reconcile(cluster, 'a'.repeat(40), [anchor, ns(kept), ns(optedIn, { 'plumbline.dev/prune': 'enabled' })]);
    const outcome = await reconcile(cluster, 'b'.repeat(40), [anchor], true);
    expect(outcome.status).toBe('applied');
    const byObject = Object.fromEntries(outcome.changeSet.changes.map((c) => [c.object, c.action]));
    expect(byObject[`Namespace/${kept}`]).toBe('skipped');
    expect(byObject[`Namespace/${optedIn}`]).toBe('deleted');
    await expect(kube.core.readNamespace({ name: kept })).resolves.toBeDefined();
    await kube.core.deleteNamespace({ name: kept });
  });
});

describe('a reconcile of a commit that changes nothing', () => {
  it('sends no dry-run and no write for objects neither Git nor anyone else changed, and notices when someone did', async () => {
    const [namespace, cleanup] = await createTestNamespace(kube.core, 'noop');
    try {
      const calls = { dryRuns: 0, writes: 0 };
      const counting = {
        ...client,
        apply: (manifest: Parameters<typeof client.apply>[0], options: Parameters<typeof client.apply>[1]) => {
          if (options.dryRun) calls.dryRuns += 1;
          else calls.writes += 1;
          return client.apply(manifest, options);
        },
      };
      const objects = Array.from({ length: 20 }, (_, i) => configMap(namespace, `noop-${i}`, { i: String(i) }));
      const clusterName = uniqueName('noop');
      const reconcileSame = (revision: string, desired: RenderedObject[]) =>
        reconcileCluster({
          client: counting,
          clusterName,
          revision,
          objects: desired,
          prune: true,
          pruneGuards: { maxShare: 0.5, override: false },
          apply: { concurrency: 16, conflicts: 'take-ownership', establishTimeoutMs: 30_000 },
        });
      await reconcileSame('a'.repeat(40), objects);
      Object.assign(calls, { dryRuns: 0, writes: 0 });

      const noop = await reconcileSame('b'.repeat(40), objects);
      expect(countActions(noop.changeSet)).toMatchObject({ unchanged: 20 });
      expect(calls.dryRuns).toBe(0);
      expect(calls.writes).toBe(1); // the inventory's new revision, nothing else

      // The same commit again (a re-run, a resync's retry): the records read back equal what would be written.
      Object.assign(calls, { dryRuns: 0, writes: 0 });
      await reconcileSame('b'.repeat(40), objects);
      expect(calls).toEqual({ dryRuns: 0, writes: 0 });

      await applyAsManager(kube, 'kubectl-edit', {
        apiVersion: 'v1',
        kind: 'ConfigMap',
        metadata: { name: 'noop-7', namespace },
        data: { i: 'edited by hand' },
      });
      Object.assign(calls, { dryRuns: 0, writes: 0 });
      const corrected = await reconcileSame('c'.repeat(40), objects);
      expect(corrected.changeSet.changes.filter((c) => c.action !== 'unchanged')).toEqual([
        expect.objectContaining({
          object: `ConfigMap/${namespace}/noop-7`,
          action: 'configured',
          tookOwnershipFrom: ['kubectl-edit'],
        }),
      ]);
      expect(calls.dryRuns).toBeLessThanOrEqual(2);
      expect((await kube.core.readNamespacedConfigMap({ name: 'noop-7', namespace })).data).toEqual({ i: '7' });
    } finally {
      await cleanup();
    }
  });
});
