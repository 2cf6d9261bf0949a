import { existsSync, readdirSync } from 'node:fs';
import { mkdir, mkdtemp, realpath, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { parseAllDocuments, stringify } from 'yaml';
import { chartServicesFromEnv, pushChartToRegistry } from '../../dev/local-stack/charts.ts';
import { ChartCache } from '../../src/charts/chart-cache.ts';
import type { ChartFetchContext } from '../../src/charts/pull-chart.ts';
import { prepareKustomizeHelmCharts } from '../../src/engine/kustomize-helm-charts.ts';
import { KUBECTL_KUSTOMIZE, runKustomize } from '../../src/engine/run-kustomize.ts';
import { collectRenderInputs } from '../../src/source/render-inputs.ts';
import { fsTreeReader } from '../../src/source/tree-reader.ts';
import {
  type ChartTestServer,
  chartSources,
  credentialsFile,
  loopbackCertificate,
  packChart,
  repositoryIndex,
  scratch,
  startChartServer,
  type TlsMaterial,
} from '../helpers/chart-test-server.ts';
import { uniqueName } from '../helpers/environment.ts';

/**
 * Kustomize's `helmCharts:` with its charts resolved by Plumbline's fetcher under the operator's policy,
 * then built by the real kustomize (kubectl's, 5.5) with the real Helm 4 — against a loopback https
 * repository (TLS, basic auth) and the local stack's real OCI registry.
 */
const configured = Boolean(process.env.PLUMBLINE_TEST_OCI_REGISTRY && process.env.PLUMBLINE_TEST_HELM);
const describeServices = configured ? describe : describe.skip;
if (!configured)
  process.stderr.write('kustomize-helm-charts: skipped: no OCI registry / Helm in the test environment\n');

const helm = process.env.PLUMBLINE_TEST_HELM ?? '';
const MAX_BYTES = 64 * 1024 * 1024;
const AUTH = { username: 'kustomize', password: 'Repo-passw0rd-4-tests' };
const KUSTOMIZATION = /(^|\/)(kustomization\.ya?ml|Kustomization)$/;

let root: string;
let n = 0;
let tls: TlsMaterial;
let https: ChartTestServer;

/** A chart whose objects say which chart, release, namespace and value they came from. */
function chart(name: string, version: string, dependencies?: readonly Record<string, unknown>[]): Buffer {
  return packChart(dependencies ? { name, version, dependencies } : { name, version }, {
    'values.yaml': 'greeting: hello\n',
    'templates/release.yaml':
      'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-{{ .Chart.Name }}-release\ndata:\n  greeting: {{ .Values.greeting | quote }}\n',
  });
}

/** Serves charts from the https test repository (index.yaml and the archives, behind basic auth). */
function serve(charts: readonly { name: string; version: string; archive: Buffer }[]): void {
  https.route('/charts/index.yaml', { body: repositoryIndex(charts) });
  for (const c of charts) https.route(`/charts/${c.name}-${c.version}.tgz`, { body: c.archive });
}

const httpsSource = () => ({
  url: `${https.url}/charts`,
  caFile: tls.caFile,
  credentials: credentialsFile(AUTH.username, AUTH.password),
});

function fetchContext(sources: unknown): ChartFetchContext & { readonly requests: string[] } {
  const requests: string[] = [];
  return {
    sources: chartSources(sources),
    cache: new ChartCache(scratch('plumbline-kustomize-charts-cache-')),
    onRequest: (url) => requests.push(url),
    requests,
  };
}

async function writeTree(files: Record<string, string>): Promise<string> {
  const dir = join(root, `tree-${n++}`);
  for (const [path, content] of Object.entries(files)) {
    await mkdir(dirname(join(dir, path)), { recursive: true });
    await writeFile(join(dir, path), content);
  }
  return dir;
}

/** What buildKustomization does: the walk, then the charts, then kustomize with helm when they need it. */
async function render(dir: string, folder: string, context: ChartFetchContext | undefined) {
  const inputs = await collectRenderInputs(fsTreeReader(dir), folder);
  expect(inputs.forbidden).toEqual([]);
  const kustomizations = [...inputs.files].filter((file) => KUSTOMIZATION.test(file));
  const prepared = await prepareKustomizeHelmCharts({ treeDir: dir, kustomizations, context, maxBytes: MAX_BYTES });
  if (!prepared.ok) return { prepared, objects: [] };
  const run = await runKustomize(dir, folder, {
    kustomize: KUBECTL_KUSTOMIZE,
    timeoutMs: 60_000,
    maxOutputBytes: MAX_BYTES,
    helm: prepared.usesHelm ? { command: helm, charts: prepared.charts } : undefined,
  });
  if (!run.ok) throw new Error(`kustomize failed: ${run.message}`);
  const objects = parseAllDocuments(run.output).map(
    (d) => d.toJS() as { kind: string; metadata: { name: string; namespace?: string }; data?: Record<string, string> },
  );
  return { prepared, objects };
}

const problemsOf = (prepared: Awaited<ReturnType<typeof prepareKustomizeHelmCharts>>) =>
  prepared.ok ? [] : prepared.problems;

beforeAll(async () => {
  root = await realpath(await mkdtemp(join(tmpdir(), 'plumbline-kustomize-charts-')));
  tls = loopbackCertificate();
  https = await startChartServer({ tls, basicAuth: AUTH });
});
afterAll(async () => {
  await https?.close();
  await rm(root, { recursive: true, force: true });
});

describeServices('kustomize helmCharts, through the fetcher and the policy', () => {
  it("a chart from an https repository (the operator's CA and credentials) renders, kustomize's own transformers applied to its objects", async () => {
    const name = uniqueName('web');
    serve([{ name, version: '1.2.0', archive: chart(name, '1.2.0') }]);
    const context = fetchContext({ repositories: [httpsSource()] });
    const dir = await writeTree({
      'c/kustomization.yaml': stringify({
        namespace: 'team-a',
        helmCharts: [
          {
            name,
            repo: `${https.url}/charts`,
            version: '1.2.0',
            releaseName: 'site',
            valuesInline: { greeting: 'hi' },
          },
        ],
      }),
    });

    const { prepared, objects } = await render(dir, 'c', context);

    expect(prepared).toMatchObject({ ok: true, fetched: 1, usesHelm: true });
    expect(objects).toContainEqual(
      expect.objectContaining({
        kind: 'ConfigMap',
        metadata: { name: `site-${name}-release`, namespace: 'team-a' },
        data: { greeting: 'hi' },
      }),
    );
    // Where kustomize 5.5 looks before it would pull: <chartHome>/<name>-<version>/<name>.
    expect(existsSync(join(dir, `c/charts/${name}-1.2.0/${name}/Chart.yaml`))).toBe(true);
    expect(readdirSync(join(dir, 'c/charts'))).toEqual([`${name}-1.2.0`]);
  });

  it('a chart from the OCI registry renders with its own dependency (in the registry too) completed; a second render fetches nothing', async () => {
    const services = chartServicesFromEnv();
    const ref = `tests/${uniqueName('kustomize')}`;
    const dependencyDir = scratch('plumbline-kustomize-dep-');
    await writeFile(join(dependencyDir, 'dep.tgz'), chart('dep', '0.3.0'));
    const dependency = await pushChartToRegistry(join(dependencyDir, 'dep.tgz'), ref, services);
    await writeFile(
      join(dependencyDir, 'umbrella.tgz'),
      chart('umbrella', '2.0.0', [{ name: 'dep', version: '0.3.0', repository: dependency.repository }]),
    );
    const umbrella = await pushChartToRegistry(join(dependencyDir, 'umbrella.tgz'), ref, services);
    const sources = {
      repositories: [
        {
          url: `oci://${services.registry.host}`,
          plainHttp: true,
          credentials: credentialsFile(services.registry.username, services.registry.password),
        },
      ],
    };
    const context = fetchContext(sources);
    const kustomization = stringify({
      helmCharts: [{ name: 'umbrella', repo: umbrella.repository, version: '2.0.0', releaseName: 'u' }],
    });

    const first = await render(await writeTree({ 'c/kustomization.yaml': kustomization }), 'c', context);
    const requestsAfterFirst = context.requests.length;
    // A fresh export of the same commit, as the next job renders it: the machine-wide cache answers.
    const second = await render(await writeTree({ 'c/kustomization.yaml': kustomization }), 'c', context);

    expect(first.prepared).toMatchObject({ ok: true, fetched: 2 });
    const names = first.objects.map((o) => o.metadata.name).sort();
    expect(names).toEqual(['dep', 'u-dep-release', 'u-umbrella-release', 'umbrella']);
    expect(second.prepared).toMatchObject({ ok: true, fetched: 0 });
    expect(context.requests.length).toBe(requestsAfterFirst);
    expect(second.objects).toEqual(first.objects);
  });

  it('the legacy helmChartInflationGenerator field, in a kustomization at the repository root, with its own chartHome', async () => {
    const name = uniqueName('legacy');
    serve([{ name, version: '0.9.0', archive: chart(name, '0.9.0') }]);
    const context = fetchContext({ repositories: [httpsSource()] });
    const dir = await writeTree({
      'kustomization.yaml': stringify({
        helmChartInflationGenerator: [
          {
            chartName: name,
            chartRepoUrl: `${https.url}/charts`,
            chartVersion: '0.9.0',
            releaseName: 'old',
            chartHome: 'vendor',
          },
        ],
      }),
    });

    const { prepared, objects } = await render(dir, '.', context);

    expect(prepared).toMatchObject({ ok: true, fetched: 1, usesHelm: true });
    expect(objects.map((o) => o.metadata.name)).toContain(`old-${name}-release`);
    expect(existsSync(join(dir, `vendor/${name}-0.9.0/${name}/Chart.yaml`))).toBe(true);
  });

  it("a base's helmCharts are fetched into the base's own folder, where kustomize looks for them from the overlay", async () => {
    const name = uniqueName('based');
    serve([{ name, version: '2.1.0', archive: chart(name, '2.1.0') }]);
    const context = fetchContext({ repositories: [httpsSource()] });
    const dir = await writeTree({
      'clusters/a/kustomization.yaml': 'resources: [../../stacks/web]\nnamePrefix: a-\n',
      'stacks/web/kustomization.yaml': `helmCharts: [{name: ${name}, repo: "${https.url}/charts", version: 2.1.0, releaseName: w}]\n`,
    });

    const { prepared, objects } = await render(dir, 'clusters/a', context);

    expect(prepared).toMatchObject({ ok: true, fetched: 1 });
    expect(objects.map((o) => o.metadata.name)).toContain(`a-w-${name}-release`);
    expect(existsSync(join(dir, `stacks/web/charts/${name}-2.1.0/${name}/Chart.yaml`))).toBe(true);
  });

  it('two renders of one tree at once (two apps sharing a folder) both succeed: one chart lands where kustomize looks', async () => {
    const name = uniqueName('shared');
    serve([{ name, version: '1.0.0', archive: chart(name, '1.0.0') }]);
    const context = fetchContext({ repositories: [httpsSource()] });
    const dir = await writeTree({
      'c/kustomization.yaml': `helmCharts: [{name: ${name}, repo: "${https.url}/charts", version: 1.0.0}]\n`,
    });
    const prepare = () =>
      prepareKustomizeHelmCharts({
        treeDir: dir,
        kustomizations: ['c/kustomization.yaml'],
        context,
        maxBytes: MAX_BYTES,
      });

    const results = await Promise.all([prepare(), prepare(), prepare()]);

    expect(results.map((r) => r.ok)).toEqual([true, true, true]);
    expect(readdirSync(join(dir, 'c/charts'))).toEqual([`${name}-1.0.0`]);
    expect(readdirSync(join(dir, `c/charts/${name}-1.0.0`))).toEqual([name]);
  });

  it('an entry without an exact version fails with "pin the version", with file and line, and nothing is fetched', async () => {
    const context = fetchContext({ repositories: [httpsSource()] });
    const dir = await writeTree({
      'c/kustomization.yaml': [
        'helmCharts:',
        `  - {name: a, repo: "${https.url}/charts"}`,
        `  - {name: b, repo: "${https.url}/charts", version: "^1.0.0"}`,
        `  - {name: c, repo: "${https.url}/charts", version: 1.0}`,
        '',
      ].join('\n'),
    });
    const before = https.requests.length;

    const { prepared } = await render(dir, 'c', context);

    expect(problemsOf(prepared).map((p) => [p.source, p.message])).toEqual([
      [{ file: 'c/kustomization.yaml', line: 2 }, expect.stringContaining('pin the version')],
      [{ file: 'c/kustomization.yaml', line: 3 }, expect.stringContaining('pin the version')],
      [{ file: 'c/kustomization.yaml', line: 4 }, expect.stringContaining('pin the version')],
    ]);
    expect(https.requests.length).toBe(before);
    expect(context.requests).toEqual([]);
  });

  it('a source on a private address the operator did not list is refused, without a request', async () => {
    const services = chartServicesFromEnv();
    const context = fetchContext({});
    const dir = await writeTree({
      'c/kustomization.yaml': `helmCharts:\n  - name: x\n    repo: oci://${services.registry.host}/tests\n    version: 1.0.0\n`,
    });

    const { prepared } = await render(dir, 'c', context);

    expect(problemsOf(prepared)).toEqual([
      {
        message: expect.stringContaining('loopback, private or link-local'),
        source: { file: 'c/kustomization.yaml', line: 2 },
      },
    ]);
    expect(context.requests).toEqual([]);
    expect(existsSync(join(dir, 'c/charts/x-1.0.0'))).toBe(false);
  });

  it("a listed source that does not serve the chart: the failure is Plumbline's fetcher's, kustomize never runs, nothing is left half-written", async () => {
    const services = chartServicesFromEnv();
    const context = fetchContext({
      repositories: [
        {
          url: `oci://${services.registry.host}`,
          plainHttp: true,
          credentials: credentialsFile(services.registry.username, services.registry.password),
        },
      ],
    });
    const repository = `oci://${services.registry.host}/tests/${uniqueName('absent')}`;
    const dir = await writeTree({
      'c/kustomization.yaml': `helmCharts:\n  - {name: absent, repo: "${repository}", version: 9.9.9}\n`,
    });

    const { prepared } = await render(dir, 'c', context);

    const [problem, ...more] = problemsOf(prepared);
    expect(more).toEqual([]);
    expect(problem?.source).toEqual({ file: 'c/kustomization.yaml', line: 2 });
    // Our fetcher's words (the registry URL it asked and what it answered), not helm pull's.
    expect(problem?.message).toContain(`http://${services.registry.host}/v2/`);
    expect(problem?.message).toMatch(/404|not found|unknown/i);
    expect(context.requests.length).toBeGreaterThan(0);
    expect(readdirSync(join(dir, 'c/charts'))).toEqual([]);
  });

  it('without a chart fetcher (none configured) a remote entry is refused; a vendored chart still renders', async () => {
    const remote = await writeTree({
      'c/kustomization.yaml': `helmCharts: [{name: r, repo: "${https.url}/charts", version: 1.0.0}]\n`,
    });
    const vendored = await writeTree({
      'c/kustomization.yaml': 'helmCharts: [{name: v, releaseName: local}]\n',
      'c/charts/v/Chart.yaml': 'apiVersion: v2\nname: v\nversion: 0.1.0\n',
      'c/charts/v/values.yaml': 'greeting: vendored\n',
      'c/charts/v/templates/cm.yaml':
        'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: {{ .Release.Name }}}\ndata: {greeting: {{ .Values.greeting }}}\n',
    });

    const refused = await render(remote, 'c', undefined);
    const rendered = await render(vendored, 'c', undefined);

    expect(problemsOf(refused.prepared)).toEqual([
      {
        message: expect.stringContaining('this worker is not configured to fetch charts'),
        source: { file: 'c/kustomization.yaml', line: 1 },
      },
    ]);
    expect(rendered.prepared).toMatchObject({ ok: true, fetched: 0, usesHelm: true });
    expect(rendered.objects).toEqual([
      { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'local' }, data: { greeting: 'vendored' } },
    ]);
  });

  it('a chart already vendored where kustomize looks is used as is: nothing is fetched, whatever the repository serves', async () => {
    serve([{ name: 'pinned', version: '3.0.0', archive: chart('pinned', '3.0.0') }]);
    const context = fetchContext({ repositories: [httpsSource()] });
    const dir = await writeTree({
      'c/kustomization.yaml': `helmCharts: [{name: pinned, repo: "${https.url}/charts", version: 3.0.0, releaseName: v}]\n`,
      'c/charts/pinned-3.0.0/pinned/Chart.yaml': 'apiVersion: v2\nname: pinned\nversion: 3.0.0\n',
      'c/charts/pinned-3.0.0/pinned/values.yaml': '{}\n',
      'c/charts/pinned-3.0.0/pinned/templates/cm.yaml':
        'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: committed}\n',
    });
    const before = https.requests.length;

    const { prepared, objects } = await render(dir, 'c', context);

    expect(prepared).toMatchObject({ ok: true, fetched: 0 });
    expect(objects.map((o) => o.metadata.name)).toEqual(['committed']);
    expect(https.requests.length).toBe(before);
  });

  it('a chartHome that leaves the kustomization folder is refused for a remote chart, and nothing is written outside it', async () => {
    const context = fetchContext({ repositories: [httpsSource()] });
    const dir = await writeTree({
      'c/kustomization.yaml': `helmGlobals: {chartHome: ../shared}\nhelmCharts:\n  - {name: a, repo: "${https.url}/charts", version: 1.0.0}\n`,
    });

    const { prepared } = await render(dir, 'c', context);

    expect(problemsOf(prepared)).toEqual([
      {
        message: expect.stringContaining('chartHome ../shared leaves the kustomization'),
        source: { file: 'c/kustomization.yaml', line: 3 },
      },
    ]);
    expect(existsSync(join(dir, 'shared'))).toBe(false);
    expect(context.requests).toEqual([]);
  });

  it('a chart folder where kustomize looks that links out of the repository is refused, for a remote and a local entry', async () => {
    const outside = scratch('plumbline-kustomize-outside-');
    await writeFile(join(outside, 'Chart.yaml'), 'apiVersion: v2\nname: x\nversion: 1.0.0\n');
    const dir = await writeTree({
      'c/kustomization.yaml': `helmCharts:\n  - {name: x, repo: "${https.url}/charts", version: 1.0.0}\n  - {name: loc}\n`,
    });
    await mkdir(join(dir, 'c/charts/x-1.0.0'), { recursive: true });
    await symlink(outside, join(dir, 'c/charts/x-1.0.0/x'));
    await symlink(outside, join(dir, 'c/charts/loc'));

    const { prepared } = await render(dir, 'c', fetchContext({ repositories: [httpsSource()] }));

    expect(problemsOf(prepared).map((p) => [p.source?.line, p.message])).toEqual([
      [2, expect.stringContaining('leads out of the repository')],
      [3, expect.stringContaining('leads out of the repository')],
    ]);
  });

  it('credentials never appear in a problem: a repo URL carrying them is refused, a wrong password is not repeated', async () => {
    const wrong = 'Wr0ng-but-secret-passw0rd';
    const inUrl = await writeTree({
      'c/kustomization.yaml': `helmCharts: [{name: a, repo: "https://user:In-url-s3cret@127.0.0.1:1/charts", version: 1.0.0}]\n`,
    });
    serve([{ name: 'locked', version: '1.0.0', archive: chart('locked', '1.0.0') }]);
    const wrongPassword = await writeTree({
      'c/kustomization.yaml': `helmCharts: [{name: locked, repo: "${https.url}/charts", version: 1.0.0}]\n`,
    });
    const listed = (password: string) => ({
      repositories: [{ ...httpsSource(), credentials: credentialsFile(AUTH.username, password) }],
    });

    const first = await render(inUrl, 'c', fetchContext(listed(AUTH.password)));
    const second = await render(wrongPassword, 'c', fetchContext(listed(wrong)));

    const messages = [...problemsOf(first.prepared), ...problemsOf(second.prepared)].map((p) => p.message);
    expect(messages).toEqual([
      expect.stringContaining('must not carry credentials'),
      expect.stringContaining('HTTP 401'),
    ]);
    for (const message of messages) {
      expect(message).not.toContain('In-url-s3cret');
      expect(message).not.toContain(wrong);
    }
  });

  it('a fetch that may succeed later (the repository answers 503) says so, and the failure is transient', async () => {
    https.route('/flaky/index.yaml', { status: 503, body: 'try later' });
    const context = fetchContext({ repositories: [{ ...httpsSource(), url: `${https.url}/flaky` }] });
    const dir = await writeTree({
      'c/kustomization.yaml': `helmCharts: [{name: f, repo: "${https.url}/flaky", version: 1.0.0}]\n`,
    });

    const { prepared } = await render(dir, 'c', context);

    expect(prepared).toMatchObject({ ok: false, transient: true });
    expect(problemsOf(prepared)).toEqual([
      {
        message: expect.stringMatching(/503.*the source may recover: retried/),
        source: { file: 'c/kustomization.yaml', line: 1 },
      },
    ]);
  });

  it('a release name helm would read as a flag, and a chart name that is a path, are refused with their lines', async () => {
    const dir = await writeTree({
      'c/kustomization.yaml': [
        'helmCharts:',
        '  - {name: a, releaseName: "--set-file=x=/etc/hostname"}',
        '  - {name: ../../b}',
        '',
      ].join('\n'),
      'c/charts/a/Chart.yaml': 'apiVersion: v2\nname: a\nversion: 1.0.0\n',
    });

    const prepared = await prepareKustomizeHelmCharts({
      treeDir: dir,
      kustomizations: ['c/kustomization.yaml'],
      context: undefined,
      maxBytes: MAX_BYTES,
    });

    expect(problemsOf(prepared).map((p) => [p.source?.line, p.message])).toEqual([
      [2, expect.stringContaining('not a Helm release name')],
      [3, expect.stringContaining('one path segment')],
    ]);
  });

  it('a kustomization without helmCharts needs no helm', async () => {
    const dir = await writeTree({ 'c/kustomization.yaml': 'resources: [cm.yaml]\n', 'c/cm.yaml': 'kind: ConfigMap\n' });

    const prepared = await prepareKustomizeHelmCharts({
      treeDir: dir,
      kustomizations: ['c/kustomization.yaml'],
      context: undefined,
      maxBytes: MAX_BYTES,
    });

    expect(prepared).toEqual({ ok: true, fetched: 0, usesHelm: false, charts: [] });
  });
});
