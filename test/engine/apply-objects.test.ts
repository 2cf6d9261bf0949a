import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { ApiextensionsV1Api } from '@kubernetes/client-node';
import { countActions } from '../../src/engine/change-set.ts';
import { type ClusterClient, createClusterClient } from '../../src/engine/cluster-client.ts';
import { customResourceDefinition } from '../../src/engine/custom-resource-definition.ts';
import type { Manifest, RenderedObject } from '../../src/engine/manifest.ts';
import { applyObjects } from '../helpers/apply-objects.ts';
import { testEnvironment, uniqueName } from '../helpers/environment.ts';
import { applyAsManager, createTestNamespace, kubeClients } from '../helpers/kube.ts';

const env = testEnvironment();
const kube = kubeClients(env.kubeconfig);
const client = createClusterClient(kube.config);
const options = { concurrency: 16, conflicts: 'take-ownership' as const, establishTimeoutMs: 60_000 };

const rendered = (manifest: Manifest, file = 'clusters/test/objects.yaml'): RenderedObject => ({
  manifest,
  source: { file, line: 1 },
});
const configMap = (namespace: string, name: string, data: Record<string, string>): RenderedObject =>
  rendered({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name, namespace }, data });

describe('applying objects with server-side apply against a real apiserver', () => {
  let namespace: string;
  let cleanup: () => Promise<void>;

  beforeAll(async () => {
    [namespace, cleanup] = await createTestNamespace(kube.core, 'apply');
  });
  afterAll(async () => {
    await cleanup();
  });

  it('creates, then writes nothing when nothing changed, then configures only what changed', async () => {
    const objects = Array.from({ length: 10 }, (_, i) => configMap(namespace, `cm-${i}`, { index: String(i) }));
    const first = await applyObjects(client, objects, options);
    expect(first.ok).toBe(true);
    expect(countActions(first.changeSet)).toMatchObject({ created: 10 });

    const before = await kube.core.readNamespacedConfigMap({ name: 'cm-3', namespace });
    const second = await applyObjects(client, objects, options);
    expect(countActions(second.changeSet)).toMatchObject({ unchanged: 10, created: 0, configured: 0 });
    const after = await kube.core.readNamespacedConfigMap({ name: 'cm-3', namespace });
    expect(after.metadata?.resourceVersion).toBe(before.metadata?.resourceVersion);

    const changed = objects.map((o, i) => (i === 3 ? configMap(namespace, 'cm-3', { index: 'three' }) : o));
    const third = await applyObjects(client, changed, options);
    expect(third.changeSet.changes.filter((c) => c.action !== 'unchanged')).toEqual([
      {
        object: `ConfigMap/${namespace}/cm-3`,
        action: 'configured',
        source: { file: 'clusters/test/objects.yaml', line: 1 },
        // What the dry-run says will change, for the check run.
        // The live value never: only the commit's (invariant 9).
        diff: [{ path: 'data.index', change: 'changed', after: '"three"' }],
      },
    ]);
    expect((await kube.core.readNamespacedConfigMap({ name: 'cm-3', namespace })).data).toEqual({ index: 'three' });
  });

  it('writes nothing when one object of a commit of 50 is rejected, and names it', async () => {
    const [ns, done] = await createTestNamespace(kube.core, 'reject');
    try {
      const objects = Array.from({ length: 49 }, (_, i) => configMap(ns, `ok-${i}`, { i: String(i) }));
      const bad = rendered(
        {
          apiVersion: 'v1',
          kind: 'Service',
          metadata: { name: 'bad', namespace: ns },
          spec: { ports: [{ port: 99999 }] },
        },
        'clusters/test/bad.yaml',
      );
      const result = await applyObjects(client, [...objects.slice(0, 25), bad, ...objects.slice(25)], options);
      expect(result.ok).toBe(false);
      const failed = result.changeSet.changes.filter((c) => c.action === 'failed');
      expect(failed).toEqual([
        {
          object: `Service/${ns}/bad`,
          action: 'failed',
          source: { file: 'clusters/test/bad.yaml', line: 1 },
          message: expect.stringMatching(/spec\.ports\[0\]\.port/),
        },
      ]);
      expect(countActions(result.changeSet).skipped).toBe(49);
      expect(
        (await kube.core.listNamespacedConfigMap({ namespace: ns })).items.filter((cm) =>
          cm.metadata?.name?.startsWith('ok-'),
        ),
      ).toEqual([]);
    } finally {
      await done();
    }
  });

  it('applies a Namespace, a CRD and a custom resource of it in one commit', async () => {
    const group = `${uniqueName('widgets')}.plumbline.dev`;
    const ns = uniqueName('fresh');
    const crd = rendered(
      customResourceDefinition({
        group,
        kind: 'Widget',
        plural: 'widgets',
        specSchema: { type: 'object', properties: { size: { type: 'integer' } } },
      }),
    );
    const widget = rendered({
      apiVersion: `${group}/v1`,
      kind: 'Widget',
      metadata: { name: 'w', namespace: ns },
      spec: { size: 2 },
    });
    const namespaceObject = rendered({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns } });
    try {
      const result = await applyObjects(client, [widget, crd, namespaceObject], options);
      expect(result.ok).toBe(true);
      expect(countActions(result.changeSet)).toMatchObject({ created: 3 });
      expect(await client.get(widget.manifest)).toMatchObject({ spec: { size: 2 } });
    } finally {
      await kube.config.makeApiClient(ApiextensionsV1Api).deleteCustomResourceDefinition({ name: `widgets.${group}` });
      await kube.core.deleteNamespace({ name: ns });
    }
  });

  it('sends the objects of a namespace the commit creates one dry-run each, after the Namespace, and no GET each', async () => {
    const fresh = uniqueName('fresh-ns');
    const requests: string[] = [];
    const counted: ClusterClient = {
      ...client,
      apply: (manifest, o) => {
        requests.push(`${o.dryRun ? 'dry-run' : 'apply'} ${manifest.kind}/${manifest.metadata.name}`);
        return client.apply(manifest, o);
      },
      get: (manifest) => {
        requests.push(`get ${manifest.kind}/${manifest.metadata.name}`);
        return client.get(manifest);
      },
    };
    const objects = [
      rendered({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: fresh } }),
      ...Array.from({ length: 20 }, (_, i) => configMap(fresh, `cm-${i}`, { index: String(i) })),
    ];
    try {
      const result = await applyObjects(counted, objects, options);
      expect(countActions(result.changeSet)).toMatchObject({ created: 21 });
      const of = (name: string) => requests.filter((r) => r.endsWith(` ConfigMap/${name}`));
      // Before: a dry-run answered 404 before the Namespace existed, a GET and a second dry-run after it.
      expect(of('cm-7')).toEqual(['dry-run ConfigMap/cm-7', 'apply ConfigMap/cm-7']);
    } finally {
      await kube.core.deleteNamespace({ name: fresh }).catch(() => undefined);
    }
  });

  it('sends manifests exactly as rendered: x-kubernetes-* schema fields survive', async () => {
    const group = `${uniqueName('raw')}.plumbline.dev`;
    const crd = rendered(customResourceDefinition({ group, kind: 'Thing', plural: 'things' }));
    try {
      expect((await applyObjects(client, [crd], options)).ok).toBe(true);
      const live = (await client.get(crd.manifest)) as {
        spec: { versions: { schema: { openAPIV3Schema: { properties: { spec: Record<string, unknown> } } } }[] };
      };
      expect(live.spec.versions[0]?.schema.openAPIV3Schema.properties.spec).toEqual({
        type: 'object',
        'x-kubernetes-preserve-unknown-fields': true,
      });
    } finally {
      await kube.config.makeApiClient(ApiextensionsV1Api).deleteCustomResourceDefinition({ name: `things.${group}` });
    }
  });

  it('takes ownership of fields another manager set, and says so', async () => {
    await applyAsManager(kube, 'kubectl-edit', {
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: 'shared', namespace },
      data: { level: 'debug' },
    });
    const result = await applyObjects(client, [configMap(namespace, 'shared', { level: 'info' })], options);
    expect(result.changeSet.changes).toEqual([
      expect.objectContaining({ action: 'configured', tookOwnershipFrom: ['kubectl-edit'] }),
    ]);
    expect((await kube.core.readNamespacedConfigMap({ name: 'shared', namespace })).data).toEqual({ level: 'info' });
  });

  it('adopts an identical object someone else created, so that it becomes Plumbline-managed', async () => {
    await kube.core.createNamespacedConfigMap({
      namespace,
      body: { metadata: { name: 'handmade' }, data: { same: 'content' } },
    });
    const result = await applyObjects(client, [configMap(namespace, 'handmade', { same: 'content' })], options);
    expect(result.changeSet.changes[0]?.action).toBe('configured');
    const live = await kube.core.readNamespacedConfigMap({ name: 'handmade', namespace });
    expect(live.metadata?.managedFields?.map((f) => f.manager)).toContain('plumbline');
    expect(
      (await applyObjects(client, [configMap(namespace, 'handmade', { same: 'content' })], options)).changeSet
        .changes[0]?.action,
    ).toBe('unchanged');
  });

  it('stops at a write the apiserver refuses after its dry-run passed, and says what was written', async () => {
    const { KubeError } = await import('../../src/engine/cluster-client.ts');
    const refusing = {
      ...client,
      apply: (manifest: Manifest, o: { dryRun: boolean; force: boolean }) =>
        !o.dryRun && manifest.metadata.name === 'refused'
          ? Promise.reject(new KubeError('rejected', `ConfigMap/${namespace}/refused: denied by a webhook`, 403))
          : client.apply(manifest, o),
    };
    const ns = rendered({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: namespace } });
    const result = await applyObjects(refusing, [ns, configMap(namespace, 'refused', { a: '1' })], options);
    expect(result.ok).toBe(false);
    expect(result.changeSet.changes.map((c) => [c.object, c.action])).toEqual([
      [`Namespace/${namespace}`, expect.stringMatching(/configured|unchanged/)],
      [`ConfigMap/${namespace}/refused`, 'failed'],
    ]);
  });

  it('fails on field conflicts when the policy says so', async () => {
    await applyAsManager(kube, 'someone-else', {
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: 'guarded', namespace },
      data: { level: 'debug' },
    });
    const result = await applyObjects(client, [configMap(namespace, 'guarded', { level: 'info' })], {
      ...options,
      conflicts: 'fail',
    });
    expect(result.ok).toBe(false);
    expect(result.changeSet.changes[0]?.message).toMatch(/conflict/i);
  });

  it('reports an immutable-field change with the object and the field', async () => {
    const immutable = (value: string) =>
      rendered({
        apiVersion: 'v1',
        kind: 'ConfigMap',
        metadata: { name: 'frozen', namespace },
        immutable: true,
        data: { v: value },
      });
    expect((await applyObjects(client, [immutable('1')], options)).ok).toBe(true);
    const result = await applyObjects(client, [immutable('2')], options);
    expect(result.ok).toBe(false);
    expect(result.changeSet.changes[0]).toMatchObject({
      object: `ConfigMap/${namespace}/frozen`,
      action: 'failed',
      message: expect.stringMatching(/ConfigMap\/.*frozen.*(data|immutable)/),
    });
  });

  it('applies a CRD of several hundred KB, as kube-prometheus ships them', async () => {
    const group = `${uniqueName('big')}.plumbline.dev`;
    const properties = Object.fromEntries(
      Array.from({ length: 400 }, (_, i) => [
        `field${i}`,
        { type: 'string', description: `${'A long generated description of this field. '.repeat(25)}${i}` },
      ]),
    );
    const crd = rendered(
      customResourceDefinition({
        group,
        kind: 'Monitor',
        plural: 'monitors',
        specSchema: { type: 'object', properties },
      }),
    );
    expect(JSON.stringify(crd.manifest).length).toBeGreaterThan(400_000);
    try {
      const result = await applyObjects(client, [crd], options);
      expect(result).toMatchObject({ ok: true, changeSet: { changes: [{ action: 'created' }] } });
      expect((await applyObjects(client, [crd], options)).changeSet.changes[0]?.action).toBe('unchanged');
    } finally {
      await kube.config.makeApiClient(ApiextensionsV1Api).deleteCustomResourceDefinition({ name: `monitors.${group}` });
    }
  });
});

describe('classifying apiserver errors', () => {
  it('retries expired credentials and missing RBAC instead of blaming the commit', async () => {
    const { classify } = await import('../../src/engine/cluster-client.ts');
    for (const code of [401, 403]) {
      const error = Object.assign(new Error(`HTTP ${code}`), { code, body: JSON.stringify({ message: 'forbidden' }) });
      expect(classify(error, { kind: 'ConfigMap', metadata: { name: 'x' } })).toMatchObject({
        kind: 'unavailable',
        retryable: true,
      });
    }
  });

  it('treats a discovery failure without an answer as an unreachable cluster, not a missing kind', async () => {
    const { classify } = await import('../../src/engine/cluster-client.ts');
    const error = new Error(
      'Failed to fetch resource metadata for v1/ConfigMap: request to https://127.0.0.1:1/api/v1 failed, reason: connect ECONNREFUSED 127.0.0.1:1',
    );
    expect(classify(error, { kind: 'ConfigMap', metadata: { name: 'x' } })).toMatchObject({
      kind: 'unavailable',
      retryable: true,
    });
    const notServed = Object.assign(new Error('Failed to fetch resource metadata for x.dev/v1/Thing: HTTP 404'), {
      code: 404,
    });
    expect(classify(notServed, { kind: 'Thing', metadata: { name: 'x' } })).toMatchObject({ kind: 'missing-kind' });
  });

  it('treats a schema mismatch reported as a 500 by server-side apply as the object being wrong', async () => {
    const { classify } = await import('../../src/engine/cluster-client.ts');
    const error = Object.assign(new Error('HTTP 500'), {
      code: 500,
      body: JSON.stringify({
        message:
          'failed to create typed patch object (n/x; example.com/v1, Kind=Thing): .spec: field not declared in schema',
      }),
    });
    expect(classify(error, { kind: 'Thing', metadata: { name: 'x', namespace: 'n' } })).toMatchObject({
      kind: 'rejected',
      retryable: false,
    });
    expect(
      classify(Object.assign(new Error('connect ECONNREFUSED'), {}), { kind: 'Thing', metadata: { name: 'x' } }),
    ).toMatchObject({ kind: 'unavailable', retryable: true });
  });
});
