import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, posix } from 'node:path';
import { fsTreeReader } from '../source/tree-reader.ts';
import { formatBytes } from '../support/run-command.ts';
import { classifyHook } from './chart-hooks.ts';
import { type ChartLayout, chartFileOf, checkChartFiles, readChartLayout } from './chart-layout.ts';
import { helmErrorProblem } from './helm-error.ts';
import type { ChartHook, ManifestProblem, RenderedObject, SourceLocation } from './manifest.ts';
import { objectRef } from './manifest.ts';
import { parseManifestsOffThread } from './parse-manifests-off-thread.ts';
import { runHelm } from './run-helm.ts';
import type { NetworkSandbox } from './sandboxed-command.ts';

export interface ChartRenderInput {
  /** The exported commit. */
  readonly treeDir: string;
  /** Repository-relative folder of the chart (its dependencies already in charts/). */
  readonly chartPath: string;
  readonly releaseName: string;
  /** The release namespace (`.Release.Namespace`). */
  readonly namespace: string;
  /** Repository-relative, layered in order over the chart's values.yaml. */
  readonly valuesFiles: readonly string[];
  /** Layered last. */
  readonly valuesInline?: Readonly<Record<string, unknown>> | undefined;
  /** From the target cluster's discovery: `.Capabilities.KubeVersion` and `.Capabilities.APIVersions`. */
  readonly capabilities: { readonly kubeVersion: string; readonly apiVersions: readonly string[] };
  /** The helm binary. */
  readonly helm: string;
  /** Output limit (PLUMBLINE_RENDER_MAX_BYTES); also the largest file of the chart or values file accepted. */
  readonly maxBytes: number;
  /** Default 120 s. */
  readonly timeoutMs?: number | undefined;
  /**
   * Folders outside the tree that links below the chart may lead into (say, a machine-wide cache of fetched
   * dependencies linked into `charts/`). Any other link out of the repository is refused. Default: none.
   */
  readonly trustedDirs?: readonly string[] | undefined;
  /** Default: what resolveNetworkSandbox finds. */
  readonly sandbox?: NetworkSandbox | undefined;
}

export type ChartRender =
  | {
      readonly ok: true;
      readonly objects: readonly ChartObject[];
      /** What was rendered and left out, for people to know (a hook of a deletion, which never runs). */
      readonly notices: readonly ManifestProblem[];
    }
  | {
      readonly ok: false;
      readonly problems: readonly ManifestProblem[];
      /** The render may succeed when tried again (helm timed out): not to be cached. */
      readonly transient?: true;
    };

export interface ChartObject extends RenderedObject {
  /** From a chart's `crds/` folder: applied in the first stage, never templated. */
  readonly crd: boolean;
  readonly hook?: ChartHook | undefined;
}

const DEFAULT_TIMEOUT_MS = 120_000;

/**
 * Renders one chart of an exported commit as `helm template` does — subcharts and their values, library
 * charts, `.Files`, `crds/` (`--include-crds`), `.Capabilities` of the target cluster (`--kube-version`,
 * `--api-versions`, on top of the built-in versions helm always reports), `.Release.Namespace` — with the
 * real helm, sandboxed like kustomize. Values: the chart's values.yaml, then each values file, then
 * `valuesInline`. What `helm template` cannot know it does not pretend to: `lookup` returns nothing (no
 * cluster is reachable), and `getHostByName` returns an empty string (DNS stays off).
 *
 * The objects come back as rendered, namespace included or not (the caller knows from discovery which
 * kinds are namespaced), each with the repository file of its template (no line: a rendered line is not a
 * template line; CRDs of `crds/`, which are not templated, keep theirs). `*List` documents are flattened.
 * Test hooks are dropped; install and upgrade hooks are kept with their phases, weight and delete
 * policies; hooks of deletion or rollback are a problem. Problems are values; a missing helm is thrown.
 */
export async function renderChart(input: ChartRenderInput): Promise<ChartRender> {
  const checked = await checkInput(input);
  if (!checked.ok) return checked;
  const layout = await readChartLayout(input.treeDir, checked.chartPath);
  const fileProblems = await checkChartFiles(input.treeDir, checked.chartPath, input.maxBytes, input.trustedDirs);
  if (fileProblems.length > 0) return { ok: false, problems: fileProblems };
  const scratch = await mkdtemp(join(tmpdir(), 'plumbline-values-'));
  try {
    const inline = join(scratch, 'values-inline.yaml');
    if (input.valuesInline !== undefined) await writeFile(inline, JSON.stringify(input.valuesInline));
    const args = templateArgs(input, checked, input.valuesInline === undefined ? undefined : inline);
    const run = await runHelm(args, {
      helm: input.helm,
      cwd: input.treeDir,
      timeoutMs: input.timeoutMs ?? DEFAULT_TIMEOUT_MS,
      maxOutputBytes: input.maxBytes,
      ...(input.sandbox ? { sandbox: input.sandbox } : {}),
    });
    const chartYaml = { file: `${checked.chartPath}/Chart.yaml` };
    if (!run.ok) {
      if (run.reason === 'too-large') {
        const message = `the render of chart ${checked.chartPath} is larger than the limit of ${formatBytes(input.maxBytes)} (PLUMBLINE_RENDER_MAX_BYTES): nothing is applied`;
        return { ok: false, problems: [{ message, source: chartYaml }] };
      }
      if (run.reason === 'timeout')
        return { ok: false, problems: [{ message: run.stderr, source: chartYaml }], transient: true };
      const paths = [
        { path: inline, as: 'valuesInline' },
        { path: scratch, as: '' },
        { path: input.treeDir, as: '' },
      ];
      return {
        ok: false,
        problems: [helmErrorProblem(run.stderr, { chartPath: checked.chartPath, layout, paths })],
      };
    }
    return await chartObjects(run.output, checked.chartPath, layout);
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
}

type Checked =
  | { readonly ok: true; readonly chartPath: string; readonly valuesFiles: readonly string[] }
  | { readonly ok: false; readonly problems: readonly ManifestProblem[] };

/** A repository path as given (`./a/b/`, `a//b`) in one spelling; undefined when it leaves the repository. */
function repositoryPath(path: string): string | undefined {
  const normal = posix.normalize(path).replace(/\/+$/, '');
  if (posix.isAbsolute(normal) || normal === '..' || normal.startsWith('../')) return undefined;
  return normal === '.' ? '' : normal;
}

/**
 * The chart folder and the values files must be in the repository (links followed, never out of it), and
 * no values file larger than the render limit. helm is given them by their real paths, so it never
 * mistakes a folder for a repository chart's name.
 */
async function checkInput(input: ChartRenderInput): Promise<Checked> {
  const tree = fsTreeReader(input.treeDir);
  const given = repositoryPath(input.chartPath);
  const chartPath = given === undefined ? undefined : await tree.realPath?.(given);
  if (chartPath === undefined || !(await tree.isDirectory(chartPath))) {
    return {
      ok: false,
      problems: [
        {
          message: `chart folder ${input.chartPath} is not a folder of this commit`,
          source: { file: input.chartPath },
        },
      ],
    };
  }
  if ((await tree.fileSize?.(`${chartPath}/Chart.yaml`)) === undefined) {
    return {
      ok: false,
      problems: [{ message: `${chartPath} is not a chart: it has no Chart.yaml`, source: { file: chartPath } }],
    };
  }
  const problems: ManifestProblem[] = [];
  const valuesFiles: string[] = [];
  for (const file of input.valuesFiles) {
    const normal = repositoryPath(file);
    const real = normal === undefined ? undefined : await tree.realPath?.(normal);
    const size = real === undefined ? undefined : await tree.fileSize?.(real);
    if (real === undefined || size === undefined) {
      problems.push({ message: `values file ${file} is not a file of this commit`, source: { file } });
    } else if (size > input.maxBytes) {
      problems.push({
        message: `values file ${file} is larger than the render limit of ${formatBytes(input.maxBytes)} (PLUMBLINE_RENDER_MAX_BYTES)`,
        source: { file },
      });
    } else valuesFiles.push(real);
  }
  return problems.length > 0 ? { ok: false, problems } : { ok: true, chartPath, valuesFiles };
}

/**
 * `helm template` with every flag in its `--flag=value` form and the release and chart after `--`: no
 * value — a namespace, a values file's name — can ever be read as a flag. No `--repo`, no
 * `--dependency-update`, no `--enable-dns`, no `--post-renderer`: nothing that fetches or runs more.
 */
function templateArgs(
  input: ChartRenderInput,
  checked: { readonly chartPath: string; readonly valuesFiles: readonly string[] },
  inlineFile: string | undefined,
): string[] {
  return [
    'template',
    `--namespace=${input.namespace}`,
    '--include-crds',
    `--kube-version=${input.capabilities.kubeVersion}`,
    ...input.capabilities.apiVersions.map((version) => `--api-versions=${version}`),
    ...checked.valuesFiles.map((file) => `--values=${join(input.treeDir, file)}`),
    ...(inlineFile === undefined ? [] : [`--values=${inlineFile}`]),
    '--',
    input.releaseName,
    join(input.treeDir, checked.chartPath || '.'),
  ];
}

/** Each document helm prints follows `---` and `# Source: <chart>/<path>`: where it starts, and the path. */
interface OutputChunk {
  /** 1-based line of the `# Source:` comment. */
  readonly line: number;
  readonly helmPath: string;
}

/**
 * The `# Source:` comments of helm's output, in order. helm splits every rendered file at each `---` and
 * prints the pieces after its own `---` and comment, so a `---` followed by `# Source:` is always helm's.
 */
export function helmOutputChunks(output: string): OutputChunk[] {
  const chunks: OutputChunk[] = [];
  const comment = /^---[ \t]*\n# Source: (.+)$/gm;
  let line = 1;
  let counted = 0;
  for (let match = comment.exec(output); match !== null; match = comment.exec(output)) {
    for (let at = output.indexOf('\n', counted); at !== -1 && at < match.index; at = output.indexOf('\n', at + 1)) {
      line += 1;
      counted = at + 1;
    }
    chunks.push({ line: line + 1, helmPath: (match[1] ?? '').trim() });
  }
  return chunks;
}

/** The chunk a line of the output belongs to: the last `# Source:` above it. */
function chunkAt(chunks: readonly OutputChunk[], line: number): OutputChunk | undefined {
  let low = 0;
  let high = chunks.length - 1;
  let found: OutputChunk | undefined;
  while (low <= high) {
    const middle = (low + high) >> 1;
    const chunk = chunks[middle];
    if (chunk === undefined) break;
    if (chunk.line < line) {
      found = chunk;
      low = middle + 1;
    } else high = middle - 1;
  }
  return found;
}

async function chartObjects(output: string, chartPath: string, layout: ChartLayout | undefined): Promise<ChartRender> {
  const chunks = helmOutputChunks(output);
  // One parse of the whole output (off the event loop when large); the line of each document tells its chunk.
  const parsed = await parseManifestsOffThread(output, chartPath);
  const where = (source: SourceLocation | undefined): { source: SourceLocation; crd: boolean } => {
    const chunk = source?.line === undefined ? undefined : chunkAt(chunks, source.line);
    if (!chunk || source?.line === undefined) return { source: { file: `${chartPath}/Chart.yaml` }, crd: false };
    const mapped = layout
      ? chartFileOf(layout, chunk.helmPath)
      : { file: `${chartPath}/${chunk.helmPath.split('/').slice(1).join('/')}`, crd: false };
    // A file of crds/ is printed as it is: its lines are the file's lines.
    const line = source.line - chunk.line;
    return { source: mapped.crd ? { file: mapped.file, line } : { file: mapped.file }, crd: mapped.crd };
  };
  const problems: ManifestProblem[] = parsed.problems.map((problem) => ({
    ...problem,
    source: where(problem.source).source,
  }));
  const objects: ChartObject[] = [];
  const notices: ManifestProblem[] = [];
  for (const object of parsed.objects) {
    const { source, crd } = where(object.source);
    const hook = classifyHook(object.manifest);
    if (hook.kind === 'test') continue;
    if (hook.kind === 'never-run') {
      const ref = objectRef(object.manifest);
      notices.push({
        message: `${ref}: a ${hook.phases.join(', ')} hook never runs: Plumbline never deletes or rolls back a release (left out)`,
        source,
        object: ref,
      });
      continue;
    }
    objects.push({ manifest: object.manifest, source, crd, ...(hook.kind === 'hook' ? { hook: hook.hook } : {}) });
  }
  return problems.length > 0 ? { ok: false, problems } : { ok: true, objects, notices };
}
