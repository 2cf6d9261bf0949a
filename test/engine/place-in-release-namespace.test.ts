import { describe, expect, it } from '@jest/globals';
import type { RenderedObject } from '../../src/engine/manifest.ts';
import { placeInReleaseNamespace, type ScopeOfKind } from '../../src/engine/place-in-release-namespace.ts';

const scopes: Record<string, 'namespaced' | 'cluster'> = {
  'v1|ConfigMap': 'namespaced',
  'v1|Namespace': 'cluster',
  'rbac.authorization.k8s.io/v1|ClusterRole': 'cluster',
  'example.com/v1|Widget': 'namespaced',
};
const scopeOf: ScopeOfKind = (apiVersion, kind) => scopes[`${apiVersion}|${kind}`];
const object = (apiVersion: string, kind: string, name: string, namespace?: string): RenderedObject => ({
  manifest: { apiVersion, kind, metadata: namespace === undefined ? { name } : { name, namespace } },
  source: { file: 'charts/app/templates/x.yaml' },
});
const app = { file: 'clusters/a/plumbline.yaml', line: 4 };

describe('placing a chart in its release namespace, as helm install does', () => {
  it('puts namespaced objects without a namespace in the release namespace and keeps the others', () => {
    const { objects } = placeInReleaseNamespace(
      [
        object('v1', 'ConfigMap', 'a'),
        object('v1', 'ConfigMap', 'b', 'elsewhere'),
        object('example.com/v1', 'Widget', 'w'),
      ],
      scopeOf,
      'podinfo',
      app,
    );
    expect(objects.map((o) => o.manifest.metadata.namespace)).toEqual(['podinfo', 'elsewhere', 'podinfo']);
  });

  it('sends cluster-scoped objects that carry a namespace as cluster-scoped', () => {
    const { objects } = placeInReleaseNamespace(
      [object('rbac.authorization.k8s.io/v1', 'ClusterRole', 'reader', 'podinfo')],
      scopeOf,
      'podinfo',
      app,
    );
    expect(objects[0]?.manifest.metadata).toEqual({ name: 'reader' });
  });

  it('leaves objects of a kind nobody knows as rendered', () => {
    const unknown = object('unknown.example/v1', 'Gadget', 'g');
    expect(placeInReleaseNamespace([unknown], scopeOf, 'podinfo', app).objects).toEqual([unknown]);
  });

  it('adds the release namespace when something lands there and the chart does not define it', () => {
    expect(placeInReleaseNamespace([object('v1', 'ConfigMap', 'a')], scopeOf, 'podinfo', app).releaseNamespace).toEqual(
      {
        manifest: { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'podinfo' } },
        source: app,
      },
    );
    const defines = [object('v1', 'Namespace', 'podinfo'), object('v1', 'ConfigMap', 'a')];
    expect(placeInReleaseNamespace(defines, scopeOf, 'podinfo', app).releaseNamespace).toBeUndefined();
    const elsewhere = [object('v1', 'ConfigMap', 'a', 'other')];
    expect(placeInReleaseNamespace(elsewhere, scopeOf, 'podinfo', app).releaseNamespace).toBeUndefined();
  });
});
