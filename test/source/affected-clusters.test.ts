import { describe, expect, it } from '@jest/globals';
import { parseClusterRegistry } from '../../src/clusters/cluster-registry.ts';
import { selectAffectedClusters } from '../../src/source/affected-clusters.ts';
import type { TreeReader } from '../../src/source/render-inputs.ts';

function memoryTree(files: Record<string, string>): TreeReader {
  return {
    readText: async (path) => files[path],
    isDirectory: async (path) => Object.keys(files).some((file) => file.startsWith(`${path}/`)),
  };
}

const registry = parseClusterRegistry(
  JSON.stringify({
    clusters: [
      { name: 'gen', repo: 'acme/gitops', path: 'clusters/gen', branch: 'main', kubeconfig: '/k' },
      { name: 'other', repo: 'acme/gitops', path: 'clusters/other', branch: 'main', kubeconfig: '/k' },
    ],
  }),
);

/** A commit whose only change is `changed`, over clusters both applied at `applied`. */
const select = (changed: string) =>
  selectAffectedClusters({
    clusters: registry.clusters,
    appliedSha: () => 'applied',
    targetSha: 'target',
    tree: memoryTree({
      'clusters/gen/kustomization.yaml': 'generators: [generators/settings.yaml]\ntransformers: [patch.yaml]\n',
      'clusters/gen/generators/settings.yaml':
        'apiVersion: builtin\nkind: ConfigMapGenerator\nmetadata: {name: settings}\nfiles: [settings.conf]\n',
      'clusters/gen/patch.yaml': 'apiVersion: builtin\nkind: PatchTransformer\nmetadata: {name: p}\npath: p.yaml\n',
      'clusters/gen/settings.conf': 'theme=dark\n',
      'clusters/gen/p.yaml': 'kind: ConfigMap\n',
      'clusters/other/kustomization.yaml': 'resources: [cm.yaml]\n',
      'clusters/other/cm.yaml': 'kind: ConfigMap\n',
    }),
    changedPaths: async () => [changed],
  });

describe('affected clusters', () => {
  it.each(['clusters/gen/settings.conf', 'clusters/gen/p.yaml'])(
    'a change to %s, read only through a generator or transformer config, affects its cluster',
    async (changed) => {
      const { affected, unaffected } = await select(changed);
      expect(affected.map((a) => [a.cluster.name, a.reason, a.changedInputs])).toEqual([
        ['gen', 'inputs-changed', [changed]],
      ]);
      expect(unaffected.map((c) => c.name)).toEqual(['other']);
    },
  );

  it('a change no render reads affects no cluster', async () => {
    const { affected, unaffected } = await select('clusters/gen/README.md');
    expect(affected).toEqual([]);
    // Both clusters were judged (and found unaffected), not dropped: an empty answer would pass the line above.
    expect(unaffected.map((c) => c.name)).toEqual(['gen', 'other']);
  });
});
