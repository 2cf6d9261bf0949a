import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { describe, expect, it } from '@jest/globals';
import { collectRenderInputs, isAffectedBy, type TreeReader } from '../../src/source/render-inputs.ts';
import { fsTreeReader } from '../../src/source/tree-reader.ts';

function memoryTree(files: Record<string, string>): TreeReader {
  return {
    readText: async (path) => files[path],
    isDirectory: async (path) => Object.keys(files).some((file) => file.startsWith(`${path}/`)),
  };
}

describe('render inputs', () => {
  it('reads every kind of local reference a kustomization can make', async () => {
    const local = [
      'c/deploy.yaml',
      'c/patch.yaml',
      'c/psm.yaml',
      'c/json-patch.yaml',
      'c/app.conf',
      'c/other.conf',
      'c/vars.env',
      'c/secret.env',
      'c/replacement.yaml',
      'c/crd.yaml',
      'c/values.yaml',
      'c/schema.json',
      'c/config.yaml',
    ];
    const tree = memoryTree({
      ...Object.fromEntries(local.map((path) => [path, ''])),
      'base/kustomization.yaml': 'resources: [base.yaml]\n',
      'base/base.yaml': '',
      'components/labels/kustomization.yaml': 'kind: Component\n',
      'c/kustomization.yaml': [
        'resources: [deploy.yaml, ../base]',
        'components: [../components/labels]',
        'patches: [{path: patch.yaml}, {patch: "inline: true"}]',
        'patchesStrategicMerge: [psm.yaml, "kind: Deployment\\nmetadata: {name: inline}\\n"]',
        'patchesJson6902: [{path: json-patch.yaml}]',
        'configMapGenerator: [{name: a, files: [app.conf, key=other.conf], envs: [vars.env]}]',
        'secretGenerator: [{name: b, env: secret.env}]',
        'replacements: [{path: replacement.yaml}]',
        'crds: [crd.yaml]',
        'configurations: [config.yaml]',
        'openapi: {path: schema.json}',
        'helmCharts: [{name: x, valuesFile: values.yaml}]',
        '',
      ].join('\n'),
    });
    const inputs = await collectRenderInputs(tree, 'c');
    expect(inputs.forbidden).toEqual([]);
    expect([...inputs.files].sort()).toEqual(
      [
        ...local,
        'c/kustomization.yaml',
        'base/kustomization.yaml',
        'base/base.yaml',
        'components/labels/kustomization.yaml',
      ].sort(),
    );
    expect([...inputs.resources].sort()).toEqual(['base/base.yaml', 'c/deploy.yaml']);
    // Generator data is read, not parsed: it is not checked as YAML.
    expect(['c/app.conf', 'c/other.conf', 'c/vars.env', 'c/secret.env'].filter((f) => inputs.parsed.has(f))).toEqual(
      [],
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
      {
        file: 'clusters/a/kustomization.yaml',
        line: 1,
        reference: '../../../../etc/passwd',
        reason: 'outside-repository',
      },
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
      parsed: new Set<string>(),
      folders: new Set<string>(),
      subtrees: ['clusters/dev'],
      forbidden: [],
    };
    expect(isAffectedBy(inputs, ['clusters/dev/x.yaml'])).toBe(true);
    expect(isAffectedBy(inputs, ['clusters/dev-2/x.yaml'])).toBe(false);
  });
});

describe('render inputs: generator and transformer configs', () => {
  const configMapGenerator = (files: string) =>
    `apiVersion: builtin\nkind: ConfigMapGenerator\nmetadata: {name: gen}\nfiles: [${files}]\n`;

  it('refuses a URL in an inline generator config, naming the kustomization and the line', async () => {
    const tree = memoryTree({
      'c/kustomization.yaml': `resources: [cm.yaml]\ngenerators:\n  - |-\n    apiVersion: builtin\n    kind: ConfigMapGenerator\n    metadata: {name: leak}\n    files: [creds=http://169.254.169.254/latest/meta-data]\n`,
      'c/cm.yaml': '',
    });
    const inputs = await collectRenderInputs(tree, 'c');
    expect(inputs.forbidden).toEqual([
      {
        file: 'c/kustomization.yaml',
        line: 7,
        reference: 'http://169.254.169.254/latest/meta-data',
        reason: 'remote-file',
      },
    ]);
  });

  it.each([
    ['a flow-list-looking name', '"[gen.yaml]"', '[gen.yaml]'],
    ['a map-looking name without a kind', '"{a: gen.yaml}"', '{a: gen.yaml}'],
  ])('follows %s the way kustomize does — as a file — and checks it', async (_what, entry, file) => {
    // kustomize takes an entry as inline only when it parses as resources (maps with a kind).
    const tree = memoryTree({
      'c/kustomization.yaml': `generators:\n  - ${entry}\n`,
      [`c/${file}`]: configMapGenerator('creds=http://127.0.0.1:9/secret'),
    });
    const inputs = await collectRenderInputs(tree, 'c');
    expect(inputs.files.has(`c/${file}`)).toBe(true);
    expect(inputs.forbidden.map((f) => [f.file, f.reason])).toEqual([[`c/${file}`, 'remote-file']]);
  });

  it('follows a strategic-merge patch entry that is not a resource as a file, so it is checked and tracked', async () => {
    const tree = memoryTree({
      'c/kustomization.yaml': 'resources: [cm.yaml]\npatchesStrategicMerge:\n  - "[p.yaml]"\n',
      'c/cm.yaml': 'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n',
      'c/[p.yaml]': 'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\ndata: {x: "1"}\n',
    });
    const inputs = await collectRenderInputs(tree, 'c');
    expect(inputs.forbidden).toEqual([]);
    expect(isAffectedBy(inputs, ['c/[p.yaml]'])).toBe(true);
  });

  it('refuses `github.com:org/repo` as a remote base', async () => {
    const tree = memoryTree({ 'c/kustomization.yaml': 'resources: ["github.com:org/repo"]\n' });
    const inputs = await collectRenderInputs(tree, 'c');
    expect(inputs.forbidden.map((f) => f.reason)).toEqual(['remote']);
  });

  it('follows a generator config file to the files it reads, relative to the kustomization that lists it', async () => {
    const tree = memoryTree({
      'c/kustomization.yaml': 'generators: [gen/cm.yaml]\n',
      'c/gen/cm.yaml': configMapGenerator('app.conf, key=other.conf'),
      'c/app.conf': 'a',
      'c/other.conf': 'b',
    });
    const inputs = await collectRenderInputs(tree, 'c');
    expect(inputs.forbidden).toEqual([]);
    expect([...inputs.files].sort()).toEqual(['c/app.conf', 'c/gen/cm.yaml', 'c/kustomization.yaml', 'c/other.conf']);
    expect(isAffectedBy(inputs, ['c/other.conf'])).toBe(true);
    // The config is YAML that kustomize parses; the generator's files are data it only reads.
    expect([...inputs.parsed].sort()).toEqual(['c/gen/cm.yaml', 'c/kustomization.yaml']);
  });

  it('follows every builtin plugin field that names a file: patches, replacements, helm values, env files', async () => {
    const tree = memoryTree({
      'c/kustomization.yaml': 'transformers: [t.yaml, ../shared/transformers]\ngenerators: [g.yaml]\n',
      'c/t.yaml': [
        'apiVersion: builtin\nkind: PatchTransformer\nmetadata: {name: p}\npath: patch.txt\ntarget: {kind: ConfigMap}\n',
        'apiVersion: builtin\nkind: PatchStrategicMergeTransformer\nmetadata: {name: psm}\npaths: [psm-1.yaml, psm-2.yaml]\n',
        'apiVersion: builtin\nkind: PatchJson6902Transformer\nmetadata: {name: j}\npath: ops.json\ntarget: {kind: ConfigMap, name: x}\n',
        'apiVersion: builtin\nkind: ReplacementTransformer\nmetadata: {name: r}\nreplacements: [{path: replacement.yaml}, {source: {kind: ConfigMap}, targets: []}]\n',
      ].join('---\n'),
      'c/g.yaml': [
        'apiVersion: builtin\nkind: SecretGenerator\nmetadata: {name: s}\nenvs: [s.env]\nenv: legacy.env\n',
        'apiVersion: builtin\nkind: HelmChartInflationGenerator\nmetadata: {name: h}\nvaluesFile: values.yaml\nadditionalValuesFiles: [more-values.yaml]\n',
      ].join('---\n'),
      'shared/transformers/kustomization.yaml': 'resources: [labels.yaml]\n',
      'shared/transformers/labels.yaml':
        'apiVersion: builtin\nkind: PatchTransformer\nmetadata: {name: l}\npath: from-folder.yaml\n',
      ...Object.fromEntries(
        [
          'patch.txt',
          'psm-1.yaml',
          'psm-2.yaml',
          'ops.json',
          'replacement.yaml',
          's.env',
          'legacy.env',
          'values.yaml',
          'more-values.yaml',
          'from-folder.yaml',
        ].map((name) => [`c/${name}`, 'x: y\n']),
      ),
    });
    const inputs = await collectRenderInputs(tree, 'c');
    expect(inputs.forbidden).toEqual([]);
    expect([...inputs.parsed].sort()).toEqual(
      [
        'c/kustomization.yaml',
        'c/t.yaml',
        'c/g.yaml',
        'c/patch.txt',
        'c/psm-1.yaml',
        'c/psm-2.yaml',
        'c/ops.json',
        'c/replacement.yaml',
        'c/values.yaml',
        'c/more-values.yaml',
        'shared/transformers/kustomization.yaml',
        'shared/transformers/labels.yaml',
        // A config reached through a folder still reads its files from the kustomization that lists the folder.
        'c/from-folder.yaml',
      ].sort(),
    );
    expect(inputs.files.has('c/s.env') && inputs.files.has('c/legacy.env')).toBe(true);
  });

  it.each([
    ['a URL', 'path: https://example.com/patch.yaml', 'remote-file'],
    ['a git reference', 'path: git::https://example.com/r//patch.yaml', 'remote-file'],
    ['an absolute path', 'path: /etc/passwd', 'outside-repository'],
    ['a path out of the repository', 'path: ../../../etc/passwd', 'outside-repository'],
    ['a missing file', 'path: nowhere.yaml', 'not-in-repository'],
    ['a path that is not a string', 'path: !!binary L2V0Yy9wYXNzd2Q=', 'not-a-path'],
    [
      'a field spelled in capitals (kustomize matches keys case-insensitively)',
      'PATH: https://x.example/p',
      'remote-file',
    ],
  ])('refuses %s in a transformer config file, naming that file and the line', async (_what, field, reason) => {
    const tree = memoryTree({
      'c/kustomization.yaml': 'transformers: [t.yaml]\n',
      'c/t.yaml': `apiVersion: builtin\nkind: PatchTransformer\nmetadata: {name: p}\n${field}\n`,
    });
    const inputs = await collectRenderInputs(tree, 'c');
    expect(inputs.forbidden).toEqual([{ file: 'c/t.yaml', line: 4, reference: expect.any(String), reason }]);
  });

  it('reads kustomization fields case-insensitively, as kustomize does', async () => {
    const tree = memoryTree({
      'c/kustomization.yaml':
        'Resources: [https://example.com/x.yaml]\nconfigMapGenerator:\n  - name: a\n    FILES: [http://127.0.0.1:9/x]\n',
    });
    const inputs = await collectRenderInputs(tree, 'c');
    expect(inputs.forbidden.map((f) => [f.reference, f.reason, f.line])).toEqual([
      ['https://example.com/x.yaml', 'remote', 1],
      ['http://127.0.0.1:9/x', 'remote-file', 4],
    ]);
  });

  it('refuses a generator folder that could rewrite its configs after they were checked', async () => {
    const tree = memoryTree({
      'c/kustomization.yaml': 'generators: [gen]\n',
      'c/gen/kustomization.yaml':
        'resources: [cm.yaml]\npatches:\n  - target: {kind: ConfigMapGenerator}\n    patch: \'[{"op": "replace", "path": "/files/0", "value": "http://x"}]\'\n',
      'c/gen/cm.yaml': configMapGenerator('a.txt'),
      'c/a.txt': 'a',
    });
    const inputs = await collectRenderInputs(tree, 'c');
    expect(inputs.forbidden).toEqual([
      { file: 'c/gen/kustomization.yaml', line: 2, reference: 'patches', reason: 'rewrites-plugin-configs' },
    ]);
  });

  it('refuses an inline config it cannot read (here an alias bomb), naming the kustomization and the line', async () => {
    const bomb = ['a: &a [x, x, x, x, x, x, x, x, x, x]'];
    for (let i = 1; i < 5; i += 1)
      bomb.push(
        `${'abcde'[i]}: &${'abcde'[i]} [${Array(10)
          .fill(`*${'abcde'[i - 1]}`)
          .join(', ')}]`,
      );
    const tree = memoryTree({
      'c/kustomization.yaml': `resources: []\ngenerators:\n  - |-\n    apiVersion: builtin\n    kind: ConfigMapGenerator\n${bomb.map((l) => `    ${l}`).join('\n')}\n`,
    });
    const inputs = await collectRenderInputs(tree, 'c');
    expect(inputs.forbidden).toEqual([
      { file: 'c/kustomization.yaml', line: 4, reference: expect.stringMatching(/alias/i), reason: 'unreadable' },
    ]);
  });

  it('refuses a kustomization too large to check on the event loop, without parsing it', async () => {
    const tree = memoryTree({ 'c/kustomization.yaml': `resources: []\n# ${'x'.repeat(300 * 1024)}\n` });
    const inputs = await collectRenderInputs(tree, 'c');
    expect(inputs.forbidden).toEqual([
      { file: 'c/kustomization.yaml', reference: 'larger than 256 KiB, too large to check', reason: 'unreadable' },
    ]);
  });

  it('refuses a kustomization it cannot read, rather than letting kustomize read it unchecked', async () => {
    const tree = memoryTree({ 'c/kustomization.yaml': 'resources: [unclosed\n' });
    const inputs = await collectRenderInputs(tree, 'c');
    expect(inputs.forbidden).toMatchObject([{ file: 'c/kustomization.yaml', reason: 'unreadable' }]);
  });
});

describe('render inputs: symlinks inside the repository', () => {
  it('count the file a link points at, and the link itself, as inputs', async () => {
    const root = await mkdtemp(join(tmpdir(), 'plumbline-links-'));
    const files: Record<string, string> = {
      'c/kustomization.yaml': 'resources: [base]\nconfigMapGenerator: [{name: s, files: [settings.conf]}]\n',
      'shared/settings.conf': 'theme=dark\n',
      'shared/base/kustomization.yaml': 'resources: [cm.yaml]\n',
      'shared/base/cm.yaml': 'kind: ConfigMap\n',
    };
    for (const [path, content] of Object.entries(files)) {
      await mkdir(dirname(join(root, path)), { recursive: true });
      await writeFile(join(root, path), content);
    }
    await symlink('../shared/settings.conf', join(root, 'c/settings.conf'));
    await symlink('../shared/base', join(root, 'c/base'));
    const inputs = await collectRenderInputs(fsTreeReader(root), 'c');
    expect(inputs.forbidden).toEqual([]);
    // git reports a change of the target under its own path, and a re-pointed link under the link's.
    for (const changed of ['shared/settings.conf', 'shared/base/cm.yaml', 'c/settings.conf', 'c/base']) {
      expect([changed, isAffectedBy(inputs, [changed])]).toEqual([changed, true]);
    }
    expect(isAffectedBy(inputs, ['shared/other.conf'])).toBe(false);
    await rm(root, { recursive: true, force: true });
  });
});

describe('render inputs: helm charts (helmCharts, helmGlobals, the legacy field, generator configs)', () => {
  it('counts the chart folder kustomize reads for each entry, vendored or not yet, so a chart change re-renders', async () => {
    const tree = memoryTree({
      'c/kustomization.yaml': [
        'helmCharts:',
        '  - {name: remote, repo: oci://registry.example/charts, version: 1.2.3}',
        '  - {name: local}',
        '',
      ].join('\n'),
      'c/charts/remote-1.2.3/remote/Chart.yaml': 'name: remote\n',
      'c/charts/local/Chart.yaml': 'name: local\n',
    });
    const inputs = await collectRenderInputs(tree, 'c');
    expect(inputs.forbidden).toEqual([]);
    // kustomize 5.5 reads `<chartHome>/<name>-<version>/<name>` with a repo and a version, else `<chartHome>/<name>`.
    expect(isAffectedBy(inputs, ['c/charts/remote-1.2.3/remote/templates/cm.yaml'])).toBe(true);
    expect(isAffectedBy(inputs, ['c/charts/local/values.yaml'])).toBe(true);
    expect(isAffectedBy(inputs, ['c/charts/other/values.yaml'])).toBe(false);
  });

  it('counts a chart folder that is not there yet, under a chartHome that is not there yet: vendoring it changes the render', async () => {
    const tree = memoryTree({
      'c/kustomization.yaml':
        'helmGlobals: {chartHome: vendor/charts}\nhelmCharts: [{name: app, repo: https://charts.example, version: 0.1.0}]\n',
    });
    const inputs = await collectRenderInputs(tree, 'c');
    expect(inputs.forbidden).toEqual([]);
    expect(isAffectedBy(inputs, ['c/vendor/charts/app-0.1.0/app/Chart.yaml'])).toBe(true);
  });

  it('follows the legacy helmChartInflationGenerator field and HelmChartInflationGenerator configs to their charts', async () => {
    const tree = memoryTree({
      'c/kustomization.yaml': [
        'helmChartInflationGenerator:',
        '  - {chartName: old, chartVersion: 2.0.0, chartRepoUrl: https://charts.example, chartHome: legacy}',
        'generators: [helm.yaml]',
        '',
      ].join('\n'),
      'c/helm.yaml':
        'apiVersion: builtin\nkind: HelmChartInflationGenerator\nmetadata: {name: h}\nname: gen\nversion: 3.0.0\nrepo: oci://r.example/c\nchartHome: generated\n',
    });
    const inputs = await collectRenderInputs(tree, 'c');
    expect(inputs.forbidden).toEqual([]);
    expect(isAffectedBy(inputs, ['c/legacy/old-2.0.0/old/Chart.yaml'])).toBe(true);
    expect(isAffectedBy(inputs, ['c/generated/gen-3.0.0/gen/Chart.yaml'])).toBe(true);
  });

  it('refuses a remote values file (kustomize would fetch it), values files and charts out of the repository, with lines', async () => {
    const tree = memoryTree({
      'c/kustomization.yaml': [
        'helmCharts:',
        '  - name: a',
        '    valuesFile: https://attacker.example/values.yaml',
        '    additionalValuesFiles:',
        '      - ../../outside.yaml',
        '      - http://169.254.169.254/latest/meta-data',
        '  - name: ../../../../etc',
        '',
      ].join('\n'),
    });
    const inputs = await collectRenderInputs(tree, 'c');
    expect(inputs.forbidden.map((f) => [f.file, f.reference, f.reason, f.line])).toEqual([
      ['c/kustomization.yaml', 'https://attacker.example/values.yaml', 'remote-file', 3],
      ['c/kustomization.yaml', '../../outside.yaml', 'outside-repository', 5],
      ['c/kustomization.yaml', 'http://169.254.169.254/latest/meta-data', 'remote-file', 6],
      // The chart folder kustomize would read: `<chartHome>/<name>`.
      ['c/kustomization.yaml', 'charts/../../../../etc', 'outside-repository', 7],
    ]);
  });

  it('refuses a chartHome out of the repository, and the chart folders below it, with lines', async () => {
    const tree = memoryTree({
      'c/kustomization.yaml': 'helmGlobals:\n  chartHome: ../../elsewhere\nhelmCharts:\n  - name: a\n',
    });
    const inputs = await collectRenderInputs(tree, 'c');
    expect(inputs.forbidden.map((f) => [f.reference, f.reason, f.line])).toEqual([
      ['../../elsewhere/a', 'outside-repository', 4],
      ['../../elsewhere', 'outside-repository', 2],
    ]);
  });

  it('refuses an absolute chartHome, and a chartHome that is a file', async () => {
    const tree = memoryTree({
      'c/kustomization.yaml': 'helmGlobals: {chartHome: /root/.cache}\nhelmCharts: [{name: a}]\n',
      'd/kustomization.yaml': 'helmGlobals: {chartHome: home}\nhelmCharts: [{name: a}]\n',
      'd/home': 'not a folder\n',
    });
    const absolute = await collectRenderInputs(tree, 'c');
    const file = await collectRenderInputs(tree, 'd');
    expect(absolute.forbidden.map((f) => [f.reference, f.reason, f.line])).toContainEqual([
      '/root/.cache',
      'outside-repository',
      1,
    ]);
    expect(file.forbidden.map((f) => [f.reference, f.reason, f.line])).toEqual([['home', 'not-in-repository', 1]]);
  });

  it('reads valuesInline as data: a URL in a value is not a reference', async () => {
    const tree = memoryTree({
      'c/kustomization.yaml':
        'helmCharts:\n  - name: a\n    valuesInline:\n      image: {repository: https://registry.example/app}\n      valuesFile: https://x.example/v.yaml\n',
    });
    const inputs = await collectRenderInputs(tree, 'c');
    expect(inputs.forbidden).toEqual([]);
    expect([...inputs.files]).toEqual(['c/kustomization.yaml']);
  });
});
