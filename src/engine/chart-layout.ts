import type { Dirent } from 'node:fs';
import { lstat, readdir, readFile, realpath, stat } from 'node:fs/promises';
import { join, relative, sep } from 'node:path';
import { parse } from 'yaml';
import { z } from 'zod';
import { formatBytes } from '../support/run-command.ts';
import type { ManifestProblem } from './manifest.ts';

/** A chart as helm names it in its output, mapped to where it lives in the repository. */
export interface ChartNode {
  /** Repository path of the chart's folder — or of its archive, for a packaged subchart. */
  readonly folder: string;
  readonly archive: boolean;
  /** Subcharts by the name helm prints in `charts/<name>/`: the dependency's alias, or its name. */
  readonly subcharts: ReadonlyMap<string, ChartNode>;
}

export interface ChartLayout {
  /** The chart's own name (Chart.yaml `name`): the first segment of every path helm prints. */
  readonly name: string;
  readonly root: ChartNode;
  /** Line of `kubeVersion:` in the chart's Chart.yaml, for the problem when the cluster does not meet it. */
  readonly kubeVersionLine?: number | undefined;
}

/** Only what mapping needs; helm validates the rest and says what is wrong. */
const chartYamlSchema = z.looseObject({
  name: z.string().min(1),
  dependencies: z
    .array(z.looseObject({ name: z.string().min(1), alias: z.string().min(1).optional().nullable() }))
    .optional()
    .nullable(),
});

/** `redis-17.3.1.tgz` → `redis` (helm names a packaged chart `<name>-<version>.tgz`). */
const ARCHIVE = /^(.+?)-v?\d+\.\d+\.\d+[^/]*\.tgz$/;

/**
 * Reads how a chart folder and its subcharts (folders and archives in `charts/`, at any depth, with the
 * aliases their parents give them) are laid out, so that every path helm prints can be turned into the
 * repository path a person edits. Undefined when the folder has no readable Chart.yaml with a name.
 */
export async function readChartLayout(treeDir: string, chartPath: string): Promise<ChartLayout | undefined> {
  const text = await readFile(join(treeDir, chartPath, 'Chart.yaml'), 'utf8').catch(() => undefined);
  const chart = text === undefined ? undefined : readChartYaml(text);
  if (!chart || text === undefined) return undefined;
  const kubeVersionLine = text.split('\n').findIndex((line) => /^kubeVersion\s*:/.test(line));
  return {
    name: chart.name,
    root: await readNode(treeDir, chartPath, chart, 0),
    kubeVersionLine: kubeVersionLine < 0 ? undefined : kubeVersionLine + 1,
  };
}

function readChartYaml(text: string): z.infer<typeof chartYamlSchema> | undefined {
  try {
    const parsed = chartYamlSchema.safeParse(parse(text, { maxAliasCount: 100 }));
    return parsed.success ? parsed.data : undefined;
  } catch {
    return undefined;
  }
}

/** Subcharts nest a few levels in real charts; the bound only stops a pathological tree. */
const MAX_DEPTH = 16;

async function readNode(
  treeDir: string,
  folder: string,
  chart: z.infer<typeof chartYamlSchema>,
  depth: number,
): Promise<ChartNode> {
  const subcharts = new Map<string, ChartNode>();
  const entries =
    depth >= MAX_DEPTH
      ? []
      : await readdir(join(treeDir, folder, 'charts'), { withFileTypes: true }).catch(() => [] as Dirent[]);
  for (const entry of entries.sort((a, b) => a.name.localeCompare(b.name))) {
    if (/^[._]/.test(entry.name)) continue; // helm ignores these
    const path = `${folder}/charts/${entry.name}`;
    const archive = ARCHIVE.exec(entry.name);
    if (archive?.[1] !== undefined) {
      subcharts.set(archive[1], { folder: path, archive: true, subcharts: new Map() });
      continue;
    }
    const text = await readFile(join(treeDir, path, 'Chart.yaml'), 'utf8').catch(() => undefined);
    const sub = text === undefined ? undefined : readChartYaml(text);
    if (sub) subcharts.set(sub.name, await readNode(treeDir, path, sub, depth + 1));
  }
  for (const dependency of chart.dependencies ?? []) {
    const target = subcharts.get(dependency.name);
    if (dependency.alias && target) subcharts.set(dependency.alias, target);
  }
  return { folder, archive: false, subcharts };
}

/**
 * The repository file of a path helm prints (`<chart>/templates/x.yaml`, `<chart>/charts/<sub>/crds/y.yaml`):
 * the chart folder joined with the rest, through every subchart. A template inside a packaged subchart
 * maps to the archive. `crd` tells whether the file is in a chart's `crds/` folder.
 */
export function chartFileOf(layout: ChartLayout, helmPath: string): { readonly file: string; readonly crd: boolean } {
  const parts = helmPath.split('/').slice(1);
  let node = layout.root;
  while (parts[0] === 'charts' && parts.length > 2) {
    const next = node.subcharts.get(parts[1] ?? '');
    if (next === undefined) break;
    parts.splice(0, 2);
    node = next;
    if (node.archive) return { file: node.folder, crd: withinCrds(parts) };
  }
  return { file: [node.folder, ...parts].filter((p) => p !== '').join('/'), crd: withinCrds(parts) };
}

/** After the chain of `charts/<sub>/`, does the path start with `crds/`? */
function withinCrds(parts: readonly string[]): boolean {
  let rest = parts;
  while (rest[0] === 'charts' && rest.length > 2) rest = rest.slice(2);
  return rest[0] === 'crds' && rest.length > 1;
}

/**
 * Helm follows symbolic links when it loads a chart folder, and `.Files.Get` prints what it reads: a link
 * out of the repository (to the worker's service-account token, say) would put the worker's own files in
 * the rendered objects. Every link below the chart must resolve inside the repository, and no file may
 * be larger than the render limit (helm reads all of them into memory). `trustedDirs` are folders of the
 * machine links may lead into as well (a cache of fetched charts linked into `charts/`).
 */
export async function checkChartFiles(
  treeDir: string,
  chartPath: string,
  maxBytes: number,
  trustedDirs: readonly string[] = [],
): Promise<ManifestProblem[]> {
  const roots = await Promise.all([treeDir, ...trustedDirs].map((dir) => realpath(dir).catch(() => undefined)));
  const problems: ManifestProblem[] = [];
  const visited = new Set<string>();
  const within = (root: string, real: string) => {
    const rel = relative(root, real);
    return rel === '' || (rel !== '..' && !rel.startsWith(`..${sep}`) && !rel.startsWith(sep));
  };
  const inside = (real: string) => roots.some((root) => root !== undefined && within(root, real));
  const walk = async (path: string): Promise<void> => {
    const real = await realpath(join(treeDir, path)).catch(() => undefined);
    if (real === undefined || !inside(real)) {
      problems.push({
        message: `${path} is a link that leads out of the repository (or nowhere): refused`,
        source: { file: path },
      });
      return;
    }
    const stats = await stat(real);
    if (stats.isFile() && stats.size > maxBytes) {
      problems.push({
        message: `${path} is larger than the render limit of ${formatBytes(maxBytes)} (PLUMBLINE_RENDER_MAX_BYTES): nothing is applied`,
        source: { file: path },
      });
    }
    if (!stats.isDirectory() || visited.has(real)) return;
    visited.add(real);
    for (const entry of (await readdir(real)).sort()) await walk(`${path}/${entry}`);
  };
  const top = await lstat(join(treeDir, chartPath)).catch(() => undefined);
  if (top) await walk(chartPath);
  return problems;
}
