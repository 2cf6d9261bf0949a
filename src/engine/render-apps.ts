import { createHash } from 'node:crypto';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { join, relative, sep } from 'node:path';
import { type AppSpec, parseAppsFile } from '../apps/apps-file.ts';
import { orderApps } from '../apps/order-apps.ts';
import type { ChartFetchContext } from '../charts/pull-chart.ts';
import {
  type ChartProblem,
  materializeRemoteChart,
  type ResolvedChart,
  resolveChartDependencies,
} from '../charts/resolve-dependencies.ts';
import { collectAppInputs } from '../source/cluster-inputs.ts';
import { digestInputs } from '../source/input-digest.ts';
import { fsTreeReader } from '../source/tree-reader.ts';
import { mapLimited } from '../support/limit-concurrency.ts';
import type { ClusterCapabilities, ClusterClient } from './cluster-client.ts';
import type { ManifestProblem, RenderedApp, RenderedObject, SourceLocation } from './manifest.ts';
import { objectKey } from './manifest.ts';
import { findDuplicates } from './parse-manifests.ts';
import { placeInReleaseNamespace } from './place-in-release-namespace.ts';
import { PRUNE_OPT_IN_ANNOTATION } from './plan/plan-cluster.ts';
import { renderChart } from './render-chart.ts';
import type { NetworkSandbox } from './sandboxed-command.ts';
import { readScopes, type Scope } from './tenancy.ts';

/** What rendering charts needs from the process: Helm, and the fetcher with the operator's policy. */
export interface ChartSupport {
  readonly helm: string;
  readonly fetch: ChartFetchContext;
  /** Per chart render; default 120 s. */
  readonly timeoutMs?: number | undefined;
  readonly sandbox?: NetworkSandbox | undefined;
}

/** What rendering for one cluster needs to know of it: `.Capabilities`, and which kinds are namespaced. */
export interface TargetCluster {
  capabilities(): Promise<ClusterCapabilities>;
  scopeOf(apiVersion: string, kind: string): Promise<Scope | undefined>;
}

/** The cluster a client talks to, as a render target (undefined for a client without discovery, say a test's). */
export function targetOf(client: ClusterClient): TargetCluster | undefined {
  const { capabilities, scopeOf } = client;
  if (!capabilities || !scopeOf) return undefined;
  return { capabilities: () => capabilities.call(client), scopeOf: (v, k) => scopeOf.call(client, v, k) };
}

/** One app's render, reusable while nothing it reads changes. */
export type AppRender =
  | {
      readonly ok: true;
      readonly objects: readonly RenderedObject[];
      readonly fetched: number;
      /** Left out of the render, for people to know (see ChartRender). */
      readonly notices?: readonly ManifestProblem[] | undefined;
    }
  | { readonly ok: false; readonly problems: readonly ManifestProblem[]; readonly transient?: true };

/** Renders of single apps by the digest of everything they read (see createRenderCache). */
export interface AppRenderCache {
  get(key: string, render: () => Promise<AppRender>): Promise<AppRender>;
}

export interface AppsRenderOptions {
  readonly charts?: ChartSupport | undefined;
  readonly appCache?: AppRenderCache | undefined;
  readonly maxBytes: number;
  /** Renders a path app's folder exactly as a cluster folder without apps is rendered. */
  readonly renderFolder: (treeDir: string, folder: string) => Promise<AppRender>;
}

export type AppsRender =
  | {
      readonly ok: true;
      readonly objects: readonly RenderedObject[];
      readonly apps: readonly RenderedApp[];
      readonly notices: readonly ManifestProblem[];
    }
  | { readonly ok: false; readonly problems: readonly ManifestProblem[]; readonly transient?: true };

/** Charts of one cluster rendered at once: helm is CPU-bound, and a worker renders several clusters. */
const APP_RENDER_CONCURRENCY = 2;
const DEFAULT_RELEASE_NAMESPACE = 'default';
/** On live objects of an app with `prune: false`: the planner leaves them alone when they go stale. */
export const PRUNE_DISABLED = 'disabled';

/**
 * Renders a cluster folder that has a `plumbline.yaml`: parses it, orders its apps by `dependsOn` (an
 * unknown name or a cycle fails before anything renders), renders every app — a path as a cluster folder
 * is rendered, a chart with its dependencies resolved through the fetcher and Helm given the target
 * cluster's capabilities — places namespaced objects in the release namespace (created when missing) and
 * tags every object with its app. All problems of all apps are returned together.
 */
export async function renderApps(
  treeDir: string,
  appsFile: string,
  text: string,
  target: TargetCluster | undefined,
  options: AppsRenderOptions,
): Promise<AppsRender> {
  const parsed = parseAppsFile(text, appsFile);
  if (!parsed.ok) return parsed;
  const ordered = orderApps(parsed.apps, appsFile);
  if (!ordered.ok) return ordered;
  const usesCharts = parsed.apps.some((app) => app.source.kind !== 'path');
  if (usesCharts && (!options.charts || !target)) {
    const problem = `${appsFile} names charts, and this worker has no Helm configured (PLUMBLINE_HELM)`;
    return { ok: false, problems: [{ message: problem, source: { file: appsFile } }] };
  }
  const capabilities = usesCharts && target ? await target.capabilities() : undefined;
  const waves = new Map(ordered.waves.flatMap((wave, index) => wave.map((app) => [app.name, index] as const)));
  const renders = await mapLimited(parsed.apps, APP_RENDER_CONCURRENCY, async (app) => ({
    app,
    render: await cachedAppRender(treeDir, appsFile, app, capabilities, options),
  }));
  const problems = renders.flatMap(({ render }) => (render.ok ? [] : render.problems));
  if (problems.length > 0) {
    const transient = renders.some(({ render }) => !render.ok && render.transient);
    return { ok: false, problems, ...(transient ? { transient: true as const } : {}) };
  }
  const scopes = await scopesOf(
    target,
    renders.flatMap(({ render }) => (render.ok ? render.objects : [])),
  );
  const objects: RenderedObject[] = [];
  const implicit: { readonly object: RenderedObject; readonly wave: number }[] = [];
  const apps: RenderedApp[] = [];
  for (const { app, render } of renders) {
    if (!render.ok) continue; // none: the problems were returned above
    // A cached render may come from a file where the app's entry was on another line.
    const own = render.objects.map((o) =>
      o.source?.file === appsFile ? { ...o, source: { file: appsFile, line: app.line } } : o,
    );
    const { placed, releaseNamespace } = place(app, own, scopes, appsFile);
    objects.push(...placed);
    if (releaseNamespace) implicit.push({ object: releaseNamespace, wave: waves.get(app.name) ?? 0 });
    apps.push({
      name: app.name,
      wave: waves.get(app.name) ?? 0,
      dependsOn: app.dependsOn,
      chart: app.source.kind !== 'path',
      ...(app.prune === undefined ? {} : { prune: app.prune }),
      source: { file: appsFile, line: app.line },
      objects: placed.length,
    });
  }
  // Apps sharing a release namespace create it once: the earliest app's, unless an app defines it itself.
  for (const { object } of [...implicit].sort((a, b) => a.wave - b.wave)) {
    const name = object.manifest.metadata.name;
    if (!objects.some((o) => o.manifest.kind === 'Namespace' && o.manifest.metadata.name === name))
      objects.push(object);
  }
  const duplicates = findDuplicates(objects).map((problem) => ({
    ...problem,
    message: `${problem.message}: two apps (or one twice) render the same object`,
  }));
  if (duplicates.length > 0) return { ok: false, problems: duplicates };
  const notices = renders.flatMap(({ render }) => (render.ok ? (render.notices ?? []) : []));
  return { ok: true, objects, apps, notices };
}

/** The app's render, from the cache while nothing it reads (files, its entry, the cluster's APIs) changed. */
async function cachedAppRender(
  treeDir: string,
  appsFile: string,
  app: AppSpec,
  capabilities: ClusterCapabilities | undefined,
  options: AppsRenderOptions,
): Promise<AppRender> {
  const render = () => renderApp(treeDir, appsFile, app, capabilities, options);
  if (!options.appCache) return render();
  const inputs = await collectAppInputs(fsTreeReader(treeDir), app);
  const hash = createHash('sha256').update(JSON.stringify({ ...app, line: 0, appsFile }));
  if (app.source.kind !== 'path' && capabilities)
    hash.update(`\0${capabilities.kubeVersion}\0${capabilities.apiVersions.join(',')}`);
  hash.update(await digestInputs(treeDir, inputs));
  return options.appCache.get(hash.digest('hex'), render);
}

async function renderApp(
  treeDir: string,
  appsFile: string,
  app: AppSpec,
  capabilities: ClusterCapabilities | undefined,
  options: AppsRenderOptions,
): Promise<AppRender> {
  const tag = (objects: readonly RenderedObject[]) =>
    objects.map((object) => ({ ...object, app: { name: app.name, chart: app.source.kind !== 'path' } }));
  if (app.source.kind === 'path') {
    const render = await options.renderFolder(treeDir, app.source.path);
    return render.ok ? { ...render, objects: tag(render.objects) } : withAppPrefix(app, render);
  }
  const charts = options.charts;
  if (!charts || !capabilities) throw new Error('renderApp: a chart app needs ChartSupport and the capabilities');
  // The chart is completed in a scratch folder inside the tree: helm reads only the tree, and links stay checkable.
  const scratch = await mkdtemp(join(treeDir, '.plumbline-chart-'));
  try {
    const resolved = await resolveApp(treeDir, scratch, app, charts.fetch);
    if (!resolved.ok) return chartProblems(app, resolved.problems);
    const chartPath = toPosix(relative(treeDir, resolved.chartDir));
    const render = await renderChart({
      treeDir,
      chartPath,
      releaseName: app.releaseName,
      namespace: app.namespace ?? DEFAULT_RELEASE_NAMESPACE,
      valuesFiles: app.values,
      valuesInline: app.valuesInline,
      capabilities,
      helm: charts.helm,
      maxBytes: options.maxBytes,
      timeoutMs: charts.timeoutMs,
      sandbox: charts.sandbox,
    });
    const shown = displayPath(app, chartPath, scratch, treeDir, { file: appsFile, line: app.line });
    const anchor = await repositoryAnchor(treeDir, app, shown.source);
    if (!render.ok) {
      const problems = render.problems.map((p) => ({
        ...p,
        message: `app ${app.name}: ${p.message.replaceAll(chartPath, shown.folder)}`,
        source: p.source && anchor(p.source),
      }));
      return { ok: false, problems, ...(render.transient ? { transient: true as const } : {}) };
    }
    const objects = render.objects.map(({ crd: _crd, ...object }) => ({
      ...object,
      source: object.source && anchor(object.source),
    }));
    const notices = render.notices.map((notice) => ({
      ...notice,
      message: `app ${app.name}: ${notice.message}`,
      source: notice.source && anchor(notice.source),
    }));
    return { ok: true, objects: tag(objects), fetched: resolved.fetched, notices };
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
}

/**
 * Sources mapped back to the repository, and checked to be files of it: a template of a fetched (or
 * `file://`-copied) dependency has no file of that name in the repository, so it is shown at the chart's
 * Chart.yaml, where the dependency is declared — an annotation must land on a file a person can open.
 */
async function repositoryAnchor(
  treeDir: string,
  app: AppSpec,
  mapped: (source: SourceLocation) => SourceLocation,
): Promise<(source: SourceLocation) => SourceLocation> {
  if (app.source.kind !== 'local-chart') return mapped;
  const chartYaml = { file: `${app.source.path}/Chart.yaml` };
  // Every repository file a chart's output can name is below the chart folder: listed once, up front.
  const files = new Set(await listChartFiles(treeDir, app.source.path));
  return (source) => {
    const shown = mapped(source);
    return files.has(shown.file) ? shown : chartYaml;
  };
}

/** The repository files below a chart folder (what its templates and crds can be). */
async function listChartFiles(treeDir: string, chartPath: string): Promise<string[]> {
  const entries = await readdir(join(treeDir, chartPath), { recursive: true, withFileTypes: true }).catch(() => []);
  return entries
    .filter((entry) => entry.isFile() || entry.isSymbolicLink())
    .map((entry) => toPosix(relative(treeDir, join(entry.parentPath, entry.name))));
}

function resolveApp(treeDir: string, scratch: string, app: AppSpec, fetch: ChartFetchContext): Promise<ResolvedChart> {
  if (app.source.kind === 'remote-chart') return materializeRemoteChart(app.source, scratch, fetch);
  if (app.source.kind !== 'local-chart') throw new Error('resolveApp: not a chart');
  return resolveChartDependencies({
    repositoryRoot: treeDir,
    chartPath: app.source.path,
    scratchDir: scratch,
    context: fetch,
  });
}

/**
 * Where a file of the completed chart is shown to people: the repository chart's own path for a local chart
 * (so annotations land on the file to edit), the app's entry in plumbline.yaml for a remote one.
 */
function displayPath(
  app: AppSpec,
  chartPath: string,
  scratch: string,
  treeDir: string,
  entry: SourceLocation,
): { readonly folder: string; readonly source: (source: SourceLocation) => SourceLocation } {
  const scratchPath = toPosix(relative(treeDir, scratch));
  if (app.source.kind === 'local-chart') {
    const folder = app.source.path;
    return {
      folder,
      source: (source) =>
        source.file.startsWith(`${chartPath}/`) || source.file === chartPath
          ? { ...source, file: folder + source.file.slice(chartPath.length) }
          : source.file.startsWith(scratchPath)
            ? { file: `${folder}/Chart.yaml` }
            : source,
    };
  }
  const label =
    app.source.kind === 'remote-chart' ? `${app.source.repository}/${app.source.name}:${app.source.version}` : '';
  return {
    folder: label,
    source: (source) => (source.file.startsWith(scratchPath) ? entry : source),
  };
}

function chartProblems(app: AppSpec, problems: readonly ChartProblem[]): AppRender {
  const transient = problems.some((p) => p.retryable);
  return {
    ok: false,
    problems: problems.map((p) => ({
      message: `app ${app.name}: ${p.retryable ? `${p.message} (the source may recover: retried)` : p.message}`,
      source: p.file.includes('://') ? undefined : { file: p.file, ...(p.line === undefined ? {} : { line: p.line }) },
    })),
    ...(transient ? { transient: true as const } : {}),
  };
}

function withAppPrefix(app: AppSpec, render: Extract<AppRender, { ok: false }>): AppRender {
  return { ...render, problems: render.problems.map((p) => ({ ...p, message: `app ${app.name}: ${p.message}` })) };
}

/** Scopes of every kind rendered, from discovery and the CRDs of the render itself. */
async function scopesOf(
  target: TargetCluster | undefined,
  objects: readonly RenderedObject[],
): Promise<ReadonlyMap<string, Scope>> {
  if (!target) return new Map();
  const manifests = objects.map((o) => o.manifest);
  return readScopes(target, manifests, manifests);
}

/**
 * A chart's objects where `helm install` puts them; a path app with a `namespace` gets the same placement
 * (its objects without one land there). Objects of a `prune: false` app are annotated so that, once stale,
 * they are left alone — a live mark that outlives the commit that set it.
 */
function place(
  app: AppSpec,
  objects: readonly RenderedObject[],
  scopes: ReadonlyMap<string, Scope>,
  appsFile: string,
): { readonly placed: readonly RenderedObject[]; readonly releaseNamespace?: RenderedObject | undefined } {
  const namespace = app.namespace ?? (app.source.kind === 'path' ? undefined : DEFAULT_RELEASE_NAMESPACE);
  let placed = [...objects];
  let releaseNamespace: RenderedObject | undefined;
  if (namespace !== undefined) {
    // readScopes answers by object; placement asks by kind.
    const byKind = new Map<string, Scope>();
    for (const object of objects) {
      const scope = scopes.get(objectKey(object.manifest));
      if (scope) byKind.set(`${object.manifest.apiVersion}|${object.manifest.kind}`, scope);
    }
    const entry = { file: appsFile, line: app.line };
    const result = placeInReleaseNamespace(
      placed,
      (apiVersion, kind) => byKind.get(`${apiVersion}|${kind}`),
      namespace,
      entry,
    );
    placed = [...result.objects];
    if (result.releaseNamespace) releaseNamespace = { ...result.releaseNamespace, app: placed[0]?.app };
  }
  if (app.prune !== false) return { placed, releaseNamespace };
  const keep = (object: RenderedObject): RenderedObject => ({
    ...object,
    manifest: {
      ...object.manifest,
      metadata: {
        ...object.manifest.metadata,
        annotations: { ...annotationsOf(object.manifest.metadata), [PRUNE_OPT_IN_ANNOTATION]: PRUNE_DISABLED },
      },
    },
  });
  return { placed: placed.map(keep), releaseNamespace: releaseNamespace && keep(releaseNamespace) };
}

function annotationsOf(metadata: { readonly [key: string]: unknown }): Record<string, unknown> {
  const annotations = metadata.annotations;
  return typeof annotations === 'object' && annotations !== null ? (annotations as Record<string, unknown>) : {};
}

function toPosix(path: string): string {
  return path.split(sep).join('/');
}
