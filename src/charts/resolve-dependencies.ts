import { copyFile, lstat, mkdir, readdir, readFile, realpath, rm, stat } from 'node:fs/promises';
import { basename, join, relative, resolve, sep } from 'node:path';
import { isNode, LineCounter, parse, parseDocument } from 'yaml';
import { z } from 'zod';
import { ChartArchiveError, extractChartArchive, readChartArchive } from './chart-archive.ts';
import { helmLockDigest } from './chart-lock-digest.ts';
import { ChartFetchError } from './fetch-chart-file.ts';
import { type ChartFetchContext, type ChartReference, pullChart } from './pull-chart.ts';

/** Something in a chart that stops it from rendering: the file (repository-relative) and line to fix. */
export interface ChartProblem {
  readonly file: string;
  readonly line: number | undefined;
  readonly message: string;
  /** A network blip or a server error: the same commit may resolve later. Otherwise the commit (or the policy) must change. */
  readonly retryable: boolean;
}

/** A chart folder ready for `helm template`: every dependency present in its `charts/`. */
export type ResolvedChart =
  | { readonly ok: true; readonly chartDir: string; readonly fetched: number }
  | { readonly ok: false; readonly problems: readonly ChartProblem[] };

export interface ResolveDependenciesInput {
  /** The checked-out tree (absolute): `file://` dependencies may not leave it. */
  readonly repositoryRoot: string;
  /** The chart's folder, relative to the repository root. */
  readonly chartPath: string;
  /** An empty folder of the caller's: the copy is written to `<scratchDir>/<chart folder name>`. */
  readonly scratchDir: string;
  readonly context: ChartFetchContext;
}

/** Deeper than this is a `file://` cycle, or a chart nobody should render. */
const MAX_DEPTH = 16;
/** An exact version (what Helm's semver accepts as one version, leading `v` included); anything else is a range. */
const EXACT_VERSION = /^v?(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$/;

export function formatChartProblem(problem: ChartProblem): string {
  return `${problem.file}${problem.line === undefined ? '' : `:${problem.line}`}: ${problem.message}`;
}

/**
 * Copies a repository chart into scratch space and fills its `charts/` with every dependency of
 * `Chart.yaml` (nested ones too): `oci://` and `https://` through `pullChart` (policy, wall, cache),
 * `file://` copied from the repository (never from outside it), an empty repository taken as already
 * vendored. Versions are exact, or pinned by a committed `Chart.lock` whose digest Helm's way matches
 * `Chart.yaml`. `alias`, `condition`, `tags` and `import-values` stay Helm's: the charts are just present.
 * Never runs helm: helm would contact hosts without the wall.
 */
export async function resolveChartDependencies(input: ResolveDependenciesInput): Promise<ResolvedChart> {
  const root = await realpath(input.repositoryRoot);
  const source = resolve(root, input.chartPath);
  const display = toPosix(relative(root, source)) || '.';
  const inside = await insideRoot(source, root);
  if (!inside)
    return failed([
      { file: display, line: undefined, message: 'the chart folder is outside the repository', retryable: false },
    ]);
  const target = join(input.scratchDir, basename(source) || 'chart');
  const copyProblems = await copyChartFolder(inside, target, root, display);
  if (copyProblems.length > 0) return failed(copyProblems);
  const state: ResolveState = { root, context: input.context, fetched: 0 };
  const problems = await completeChart(target, display, { kind: 'repository', dir: inside }, state, 0);
  return problems.length > 0 ? failed(problems) : { ok: true, chartDir: target, fetched: state.fetched };
}

/**
 * A remote chart (an app's `chart: {repository, name, version}`) extracted into `<scratchDir>/<name>`,
 * its own dependencies completed the same way.
 */
export async function materializeRemoteChart(
  reference: ChartReference,
  scratchDir: string,
  context: ChartFetchContext,
): Promise<ResolvedChart> {
  const label = `${reference.repository.replace(/\/+$/, '')}/${reference.name}:${reference.version}`;
  const state: ResolveState = { root: scratchDir, context, fetched: 0 };
  const target = join(scratchDir, reference.name);
  const problem = await fetchInto(reference, target, label, undefined, state);
  if (problem) return failed([problem]);
  const problems = await completeChart(target, label, { kind: 'fetched' }, state, 1);
  return problems.length > 0 ? failed(problems) : { ok: true, chartDir: target, fetched: state.fetched };
}

interface ResolveState {
  readonly root: string;
  readonly context: ChartFetchContext;
  fetched: number;
}

type ChartOrigin = { readonly kind: 'repository'; readonly dir: string } | { readonly kind: 'fetched' };

const dependencySchema = z.looseObject({
  name: z.string().min(1, 'a dependency needs a name'),
  version: z.string().optional(),
  repository: z.string().optional(),
  alias: z.string().optional(),
  condition: z.string().optional(),
  tags: z.array(z.string()).optional(),
});
const lockSchema = z.looseObject({
  digest: z.string(),
  dependencies: z
    .array(z.looseObject({ name: z.string(), version: z.string(), repository: z.string().optional() }))
    .nullable(),
});

interface ChartYaml {
  readonly name: string | undefined;
  readonly version: string | undefined;
  readonly dependencies: readonly unknown[];
  readonly lineOf: (path: readonly (string | number)[]) => number | undefined;
}

/** Fills `chartDir/charts/` with the dependencies its Chart.yaml names; `display` names the chart in problems. */
async function completeChart(
  chartDir: string,
  display: string,
  origin: ChartOrigin,
  state: ResolveState,
  depth: number,
): Promise<ChartProblem[]> {
  const chartFile = `${display}/Chart.yaml`;
  const chart = await readChartYaml(chartDir, chartFile);
  if ('problem' in chart) return [chart.problem];
  if (chart.dependencies.length === 0) return [];
  if (depth >= MAX_DEPTH) {
    return [
      {
        file: chartFile,
        line: chart.lineOf(['dependencies']),
        message: `dependencies nested deeper than ${MAX_DEPTH}: a file:// cycle?`,
        retryable: false,
      },
    ];
  }
  const lock = await readLock(chartDir, `${display}/Chart.lock`, chart);
  if (lock && 'problem' in lock) return [lock.problem];
  const vendored = await listVendored(join(chartDir, 'charts'));
  const problems: ChartProblem[] = [];
  for (const [index, raw] of chart.dependencies.entries()) {
    const at = (field?: string) =>
      chart.lineOf(field === undefined ? ['dependencies', index] : ['dependencies', index, field]) ??
      chart.lineOf(['dependencies', index]);
    const problem = (message: string, line = at(), retryable = false): ChartProblem => ({
      file: chartFile,
      line,
      message,
      retryable,
    });
    const parsed = dependencySchema.safeParse(raw);
    if (!parsed.success) {
      problems.push(
        problem(
          `dependencies[${index}]: ${parsed.error.issues.map((i) => `${i.path.join('.') || 'entry'} ${i.message}`).join('; ')}`,
        ),
      );
      continue;
    }
    const dependency = parsed.data;
    const repository = (dependency.repository ?? '').trim();
    const sameName = vendored.filter((v) => v.name === dependency.name);
    if (repository === '') {
      if (sameName.length === 0)
        problems.push(
          problem(`dependency ${dependency.name} has no repository and is not in charts/`, at('repository')),
        );
      continue;
    }
    if (repository.startsWith('@') || repository.startsWith('alias:')) {
      problems.push(
        problem(
          `dependency ${dependency.name}: repository ${repository} names a \`helm repo add\` alias; Plumbline has no repository list: write the repository's URL`,
          at('repository'),
        ),
      );
      continue;
    }
    if (repository.startsWith('file://')) {
      if (origin.kind === 'fetched') {
        if (sameName.length === 0)
          problems.push(
            problem(
              `dependency ${dependency.name}: ${repository} is not packaged in the fetched chart's charts/`,
              at('repository'),
            ),
          );
        continue;
      }
      problems.push(
        ...(await copyLocalDependency(
          chartDir,
          origin.dir,
          repository,
          dependency.name,
          sameName,
          state,
          depth,
          problem,
          at('repository'),
        )),
      );
      continue;
    }
    if (!/^(oci|https?):\/\//.test(repository)) {
      problems.push(
        problem(
          `dependency ${dependency.name}: repository ${repository} is not an oci://, https:// or file:// URL`,
          at('repository'),
        ),
      );
      continue;
    }
    const version = pinnedVersion(dependency, repository, index, lock);
    if ('problem' in version) {
      problems.push(problem(version.problem, at('version')));
      continue;
    }
    if (sameName.some((v) => v.version === version.version)) continue;
    if (chart.dependencies.filter((d) => (d as { name?: unknown } | null)?.name === dependency.name).length === 1) {
      for (const stale of sameName) await rm(join(chartDir, 'charts', stale.entry), { recursive: true, force: true });
    }
    const reference = { repository, name: dependency.name, version: version.version };
    const label = `${repository.replace(/\/+$/, '')}/${dependency.name}:${version.version}`;
    const target = join(chartDir, 'charts', `${dependency.name}-${version.version}`);
    if (await exists(target)) continue;
    const fetchProblem = await fetchInto(reference, target, label, { file: chartFile, line: at('version') }, state);
    if (fetchProblem) {
      problems.push(fetchProblem);
      continue;
    }
    problems.push(...(await completeChart(target, label, { kind: 'fetched' }, state, depth + 1)));
  }
  return problems;
}

/** The version to fetch: the lock's when there is a Chart.lock, else the exact version Chart.yaml names. */
function pinnedVersion(
  dependency: { readonly name: string; readonly version?: string | undefined },
  repository: string,
  index: number,
  lock: LockFile | undefined,
): { version: string } | { problem: string } {
  const wanted = (dependency.version ?? '').trim();
  if (lock) {
    const entry =
      lock.dependencies.find((d) => d.name === dependency.name && (d.repository ?? '') === repository) ??
      lock.dependencies[index];
    if (entry === undefined || entry.name !== dependency.name) {
      return {
        problem: `dependency ${dependency.name} is not in Chart.lock: run helm dependency update and commit Chart.lock`,
      };
    }
    if (!EXACT_VERSION.test(entry.version))
      return { problem: `Chart.lock pins ${dependency.name} to ${entry.version}, not an exact version` };
    return { version: entry.version };
  }
  if (!EXACT_VERSION.test(wanted)) {
    const what = wanted === '' ? 'has no version' : `version "${wanted}" is a range`;
    return { problem: `dependency ${dependency.name} ${what}: pin the version or commit Chart.lock` };
  }
  return { version: wanted };
}

/** Pulls one chart and extracts it; a failure is a problem naming where the dependency was declared. */
async function fetchInto(
  reference: ChartReference,
  target: string,
  label: string,
  declared: { file: string; line: number | undefined } | undefined,
  state: ResolveState,
): Promise<ChartProblem | undefined> {
  const where = declared ?? { file: label, line: undefined };
  const subject = `dependency ${reference.name} ${reference.version}`;
  try {
    const chart = await pullChart(reference, state.context);
    if (chart.fetched) state.fetched++;
    const files = readChartArchive(chart.archive);
    const chartYaml = files.find((f) => f.path === 'Chart.yaml');
    const metadata =
      chartYaml === undefined
        ? undefined
        : (parse(chartYaml.data.toString('utf8')) as { name?: unknown; version?: unknown } | null);
    if (
      metadata?.name !== reference.name ||
      String(metadata.version).replace(/^v/, '') !== reference.version.replace(/^v/, '')
    ) {
      return {
        ...where,
        message: `${subject}: the fetched archive (${label}) holds chart ${String(metadata?.name)} ${String(metadata?.version)}`,
        retryable: false,
      };
    }
    await extractChartArchive(chart.archive, target);
    return undefined;
  } catch (error) {
    if (error instanceof ChartFetchError)
      return { ...where, message: `${subject}: ${error.message}`, retryable: error.retryable };
    if (error instanceof ChartArchiveError)
      return { ...where, message: `${subject}: ${label}: ${error.message}`, retryable: false };
    throw error;
  }
}

async function copyLocalDependency(
  chartDir: string,
  originDir: string,
  repository: string,
  name: string,
  sameName: readonly VendoredChart[],
  state: ResolveState,
  depth: number,
  problem: (message: string, line?: number) => ChartProblem,
  line: number | undefined,
): Promise<ChartProblem[]> {
  const path = repository.slice('file://'.length);
  const source = resolve(originDir, path);
  const inside = await insideRoot(source, state.root);
  if (!inside) return [problem(`dependency ${name}: ${repository} leaves the repository (or does not exist)`, line)];
  const display = toPosix(relative(state.root, inside)) || '.';
  for (const stale of sameName) await rm(join(chartDir, 'charts', stale.entry), { recursive: true, force: true });
  const target = join(chartDir, 'charts', name);
  await rm(target, { recursive: true, force: true });
  const copyProblems = await copyChartFolder(inside, target, state.root, display);
  if (copyProblems.length > 0) return copyProblems;
  return completeChart(target, display, { kind: 'repository', dir: inside }, state, depth + 1);
}

async function readChartYaml(chartDir: string, file: string): Promise<ChartYaml | { problem: ChartProblem }> {
  const text = await readFile(join(chartDir, 'Chart.yaml'), 'utf8').catch(() => undefined);
  if (text === undefined)
    return { problem: { file, line: undefined, message: 'no Chart.yaml: not a chart', retryable: false } };
  const lineCounter = new LineCounter();
  const document = parseDocument(text, { lineCounter, prettyErrors: false });
  const [error] = document.errors;
  if (error) {
    return {
      problem: {
        file,
        line: lineCounter.linePos(error.pos[0]).line,
        message: `invalid YAML: ${error.message.split('\n')[0]}`,
        retryable: false,
      },
    };
  }
  const value = document.toJS() as { name?: unknown; version?: unknown; dependencies?: unknown } | null;
  const lineOf = (path: readonly (string | number)[]) => {
    const node = document.getIn(path, true);
    const offset = isNode(node) ? node.range?.[0] : undefined;
    return offset === undefined ? undefined : lineCounter.linePos(offset).line;
  };
  const dependencies = value?.dependencies ?? [];
  if (!Array.isArray(dependencies)) {
    return {
      problem: { file, line: lineOf(['dependencies']), message: 'dependencies must be a list', retryable: false },
    };
  }
  return {
    name: typeof value?.name === 'string' ? value.name : undefined,
    version: typeof value?.version === 'string' ? value.version : undefined,
    dependencies,
    lineOf,
  };
}

interface LockFile {
  readonly dependencies: readonly {
    readonly name: string;
    readonly version: string;
    readonly repository?: string | undefined;
  }[];
}

/** Chart.lock, when committed, checked against Chart.yaml the way `helm dependency build` checks it. */
async function readLock(
  chartDir: string,
  file: string,
  chart: ChartYaml,
): Promise<LockFile | { problem: ChartProblem } | undefined> {
  const text = await readFile(join(chartDir, 'Chart.lock'), 'utf8').catch(() => undefined);
  if (text === undefined) return undefined;
  let value: unknown;
  try {
    value = parse(text);
  } catch (error) {
    return {
      problem: {
        file,
        line: undefined,
        message: `invalid YAML: ${(error as Error).message.split('\n')[0]}`,
        retryable: false,
      },
    };
  }
  const parsed = lockSchema.safeParse(value);
  if (!parsed.success)
    return {
      problem: { file, line: undefined, message: 'not a Chart.lock (digest and dependencies)', retryable: false },
    };
  const locked = (value as { dependencies?: unknown[] | null }).dependencies ?? undefined;
  const expected = helmLockDigest(chart.dependencies, locked);
  if (parsed.data.digest !== expected) {
    return {
      problem: {
        file,
        line: undefined,
        message: `Chart.lock is out of sync with Chart.yaml (its digest ${parsed.data.digest} is not ${expected}): run helm dependency update and commit Chart.lock`,
        retryable: false,
      },
    };
  }
  return { dependencies: parsed.data.dependencies ?? [] };
}

interface VendoredChart {
  /** The entry in `charts/` (folder or .tgz). */
  readonly entry: string;
  readonly name: string;
  readonly version: string;
}

/** The charts already in a chart's `charts/` (folders and .tgz archives), by their own Chart.yaml. */
async function listVendored(chartsDir: string): Promise<VendoredChart[]> {
  const entries = await readdir(chartsDir, { withFileTypes: true }).catch(() => []);
  const found: VendoredChart[] = [];
  for (const entry of entries) {
    let text: string | undefined;
    if (entry.isDirectory())
      text = await readFile(join(chartsDir, entry.name, 'Chart.yaml'), 'utf8').catch(() => undefined);
    else if (entry.isFile() && entry.name.endsWith('.tgz')) {
      const archive = await readFile(join(chartsDir, entry.name));
      try {
        text = readChartArchive(archive)
          .find((f) => f.path === 'Chart.yaml')
          ?.data.toString('utf8');
      } catch {
        text = undefined;
      }
    }
    if (text === undefined) continue;
    try {
      const metadata = parse(text) as { name?: unknown; version?: unknown } | null;
      if (typeof metadata?.name === 'string')
        found.push({ entry: entry.name, name: metadata.name, version: String(metadata.version) });
    } catch {
      // not a chart: Helm will say so
    }
  }
  return found;
}

/**
 * Copies a chart folder; a symbolic link is copied as what it points to when that stays inside the
 * repository, and is a problem when it leaves it (its target would be rendered from the host).
 */
async function copyChartFolder(from: string, to: string, root: string, display: string): Promise<ChartProblem[]> {
  await mkdir(to, { recursive: true });
  const problems: ChartProblem[] = [];
  for (const entry of await readdir(from, { withFileTypes: true })) {
    const source = join(from, entry.name);
    const target = join(to, entry.name);
    let real = source;
    if (entry.isSymbolicLink()) {
      const inside = await insideRoot(source, root);
      if (!inside) {
        problems.push({
          file: `${display}/${entry.name}`,
          line: undefined,
          message: 'a symbolic link that leaves the repository',
          retryable: false,
        });
        continue;
      }
      real = inside;
    }
    const info = await stat(real);
    if (info.isDirectory()) problems.push(...(await copyChartFolder(real, target, root, `${display}/${entry.name}`)));
    else if (info.isFile()) await copyFile(real, target);
  }
  return problems;
}

/** The real path of `path` when it exists inside `root`; undefined otherwise. */
async function insideRoot(path: string, root: string): Promise<string | undefined> {
  const real = await realpath(path).catch(() => undefined);
  if (real === undefined) return undefined;
  return real === root || real.startsWith(`${root}${sep}`) ? real : undefined;
}

async function exists(path: string): Promise<boolean> {
  return lstat(path).then(
    () => true,
    () => false,
  );
}

function toPosix(path: string): string {
  return path.split(sep).join('/');
}

function failed(problems: readonly ChartProblem[]): ResolvedChart {
  return { ok: false, problems };
}
