/**
 * B15 (docs/performance.md): a Portefaix-shaped cluster of Helm apps — 40 umbrella charts under
 * `charts/<stack>/<app>`, each depending on one of four shared charts pushed once to the local stack's OCI
 * registry (exact versions), each with a `values-talos-homelab.yaml`, listed in
 * `clusters/talos/homelab/plumbline.yaml`; about 50 objects per app, 2,000 in all, a namespace per app.
 *
 * Ours: the worker's path (render cache with Helm and the machine's chart cache → secrets gate → the
 * cluster's records → reconcile). The peer: a bash loop of `helm template … | kubectl apply --server-side`
 * per app over a copy of the tree whose dependencies `helm dependency update` vendored in the setup (the
 * loop's warm cache). Measured: a cold render+apply into fresh namespaces, and a push changing one app's
 * values (ours re-renders that app alone; the loop re-runs all 40; the "smart loop" only the changed app).
 * The loop runs twice: as written (kubectl validates, as ours dry-runs) and with `--validate=false`, the
 * fastest a loop gets. Interleaved ours/loop/fast loop, order alternating, after a warm-up that is also the
 * one fully cold run of ours (empty chart cache: its fetches counted).
 */
import { cp, mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { stringify } from 'yaml';
import { type ChartServices, chartServicesFromEnv, pushChartToRegistry } from '../dev/local-stack/charts.ts';
import { ChartCache } from '../src/charts/chart-cache.ts';
import { parseChartSources } from '../src/charts/chart-sources.ts';
import type { ChartFetchContext } from '../src/charts/pull-chart.ts';
import { countActions } from '../src/engine/change-set.ts';
import { type ClusterClient, createClusterClient, loadKubeConfig } from '../src/engine/cluster-client.ts';
import { readRecordedState, reconcileCluster } from '../src/engine/reconcile-cluster.ts';
import { targetOf } from '../src/engine/render-apps.ts';
import { createRenderCache, type RenderCache } from '../src/engine/render-cache.ts';
import { KUBECTL_KUSTOMIZE } from '../src/engine/render-cluster.ts';
import { checkSecrets } from '../src/engine/secrets-gate.ts';
import { mapLimited } from '../src/support/limit-concurrency.ts';
import { runCommand } from '../src/support/run-command.ts';
import { median, spread } from './stats.ts';

const CLUSTER_PATH = 'clusters/talos/homelab';
const VALUES_FILE = 'values-talos-homelab.yaml';
const STACKS = ['core', 'observability', 'security', 'apps'] as const;
const APPS_PER_STACK = 10;
/** Objects per component of a shared chart; 12 components + the umbrella's Namespace and settings = 50 per app. */
const COMPONENTS = 12;
const CONCURRENCY = 32;
/** The loop runs 40 kubectl and 40 helm processes: generous, but bounded. */
const LOOP_TIMEOUT_MS = 600_000;

/** The shared charts the umbrellas depend on (name, exact version, what one component renders). */
const LIBRARIES = [
  { name: 'web', version: '1.4.2', kinds: ['ConfigMap', 'ServiceAccount', 'Service', 'Deployment'] },
  { name: 'worker', version: '2.0.1', kinds: ['ConfigMap', 'ServiceAccount', 'Deployment', 'PodDisruptionBudget'] },
  { name: 'gateway', version: '0.9.0', kinds: ['ConfigMap', 'Service', 'Role', 'RoleBinding'] },
  { name: 'jobs', version: '3.1.0', kinds: ['ConfigMap', 'ServiceAccount', 'CronJob', 'Service'] },
] as const;
type Library = (typeof LIBRARIES)[number];
type Kind = Library['kinds'][number];

interface App {
  readonly name: string;
  readonly stack: string;
  /** Repository-relative chart folder. */
  readonly chart: string;
  readonly library: Library;
}

export interface B15Samples {
  readonly oursColdMs: number[];
  readonly oursColdRenderMs: number[];
  readonly oursPushMs: number[];
  readonly oursPushRenderMs: number[];
  readonly loopColdMs: number[];
  readonly loopPushMs: number[];
  readonly smartLoopPushMs: number[];
  /** The same loop with kubectl's client-side validation off (`--validate=false`): a faster, weaker peer. */
  readonly fastLoopColdMs: number[];
  readonly fastLoopPushMs: number[];
  readonly fastSmartLoopPushMs: number[];
}

export interface B15Result {
  readonly apps: number;
  readonly objects: number;
  readonly reps: number;
  readonly samples: B15Samples;
  readonly medians: Record<keyof B15Samples, number>;
  readonly spreads: Record<keyof B15Samples, number>;
  /** Ours over the loop (medians): targets ≤ 0.5 cold, ≤ 0.2 push. */
  readonly coldRatio: number;
  readonly pushRatio: number;
  readonly pushVsSmartLoopRatio: number;
  readonly coldVsFastLoopRatio: number;
  readonly pushVsFastLoopRatio: number;
  /** The warm-up: ours with an empty chart cache. */
  readonly fullyCold: { readonly ms: number; readonly chartRequests: number; readonly chartsCached: number };
  /** Chart HTTP requests over every measured run of ours (warm chart cache): target 0. */
  readonly warmChartRequests: number;
  /** Apps rendered by each push (target 1) and the push's requests to the apiserver. */
  readonly pushAppMisses: number;
  /** Requests to the apiserver of ours, the last cold run and the last push. */
  readonly coldRequests: RequestCounts;
  readonly pushRequests: RequestCounts;
  readonly pushConfigured: number;
  /** The loop's setup: `helm dependency update` of the 40 charts (not in any measured run). */
  readonly loopSetupMs: number;
}

interface RequestCounts {
  apply: number;
  dryRun: number;
  get: number;
  list: number;
  delete: number;
}

interface Counting extends ClusterClient {
  readonly counts: RequestCounts;
}

/** The client as the worker uses it (one per cluster, discovery cached), with its requests counted. */
function counting(client: ClusterClient): Counting {
  const counts: RequestCounts = { apply: 0, dryRun: 0, get: 0, list: 0, delete: 0 };
  const { capabilities, scopeOf } = client;
  return {
    counts,
    apply: (manifest, options) => {
      if (options.dryRun) counts.dryRun += 1;
      else counts.apply += 1;
      return client.apply(manifest, options);
    },
    get: (manifest) => {
      counts.get += 1;
      return client.get(manifest);
    },
    list: (apiVersion, kind, namespace, options) => {
      counts.list += 1;
      return client.list(apiVersion, kind, namespace, options);
    },
    delete: (manifest, options) => {
      counts.delete += 1;
      return client.delete(manifest, options);
    },
    ...(capabilities ? { capabilities: () => capabilities.call(client) } : {}),
    ...(scopeOf ? { scopeOf: (apiVersion: string, kind: string) => scopeOf.call(client, apiVersion, kind) } : {}),
  };
}

const snapshot = (c: RequestCounts): RequestCounts => ({ ...c });
const minus = (a: RequestCounts, b: RequestCounts): RequestCounts => ({
  apply: a.apply - b.apply,
  dryRun: a.dryRun - b.dryRun,
  get: a.get - b.get,
  list: a.list - b.list,
  delete: a.delete - b.delete,
});

/** The chart services of the local stack, from the names `.local/env` exports. */
function servicesFromLocalEnv(): ChartServices {
  const env = process.env;
  if (!env.PLUMBLINE_HELM || !env.PLUMBLINE_OCI_REGISTRY) {
    throw new Error('B15 needs the local stack’s Helm and OCI registry: run `npm run local:up && . .local/env` first');
  }
  return chartServicesFromEnv({
    PLUMBLINE_TEST_HELM: env.PLUMBLINE_HELM,
    PLUMBLINE_TEST_OCI_REGISTRY: env.PLUMBLINE_OCI_REGISTRY,
    PLUMBLINE_TEST_OCI_USERNAME: env.PLUMBLINE_OCI_USERNAME,
    PLUMBLINE_TEST_OCI_PASSWORD: env.PLUMBLINE_OCI_PASSWORD,
    PLUMBLINE_TEST_CHART_REPOSITORY_URL: env.PLUMBLINE_CHART_REPOSITORY_URL,
    PLUMBLINE_TEST_CHART_REPOSITORY_USERNAME: env.PLUMBLINE_CHART_REPOSITORY_USERNAME,
    PLUMBLINE_TEST_CHART_REPOSITORY_PASSWORD: env.PLUMBLINE_CHART_REPOSITORY_PASSWORD,
    PLUMBLINE_TEST_CHART_REPOSITORY_DIR: env.PLUMBLINE_CHART_REPOSITORY_DIR,
  });
}

/**
 * One component's objects of a shared chart, as Helm template text (`$i` the component index). Services are
 * headless: the local stack's service range is a /24, too small for 360 ClusterIPs.
 */
function componentTemplate(library: Library, kind: Kind): string {
  const name = `{{ $.Release.Name }}-${library.name}-{{ $i }}`;
  const labels = `app.kubernetes.io/name: {{ $.Release.Name }}\n    app.kubernetes.io/component: ${library.name}-{{ $i }}`;
  const meta = `metadata:\n  name: ${name}\n  namespace: {{ $.Release.Namespace }}\n  labels:\n    ${labels}`;
  const selector = `app.kubernetes.io/name: {{ $.Release.Name }}\n      app.kubernetes.io/component: ${library.name}-{{ $i }}`;
  const pod = `metadata:\n      labels:\n        ${selector.replaceAll('\n      ', '\n        ')}\n    spec:\n      serviceAccountName: ${name}\n      containers:\n        - name: app\n          image: "{{ $.Values.image }}"\n          args: ["--level={{ $.Values.level }}"]\n          ports: [{containerPort: 8080}]\n          envFrom: [{configMapRef: {name: ${name}}}]\n          resources: {requests: {cpu: 10m, memory: 32Mi}}`;
  switch (kind) {
    case 'ConfigMap':
      return `apiVersion: v1\nkind: ConfigMap\n${meta}\ndata:\n  level: {{ $.Values.level | quote }}\n  index: {{ $i | quote }}\n  endpoint: "http://${name}.{{ $.Release.Namespace }}.svc:8080"`;
    case 'ServiceAccount':
      return `apiVersion: v1\nkind: ServiceAccount\n${meta}`;
    case 'Service':
      return `apiVersion: v1\nkind: Service\n${meta}\nspec:\n  clusterIP: None\n  selector:\n    ${selector.replaceAll('      ', '    ')}\n  ports: [{name: http, port: 80, targetPort: 8080}]`;
    case 'Deployment':
      return `apiVersion: apps/v1\nkind: Deployment\n${meta}\nspec:\n  replicas: {{ $.Values.replicas }}\n  selector:\n    matchLabels:\n      ${selector}\n  template:\n    ${pod}`;
    case 'PodDisruptionBudget':
      return `apiVersion: policy/v1\nkind: PodDisruptionBudget\n${meta}\nspec:\n  maxUnavailable: 1\n  selector:\n    matchLabels:\n      ${selector}`;
    case 'Role':
      return `apiVersion: rbac.authorization.k8s.io/v1\nkind: Role\n${meta}\nrules:\n  - apiGroups: [""]\n    resources: [configmaps]\n    resourceNames: [${name}]\n    verbs: [get, watch]`;
    case 'RoleBinding':
      return `apiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\n${meta}\nroleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: ${name}}\nsubjects: [{kind: ServiceAccount, name: default, namespace: "{{ $.Release.Namespace }}"}]`;
    case 'CronJob':
      return `apiVersion: batch/v1\nkind: CronJob\n${meta}\nspec:\n  schedule: "{{ add $i 1 }} 3 * * *"\n  jobTemplate:\n    spec:\n      template:\n        spec:\n          restartPolicy: OnFailure\n          containers: [{name: job, image: "{{ $.Values.image }}", args: ["--level={{ $.Values.level }}"]}]`;
  }
}

async function writeFiles(root: string, files: Record<string, string>): Promise<void> {
  for (const [path, text] of Object.entries(files)) {
    const file = join(root, path);
    await mkdir(join(file, '..'), { recursive: true });
    await writeFile(file, text);
  }
}

/** A shared chart: `components` times its kinds. */
async function writeLibrary(dir: string, library: Library): Promise<void> {
  const body = library.kinds.map((kind) => `---\n${componentTemplate(library, kind)}`).join('\n');
  await writeFiles(dir, {
    'Chart.yaml': stringify({ apiVersion: 'v2', name: library.name, version: library.version, type: 'application' }),
    'values.yaml': stringify({ components: 4, replicas: 1, level: 'info', image: 'registry.invalid/app:1.0.0' }),
    'templates/components.yaml': `{{- range $i, $e := until (int .Values.components) }}\n${body}\n{{- end }}\n`,
  });
}

const valuesOf = (app: App, revision: number) =>
  stringify({
    [app.library.name]: { replicas: 2, level: `info-r${revision}` },
    settings: { cluster: 'talos-homelab' },
  });

/** The repository: the umbrella charts (their dependencies not vendored) and their cluster values. */
async function writeTree(treeDir: string, apps: readonly App[], repository: string): Promise<void> {
  for (const app of apps) {
    await writeFiles(join(treeDir, app.chart), {
      'Chart.yaml': stringify({
        apiVersion: 'v2',
        name: app.name,
        version: '1.0.0',
        dependencies: [{ name: app.library.name, version: app.library.version, repository }],
      }),
      'values.yaml': stringify({
        [app.library.name]: { components: COMPONENTS, image: `registry.invalid/${app.stack}/${app.name}:1.0.0` },
        settings: { stack: app.stack },
      }),
      [VALUES_FILE]: valuesOf(app, 0),
      'templates/namespace.yaml': 'apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {{ .Release.Namespace }}\n',
      'templates/settings.yaml':
        'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-settings\n  namespace: {{ .Release.Namespace }}\ndata:\n{{ toYaml .Values.settings | indent 2 }}\n',
    });
  }
}

/** plumbline.yaml with every app in the namespace `namespaceOf` gives it. */
function appsFile(apps: readonly App[], namespaceOf: (app: App) => string): string {
  return stringify({
    apiVersion: 'plumbline.dev/v1alpha1',
    kind: 'Apps',
    apps: apps.map((app) => ({
      name: app.name,
      chart: `../../../${app.chart}`,
      namespace: namespaceOf(app),
      values: [`../../../${app.chart}/${VALUES_FILE}`],
    })),
  });
}

/** The peer, word for word: one `helm template | kubectl apply --server-side` per app, in order. Paths come as argv. */
const LOOP_SCRIPT = `#!/usr/bin/env bash
set -euo pipefail
helm=$1 validate=$2; shift 2
while [ "$#" -gt 0 ]; do
  release=$1 chart=$2 namespace=$3 values=$4; shift 4
  "$helm" template "$release" "$chart" -n "$namespace" -f "$values" \\
    | kubectl apply --server-side --field-manager=loop "--validate=$validate" -n "$namespace" -f - >/dev/null
done
`;

async function timed<T>(fn: () => Promise<T>): Promise<{ ms: number; value: T }> {
  const started = performance.now();
  const value = await fn();
  return { ms: performance.now() - started, value };
}

export async function runB15(kubeconfig: string, reps: number, log: (line: string) => void): Promise<B15Result> {
  const services = servicesFromLocalEnv();
  const dir = await mkdtemp(join(tmpdir(), 'plumbline-b15-'));
  const client = counting(createClusterClient(loadKubeConfig({ kubeconfig })));
  const target = targetOf(client);
  const tag = `${process.pid.toString(36)}${Date.now().toString(36).slice(-3)}`;
  const namespaces = new Set<string>();
  const clusters = new Set<string>();
  try {
    // The shared charts, pushed once under a ref of this run's (so the fully cold run really fetches).
    let repository = '';
    for (const library of LIBRARIES) {
      const source = join(dir, 'libraries', library.name);
      await writeLibrary(source, library);
      repository = (await pushChartToRegistry(source, `bench/b15-${tag}`, services)).repository;
    }
    const apps: App[] = STACKS.flatMap((stack, s) =>
      Array.from({ length: APPS_PER_STACK }, (_, i) => {
        const name = `${stack}-${String(i + 1).padStart(2, '0')}`;
        return {
          name,
          stack,
          chart: `charts/${stack}/${name}`,
          library: LIBRARIES[(s + i) % LIBRARIES.length] as Library,
        };
      }),
    );
    const oursTree = join(dir, 'ours');
    const loopTree = join(dir, 'loop');
    await writeTree(oursTree, apps, repository);
    await cp(oursTree, loopTree, { recursive: true });

    // Ours: the operator's chart sources (the registry, plain http on loopback, its credentials) and the chart cache.
    const credentials = join(dir, 'registry-credentials.json');
    await writeFile(
      credentials,
      JSON.stringify({ username: services.registry.username, password: services.registry.password }),
      { mode: 0o600 },
    );
    const parsed = parseChartSources({
      repositories: [{ url: `oci://${services.registry.host}`, plainHttp: true, credentials }],
    });
    if (!parsed.ok) throw new Error(`B15 chart sources: ${parsed.problems.join('; ')}`);
    let chartRequests = 0;
    const chartCacheDir = join(dir, 'chart-cache');
    const fetch: ChartFetchContext = {
      sources: parsed.sources,
      cache: new ChartCache(chartCacheDir),
      onRequest: () => {
        chartRequests += 1;
      },
    };
    const newRenderCache = () =>
      createRenderCache({ kustomize: KUBECTL_KUSTOMIZE, timeoutMs: 120_000, charts: { helm: services.helm, fetch } });

    // The loop's warm cache: its own Helm and kubectl homes, the dependencies vendored once.
    const loopHome = join(dir, 'loop-home');
    const loopEnv = {
      KUBECONFIG: kubeconfig,
      HOME: loopHome,
      HELM_CONFIG_HOME: join(loopHome, 'helm-config'),
      HELM_CACHE_HOME: join(loopHome, 'helm-cache'),
      HELM_DATA_HOME: join(loopHome, 'helm-data'),
      HELM_REGISTRY_CONFIG: join(loopHome, 'registry.json'),
      HELM_REPOSITORY_CONFIG: join(loopHome, 'repositories.yaml'),
    };
    await mkdir(loopHome, { recursive: true });
    const loopScript = join(dir, 'loop.sh');
    await writeFile(loopScript, LOOP_SCRIPT, { mode: 0o755 });
    const loopSetup = await timed(async () => {
      const login = await runCommand(
        services.helm,
        [
          'registry',
          'login',
          services.registry.host,
          '--username',
          services.registry.username,
          '--password-stdin',
          '--plain-http',
        ],
        { env: loopEnv, timeoutMs: 60_000, input: services.registry.password },
      );
      if (login.code !== 0) throw new Error(`helm registry login failed: ${login.stderr.trim()}`);
      for (const app of apps) {
        const built = await runCommand(
          services.helm,
          ['dependency', 'update', join(loopTree, app.chart), '--plain-http'],
          { env: loopEnv, timeoutMs: 120_000 },
        );
        if (built.code !== 0) throw new Error(`helm dependency update ${app.chart} failed: ${built.stderr.trim()}`);
      }
    });

    const namespaceOf = (run: string) => (app: App) => {
      const name = `b15-${tag}-${run}-${app.name}`;
      namespaces.add(name);
      return name;
    };
    const setValues = (tree: string, chosen: readonly App[], revision: number) =>
      Promise.all(chosen.map((app) => writeFile(join(tree, app.chart, VALUES_FILE), valuesOf(app, revision))));
    type Validate = 'strict' | 'false';
    const runLoop = async (chosen: readonly App[], namespaceFor: (app: App) => string, validate: Validate) => {
      const args = chosen.flatMap((app) => [
        app.name,
        join(loopTree, app.chart),
        namespaceFor(app),
        join(loopTree, app.chart, VALUES_FILE),
      ]);
      const result = await runCommand('bash', [loopScript, services.helm, validate, ...args], {
        env: loopEnv,
        timeoutMs: LOOP_TIMEOUT_MS,
      });
      if (result.code !== 0) throw new Error(`the loop failed (exit ${result.code}): ${result.stderr.slice(-600)}`);
    };

    /** The app whose values the push changes. */
    const pushed = apps[7] as App;
    /** Ours, as the worker's job runs it: render → secrets gate → the cluster's records → reconcile. */
    const reconcile = async (cache: RenderCache, clusterName: string, revision: string) => {
      clusters.add(clusterName);
      const render = await timed(() => cache.render(oursTree, CLUSTER_PATH, target));
      const rendered = render.value;
      if (!rendered.ok) throw new Error(`B15 render failed: ${rendered.problems.map((p) => p.message).join('; ')}`);
      const secrets = checkSecrets(rendered.objects);
      if (secrets.length > 0) throw new Error(`B15 secrets gate: ${secrets[0]?.message}`);
      const recorded = await readRecordedState(client, clusterName);
      const outcome = await reconcileCluster({
        client,
        clusterName,
        revision,
        objects: rendered.objects,
        apps: rendered.apps,
        prune: true,
        pruneGuards: { maxShare: 0.5, override: false },
        apply: {
          concurrency: CONCURRENCY,
          conflicts: 'take-ownership',
          establishTimeoutMs: 60_000,
          healthTimeoutMs: 30_000,
        },
        recorded,
      });
      if (outcome.status !== 'applied')
        throw new Error(`B15 reconcile ${outcome.status}: ${JSON.stringify(outcome)}`.slice(0, 600));
      const pushedObjects = rendered.apps?.find((app) => app.name === pushed.name)?.objects ?? 0;
      return {
        renderMs: render.ms,
        objects: rendered.objects.length,
        pushedObjects,
        actions: countActions(outcome.changeSet),
      };
    };

    let objects = 0;
    const samples: B15Samples = {
      oursColdMs: [],
      oursColdRenderMs: [],
      oursPushMs: [],
      oursPushRenderMs: [],
      loopColdMs: [],
      loopPushMs: [],
      smartLoopPushMs: [],
      fastLoopColdMs: [],
      fastLoopPushMs: [],
      fastSmartLoopPushMs: [],
    };
    let warmChartRequests = 0;
    let pushAppMisses = 0;
    let pushRequests: RequestCounts = { apply: 0, dryRun: 0, get: 0, list: 0, delete: 0 };
    let coldRequests = pushRequests;
    let pushConfigured = 0;
    let fullyCold = { ms: 0, chartRequests: 0, chartsCached: 0 };

    const oursRun = async (run: string, measured: boolean) => {
      await setValues(oursTree, apps, 0);
      await writeFiles(oursTree, { [`${CLUSTER_PATH}/plumbline.yaml`]: appsFile(apps, namespaceOf(run)) });
      const cache = newRenderCache();
      const clusterName = `b15-${tag}-${run}`;
      const requestsBefore = chartRequests;
      const coldBefore = snapshot(client.counts);
      const cold = await timed(() => reconcile(cache, clusterName, 'a'.repeat(40)));
      coldRequests = minus(client.counts, coldBefore);
      objects = cold.value.objects;
      if (cold.value.actions.created !== objects)
        throw new Error(`B15 cold: ${JSON.stringify(cold.value.actions)} of ${objects} objects`);
      if (!measured) {
        const cached = await readdir(fetch.cache.folderOf(`oci://${services.registry.host}/bench/b15-${tag}`));
        fullyCold = {
          ms: cold.ms,
          chartRequests: chartRequests - requestsBefore,
          chartsCached: cached.filter((f) => f.endsWith('.tgz')).length,
        };
        return;
      }
      await setValues(oursTree, [pushed], 1);
      const misses = cache.stats.appMisses;
      const before = snapshot(client.counts);
      const push = await timed(() => reconcile(cache, clusterName, 'b'.repeat(40)));
      pushRequests = minus(client.counts, before);
      pushAppMisses = cache.stats.appMisses - misses;
      if (pushAppMisses !== 1) throw new Error(`B15 push rendered ${pushAppMisses} apps, not 1`);
      if (pushRequests.dryRun > push.value.pushedObjects)
        throw new Error(`B15 push dry-ran ${pushRequests.dryRun} objects: more than the pushed app's`);
      pushConfigured = push.value.actions.configured;
      warmChartRequests += chartRequests - requestsBefore;
      samples.oursColdMs.push(cold.ms);
      samples.oursColdRenderMs.push(cold.value.renderMs);
      samples.oursPushMs.push(push.ms);
      samples.oursPushRenderMs.push(push.value.renderMs);
    };
    const loopRun = (validate: Validate) => async (run: string) => {
      await setValues(loopTree, apps, 0);
      const namespaceFor = namespaceOf(run);
      const cold = await timed(() => runLoop(apps, namespaceFor, validate));
      // The smart loop re-runs the changed app only; the loop, every app (each with a change of its own to apply).
      await setValues(loopTree, [pushed], 1);
      const smart = await timed(() => runLoop([pushed], namespaceFor, validate));
      await setValues(loopTree, [pushed], 2);
      const all = await timed(() => runLoop(apps, namespaceFor, validate));
      const [coldKey, smartKey, allKey] =
        validate === 'strict'
          ? (['loopColdMs', 'smartLoopPushMs', 'loopPushMs'] as const)
          : (['fastLoopColdMs', 'fastSmartLoopPushMs', 'fastLoopPushMs'] as const);
      samples[coldKey].push(cold.ms);
      samples[smartKey].push(smart.ms);
      samples[allKey].push(all.ms);
    };
    const cleanUp = async () => {
      await dropNamespaces(client, [...namespaces]);
      await dropRecords(client, [...clusters]);
      namespaces.clear();
      clusters.clear();
    };

    log(
      `B15 setup: 40 umbrella charts on 4 shared OCI charts; loop's helm dependency update ×40 ${(loopSetup.ms / 1000).toFixed(1)} s`,
    );
    // The warm-up: ours fully cold (empty chart cache, fetches counted), the loop once.
    await oursRun('w0', false);
    // The loop's warm-up: one app of each shared chart (every kind: kubectl's discovery cache, helm's files).
    await runLoop(
      LIBRARIES.map((library) => apps.find((app) => app.library === library) as App),
      namespaceOf('w1'),
      'strict',
    );
    await cleanUp();
    log(
      `B15 warm-up: ours fully cold ${(fullyCold.ms / 1000).toFixed(1)} s for ${objects} objects, ${fullyCold.chartRequests} chart requests, ${fullyCold.chartsCached} charts cached`,
    );
    for (let rep = 0; rep < reps; rep += 1) {
      const sides = [(run: string) => oursRun(run, true), loopRun('strict'), loopRun('false')];
      const order = rep % 2 === 0 ? sides : [...sides].reverse();
      for (const [i, side] of order.entries()) await side(`${rep}${i}`);
      await cleanUp();
      log(
        `B15 rep ${rep + 1}/${reps}: ours cold ${ms(samples.oursColdMs.at(-1))}, push ${ms(samples.oursPushMs.at(-1))}; loop cold ${ms(samples.loopColdMs.at(-1))}, push ${ms(samples.loopPushMs.at(-1))}, smart ${ms(samples.smartLoopPushMs.at(-1))}; loop --validate=false cold ${ms(samples.fastLoopColdMs.at(-1))}, push ${ms(samples.fastLoopPushMs.at(-1))}, smart ${ms(samples.fastSmartLoopPushMs.at(-1))}`,
      );
    }
    const keys = Object.keys(samples) as (keyof B15Samples)[];
    const medians = Object.fromEntries(keys.map((k) => [k, median(samples[k])])) as Record<keyof B15Samples, number>;
    const spreads = Object.fromEntries(keys.map((k) => [k, spread(samples[k])])) as Record<keyof B15Samples, number>;
    const result: B15Result = {
      apps: apps.length,
      objects,
      reps,
      samples,
      medians,
      spreads,
      coldRatio: medians.oursColdMs / medians.loopColdMs,
      pushRatio: medians.oursPushMs / medians.loopPushMs,
      pushVsSmartLoopRatio: medians.oursPushMs / medians.smartLoopPushMs,
      coldVsFastLoopRatio: medians.oursColdMs / medians.fastLoopColdMs,
      pushVsFastLoopRatio: medians.oursPushMs / medians.fastLoopPushMs,
      fullyCold,
      warmChartRequests,
      pushAppMisses,
      coldRequests,
      pushRequests,
      pushConfigured,
      loopSetupMs: loopSetup.ms,
    };
    printTable(result, log);
    return result;
  } finally {
    await dropNamespaces(client, [...namespaces]).catch(() => undefined);
    await dropRecords(client, [...clusters]).catch(() => undefined);
    await rm(dir, { recursive: true, force: true });
  }
}

const ms = (value: number | undefined) => (value === undefined ? '-' : `${(value / 1000).toFixed(2)} s`);

function printTable(r: B15Result, log: (line: string) => void): void {
  const m = r.medians;
  const s = r.spreads;
  const cell = (key: keyof B15Samples) => `${(m[key] / 1000).toFixed(2)} s ± ${(s[key] / 1000).toFixed(2)}`;
  const mark = (ratio: number, target: number) => `×${ratio.toFixed(3)} ${ratio <= target ? '✓' : '✗'} (≤ ${target})`;
  const ratio = (a: keyof B15Samples, b: keyof B15Samples) => `×${(m[a] / m[b]).toFixed(2)}`;
  log(`B15 ${r.apps} Helm apps, ${r.objects} objects, ${r.reps} interleaved reps after a warm-up (median ± spread)`);
  log(
    '| Scenario | Ours | Loop: helm template \\| kubectl apply --server-side | Ratio (target) | Loop with --validate=false | Ratio |',
  );
  log('|---|---|---|---|---|---|');
  log(
    `| Cold render + apply (warm chart cache) | ${cell('oursColdMs')} (render ${cell('oursColdRenderMs')}) | ${cell('loopColdMs')} | ${mark(r.coldRatio, 0.5)} | ${cell('fastLoopColdMs')} | ${ratio('oursColdMs', 'fastLoopColdMs')} |`,
  );
  log(
    `| Push changing one app's values (loop: all 40 again) | ${cell('oursPushMs')} (render ${cell('oursPushRenderMs')}) | ${cell('loopPushMs')} | ${mark(r.pushRatio, 0.2)} | ${cell('fastLoopPushMs')} | ${ratio('oursPushMs', 'fastLoopPushMs')} |`,
  );
  log(
    `| Push, smart loop (the changed app only) | ${cell('oursPushMs')} | ${cell('smartLoopPushMs')} | ${ratio('oursPushMs', 'smartLoopPushMs')} (no target) | ${cell('fastSmartLoopPushMs')} | ${ratio('oursPushMs', 'fastSmartLoopPushMs')} |`,
  );
  log(
    `B15 fully cold (empty chart cache): ${(r.fullyCold.ms / 1000).toFixed(2)} s, ${r.fullyCold.chartRequests} chart requests, ${r.fullyCold.chartsCached} charts fetched; ` +
      `warm chart cache: ${r.warmChartRequests} chart requests ${r.warmChartRequests === 0 ? '✓' : '✗'} (target 0); ` +
      `push: ${r.pushAppMisses} app rendered, ${r.pushConfigured} configured; ` +
      `requests cold ${JSON.stringify(r.coldRequests)}, push ${JSON.stringify(r.pushRequests)}`,
  );
}

/** Deletes the namespaces and waits until the namespace controller has emptied them (outside every measurement). */
async function dropNamespaces(client: ClusterClient, names: readonly string[]): Promise<void> {
  const namespace = (name: string) => ({ apiVersion: 'v1', kind: 'Namespace', metadata: { name } });
  await mapLimited(names, 16, (name) => client.delete(namespace(name)).catch(() => undefined));
  const deadline = Date.now() + 180_000;
  let left = [...names];
  while (left.length > 0 && Date.now() < deadline) {
    const present = await mapLimited(left, 16, async (name) =>
      (await client.get(namespace(name))) ? name : undefined,
    );
    left = present.filter((name): name is string => name !== undefined);
    if (left.length > 0) await sleep(500);
  }
}

/** The inventory and baselines of the runs' clusters in plumbline-system. */
async function dropRecords(client: ClusterClient, clusterNames: readonly string[]): Promise<void> {
  for (const clusterName of clusterNames) {
    const records = await client.list('v1', 'ConfigMap', 'plumbline-system', {
      labelSelector: `plumbline.dev/cluster=${clusterName}`,
    });
    const names = records.map((record) => record.metadata?.name).filter((name): name is string => !!name);
    await Promise.all(
      names.map((name) =>
        client
          .delete({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name, namespace: 'plumbline-system' } })
          .catch(() => undefined),
      ),
    );
  }
}
