import { cp, mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { networkInterfaces, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { ChartLayout } from '../../src/engine/chart-layout.ts';
import { helmErrorProblem } from '../../src/engine/helm-error.ts';
import { type ChartObject, type ChartRenderInput, renderChart } from '../../src/engine/render-chart.ts';
import { runHelm } from '../../src/engine/run-helm.ts';
import { type NetworkSandbox, PROXY_ONLY_SANDBOX, resolveNetworkSandbox } from '../../src/engine/sandboxed-command.ts';
import { packageRoot } from '../../src/support/package-root.ts';

/** The helm the tests render with (global setup builds the pinned one): the one line to change for another. */
const HELM = process.env.PLUMBLINE_TEST_HELM ?? '';

/** The fixtures folder stands for an exported commit; the charts are under `charts/`. */
const TREE = join(packageRoot(), 'test', 'fixtures');
const CAPABILITIES = { kubeVersion: 'v1.36.3', apiVersions: [] as string[] };

const input = (chart: string, more: Partial<ChartRenderInput> = {}): ChartRenderInput => ({
  treeDir: TREE,
  chartPath: `charts/${chart}`,
  releaseName: 'rel',
  namespace: 'team-a',
  valuesFiles: [],
  capabilities: CAPABILITIES,
  helm: HELM,
  maxBytes: 1024 * 1024,
  ...more,
});

async function render(chart: string, more: Partial<ChartRenderInput> = {}): Promise<readonly ChartObject[]> {
  const result = await renderChart(input(chart, more));
  if (!result.ok) throw new Error(`render failed: ${JSON.stringify(result.problems)}`);
  return result.objects;
}

const named = (objects: readonly ChartObject[], name: string): ChartObject => {
  const found = objects.find((o) => o.manifest.metadata.name === name);
  if (!found) throw new Error(`no object ${name} in ${objects.map((o) => o.manifest.metadata.name).join(', ')}`);
  return found;
};

beforeAll(() => {
  if (!HELM) throw new Error('PLUMBLINE_TEST_HELM is not set: run through jest global setup');
});

describe('renderChart renders a chart as helm template does', () => {
  it('layers values: the chart values.yaml, then each values file in order, then valuesInline', async () => {
    const objects = await render('layered', {
      valuesFiles: ['charts/layered/values/one.yaml', './charts/layered/values/two.yaml'],
      valuesInline: { fromInline: 'inline' },
    });
    expect(named(objects, 'rel-values').manifest.data).toEqual({
      fromChart: 'chart',
      fromFile1: 'one',
      fromFile2: 'two',
      fromInline: 'inline',
    });
  });

  it('uses the release namespace for .Release.Namespace and leaves objects without a namespace as rendered', async () => {
    const objects = await render('layered');
    expect(named(objects, 'rel-in-release-namespace').manifest.metadata.namespace).toBe('team-a');
    expect(named(objects, 'rel-values').manifest.metadata).not.toHaveProperty('namespace');
    expect(named(objects, 'rel-values')).toMatchObject({
      source: { file: 'charts/layered/templates/configmap.yaml' },
      crd: false,
    });
    expect(named(objects, 'rel-values').source).not.toHaveProperty('line');
  });

  it('gives subcharts their values with the parent overriding them, aliases included, and renders library helpers', async () => {
    const objects = await render('umbrella');
    expect(named(objects, 'child-settings').manifest.data).toEqual({
      color: 'set-by-parent',
      size: 'small',
      team: 'platform',
    });
    expect(named(objects, 'worker-settings').manifest.data).toEqual({
      color: 'set-by-parent-for-worker',
      size: 'large',
      team: 'platform',
    });
    // The alias is how helm names the copy; the file a person edits is the subchart's.
    for (const name of ['child-settings', 'worker-settings']) {
      expect(named(objects, name).source).toEqual({ file: 'charts/umbrella/charts/child/templates/configmap.yaml' });
    }
    expect(named(objects, 'umbrella-app').manifest.metadata.labels).toEqual({
      'app.kubernetes.io/name': 'umbrella',
      'app.kubernetes.io/instance': 'rel',
    });
  });

  it('reads the chart files with .Files.Get and .Files.Glob', async () => {
    const objects = await render('files');
    expect(named(objects, 'one-file').manifest.data).toEqual({ 'app.conf': 'greeting = hello\n' });
    expect(named(objects, 'globbed').manifest.data).toEqual({
      'app.conf': 'greeting = hello\n',
      'log.conf': 'level = debug\n',
    });
  });

  it("includes the chart's crds/, marked as CRDs with their file and line, and templates that use them", async () => {
    const objects = await render('with-crds');
    expect(named(objects, 'widgets.example.com')).toMatchObject({
      crd: true,
      source: { file: 'charts/with-crds/crds/widgets.yaml', line: 2 },
    });
    expect(named(objects, 'rel-widget')).toMatchObject({
      crd: false,
      manifest: { kind: 'Widget' },
      source: { file: 'charts/with-crds/templates/widget.yaml' },
    });
  });

  it('keeps install and upgrade hooks with phases, weight and delete policies, and drops test hooks', async () => {
    const objects = await render('hooks');
    expect(objects.map((o) => o.manifest.metadata.name).sort()).toEqual(['app', 'migrate', 'notified']);
    expect(named(objects, 'app').hook).toBeUndefined();
    expect(named(objects, 'migrate').hook).toEqual({
      phases: ['pre-install', 'pre-upgrade'],
      weight: -5,
      deletePolicies: ['hook-succeeded', 'before-hook-creation'],
    });
    // No policy named: helm's default.
    expect(named(objects, 'notified').hook).toEqual({
      phases: ['post-install', 'post-upgrade'],
      weight: 0,
      deletePolicies: ['before-hook-creation'],
    });
  });

  it('leaves out a hook of a release deletion with a notice naming the object and its template', async () => {
    const result = await renderChart(input('pre-delete-hook'));
    expect(result).toEqual({
      ok: true,
      objects: [expect.objectContaining({ manifest: expect.objectContaining({ metadata: { name: 'app' } }) })],
      notices: [
        {
          message:
            'ConfigMap/cleanup: a pre-delete hook never runs: Plumbline never deletes or rolls back a release (left out)',
          source: { file: 'charts/pre-delete-hook/templates/cleanup.yaml' },
          object: 'ConfigMap/cleanup',
        },
      ],
    });
  });

  it(".Capabilities.APIVersions.Has sees the cluster's API versions, and .Capabilities.KubeVersion its version", async () => {
    const without = await render('capabilities');
    expect(without.map((o) => o.manifest.metadata.name)).toEqual(['no-service-monitor', 'kube-version']);
    expect(named(without, 'kube-version').manifest.data).toEqual({ version: 'v1.36.3', minor: '36' });
    const withMonitoring = await render('capabilities', {
      capabilities: {
        kubeVersion: 'v1.36.3',
        apiVersions: ['monitoring.coreos.com/v1', 'monitoring.coreos.com/v1/ServiceMonitor'],
      },
    });
    // helm orders its output by kind: kinds it does not know come last.
    expect(withMonitoring.map((o) => `${o.manifest.kind}/${o.manifest.metadata.name}`)).toEqual([
      'ConfigMap/kube-version',
      'ServiceMonitor/metrics',
    ]);
  });

  it('flattens ConfigMapList and List documents into their items', async () => {
    const objects = await render('list-kind');
    expect(objects.map((o) => `${o.manifest.kind}/${o.manifest.metadata.name}`)).toEqual([
      'ConfigMap/first',
      'ConfigMap/second',
      'ServiceAccount/from-a-list',
    ]);
    expect(named(objects, 'second').source).toEqual({ file: 'charts/list-kind/templates/list.yaml' });
  });
});

describe('renderChart reports what is wrong with a chart as problems with file and line', () => {
  it('a template error names the repository file and line, and no path of this machine', async () => {
    const result = await renderChart(input('template-error'));
    expect(result.ok).toBe(false);
    const [problem, ...more] = result.ok ? [] : result.problems;
    expect(more).toEqual([]);
    expect(problem?.source).toEqual({ file: 'charts/template-error/templates/deployment.yaml', line: 7 });
    expect(problem?.message).toContain('charts/template-error/templates/deployment.yaml:7:22');
    expect(problem?.message).toContain('nil pointer evaluating interface {}.spec');
    expect(problem?.message).not.toContain(TREE);
    expect(problem?.message).not.toContain('--debug');
    expect(problem?.message).not.toMatch(/(^|[\s"(])broken\//);
  });

  it('an error in a helper of an aliased library subchart names the helper file, where it failed', async () => {
    const result = await renderChart(input('subchart-error'));
    expect(result).toMatchObject({
      ok: false,
      problems: [{ source: { file: 'charts/subchart-error/charts/lib/templates/_port.tpl', line: 3 } }],
    });
    expect(result.ok ? '' : result.problems[0]?.message).toContain('charts/subchart-error/templates/service.yaml:7:15');
  });

  it("a chart whose kubeVersion the cluster does not meet is refused, pointing at Chart.yaml's kubeVersion", async () => {
    expect(await renderChart(input('kube-version'))).toEqual({
      ok: false,
      problems: [
        {
          message:
            'the chart requires Kubernetes >=1.99.0 (kubeVersion in Chart.yaml) and the cluster runs v1.36.3: nothing is applied',
          source: { file: 'charts/kube-version/Chart.yaml', line: 4 },
        },
      ],
    });
  });

  it('output over the limit is refused, naming the limit', async () => {
    expect(await renderChart(input('large', { maxBytes: 64 * 1024 }))).toEqual({
      ok: false,
      problems: [
        {
          message:
            'the render of chart charts/large is larger than the limit of 64 KiB (PLUMBLINE_RENDER_MAX_BYTES): nothing is applied',
          source: { file: 'charts/large/Chart.yaml' },
        },
      ],
    });
    // The control: under the default limit the same chart renders.
    expect(await render('large')).toHaveLength(40);
  });

  it('a values file that is missing or outside the repository is a problem, and helm is not run', async () => {
    const result = await renderChart(
      input('layered', { valuesFiles: ['charts/layered/values/three.yaml', '../../../etc/passwd'] }),
    );
    expect(result).toEqual({
      ok: false,
      problems: [
        {
          message: 'values file charts/layered/values/three.yaml is not a file of this commit',
          source: { file: 'charts/layered/values/three.yaml' },
        },
        {
          message: 'values file ../../../etc/passwd is not a file of this commit',
          source: { file: '../../../etc/passwd' },
        },
      ],
    });
  });

  it('a chart folder that is not there, or not a chart, is a problem', async () => {
    expect(await renderChart(input('nope'))).toMatchObject({
      ok: false,
      problems: [{ message: 'chart folder charts/nope is not a folder of this commit' }],
    });
    expect(await renderChart(input('files/config'))).toMatchObject({
      ok: false,
      problems: [{ message: 'charts/files/config is not a chart: it has no Chart.yaml' }],
    });
  });

  it('a values file helm cannot parse names the file and the line', async () => {
    const tree = await mkdtemp(join(tmpdir(), 'plumbline-chart-tree-'));
    try {
      await cp(join(TREE, 'charts', 'layered'), join(tree, 'layered'), { recursive: true });
      await writeFile(join(tree, 'layered', 'broken-values.yaml'), 'fine: 1\nbroken: [\n');
      const result = await renderChart(
        input('', { treeDir: tree, chartPath: 'layered', valuesFiles: ['layered/broken-values.yaml'] }),
      );
      expect(result).toMatchObject({ ok: false, problems: [{ source: { file: 'layered/broken-values.yaml' } }] });
      const [problem] = result.ok ? [] : result.problems;
      expect(problem?.message).toContain('layered/broken-values.yaml');
      expect(problem?.message).not.toContain(tree);
    } finally {
      await rm(tree, { recursive: true, force: true });
    }
  });
});

describe("helm's error messages, as Helm 3 and Helm 4 print them", () => {
  const layout: ChartLayout = {
    name: 'needs-lib',
    root: {
      folder: 'charts/subchart-error',
      archive: false,
      subcharts: new Map([
        ['helpers', { folder: 'charts/subchart-error/charts/lib', archive: false, subcharts: new Map() }],
      ]),
    },
  };
  const context = { chartPath: 'charts/subchart-error', layout, paths: [{ path: '/tmp/tree-1', as: '' }] };
  const helm3 =
    'Error: template: needs-lib/templates/service.yaml:7:15: executing "needs-lib/templates/service.yaml" at <include "lib.port" .>: error calling include: template: needs-lib/charts/helpers/templates/_port.tpl:3:10: executing "lib.port" at <.Values.service.ports.http>: nil pointer evaluating interface {}.http\n\nUse --debug flag to render out invalid YAML\n';
  const helm4 =
    'Error: needs-lib/templates/service.yaml:7:15\n  executing "needs-lib/templates/service.yaml" at <include "lib.port" .>:\n    error calling include:\nneeds-lib/charts/helpers/templates/_port.tpl:3:10\n  executing "lib.port" at <.Values.service.ports.http>:\n    nil pointer evaluating interface {}.http\n\nUse --debug flag to render out invalid YAML\n';

  it.each([
    ['Helm 3', helm3],
    ['Helm 4', helm4],
  ])('%s: the innermost template location is the source, every chart path a repository path', (_helm, stderr) => {
    const problem = helmErrorProblem(stderr, context);
    expect(problem.source).toEqual({ file: 'charts/subchart-error/charts/lib/templates/_port.tpl', line: 3 });
    expect(problem.message).toMatch(/^helm template failed: /);
    expect(problem.message).toContain('charts/subchart-error/templates/service.yaml:7:15');
    expect(problem.message).toContain('charts/subchart-error/charts/lib/templates/_port.tpl:3:10');
    expect(problem.message).not.toMatch(/(^|[\s"(])needs-lib\//);
    expect(problem.message).not.toContain('\n');
  });

  it.each([
    [
      'Helm 3',
      'Error: failed to parse /tmp/tree-1/values/a.yaml: error converting YAML to JSON: yaml: line 4: did not find expected key\n',
    ],
    [
      'Helm 4',
      'Error: failed to parse /tmp/tree-1/values/a.yaml: cannot unmarshal yaml document: error converting YAML to JSON: yaml: line 4: did not find expected key\n',
    ],
  ])('%s: a values file that is not YAML is named with its line, without the machine path', (_helm, stderr) => {
    const problem = helmErrorProblem(stderr, context);
    expect(problem.source).toEqual({ file: 'values/a.yaml', line: 4 });
    expect(problem.message).not.toContain('/tmp/tree-1');
  });
});

describe('helm reads nothing of the machine and reaches no network', () => {
  let tree: string;
  beforeAll(async () => {
    tree = await mkdtemp(join(tmpdir(), 'plumbline-chart-tree-'));
  });
  afterAll(async () => {
    await rm(tree, { recursive: true, force: true });
  });

  it('a link in the chart to a file outside the repository is refused before helm reads it', async () => {
    const outside = await mkdtemp(join(tmpdir(), 'plumbline-outside-'));
    try {
      await writeFile(join(outside, 'token.conf'), 'token = secret-of-the-worker\n');
      await cp(join(TREE, 'charts', 'files'), join(tree, 'files'), { recursive: true });
      await symlink(join(outside, 'token.conf'), join(tree, 'files', 'config', 'token.conf'));
      expect(await renderChart(input('', { treeDir: tree, chartPath: 'files' }))).toEqual({
        ok: false,
        problems: [
          {
            message: 'files/config/token.conf is a link that leads out of the repository (or nowhere): refused',
            source: { file: 'files/config/token.conf' },
          },
        ],
      });
      // The same link into a folder the caller trusts (a cache of fetched charts) is followed.
      const objects = await render('', { treeDir: tree, chartPath: 'files', trustedDirs: [outside] });
      expect(named(objects, 'globbed').manifest.data).toMatchObject({ 'token.conf': 'token = secret-of-the-worker\n' });
    } finally {
      await rm(outside, { recursive: true, force: true });
    }
  });

  it('a link inside the repository is followed, as helm does', async () => {
    await mkdir(join(tree, 'shared'), { recursive: true });
    await writeFile(join(tree, 'shared', 'common.conf'), 'shared = yes\n');
    await cp(join(TREE, 'charts', 'files'), join(tree, 'files-linked'), { recursive: true });
    await symlink(join(tree, 'shared', 'common.conf'), join(tree, 'files-linked', 'config', 'common.conf'));
    const objects = await render('', { treeDir: tree, chartPath: 'files-linked' });
    expect(named(objects, 'globbed').manifest.data).toMatchObject({ 'common.conf': 'shared = yes\n' });
  });

  it('helm runs with homes, plugins, registry and repository files of its own, none of the user', async () => {
    const run = await runHelm(['env'], { helm: HELM, cwd: tree, timeoutMs: 30_000, maxOutputBytes: 1024 * 1024 });
    expect(run.ok).toBe(true);
    const env = Object.fromEntries(
      (run.ok ? run.output : '')
        .trim()
        .split('\n')
        .map((line) => {
          const [key = '', value = ''] = line.split('=');
          return [key, value.replace(/^"|"$/g, '')];
        }),
    );
    const home = env.HELM_PLUGINS?.replace(/\/plugins$/, '') ?? '';
    expect(home).toMatch(new RegExp(`^${tmpdir()}/plumbline-helm-`));
    for (const name of [
      'HELM_CACHE_HOME',
      'HELM_CONFIG_HOME',
      'HELM_DATA_HOME',
      'HELM_REGISTRY_CONFIG',
      'HELM_REPOSITORY_CONFIG',
    ]) {
      expect(env[name]?.startsWith(`${home}/`)).toBe(true);
    }
  });

  describe('the network sandbox', () => {
    /** A non-loopback IPv4 address of this machine (Go sends loopback requests past any proxy). */
    const externalAddress = Object.values(networkInterfaces())
      .flat()
      .find((a) => a && a.family === 'IPv4' && !a.internal)?.address;
    let server: Server;
    const requests: string[] = [];
    let defaultSandbox: NetworkSandbox;
    beforeAll(async () => {
      defaultSandbox = await resolveNetworkSandbox();
      server = createServer((req, res) => {
        requests.push(req.url ?? '');
        res.statusCode = 404;
        res.end();
      });
      await new Promise<void>((resolve) => server.listen(0, '0.0.0.0', resolve));
    });
    afterAll(async () => {
      await new Promise((resolve) => server.close(resolve));
    });

    /** `helm template --repo <url>` fetches the repository's index: helm as a network client. */
    const fetchFrom = (host: string, sandbox: NetworkSandbox) =>
      runHelm(['template', 'x', 'chart', `--repo=http://${host}:${(server.address() as AddressInfo).port}/charts`], {
        helm: HELM,
        cwd: tree,
        timeoutMs: 30_000,
        maxOutputBytes: 1024 * 1024,
        sandbox,
      });

    it('the control: without a sandbox, helm does reach the server', async () => {
      const before = requests.length;
      await fetchFrom('127.0.0.1', { wrapper: [], env: {} });
      expect(requests.slice(before)).toEqual(['/charts/index.yaml']);
    });

    it('by default helm runs in a network namespace of its own where one can be made, behind the dead proxy', async () => {
      if (process.getuid?.() === 0) expect(defaultSandbox.wrapper).toEqual(['unshare', '--net', '--']);
      expect(defaultSandbox.env).toMatchObject({ HTTPS_PROXY: 'http://127.0.0.1:0', HTTP_PROXY: 'http://127.0.0.1:0' });
    });

    it('by default a loopback server is never requested', async () => {
      if (defaultSandbox.wrapper.length === 0) return; // Go does not proxy loopback: only a namespace stops it.
      const before = requests.length;
      const run = await fetchFrom('127.0.0.1', defaultSandbox);
      expect(requests.slice(before)).toEqual([]);
      expect(run.ok ? '' : run.stderr).toMatch(/network is unreachable|connection refused/);
    });

    (externalAddress ? it : it.skip)(
      'where no namespace can be made, the proxy wall stops requests to other hosts',
      async () => {
        const before = requests.length;
        const run = await fetchFrom(externalAddress ?? '', PROXY_ONLY_SANDBOX);
        expect(requests.slice(before)).toEqual([]);
        expect(run.ok ? '' : run.stderr).toMatch(/proxyconnect tcp: .*connection refused/);
      },
    );
  });
});
