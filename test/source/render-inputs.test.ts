import { describe, expect, it } from '@jest/globals';
import {
  collectRenderInputs,
  isAffectedBy,
  kustomizationReferences,
  type TreeReader,
} from '../../src/source/render-inputs.ts';

function memoryTree(files: Record<string, string>): TreeReader {
  return {
    readText: async (path) => files[path],
    isDirectory: async (path) => Object.keys(files).some((file) => file.startsWith(`${path}/`)),
  };
}

describe('render inputs', () => {
  it('reads every kind of local reference a kustomization can make', () => {
    const refs = kustomizationReferences({
      resources: ['deploy.yaml', '../base', 'https://github.com/acme/remote//x?ref=v1', 'github.com/acme/y'],
      components: ['../components/labels'],
      patches: [{ path: 'patch.yaml' }, { patch: 'inline: true' }],
      patchesStrategicMerge: ['psm.yaml', 'kind: Deployment\nmetadata: {name: inline}\n'],
      patchesJson6902: [{ path: 'json-patch.yaml' }],
      configMapGenerator: [{ files: ['app.conf', 'key=other.conf'], envs: ['vars.env'] }],
      secretGenerator: [{ env: 'secret.env' }],
      replacements: [{ path: 'replacement.yaml' }],
      crds: ['crd.yaml'],
      helmCharts: [{ valuesFile: 'values.yaml' }],
    });
    expect(refs.entries).toEqual(['deploy.yaml', '../base', '../components/labels']);
    expect(refs.files.sort()).toEqual(
      [
        'app.conf',
        'crd.yaml',
        'json-patch.yaml',
        'other.conf',
        'patch.yaml',
        'psm.yaml',
        'replacement.yaml',
        'secret.env',
        'values.yaml',
        'vars.env',
      ].sort(),
    );
  });

  it('never follows a reference out of the repository', async () => {
    const tree = memoryTree({
      'clusters/a/kustomization.yaml': 'resources: [../../../../etc/passwd, ok.yaml]\n',
      'clusters/a/ok.yaml': '',
    });
    const inputs = await collectRenderInputs(tree, 'clusters/a');
    expect([...inputs.files].sort()).toEqual(['clusters/a/kustomization.yaml', 'clusters/a/ok.yaml']);
    expect(inputs.forbidden).toEqual([
      { file: 'clusters/a/kustomization.yaml', reference: '../../../../etc/passwd', reason: 'outside-repository' },
    ]);
  });

  it('treats a folder whose kustomization does not parse as a whole, so the error is rendered and reported', async () => {
    const tree = memoryTree({ 'clusters/a/kustomization.yaml': 'resources: [unclosed\n' });
    const inputs = await collectRenderInputs(tree, 'clusters/a');
    expect(inputs.subtrees).toEqual(['clusters/a']);
    expect(isAffectedBy(inputs, ['clusters/a/anything.yaml'])).toBe(true);
  });

  it('survives reference cycles', async () => {
    const tree = memoryTree({
      'a/kustomization.yaml': 'resources: [../b]\n',
      'b/kustomization.yaml': 'resources: [../a]\n',
    });
    const inputs = await collectRenderInputs(tree, 'a');
    expect([...inputs.files].sort()).toEqual(['a/kustomization.yaml', 'b/kustomization.yaml']);
  });

  it('matches a subtree by path segment, not by string prefix', () => {
    const inputs = {
      files: new Set<string>(),
      resources: new Set<string>(),
      subtrees: ['clusters/dev'],
      forbidden: [],
    };
    expect(isAffectedBy(inputs, ['clusters/dev/x.yaml'])).toBe(true);
    expect(isAffectedBy(inputs, ['clusters/dev-2/x.yaml'])).toBe(false);
  });
});
