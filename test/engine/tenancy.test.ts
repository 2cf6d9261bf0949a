import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from '@jest/globals';
import type { TenancyLimits } from '../../src/clusters/cluster-registry.ts';
import type { Manifest, RenderedObject } from '../../src/engine/manifest.ts';
import { parseManifests } from '../../src/engine/parse-manifests.ts';
import { checkTenancy, readScopes } from '../../src/engine/tenancy.ts';
import { packageRoot } from '../../src/support/package-root.ts';

const FIXTURES = join(packageRoot(), 'test', 'fixtures', 'tenancy');

async function fixture(name: string): Promise<RenderedObject[]> {
  const parsed = parseManifests(await readFile(join(FIXTURES, name), 'utf8'), `stacks/${name}`);
  expect(parsed.problems).toEqual([]);
  return parsed.objects;
}

/** A CRD of the same commit: how the scope of a kind the cluster does not serve yet is known. */
const crd = (kind: string, scope: 'Cluster' | 'Namespaced'): Manifest => ({
  apiVersion: 'apiextensions.k8s.io/v1',
  kind: 'CustomResourceDefinition',
  metadata: { name: `${kind.toLowerCase()}s.example.com` },
  spec: { group: 'example.com', scope, names: { kind } },
});

const LIMITS: TenancyLimits = {
  namespaces: ['podinfo', 'observability'],
  clusterScoped: ['Namespace', 'ClusterRole'],
  deniedKinds: ['ValidatingWebhookConfiguration'],
  serviceAccount: undefined,
};
const OPEN: TenancyLimits = {
  namespaces: undefined,
  clusterScoped: undefined,
  deniedKinds: [],
  serviceAccount: undefined,
};

describe('tenancy limits of a registry entry', () => {
  it('names the file, the line and the limit of every object outside them', async () => {
    const objects = await fixture('objects.yaml');
    // No discovery here: built-in kinds, and the CRDs a commit brings, are enough to know the scopes.
    const scopes = await readScopes(
      {},
      objects.map((o) => o.manifest),
      [crd('Widget', 'Cluster'), crd('Gadget', 'Namespaced')],
    );
    const problems = checkTenancy(objects, LIMITS, 'gcp-production', scopes);
    expect(problems.map((p) => [p.object, p.source?.line, p.reason])).toEqual([
      [
        'Deployment/kube-system/web',
        9,
        'namespace kube-system is outside the namespaces of the registry entry of cluster gcp-production (podinfo, observability)',
      ],
      [
        'ConfigMap/no-namespace',
        16,
        'namespace default is outside the namespaces of the registry entry of cluster gcp-production (podinfo, observability)',
      ],
      [
        'ClusterRoleBinding/podinfo/everyone-admin',
        28,
        'cluster-scoped kind ClusterRoleBinding is outside the clusterScoped kinds of the registry entry of cluster gcp-production (Namespace, ClusterRole)',
      ],
      [
        'ValidatingWebhookConfiguration/intercept',
        36,
        'kind ValidatingWebhookConfiguration is in deniedKinds of the registry entry of cluster gcp-production: never written',
      ],
      [
        'Namespace/kube-system',
        42,
        'namespace kube-system is outside the namespaces of the registry entry of cluster gcp-production (podinfo, observability)',
      ],
      [
        'Widget/cluster-widget',
        54,
        'cluster-scoped kind Widget is outside the clusterScoped kinds of the registry entry of cluster gcp-production (Namespace, ClusterRole)',
      ],
      [
        'Unknown/guessed',
        65,
        'cluster-scoped kind Unknown is outside the clusterScoped kinds of the registry entry of cluster gcp-production (Namespace, ClusterRole)',
      ],
    ]);
    for (const problem of problems) {
      expect(problem.source?.file).toBe('stacks/objects.yaml');
      expect(problem.message).toBe(`${problem.object}: ${problem.reason}`);
    }
  });

  it('lets everything through when the entry sets no limits', async () => {
    const objects = await fixture('objects.yaml');
    const scopes = await readScopes(
      {},
      objects.map((o) => o.manifest),
      [crd('Widget', 'Cluster')],
    );
    expect(checkTenancy(objects, OPEN, 'gcp-production', scopes)).toEqual([]);
    expect(checkTenancy(objects, undefined, 'gcp-production', scopes)).toEqual([]);
  });

  it("never lets a repository write Plumbline's records, nor anything else in plumbline-system", async () => {
    const objects = await fixture('records.yaml');
    const scopes = await readScopes(
      {},
      objects.map((o) => o.manifest),
    );
    for (const limits of [
      undefined,
      OPEN,
      { ...OPEN, namespaces: ['plumbline-system'], clusterScoped: ['Namespace'] },
    ]) {
      expect(checkTenancy(objects, limits, 'gcp-production', scopes).map((p) => [p.object, p.reason])).toEqual([
        [
          'ConfigMap/plumbline-system/plumbline-inventory-gcp-production',
          "plumbline-system holds Plumbline's own records: a repository may not write there",
        ],
        [
          'ResourceQuota/plumbline-system/no-more-configmaps',
          "plumbline-system holds Plumbline's own records: a repository may not write there",
        ],
        [
          'Namespace/plumbline-system',
          "plumbline-system holds Plumbline's own records: a repository may not write there",
        ],
      ]);
    }
  });

  it('takes the scope from discovery over the guess, so a namespace on a cluster-scoped kind changes nothing', async () => {
    const binding: RenderedObject = {
      manifest: { apiVersion: 'example.com/v1', kind: 'Grant', metadata: { name: 'g', namespace: 'podinfo' } },
      source: { file: 'apps/grant.yaml', line: 1 },
    };
    const discovery = { scopeOf: async () => 'cluster' as const };
    const scopes = await readScopes(discovery, [binding.manifest]);
    expect(checkTenancy([binding], LIMITS, 'c', scopes).map((p) => p.reason)).toEqual([
      'cluster-scoped kind Grant is outside the clusterScoped kinds of the registry entry of cluster c (Namespace, ClusterRole)',
    ]);
  });
});
