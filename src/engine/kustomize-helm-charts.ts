import { lstat, mkdir, mkdtemp, realpath, rename, rm, stat } from 'node:fs/promises';
import { basename, dirname, join, posix, relative, sep } from 'node:path';
import { isMap, isScalar, isSeq, LineCounter, parseAllDocuments } from 'yaml';
import { EXACT_VERSION } from '../apps/apps-schema.ts';
import type { ChartFetchContext, ChartReference } from '../charts/pull-chart.ts';
import { type ChartProblem, materializeRemoteChart } from '../charts/resolve-dependencies.ts';
import {
  DEFAULT_CHART_HOME,
  fieldValues,
  foldKey,
  isRecord,
  kustomizeChartFolder,
} from '../source/kustomize-fields.ts';
import { fsTreeReader } from '../source/tree-reader.ts';
import { checkChartFiles } from './chart-layout.ts';
import type { ManifestProblem } from './manifest.ts';

export interface KustomizeHelmChartsInput {
  /** The exported commit (a scratch copy of this job's: fetched charts are written into it). */
  readonly treeDir: string;
  /** Repository-relative kustomization files the render reads (from collectRenderInputs). */
  readonly kustomizations: readonly string[];
  /** The fetcher with the operator's chart sources; undefined when none is configured: remote charts are refused. */
  readonly context: ChartFetchContext | undefined;
  /** The render limit (PLUMBLINE_RENDER_MAX_BYTES): the largest file of a chart accepted. */
  readonly maxBytes: number;
}

export type PreparedHelmCharts =
  | {
      readonly ok: true;
      /** Charts fetched over the network by this call (dependencies included); 0 on a warm cache. */
      readonly fetched: number;
      /** Some kustomization inflates charts: kustomize must run with helm (runKustomize's `helm`). */
      readonly usesHelm: boolean;
      /** The chart folders kustomize may template, absolute, as kustomize names them (runKustomize's `helm.charts`). */
      readonly charts: readonly string[];
    }
  | {
      readonly ok: false;
      readonly problems: readonly ManifestProblem[];
      /** A source may recover (a network blip, a server error): the render is not to be cached. */
      readonly transient?: true;
    };

/** Helm's release-name rule (`ValidateReleaseName`): RFC 1123 subdomain, at most 53 characters. */
const RELEASE_NAME = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
/** A chart's name within its repository, and one folder of chartHome: one path segment. */
const CHART_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;
/** What Plumbline fetches from (as apps do): `oci://host/path` or `https://host/path`, no credentials. */
const CHART_REPOSITORY = /^(oci|https):\/\/[^\s/?#@]+(\/[^\s?#]*)?$/;
const hasControlCharacter = (text: string) => [...text].some((c) => (c.codePointAt(0) ?? 0) < 0x20);

/** One chart a kustomization inflates, as written (values not yet checked). */
interface HelmEntry {
  readonly file: string;
  /** The folder of the kustomization, repository-relative ('' for the root). */
  readonly folder: string;
  readonly line: number | undefined;
  /** `helmCharts`, or the legacy `helmChartInflationGenerator`: named in problems. */
  readonly field: string;
  readonly fields: Record<string, unknown>;
  /** Field names: `helmCharts` entries and the legacy `helmChartInflationGenerator` ones differ. */
  readonly names: { readonly name: string; readonly version: string; readonly repo: string };
  readonly chartHome: unknown;
}

interface PrepareState {
  readonly root: string;
  readonly input: KustomizeHelmChartsInput;
  readonly problems: ManifestProblem[];
  readonly charts: Set<string>;
  readonly done: Set<string>;
  fetched: number;
  transient: boolean;
}

/**
 * Makes every chart that the kustomizations of a render inflate (`helmCharts:`, and the legacy
 * `helmChartInflationGenerator:`) present where kustomize 5.5 looks before it would pull —
 * `<chartHome>/<name>-<version>/<name>` for an entry with a repo and a version, `<chartHome>/<name>`
 * without — so kustomize never asks helm to pull (the gate of runKustomize would refuse it anyway):
 * - an entry with a `repo` (`oci://` or `https://`) and an exact `version` is pulled through `pullChart`
 *   (the operator's sources policy, the address wall, the machine-wide cache) and extracted there, its own
 *   dependencies completed (materializeRemoteChart), unless a chart is already vendored at that path,
 *   which is used as is; the chartHome it is written to may not leave the kustomization's folder;
 * - an entry without a repo must be vendored;
 * - every chart folder used is checked as renderChart checks one (no link out of the repository, no file
 *   over the render limit), and is listed for the gate.
 * Problems name the kustomization and the entry's line; nothing is written outside the tree.
 */
export async function prepareKustomizeHelmCharts(input: KustomizeHelmChartsInput): Promise<PreparedHelmCharts> {
  const state: PrepareState = {
    root: await realpath(input.treeDir),
    input,
    problems: [],
    charts: new Set(),
    done: new Set(),
    fetched: 0,
    transient: false,
  };
  const tree = fsTreeReader(input.treeDir);
  let usesHelm = false;
  for (const file of [...new Set(input.kustomizations)].sort()) {
    // Missing, or a link out of the tree: the walk has refused it already.
    const text = await tree.readText(file);
    if (text === undefined) continue;
    const entries = readHelmEntries(text, file);
    usesHelm ||= entries.length > 0;
    for (const entry of entries) await prepareEntry(entry, state);
  }
  if (state.problems.length > 0) {
    return { ok: false, problems: state.problems, ...(state.transient ? { transient: true as const } : {}) };
  }
  return { ok: true, fetched: state.fetched, usesHelm, charts: [...state.charts].sort() };
}

/**
 * The chart entries of one kustomization file, with the line of each. Keys are matched case-insensitively,
 * as kustomize does; a file that does not parse yields none (the walk refused it).
 */
function readHelmEntries(text: string, file: string): HelmEntry[] {
  const lineCounter = new LineCounter();
  const documents = parseAllDocuments(text, { version: '1.1', lineCounter, uniqueKeys: true });
  const folder = posix.dirname(file) === '.' ? '' : posix.dirname(file);
  const entries: HelmEntry[] = [];
  for (const document of documents) {
    const contents = document.contents;
    if (document.errors.length > 0 || !isMap(contents)) return [];
    let kustomization: unknown;
    try {
      kustomization = document.toJS({ maxAliasCount: 1_000 });
    } catch {
      return [];
    }
    if (!isRecord(kustomization)) continue;
    const chartHome = chartHomeOf(kustomization);
    const itemsOf = (field: string) =>
      contents.items
        .filter((pair) => {
          const key = isScalar(pair.key) ? pair.key.value : undefined;
          return typeof key === 'string' && foldKey(key) === foldKey(field);
        })
        .flatMap((pair) => (isSeq(pair.value) ? pair.value.items : []))
        .filter(isMap);
    const add = (field: string, names: HelmEntry['names']) => {
      for (const item of itemsOf(field)) {
        const fields = item.toJS(document, { maxAliasCount: 1_000 }) as Record<string, unknown>;
        const line = item.range ? lineCounter.linePos(item.range[0]).line : undefined;
        entries.push({ file, folder, line, field, fields, names, chartHome });
      }
    };
    add('helmCharts', { name: 'name', version: 'version', repo: 'repo' });
    add('helmChartInflationGenerator', { name: 'chartName', version: 'chartVersion', repo: 'chartRepoUrl' });
  }
  return entries;
}

/**
 * kustomize 5.5's chartHome for a kustomization: `helmGlobals.chartHome`; without helmGlobals, the last
 * chartHome of the legacy entries; `charts` when neither names one. Anything else than one string is kept
 * as written, for prepareEntry to refuse.
 */
function chartHomeOf(kustomization: Record<string, unknown>): unknown {
  const globals = fieldValues(kustomization, 'helmGlobals').filter(isRecord);
  if (globals.length > 0) {
    const homes = globals.flatMap((g) => fieldValues(g, 'chartHome')).filter((home) => home != null && home !== '');
    return homes.length === 0 ? DEFAULT_CHART_HOME : homes.length === 1 ? homes[0] : homes;
  }
  const legacy = fieldValues(kustomization, 'helmChartInflationGenerator')
    .flatMap((value) => (Array.isArray(value) ? value : []))
    .filter(isRecord)
    .flatMap((entry) => fieldValues(entry, 'chartHome'))
    .filter((home): home is string => typeof home === 'string' && home !== '');
  return legacy.at(-1) ?? DEFAULT_CHART_HOME;
}

const quoted = (value: unknown) => (JSON.stringify(value) ?? String(value)).slice(0, 80);
/** A URL with any user information masked: a repository's URL is shown, never a password written into it. */
const displayUrl = (url: string) => url.replace(/^([a-z][a-z0-9+.-]*:\/\/)[^/@]*@/i, '$1***@');

/** What one entry needs, decided from what it says alone. */
type EntryPlan =
  | { readonly kind: 'refused'; readonly message: string }
  /** No repo: the chart must be vendored at `folder`. */
  | { readonly kind: 'local'; readonly folder: string }
  /** Fetched into `folder` (repository-relative), below the chartHome `home`, unless vendored there already. */
  | { readonly kind: 'remote'; readonly reference: ChartReference; readonly home: string; readonly folder: string };

/** Checks an entry's fields as kustomize will use them, and says where its chart is (pure). */
function planEntry(entry: HelmEntry): EntryPlan {
  const refused = (message: string): EntryPlan => ({ kind: 'refused', message: `${entry.field}: ${message}` });
  const fields = [entry.names.name, entry.names.version, entry.names.repo, 'releaseName'];
  const twice = fields.find((field) => fieldValues(entry.fields, field).length > 1);
  if (twice !== undefined) return refused(`${twice} is given twice (kustomize reads keys in any case): keep one`);
  const [name, version, repo, release] = fields.map((field) => fieldValues(entry.fields, field)[0]);
  if (typeof name !== 'string' || !CHART_NAME.test(name)) {
    return refused(`chart name ${quoted(name)} must be one path segment (letters, digits, . _ -)`);
  }
  if (
    release != null &&
    release !== '' &&
    (typeof release !== 'string' || release.length > 53 || !RELEASE_NAME.test(release))
  ) {
    return refused(
      `${name}: releaseName ${quoted(release)} is not a Helm release name (lowercase letters, digits, - and ., at most 53 characters)`,
    );
  }
  const chartHome = entry.chartHome;
  if (typeof chartHome !== 'string' || hasControlCharacter(chartHome) || posix.isAbsolute(chartHome)) {
    return refused(`${name}: chartHome ${quoted(chartHome)} must be one folder, relative to the kustomization`);
  }
  const at = (v: string | undefined, r: string | undefined) =>
    posix.join(entry.folder, kustomizeChartFolder({ chartHome, name, version: v, repo: r }));
  if (repo == null || repo === '') return { kind: 'local', folder: at(undefined, undefined) };
  if (typeof repo !== 'string' || !CHART_REPOSITORY.test(repo)) {
    const withCredentials = typeof repo === 'string' && /^[a-z]+:\/\/[^/]*@/i.test(repo);
    return refused(
      `${name}: repo ${typeof repo === 'string' ? displayUrl(repo) : quoted(repo)} ${withCredentials ? 'must not carry credentials: the operator configures them in the chart sources' : 'must be an oci:// or https:// URL'}`,
    );
  }
  if (typeof version !== 'string' || !EXACT_VERSION.test(version)) {
    const what =
      version == null || version === '' ? 'has no version' : `version ${quoted(version)} is not an exact version`;
    return refused(
      `${name} from ${displayUrl(repo)} ${what}: pin the version (kustomize would take whatever the repository serves)`,
    );
  }
  const home = posix.normalize(posix.join(entry.folder, chartHome));
  if (relativeInside(entry.folder, home) === undefined) {
    return refused(
      `${name}: chartHome ${chartHome} leaves the kustomization's folder: a remote chart is fetched into the kustomization's own folder`,
    );
  }
  return { kind: 'remote', reference: { repository: repo, name, version }, home, folder: at(version, repo) };
}

async function prepareEntry(entry: HelmEntry, state: PrepareState): Promise<void> {
  const problem = (message: string) =>
    state.problems.push({
      message,
      source: entry.line === undefined ? { file: entry.file } : { file: entry.file, line: entry.line },
    });
  const plan = planEntry(entry);
  if (plan.kind === 'refused') return void problem(plan.message);
  const label = `${entry.field} ${plan.kind === 'remote' ? `${plan.reference.name} ${plan.reference.version}` : basename(plan.folder)}`;
  if (plan.kind === 'local') {
    if (!(await exists(join(state.root, plan.folder)))) {
      return void problem(
        `${label} has no repo and is not vendored at ${plan.folder}: vendor it there, or give its repo and exact version`,
      );
    }
    return useVendored(entry, plan.folder, label, state, problem);
  }
  if (await exists(join(state.root, plan.folder))) return useVendored(entry, plan.folder, label, state, problem);
  const { reference } = plan;
  if (!state.input.context) {
    return void problem(
      `${label} from ${displayUrl(reference.repository)} is a remote chart, and this worker is not configured to fetch charts (no Helm, no chart fetcher): vendor it at ${plan.folder}`,
    );
  }
  const failed = await fetchChart(reference, plan, state.input.context, state);
  for (const p of failed ?? []) {
    state.transient ||= p.retryable;
    problem(`${label}: ${describeChartProblem(p, reference.name, reference.version)}`);
  }
  if (failed === undefined) await useVendored(entry, plan.folder, label, state, problem);
}

/**
 * A chart folder of the tree, used as it is: it must be a folder inside the repository (a link may lead
 * elsewhere in it), with no link out and no file over the render limit; then it is listed for the gate.
 */
async function useVendored(
  entry: HelmEntry,
  folder: string,
  label: string,
  state: PrepareState,
  problem: (message: string) => void,
): Promise<void> {
  const absolute = join(state.root, folder);
  const real = await realpath(absolute).catch(() => undefined);
  if (real === undefined || !inside(state.root, real) || !(await stat(real)).isDirectory()) {
    return void problem(`${label}: ${folder} leads out of the repository (or is not a folder): refused`);
  }
  if (!state.done.has(folder)) {
    state.done.add(folder);
    for (const p of await checkChartFiles(state.root, folder, state.input.maxBytes)) problem(`${label}: ${p.message}`);
  }
  // kustomize names the chart from the real path of its kustomization's folder, joined with chartHome.
  const kustomizationFolder = await realpath(join(state.root, entry.folder));
  state.charts.add(absolute);
  state.charts.add(join(kustomizationFolder, relative(join(state.root, entry.folder), absolute)));
}

/**
 * Pulls one chart and its dependencies into a folder of chartHome first, then moves it where kustomize
 * looks: a failed fetch leaves nothing that a later render of the same tree would take as vendored.
 * Every folder written is below the kustomization's folder, checked to be inside the tree.
 */
async function fetchChart(
  reference: ChartReference,
  paths: { readonly home: string; readonly folder: string },
  context: ChartFetchContext,
  state: PrepareState,
): Promise<readonly ChartProblem[] | undefined> {
  const home = join(state.root, paths.home);
  const target = join(state.root, paths.folder);
  const existing = await deepestExisting(target);
  const real = await realpath(existing);
  if (!inside(state.root, real) || !(await stat(real)).isDirectory()) {
    return [
      {
        file: paths.folder,
        line: undefined,
        message: `${toPosix(relative(state.root, existing)) || '.'} leads out of the repository (or is not a folder): refused`,
        retryable: false,
      },
    ];
  }
  await mkdir(home, { recursive: true });
  const staging = await mkdtemp(join(home, `.plumbline-${reference.name}-`));
  try {
    const result = await materializeRemoteChart(reference, staging, context);
    if (!result.ok) return result.problems;
    state.fetched += result.fetched;
    await mkdir(dirname(target), { recursive: true });
    await rename(result.chartDir, target).catch(async (error: NodeJS.ErrnoException) => {
      // Another render of the same tree (two apps sharing a folder) moved the same chart there first.
      if ((error.code !== 'ENOTEMPTY' && error.code !== 'EEXIST') || !(await exists(target))) throw error;
    });
    return undefined;
  } finally {
    await rm(staging, { recursive: true, force: true });
  }
}

/** A fetch problem in words: the chart's own failure plainly, a dependency's with where it is declared. */
function describeChartProblem(p: ChartProblem, name: string, version: string): string {
  const own = p.line === undefined && !p.file.endsWith('/Chart.yaml') && !p.file.endsWith('/Chart.lock');
  const message = own ? p.message.replace(`dependency ${name} ${version}: `, '') : p.message;
  const where = own ? '' : ` (${p.file}${p.line === undefined ? '' : `:${p.line}`})`;
  return `${message}${where}${p.retryable ? ' (the source may recover: retried)' : ''}`;
}

/** `path` relative to `folder` when it is inside it (or is it), else undefined. Both repository-relative, normalized. */
function relativeInside(folder: string, path: string): string | undefined {
  if (path === '..' || path.startsWith('../') || posix.isAbsolute(path)) return undefined;
  const rel = posix.relative(`/${folder}`, `/${path}`);
  return rel === '..' || rel.startsWith('../') ? undefined : rel;
}

function inside(root: string, real: string): boolean {
  const rel = relative(root, real);
  return rel === '' || (rel !== '..' && !rel.startsWith(`..${sep}`) && !rel.startsWith(sep));
}

async function exists(path: string): Promise<boolean> {
  return lstat(path).then(
    () => true,
    () => false,
  );
}

/** The path itself or its nearest ancestor that exists (a link counts as existing). */
async function deepestExisting(path: string): Promise<string> {
  let current = path;
  while (!(await exists(current))) {
    const parent = dirname(current);
    if (parent === current) return current;
    current = parent;
  }
  return current;
}

function toPosix(path: string): string {
  return path.split(sep).join('/');
}
