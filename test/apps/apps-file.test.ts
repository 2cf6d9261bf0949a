import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from '@jest/globals';
import { type AppSpec, MAX_APPS_FILE_BYTES, parseAppsFile } from '../../src/apps/apps-file.ts';
import { packageRoot } from '../../src/support/package-root.ts';

const FILE = 'clusters/talos/homelab/plumbline.yaml';
const HEADER = 'apiVersion: plumbline.dev/v1alpha1\nkind: Apps\napps:\n';

/** A file of the given app entries (YAML lines, indented under `apps:`), and the problems it has. */
const withApps = (...lines: string[]) => `${HEADER}${lines.map((line) => `  ${line}`).join('\n')}\n`;

function problemsOf(text: string, file = FILE): { message: string; line: number | undefined }[] {
  const result = parseAppsFile(text, file);
  if (result.ok) throw new Error(`expected problems, got apps ${JSON.stringify(result.apps)}`);
  return result.problems.map((problem) => {
    expect(problem.source?.file).toBe(file);
    return { message: problem.message, line: problem.source?.line };
  });
}

function appsOf(text: string, file = FILE): readonly AppSpec[] {
  const result = parseAppsFile(text, file);
  if (!result.ok) throw new Error(`expected apps, got ${JSON.stringify(result.problems)}`);
  return result.apps;
}

describe('parseAppsFile: the Portefaix-shaped homelab', () => {
  it('parses every app into an AppSpec with repository-relative paths, defaults and lines', async () => {
    const path = 'test/fixtures/apps/portefaix/clusters/talos/homelab/plumbline.yaml';
    const text = await readFile(join(packageRoot(), path), 'utf8');

    const apps = appsOf(text);

    expect(apps).toEqual([
      {
        name: 'crds',
        releaseName: 'crds',
        source: { kind: 'path', path: 'stacks/crds' },
        values: [],
        dependsOn: [],
        line: 7,
      },
      {
        name: 'external-secrets',
        releaseName: 'external-secrets',
        namespace: 'external-secrets',
        source: { kind: 'local-chart', path: 'charts/secrets/external-secrets' },
        values: ['charts/secrets/external-secrets/values-talos-homelab.yaml'],
        dependsOn: ['crds'],
        line: 9,
      },
      {
        name: 'cert-manager',
        releaseName: 'cert-manager',
        namespace: 'cert-manager',
        source: { kind: 'local-chart', path: 'charts/security/cert-manager' },
        values: ['charts/security/cert-manager/values-talos-homelab.yaml'],
        dependsOn: ['crds'],
        line: 15,
      },
      {
        name: 'secret-stores',
        releaseName: 'secret-stores',
        source: { kind: 'path', path: 'clusters/talos/homelab/secret-stores' },
        values: [],
        dependsOn: ['external-secrets'],
        line: 20,
      },
      {
        name: 'kube-prometheus-stack',
        releaseName: 'prometheus',
        namespace: 'monitoring',
        source: { kind: 'local-chart', path: 'charts/observability/kube-prometheus-stack' },
        values: [
          'charts/observability/kube-prometheus-stack/values.yaml',
          'charts/observability/kube-prometheus-stack/values-talos-homelab.yaml',
        ],
        dependsOn: ['crds', 'cert-manager'],
        line: 23,
      },
      {
        name: 'podinfo',
        releaseName: 'podinfo',
        namespace: 'podinfo',
        source: {
          kind: 'remote-chart',
          repository: 'oci://ghcr.io/stefanprodan/charts',
          name: 'podinfo',
          version: '6.9.2',
        },
        values: [],
        valuesInline: { replicaCount: 2, serviceMonitor: { enabled: true } },
        prune: false,
        dependsOn: ['kube-prometheus-stack', 'secret-stores'],
        line: 31,
      },
    ]);
    // Absent optional fields are absent, not undefined (exactOptionalPropertyTypes callers rely on it).
    expect(Object.keys(apps[0] ?? {})).toEqual(['name', 'releaseName', 'source', 'values', 'dependsOn', 'line']);
    expect(Object.isFrozen(apps)).toBe(true);
    expect(Object.isFrozen(apps[0])).toBe(true);
  });

  it('resolves paths of a file at the repository root against the root', () => {
    const [app] = appsOf(withApps('- name: web', '  path: ./stacks/web/', '  values: [a/../v.yaml]'), 'plumbline.yaml');

    expect(app?.source).toEqual({ kind: 'path', path: 'stacks/web' });
    expect(app?.values).toEqual(['v.yaml']);
  });

  it('accepts a chart at the repository root and a remote https chart with a v-prefixed version', () => {
    const apps = appsOf(
      withApps(
        '- name: root-chart',
        '  chart: ../../..',
        '- name: cert-manager',
        '  chart: { repository: "https://charts.jetstack.io/", name: cert-manager, version: v1.16.2 }',
        '- name: pre',
        '  chart: { repository: oci://registry.internal:5000/charts, name: app, version: 1.0.0-rc.1+build.5 }',
      ),
    );

    expect(apps.map((app) => app.source)).toEqual([
      { kind: 'local-chart', path: '' },
      { kind: 'remote-chart', repository: 'https://charts.jetstack.io', name: 'cert-manager', version: 'v1.16.2' },
      {
        kind: 'remote-chart',
        repository: 'oci://registry.internal:5000/charts',
        name: 'app',
        version: '1.0.0-rc.1+build.5',
      },
    ]);
  });

  it('keeps dependsOn in order without repeats', () => {
    const apps = appsOf(withApps('- name: a', '  path: a', '- name: b', '  path: b', '  dependsOn: [a, a]'));

    expect(apps[1]?.dependsOn).toEqual(['a']);
  });

  it('keeps valuesInline as written, a __proto__ key included, without touching prototypes', () => {
    const [app] = appsOf(
      withApps('- name: a', '  chart: a', '  valuesInline: { __proto__: { polluted: true }, x: 1 }'),
    );

    expect(Object.getOwnPropertyNames(app?.valuesInline)).toEqual(['__proto__', 'x']);
    expect(Object.getPrototypeOf(app?.valuesInline)).toBe(Object.prototype);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it('accepts an empty list of apps', () => {
    expect(appsOf(HEADER.replace('apps:\n', 'apps: []\n'))).toEqual([]);
  });
});

describe('parseAppsFile: the document', () => {
  it.each([
    ['apiVersion missing', 'kind: Apps\napps: []\n', 'apiVersion: is required (must be plumbline.dev/v1alpha1)', 1],
    ['apiVersion wrong', 'apiVersion: v1\nkind: Apps\napps: []\n', 'apiVersion: must be plumbline.dev/v1alpha1', 1],
    ['kind wrong', 'apiVersion: plumbline.dev/v1alpha1\nkind: App\napps: []\n', 'kind: must be Apps', 2],
    ['apps missing', 'apiVersion: plumbline.dev/v1alpha1\nkind: Apps\n', 'apps: is required', 1],
    ['apps a mapping', 'apiVersion: plumbline.dev/v1alpha1\nkind: Apps\napps: {}\n', 'apps: must be a list', 3],
    ['apps an entry that is not a mapping', `${HEADER}  - crds\n`, 'apps[0]: must be a mapping', 4],
  ])('refuses a file with %s', (_case, text, message, line) => {
    expect(problemsOf(text)).toEqual([{ message, line }]);
  });

  it('refuses an unknown top-level field, naming it and the fields allowed', () => {
    expect(problemsOf(`${HEADER}  []\nmetadata: { name: x }\n`)).toEqual([
      { message: 'metadata: unknown field (the fields here are apiVersion, kind, apps)', line: 5 },
    ]);
  });

  it('refuses invalid YAML with its line', () => {
    expect(problemsOf(`${HEADER}  - name: a\n    path: a: b\n`)).toEqual([
      { message: 'invalid YAML: Nested mappings are not allowed in compact mappings', line: 5 },
    ]);
    expect(problemsOf(`${HEADER}  - name: a\n    name: b\n    path: a\n`)).toEqual([
      { message: expect.stringContaining('invalid YAML: Map keys must be unique'), line: 5 },
    ]);
  });

  it('refuses an empty file and a file of several documents', () => {
    expect(problemsOf('# nothing\n')).toEqual([
      { message: 'plumbline.yaml is empty: it needs apiVersion, kind and apps', line: 1 },
    ]);
    expect(problemsOf(`${HEADER}  []\n---\n${HEADER}  []\n`)).toEqual([
      { message: 'holds more than one YAML document: the apps of a cluster are one Apps document', line: 5 },
    ]);
  });

  it('refuses an alias bomb instead of expanding it, and still reads a few anchors', () => {
    const levels = ['a: &a [x, x, x, x, x, x, x, x, x, x]'];
    for (const name of 'bcdefgh') {
      const previous = levels.length === 1 ? 'a' : String.fromCharCode(name.charCodeAt(0) - 1);
      levels.push(`${name}: &${name} [${Array(10).fill(`*${previous}`).join(', ')}]`);
    }
    const bomb = `${HEADER}  []\nx-bomb:\n${levels.map((level) => `  ${level}`).join('\n')}\n`;

    expect(problemsOf(bomb)).toEqual([
      { message: expect.stringMatching(/^invalid YAML: Excessive alias count/), line: 1 },
    ]);
    const anchors = withApps(
      '- name: a',
      '  path: a',
      '  values: &v [v.yaml]',
      '- name: b',
      '  path: b',
      '  values: *v',
    );
    expect(appsOf(anchors)[1]?.values).toEqual(['clusters/talos/homelab/v.yaml']);
  });

  it('refuses a file larger than 1 MiB without parsing it', () => {
    const big = `${HEADER}  []\n# ${'x'.repeat(MAX_APPS_FILE_BYTES)}\n`;

    expect(problemsOf(big)).toEqual([{ message: 'plumbline.yaml is larger than 1 MiB', line: undefined }]);
  });

  it('reports every problem of the file at once, in the order of its lines', () => {
    const text = withApps(
      '- name: a',
      '  path: /abs',
      '- name: B',
      '  path: b',
      '- name: c',
      '  chart: c',
      '  colour: red',
    );

    expect(problemsOf(text)).toEqual([
      {
        message: 'apps[0].path: "/abs" is absolute: paths are relative to clusters/talos/homelab/plumbline.yaml',
        line: 5,
      },
      {
        message:
          'apps[1].name: "B" must be lowercase letters, digits and dashes, starting and ending with a letter or digit',
        line: 6,
      },
      { message: expect.stringMatching(/^apps\[2\]\.colour: unknown field/), line: 10 },
    ]);
  });
});

describe('parseAppsFile: an app', () => {
  it.each([
    [
      'an unknown field, naming it',
      ['- name: a', '  path: a', '  namespaec: x'],
      'apps[0].namespaec: unknown field (the fields here are name, path, chart, namespace, releaseName, values, valuesInline, prune, dependsOn)',
      6,
    ],
    ['no name', ['- path: a'], 'apps[0].name: is required', 4],
    [
      'a name with capitals',
      ['- name: Web', '  path: a'],
      'apps[0].name: "Web" must be lowercase letters, digits and dashes, starting and ending with a letter or digit',
      4,
    ],
    [
      'a name ending in a dash',
      ['- name: web-', '  path: a'],
      'apps[0].name: "web-" must be lowercase letters, digits and dashes, starting and ending with a letter or digit',
      4,
    ],
    [
      'a name of 54 characters',
      [`- name: ${'a'.repeat(54)}`, '  path: a'],
      'apps[0].name: must be at most 53 characters',
      4,
    ],
    [
      'a number as name',
      ['- name: 42', '  path: a'],
      'apps[0].name: must be a string (YAML reads this one as a number: quote it)',
      4,
    ],
    [
      'neither path nor chart',
      ['- name: a', '  namespace: a'],
      'apps[0]: set one of path (a kustomize or plain-YAML folder) or chart',
      4,
    ],
    [
      'both path and chart',
      ['- name: a', '  path: a', '  chart: b'],
      'apps[0].chart: set only one of path or chart',
      6,
    ],
    ['an empty path', ['- name: a', '  path: ""'], 'apps[0].path: must not be empty', 5],
    [
      'a namespace that is not a DNS label',
      ['- name: a', '  path: a', '  namespace: My_NS'],
      'apps[0].namespace: "My_NS" must be a namespace name (lowercase letters, digits and dashes)',
      6,
    ],
    [
      'a namespace of 64 characters',
      ['- name: a', '  path: a', `  namespace: ${'n'.repeat(64)}`],
      'apps[0].namespace: must be at most 63 characters',
      6,
    ],
    [
      'a release name Helm refuses',
      ['- name: a', '  path: a', '  releaseName: my_release'],
      'apps[0].releaseName: "my_release" must be a Helm release name (lowercase letters, digits, dashes and dots)',
      6,
    ],
    [
      'a release name of 54 characters',
      ['- name: a', '  path: a', `  releaseName: ${'r'.repeat(54)}`],
      "apps[0].releaseName: must be at most 53 characters (Helm's limit)",
      6,
    ],
    [
      'values that are not a list',
      ['- name: a', '  chart: a', '  values: values.yaml'],
      'apps[0].values: must be a list',
      6,
    ],
    [
      'a values entry that is not a string',
      ['- name: a', '  chart: a', '  values:', '    - v.yaml', '    - { file: v.yaml }'],
      'apps[0].values[1]: must be a string',
      8,
    ],
    [
      'valuesInline that is not a mapping',
      ['- name: a', '  chart: a', '  valuesInline: [1]'],
      'apps[0].valuesInline: must be a mapping',
      6,
    ],
    [
      'prune that is not a boolean',
      ['- name: a', '  path: a', '  prune: "no"'],
      'apps[0].prune: must be true or false',
      6,
    ],
    [
      'dependsOn that is not a list',
      ['- name: a', '  path: a', '  dependsOn: b'],
      'apps[0].dependsOn: must be a list',
      6,
    ],
    [
      'dependsOn naming something that is not an app name',
      ['- name: a', '  path: a', '  dependsOn: [B]'],
      'apps[0].dependsOn[0]: "B" is not an app name',
      6,
    ],
  ])('refuses %s', (_case, lines, message, line) => {
    expect(problemsOf(withApps(...lines))).toEqual([{ message, line }]);
  });

  it('refuses a name used twice, naming the first one and its line', () => {
    const text = withApps('- name: web', '  path: a', '- name: web', '  path: b');

    expect(problemsOf(text)).toEqual([
      { message: 'apps[1].name: "web" is already the name of apps[0], line 4', line: 6 },
    ]);
  });

  it('lets releaseName hold dots (a DNS subdomain) and defaults it to the name', () => {
    const apps = appsOf(withApps('- name: a', '  path: a', '  releaseName: a.b', '- name: c', '  path: c'));

    expect(apps.map((app) => app.releaseName)).toEqual(['a.b', 'c']);
  });
});

describe('parseAppsFile: charts', () => {
  const remote = (fields: string) => withApps('- name: app', `  chart: { ${fields} }`);

  it.each([
    ['a caret range', 'version: ^6.9.2', '"^6.9.2"'],
    ['a tilde range', 'version: ~6.9.0', '"~6.9.0"'],
    ['a comparison', 'version: ">=6.0.0"', '">=6.0.0"'],
    ['a wildcard', 'version: 6.9.x', '"6.9.x"'],
    ['a star', 'version: "*"', '"*"'],
    ['two numbers', 'version: "6.9"', '"6.9"'],
    ['latest', 'version: latest', '"latest"'],
  ])('refuses %s as a version: pin an exact version', (_case, version, shown) => {
    const text = remote(`repository: oci://ghcr.io/stefanprodan/charts, name: podinfo, ${version}`);

    expect(problemsOf(text)).toEqual([
      {
        message: `apps[0].chart.version: ${shown} is not an exact version: pin an exact version, such as 1.2.3`,
        line: 5,
      },
    ]);
  });

  it('says to quote a version YAML reads as a number', () => {
    const text = remote('repository: oci://ghcr.io/x, name: x, version: 1.10');

    expect(problemsOf(text)).toEqual([
      { message: 'apps[0].chart.version: must be a string (YAML reads this one as a number: quote it)', line: 5 },
    ]);
  });

  it.each([
    ['http', 'http://charts.example.com'],
    ['a bare host', 'charts.example.com'],
    ['git', 'git@github.com:org/charts'],
    ['credentials in the URL', 'https://user:secret@charts.example.com'],
    ['a query', 'https://charts.example.com/?token=x'],
  ])('refuses a repository that is %s', (_case, repository) => {
    const text = remote(`repository: "${repository}", name: x, version: 1.0.0`);

    expect(problemsOf(text)).toEqual([
      {
        message: `apps[0].chart.repository: "${repository}" must be an oci:// or https:// URL without credentials, query or fragment (credentials come from the operator's chart sources, never from Git)`,
        line: 5,
      },
    ]);
  });

  it('refuses a chart name with a slash', () => {
    expect(problemsOf(remote('repository: oci://ghcr.io/x, name: ../y, version: 1.0.0'))).toEqual([
      { message: 'apps[0].chart.name: "../y" must be a chart name (no slashes)', line: 5 },
    ]);
  });

  it('refuses a remote chart with a missing or an unknown field, on the line of the key', () => {
    const text = withApps(
      '- name: app',
      '  chart:',
      '    repository: oci://ghcr.io/x',
      '    name: x',
      '    tag: 1.0.0',
    );

    expect(problemsOf(text)).toEqual([
      { message: 'apps[0].chart.version: is required', line: 5 },
      { message: 'apps[0].chart.tag: unknown field (the fields here are repository, name, version)', line: 8 },
    ]);
  });

  it('refuses a chart that is neither a path nor a remote chart', () => {
    expect(problemsOf(withApps('- name: app', '  chart: 3'))).toEqual([
      {
        message: 'apps[0].chart: must be a chart folder (a path) or a remote chart { repository, name, version }',
        line: 5,
      },
    ]);
  });
});

describe('parseAppsFile: paths stay in the repository', () => {
  it.each([
    [
      'path',
      '..',
      '"../../../.." leaves the repository (paths are relative to clusters/talos/homelab/plumbline.yaml)',
      '../../../..',
    ],
    [
      'path',
      '..',
      '"../../../../etc" leaves the repository (paths are relative to clusters/talos/homelab/plumbline.yaml)',
      '../../../../etc',
    ],
    ['path', '/', '"/etc" is absolute: paths are relative to clusters/talos/homelab/plumbline.yaml', '/etc'],
    ['path', 'NUL', '"a\\u0000b" contains a NUL character', 'a\\0b'],
    ['path', 'backslash', '"..\\\\..\\\\x" contains a backslash: separate folders with /', '..\\\\..\\\\x'],
    [
      'path',
      'URL',
      '"https://example.com/x" is a URL: it must be a folder in the repository (a remote chart is { repository, name, version })',
      'https://example.com/x',
    ],
    [
      'chart',
      '..',
      '"../../../../charts/x" leaves the repository (paths are relative to clusters/talos/homelab/plumbline.yaml)',
      '../../../../charts/x',
    ],
    [
      'chart',
      'URL',
      '"oci://ghcr.io/x/podinfo" is a URL: it must be a folder in the repository (a remote chart is { repository, name, version })',
      'oci://ghcr.io/x/podinfo',
    ],
  ])('refuses a %s with %s', (field, _case, message, value) => {
    expect(problemsOf(withApps('- name: app', `  ${field}: "${value}"`))).toEqual([
      { message: `apps[0].${field}: ${message}`, line: 5 },
    ]);
  });

  it('refuses a values file outside the repository or at its root, on the line of the entry', () => {
    const text = withApps(
      '- name: app',
      '  chart: c',
      '  values:',
      '    - ok.yaml',
      '    - ../../../../x.yaml',
      '    - ../../..',
    );

    expect(problemsOf(text)).toEqual([
      {
        message:
          'apps[0].values[1]: "../../../../x.yaml" leaves the repository (paths are relative to clusters/talos/homelab/plumbline.yaml)',
        line: 8,
      },
      { message: `apps[0].values[2]: "../../.." is the repository's root: it must name a file`, line: 9 },
    ]);
  });

  it("refuses a path that is the file's own folder (a cluster with apps is only its apps)", () => {
    expect(problemsOf(withApps('- name: app', '  path: .'))).toEqual([
      {
        message: 'apps[0].path: "." is the folder of plumbline.yaml itself: a cluster with apps is only its apps',
        line: 5,
      },
    ]);
  });

  it('points at the line where an alias is used when the anchored value is wrong', () => {
    const text = withApps(
      '- name: a',
      '  chart: &podinfo { repository: oci://ghcr.io/x, name: podinfo, version: ^1.0.0 }',
      '- name: b',
      '  chart: *podinfo',
    );

    expect(problemsOf(text)).toEqual([
      {
        message: 'apps[0].chart.version: "^1.0.0" is not an exact version: pin an exact version, such as 1.2.3',
        line: 5,
      },
      {
        message: 'apps[1].chart.version: "^1.0.0" is not an exact version: pin an exact version, such as 1.2.3',
        line: 7,
      },
    ]);
  });
});
