import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { MAX_APPS_FILE_BYTES } from '../apps/apps-file.ts';
import { appsFileOf } from '../source/cluster-inputs.ts';
import {
  collectRenderInputs,
  type ForbiddenReference,
  KUSTOMIZATION_FILES,
  normalizeFolder,
  type RenderInputs,
  type TreeReader,
} from '../source/render-inputs.ts';
import { fsTreeReader } from '../source/tree-reader.ts';
import { formatBytes } from '../support/run-command.ts';
import { prepareKustomizeHelmCharts } from './kustomize-helm-charts.ts';
import type { ManifestProblem, RenderedApp, RenderedObject, SourceLocation } from './manifest.ts';
import { findDuplicates } from './parse-manifests.ts';
import { parseManifestsOffThread } from './parse-manifests-off-thread.ts';
import { type AppRenderCache, type ChartSupport, renderApps, type TargetCluster } from './render-apps.ts';
import { type KustomizeCommand, runKustomize } from './run-kustomize.ts';

export {
  cleanKustomizeError,
  KUBECTL_KUSTOMIZE,
  type KustomizeCommand,
  resolveKustomize,
  STANDALONE_KUSTOMIZE,
} from './run-kustomize.ts';

export type RenderResult =
  | {
      readonly ok: true;
      readonly objects: readonly RenderedObject[];
      readonly renderer: 'kustomize' | 'plain' | 'apps';
      /** The apps of the cluster's plumbline.yaml, in its order; absent for a folder without one. */
      readonly apps?: readonly RenderedApp[] | undefined;
      /** What the render left out, for people to know (a chart hook that never runs). */
      readonly notices?: readonly ManifestProblem[] | undefined;
    }
  | {
      readonly ok: false;
      readonly problems: readonly ManifestProblem[];
      /** The render may succeed when tried again (it timed out): not to be cached. */
      readonly transient?: true;
    };

/**
 * A render that could not finish for a reason outside the commit (a chart source answering 5xx or timing
 * out, a render timeout): thrown by the worker so that the job is retried, and reported as infrastructure
 * (`error`) when the retries run out — not as the commit's fault.
 */
export class RenderUnavailableError extends Error {
  override readonly name = 'RenderUnavailableError';
  constructor(readonly problems: readonly ManifestProblem[]) {
    super(`render unavailable: ${problems.map((p) => p.message).join('; ')}`);
  }
}

/** `PLUMBLINE_RENDER_MAX_BYTES`' default. */
export const DEFAULT_RENDER_MAX_BYTES = 64 * 1024 * 1024;

export interface RenderOptions {
  readonly kustomize: KustomizeCommand;
  readonly timeoutMs: number;
  /**
   * Largest render accepted, in bytes: kustomize's output, a plain folder's files together, any one
   * file kustomize reads. Larger fails the cluster, naming the limit. Default 64 MiB.
   */
  readonly maxOutputBytes?: number;
  /** Helm and the chart fetcher; without them a plumbline.yaml naming a chart fails to render. */
  readonly charts?: ChartSupport | undefined;
  /** Renders of single apps, reused while nothing an app reads changes. */
  readonly appCache?: AppRenderCache | undefined;
}

const MANIFEST_FILE = /\.(ya?ml|json)$/i;
const KUSTOMIZATION_FILE = /(^|\/)(kustomization\.ya?ml|Kustomization)$/;

/**
 * Renders one cluster folder of an exported commit. A folder with a kustomization is built by the real
 * kustomize — after every file it will read, at any depth, was found, checked to be a file of the
 * repository and checked for alias bombs; then without a network, without a shell, with a timeout and a
 * bound on its output. A folder without one is plain YAML, read recursively. Problems are values.
 */
export async function renderCluster(
  treeDir: string,
  clusterPath: string,
  options: RenderOptions,
  target?: TargetCluster,
): Promise<RenderResult> {
  const tree = fsTreeReader(treeDir);
  if (!(await tree.isDirectory(clusterPath))) {
    return {
      ok: false,
      problems: [{ message: `cluster folder ${clusterPath} does not exist in this commit`, source: undefined }],
    };
  }
  const appsFile = appsFileOf(clusterPath);
  const appsText = await readAppsFile(tree, appsFile);
  if (appsText === undefined) return renderFolder(treeDir, clusterPath, options);
  if (typeof appsText !== 'string') return { ok: false, problems: [appsText] };
  const rendered = await renderApps(treeDir, appsFile, appsText, target, {
    charts: options.charts,
    appCache: options.appCache,
    maxBytes: options.maxOutputBytes ?? DEFAULT_RENDER_MAX_BYTES,
    renderFolder: async (dir, folder) => {
      const render = await renderFolder(dir, folder, options);
      return render.ok ? { ok: true, objects: render.objects, fetched: 0 } : render;
    },
  });
  if (!rendered.ok) return rendered;
  const { objects, apps, notices } = rendered;
  return { ok: true, objects, renderer: 'apps', apps, ...(notices.length > 0 ? { notices } : {}) };
}

/** The apps file's text; undefined when there is none; a problem when it is too large to parse. */
async function readAppsFile(tree: TreeReader, file: string): Promise<string | ManifestProblem | undefined> {
  const size = await tree.fileSize?.(file);
  if (size === undefined && tree.fileSize) return undefined;
  if (size !== undefined && size > MAX_APPS_FILE_BYTES)
    return { message: `${file} is larger than ${formatBytes(MAX_APPS_FILE_BYTES)}`, source: { file } };
  return tree.readText(file);
}

/** A kustomize or plain-YAML folder: a cluster folder without apps, or a path app. */
async function renderFolder(treeDir: string, clusterPath: string, options: RenderOptions): Promise<RenderResult> {
  const maxBytes = options.maxOutputBytes ?? DEFAULT_RENDER_MAX_BYTES;
  const tree = fsTreeReader(treeDir);
  if (!(await tree.isDirectory(clusterPath))) {
    return {
      ok: false,
      problems: [{ message: `folder ${clusterPath} does not exist in this commit`, source: { file: clusterPath } }],
    };
  }
  const inputs = await collectRenderInputs(tree, clusterPath);
  if (inputs.forbidden.length > 0) return { ok: false, problems: inputs.forbidden.map(forbiddenProblem) };
  const folder = normalizeFolder(clusterPath);
  const kustomization = KUSTOMIZATION_FILES.map((name) => (folder ? `${folder}/${name}` : name)).find((path) =>
    inputs.files.has(path),
  );
  const parsed =
    kustomization === undefined
      ? await readPlainFolder(treeDir, folder, maxBytes)
      : await buildKustomization(treeDir, folder, kustomization, inputs, { ...options, maxOutputBytes: maxBytes });
  if (!parsed.ok) return parsed;
  const problems = [...parsed.problems, ...findDuplicates(parsed.objects)];
  if (problems.length > 0) return { ok: false, problems };
  return { ok: true, objects: parsed.objects, renderer: kustomization === undefined ? 'plain' : 'kustomize' };
}

type Parsed =
  | { readonly ok: true; readonly objects: RenderedObject[]; readonly problems: ManifestProblem[] }
  | { readonly ok: false; readonly problems: ManifestProblem[]; readonly transient?: true };

function forbiddenProblem(f: ForbiddenReference): ManifestProblem {
  const messages: Record<ForbiddenReference['reason'], string> = {
    remote: `remote base ${f.reference} is not allowed: vendor it into the repository`,
    'remote-file': `remote file ${f.reference} is not allowed: vendor it into the repository`,
    'outside-repository': `${f.reference} leaves the repository`,
    'not-in-repository': `${f.reference} is not a file or folder inside the repository (missing, a link out of it, or remote)`,
    'not-a-path': `${f.reference} is not a path: a path field must hold a string`,
    unreadable: `cannot be checked before kustomize runs: ${f.reference}`,
    'rewrites-plugin-configs': `${f.reference} is not allowed in a folder of generator or transformer configs: it could rewrite them after they were checked`,
  };
  return {
    message: messages[f.reason],
    source: f.line === undefined ? { file: f.file } : { file: f.file, line: f.line },
  };
}

const tooLarge = (folder: string, maxBytes: number) =>
  `the render of ${folder || '.'} is larger than the limit of ${formatBytes(maxBytes)} (PLUMBLINE_RENDER_MAX_BYTES): nothing is applied`;

async function buildKustomization(
  treeDir: string,
  folder: string,
  kustomization: string,
  inputs: RenderInputs,
  options: RenderOptions & { readonly maxOutputBytes: number },
): Promise<Parsed> {
  const tree = fsTreeReader(treeDir);
  // A file kustomize reads that is larger than the render limit is refused unread.
  for (const file of [...inputs.files].sort()) {
    const size = await fileSize(tree, file);
    if (size > options.maxOutputBytes) {
      const message = `${file} is larger than the render limit of ${formatBytes(options.maxOutputBytes)} (PLUMBLINE_RENDER_MAX_BYTES): nothing is applied`;
      return { ok: false, problems: [{ message, source: { file } }] };
    }
  }
  const checked = await checkInputs(tree, inputs);
  if (checked.bombs.length > 0) return { ok: false, problems: checked.bombs };
  const source = { file: kustomization };
  // helmCharts: each chart fetched (policy, address wall, cache) into the tree where kustomize looks, or vendored.
  const charts = await prepareKustomizeHelmCharts({
    treeDir,
    kustomizations: [...inputs.files].filter((file) => KUSTOMIZATION_FILE.test(file)),
    context: options.charts?.fetch,
    maxBytes: options.maxOutputBytes,
  });
  if (!charts.ok) {
    return { ok: false, problems: [...charts.problems], ...(charts.transient ? { transient: true as const } : {}) };
  }
  if (charts.usesHelm && !options.charts) {
    const message = `${kustomization} inflates Helm charts (helmCharts), and this worker has no Helm configured (PLUMBLINE_HELM)`;
    return { ok: false, problems: [{ message, source }] };
  }
  const helm = charts.usesHelm && options.charts ? { command: options.charts.helm, charts: charts.charts } : undefined;
  const run = await runKustomize(treeDir, folder, { ...options, helm });
  if (!run.ok) {
    if (run.reason === 'too-large') {
      return { ok: false, problems: [{ message: tooLarge(folder, options.maxOutputBytes), source }] };
    }
    if (run.reason === 'timeout') return { ok: false, problems: [{ message: run.message, source }], transient: true };
    return { ok: false, problems: [{ message: `kustomize build failed: ${run.message}`, source }] };
  }
  const parsed = await parseManifestsOffThread(run.output, undefined);
  return { ok: true, objects: attachSources(parsed.objects, checked.declared), problems: parsed.problems };
}

/**
 * Parses every input kustomize will parse as YAML (off the event loop when large), once:
 * - kustomize expands YAML aliases without a limit, so a "billion laughs" file — a resource, a patch a
 *   transformer config names, whatever its extension — is refused here before kustomize sees it;
 * - kustomize's output has no file names, so the kind and name each manifest declares are kept, for
 *   objects to be traced back to the file (and line) a person edits.
 */
async function checkInputs(
  tree: TreeReader,
  inputs: RenderInputs,
): Promise<{ bombs: ManifestProblem[]; declared: Map<string, SourceLocation> }> {
  const bombs: ManifestProblem[] = [];
  const declared = new Map<string, SourceLocation>();
  // Files listed as resources declare objects; patches only mention them, so they come last.
  const files = new Set([...inputs.resources, ...inputs.parsed, ...inputs.files]);
  for (const file of files) {
    const traced = MANIFEST_FILE.test(file) && !KUSTOMIZATION_FILE.test(file);
    if (!traced && !inputs.parsed.has(file)) continue;
    const text = await tree.readText(file);
    if (text === undefined || (!traced && !text.includes('*'))) continue;
    const result = await parseManifestsOffThread(text, file);
    bombs.push(...result.problems.filter((p) => /alias/i.test(p.message)));
    if (!traced) continue;
    for (const { manifest, source } of result.objects) {
      const key = `${manifest.kind}|${manifest.metadata.name}`;
      if (source && !declared.has(key)) declared.set(key, source);
    }
  }
  return { bombs, declared };
}

/** Objects kustomize generates or renames keep no source. */
function attachSources(objects: RenderedObject[], declared: ReadonlyMap<string, SourceLocation>): RenderedObject[] {
  return objects.map((object) => {
    const source = declared.get(`${object.manifest.kind}|${object.manifest.metadata.name}`);
    return source && !object.source ? { ...object, source } : object;
  });
}

/** Size of a file of the tree (0 for one that is not: the walk has refused those already). */
async function fileSize(tree: TreeReader, file: string): Promise<number> {
  return (await tree.fileSize?.(file)) ?? 0;
}

/**
 * Every *.yaml, *.yml and *.json below the folder, in a stable order (the convention Flux uses), up to
 * the render limit for all of them together.
 */
async function readPlainFolder(treeDir: string, folder: string, maxBytes: number): Promise<Parsed> {
  const files = (await listFiles(join(treeDir, folder), folder)).filter((f) => MANIFEST_FILE.test(f)).sort();
  const objects: RenderedObject[] = [];
  const problems: ManifestProblem[] = [];
  const tree = fsTreeReader(treeDir);
  let total = 0;
  for (const file of files) {
    total += await fileSize(tree, file);
    if (total > maxBytes) return { ok: false, problems: [{ message: tooLarge(folder, maxBytes), source: { file } }] };
  }
  for (const file of files) {
    const text = await tree.readText(file);
    if (text === undefined) {
      problems.push({ message: `${file} points outside the repository`, source: { file } });
      continue;
    }
    const result = await parseManifestsOffThread(text, file);
    objects.push(...result.objects);
    problems.push(...result.problems);
  }
  return { ok: true, objects, problems };
}

async function listFiles(dir: string, relative: string): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true });
  const nested = await Promise.all(
    entries.map(async (entry) => {
      const path = relative ? `${relative}/${entry.name}` : entry.name;
      if (entry.isDirectory()) return listFiles(join(dir, entry.name), path);
      return entry.isFile() || entry.isSymbolicLink() ? [path] : [];
    }),
  );
  return nested.flat();
}
