import { cp, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from '@jest/globals';
import { stringify } from 'yaml';
import { chartServicesFromEnv, publishToChartRepository, pushChartToRegistry } from '../../dev/local-stack/charts.ts';
import { ChartCache } from '../../src/charts/chart-cache.ts';
import type { ChartSources } from '../../src/charts/chart-sources.ts';
import { createClusterClient } from '../../src/engine/cluster-client.ts';
import type { RenderedObject } from '../../src/engine/manifest.ts';
import { type ChartSupport, targetOf } from '../../src/engine/render-apps.ts';
import { createRenderCache } from '../../src/engine/render-cache.ts';
import { KUBECTL_KUSTOMIZE, type RenderResult, renderCluster } from '../../src/engine/render-cluster.ts';
import { checkSecrets } from '../../src/engine/secrets-gate.ts';
import { collectClusterInputs } from '../../src/source/cluster-inputs.ts';
import { isAffectedBy } from '../../src/source/render-inputs.ts';
import { fsTreeReader } from '../../src/source/tree-reader.ts';
import { packageRoot } from '../../src/support/package-root.ts';
import { chartSources, credentialsFile, scratch } from '../helpers/chart-test-server.ts';
import { testEnvironment, uniqueName } from '../helpers/environment.ts';
import { kubeClients } from '../helpers/kube.ts';

/**
 * A cluster folder with a plumbline.yaml, rendered with the real Helm against the real apiserver's
 * capabilities, with chart dependencies from the local stack's real OCI registry and Helm repository.
 */
const env = testEnvironment();
const client = createClusterClient(kubeClients(env.kubeconfig).config);
const target = targetOf(client);
const FIXTURES = join(packageRoot(), 'test', 'fixtures', 'charts');
const options = { kustomize: KUBECTL_KUSTOMIZE, timeoutMs: 60_000 };

let sources: ChartSources;
let oci: { repository: string; version: string };
let https: { version: string };

async function chartFolder(dir: string, name: string, version: string, templates: Record<string, string>, extra = {}) {
  await mkdir(join(dir, 'templates'), { recursive: true });
  await writeFile(join(dir, 'Chart.yaml'), stringify({ apiVersion: 'v2', name, version, ...extra }));
  for (const [file, text] of Object.entries(templates)) await writeFile(join(dir, 'templates', file), text);
}

beforeAll(async () => {
  const services = chartServicesFromEnv();
  const source = scratch('plumbline-apps-src-');
  await chartFolder(join(source, 'redis'), 'redis', '17.3.1', {
    'cm.yaml':
      'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-redis\ndata:\n  size: {{ .Values.size | quote }}\n',
  });
  await writeFile(join(source, 'redis', 'values.yaml'), 'size: small\n');
  const pushed = await pushChartToRegistry(join(source, 'redis'), `tests/${uniqueName('apps')}`, services);
  oci = { repository: pushed.repository, version: pushed.version };
  const name = uniqueName('podinfo').replace(/-/g, '');
  await chartFolder(join(source, name), name, '6.9.2', {
    'deploy.yaml':
      'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: podinfo\ndata:\n  replicas: {{ .Values.replicaCount | quote }}\n',
  });
  await writeFile(join(source, name, 'values.yaml'), 'replicaCount: 1\n');
  const published = await publishToChartRepository(join(source, name), services);
  https = { version: published.version };
  httpsName = published.name;
  sources = chartSources({
    repositories: [
      {
        url: `oci://${services.registry.host}`,
        plainHttp: true,
        credentials: credentialsFile(services.registry.username, services.registry.password),
      },
      // Git names the public https repository; the operator mirrors it (air-gapped) to the local one.
      {
        url: MIRRORED,
        mirror: services.repository.url,
        credentials: credentialsFile(services.repository.username, services.repository.password),
      },
    ],
  });
});
let httpsName = '';
const MIRRORED = 'https://charts.example.com/stefanprodan';

function charts(cacheDir = scratch('plumbline-apps-cache-')): ChartSupport {
  return { helm: process.env.PLUMBLINE_TEST_HELM ?? '', fetch: { sources, cache: new ChartCache(cacheDir) } };
}

/** A repository: clusters/local/a with apps, a plain stack, a local umbrella chart depending on the OCI chart. */
async function repository(appsYaml: string): Promise<string> {
  const tree = scratch('plumbline-apps-tree-');
  await mkdir(join(tree, 'clusters/local/a'), { recursive: true });
  await writeFile(join(tree, 'clusters/local/a/plumbline.yaml'), appsYaml);
  await mkdir(join(tree, 'stacks/base'), { recursive: true });
  await writeFile(
    join(tree, 'stacks/base/ns.yaml'),
    'apiVersion: v1\nkind: Namespace\nmetadata:\n  name: base\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: base-settings\n',
  );
  await chartFolder(
    join(tree, 'charts/cache'),
    'cache',
    '0.1.0',
    {
      'cm.yaml': 'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-own\n',
      'role.yaml':
        'apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata:\n  name: {{ .Release.Name }}-reader\n  namespace: {{ .Release.Namespace }}\nrules: []\n',
    },
    { dependencies: [{ name: 'redis', version: oci.version, repository: oci.repository }] },
  );
  await writeFile(join(tree, 'charts/cache/values.yaml'), 'redis:\n  size: small\n');
  await writeFile(join(tree, 'charts/cache/values-local-a.yaml'), 'redis:\n  size: large\n');
  await cp(join(FIXTURES, 'hooks'), join(tree, 'charts/hooks'), { recursive: true });
  return tree;
}

const APPS = () => `apiVersion: plumbline.dev/v1alpha1
kind: Apps
apps:
  - name: base
    path: ../../../stacks/base
  - name: cache
    chart: ../../../charts/cache
    namespace: cache
    values: [../../../charts/cache/values-local-a.yaml]
    dependsOn: [base]
  - name: podinfo
    chart: { repository: ${MIRRORED}, name: ${httpsName}, version: ${https.version} }
    namespace: podinfo
    valuesInline: { replicaCount: 2 }
    prune: false
`;

const ok = (result: RenderResult) => {
  if (!result.ok) throw new Error(`render failed: ${JSON.stringify(result.problems)}`);
  return result;
};
const find = (objects: readonly RenderedObject[], kind: string, name: string) => {
  const found = objects.find((o) => o.manifest.kind === kind && o.manifest.metadata.name === name);
  if (!found) throw new Error(`no ${kind}/${name} in ${objects.map((o) => o.manifest.metadata.name).join(', ')}`);
  return found;
};

describe('a cluster folder with plumbline.yaml', () => {
  it('renders each app: a plain folder, a local umbrella chart with an OCI dependency, a remote chart through a mirror', async () => {
    const tree = await repository(APPS());
    const result = ok(await renderCluster(tree, 'clusters/local/a', { ...options, charts: charts() }, target));

    expect(result.renderer).toBe('apps');
    expect(result.apps?.map((a) => [a.name, a.wave, a.chart])).toEqual([
      ['base', 0, false],
      ['cache', 1, true],
      ['podinfo', 0, true],
    ]);
    // The dependency comes from the registry; the cluster's values file layers over the chart's.
    const redis = find(result.objects, 'ConfigMap', 'cache-redis');
    expect(redis.manifest.data).toEqual({ size: 'large' });
    expect(redis.manifest.metadata.namespace).toBe('cache');
    expect(redis.app).toEqual({ name: 'cache', chart: true });
    // Sources point at the repository's own chart (not the scratch copy), so annotations land on it.
    expect(find(result.objects, 'ConfigMap', 'cache-own').source?.file).toBe('charts/cache/templates/cm.yaml');
    // A cluster-scoped object that carries a namespace is cluster-scoped, as Helm sends it.
    expect(find(result.objects, 'ClusterRole', 'cache-reader').manifest.metadata.namespace).toBeUndefined();
    // The release namespace is created, as an object of the app.
    expect(find(result.objects, 'Namespace', 'cache').app?.name).toBe('cache');
    // The remote chart: inline values, prune disabled on its live objects, sources at the app's entry.
    const podinfo = find(result.objects, 'ConfigMap', 'podinfo');
    expect(podinfo.manifest.data).toEqual({ replicas: '2' });
    expect(podinfo.manifest.metadata.annotations).toEqual({ 'plumbline.dev/prune': 'disabled' });
    expect(podinfo.source).toEqual({ file: 'clusters/local/a/plumbline.yaml', line: 11 });
    // A path app without a namespace renders exactly as a cluster folder would.
    expect(find(result.objects, 'ConfigMap', 'base-settings').manifest.metadata.namespace).toBeUndefined();
    expect(find(result.objects, 'ConfigMap', 'base-settings').source).toEqual({ file: 'stacks/base/ns.yaml', line: 6 });
  });

  it('apps sharing a release namespace create it once; an app that defines it keeps it', async () => {
    const tree = await repository(`apiVersion: plumbline.dev/v1alpha1
kind: Apps
apps:
  - name: one
    chart: ../../../charts/cache
    namespace: shared
  - name: two
    chart: ../../../charts/cache
    releaseName: other
    namespace: shared
  - name: three
    chart: ../../../charts/cache
    releaseName: third
    namespace: base
  - name: base
    path: ../../../stacks/base
`);
    const result = ok(await renderCluster(tree, 'clusters/local/a', { ...options, charts: charts() }, target));
    const namespaces = result.objects.filter((o) => o.manifest.kind === 'Namespace');
    expect(namespaces.map((o) => [o.manifest.metadata.name, o.app?.name])).toEqual([
      ['base', 'base'],
      ['shared', 'one'],
    ]);
  });

  it('a values change re-renders that app alone; 0 chart fetches on a warm cache', async () => {
    const tree = await repository(APPS());
    const cacheDir = scratch('plumbline-apps-cache-');
    let requests = 0;
    const support = charts(cacheDir);
    const counted: ChartSupport = { ...support, fetch: { ...support.fetch, onRequest: () => requests++ } };
    const cache = createRenderCache({ ...options, charts: counted });
    ok(await cache.render(tree, 'clusters/local/a', target));
    expect(cache.stats.appMisses).toBe(3);
    const fetchedCold = requests;
    expect(fetchedCold).toBeGreaterThan(0);

    await writeFile(join(tree, 'charts/cache/values-local-a.yaml'), 'redis:\n  size: huge\n');
    const again = ok(await cache.render(tree, 'clusters/local/a', target));
    expect(find(again.objects, 'ConfigMap', 'cache-redis').manifest.data).toEqual({ size: 'huge' });
    expect(cache.stats).toMatchObject({ misses: 2, appMisses: 4, appHits: 2 });
    // A fresh process on the same machine: every chart from the machine's cache, none fetched.
    requests = 0;
    const cold = createRenderCache({
      ...options,
      charts: { ...counted, fetch: { ...counted.fetch, cache: new ChartCache(cacheDir) } },
    });
    ok(await cold.render(tree, 'clusters/local/a', target));
    expect(requests).toBe(0);
  });

  it('affected-cluster detection sees the chart, its values files and plumbline.yaml as inputs', async () => {
    const tree = await repository(APPS());
    const inputs = await collectClusterInputs(fsTreeReader(tree), 'clusters/local/a');
    for (const path of [
      'clusters/local/a/plumbline.yaml',
      'charts/cache/templates/cm.yaml',
      'charts/cache/values-local-a.yaml',
      'stacks/base/ns.yaml',
    ])
      expect([path, isAffectedBy(inputs, [path])]).toEqual([path, true]);
    expect(isAffectedBy(inputs, ['charts/hooks/templates/app.yaml'])).toBe(false);
  });

  it('an unknown dependsOn or a cycle fails before anything renders, naming the file and line', async () => {
    const tree = await repository(`apiVersion: plumbline.dev/v1alpha1
kind: Apps
apps:
  - name: a
    path: ../../../stacks/base
    dependsOn: [b]
  - name: b
    chart: ../../../charts/cache
    dependsOn: [a]
`);
    const result = await renderCluster(tree, 'clusters/local/a', { ...options, charts: charts() }, target);
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.problems[0]?.message).toMatch(/a → b → a/);
    expect(result.problems[0]?.source).toEqual({ file: 'clusters/local/a/plumbline.yaml', line: 4 });
  });

  it('a chart app on a worker without Helm is a clear failure', async () => {
    const tree = await repository(APPS());
    const result = await renderCluster(tree, 'clusters/local/a', options, target);
    expect(result.ok).toBe(false);
    if (!result.ok) expect(result.problems[0]?.message).toMatch(/no Helm configured \(PLUMBLINE_HELM\)/);
  });

  it('a template error names the repository template file and line, not the scratch copy', async () => {
    const tree = await repository(`apiVersion: plumbline.dev/v1alpha1
kind: Apps
apps:
  - name: broken
    chart: ../../../charts/cache
`);
    await writeFile(join(tree, 'charts/cache/templates/bad.yaml'), 'a: {{ .Values.nope.deeper }}\n');
    const result = await renderCluster(tree, 'clusters/local/a', { ...options, charts: charts() }, target);
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.problems[0]?.source).toEqual({ file: 'charts/cache/templates/bad.yaml', line: 1 });
    expect(result.problems[0]?.message).toMatch(/^app broken: /);
    expect(result.problems[0]?.message).not.toMatch(/plumbline-chart-/);
  });

  it("a chart that renders a Secret with data fails the gate, pointing at the chart's existingSecret", async () => {
    const tree = await repository(`apiVersion: plumbline.dev/v1alpha1
kind: Apps
apps:
  - name: leaky
    chart: ../../../charts/cache
    namespace: leaky
`);
    await writeFile(
      join(tree, 'charts/cache/templates/secret.yaml'),
      'apiVersion: v1\nkind: Secret\nmetadata:\n  name: creds\nstringData:\n  password: hunter2\n',
    );
    const result = ok(await renderCluster(tree, 'clusters/local/a', { ...options, charts: charts() }, target));
    const [problem] = checkSecrets(result.objects);
    expect(problem?.message).toMatch(/app leaky.*existingSecret/);
    expect(problem?.source).toEqual({ file: 'charts/cache/templates/secret.yaml' });
  });
});
