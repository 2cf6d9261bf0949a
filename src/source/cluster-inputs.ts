import { posix } from 'node:path';
import { parse } from 'yaml';
import { APPS_FILE_NAME, type AppSpec, parseAppsFile } from '../apps/apps-file.ts';
import { collectRenderInputs, normalizeFolder, type RenderInputs, type TreeReader } from './render-inputs.ts';

/** The apps file of a cluster folder. */
export const appsFileOf = (clusterPath: string): string => {
  const folder = normalizeFolder(clusterPath);
  return folder ? `${folder}/${APPS_FILE_NAME}` : APPS_FILE_NAME;
};

/**
 * Every path a cluster's render reads. A folder without `plumbline.yaml` is one render (kustomize or plain
 * YAML). With it: the folder itself (the file included) and what each app reads — a path app's render
 * inputs, a chart's whole folder with the `file://` charts it depends on, and the values files. A file that
 * does not parse counts as the folder alone: its render fails, and any change to it is a change.
 */
export async function collectClusterInputs(tree: TreeReader, clusterPath: string): Promise<RenderInputs> {
  const own = await collectRenderInputs(tree, clusterPath);
  const file = appsFileOf(clusterPath);
  const text = await tree.readText(file);
  if (text === undefined) return own;
  const parsed = parseAppsFile(text, file);
  if (!parsed.ok) return own;
  return mergeInputs([own, ...(await Promise.all(parsed.apps.map((app) => collectAppInputs(tree, app))))]);
}

/** What one app's render reads (see collectClusterInputs); the app's own entry is in plumbline.yaml. */
export async function collectAppInputs(tree: TreeReader, app: AppSpec): Promise<RenderInputs> {
  const values = emptyInputs(app.values);
  switch (app.source.kind) {
    case 'path':
      return mergeInputs([await collectRenderInputs(tree, app.source.path), values]);
    case 'local-chart':
      return mergeInputs([await chartInputs(tree, app.source.path), values]);
    case 'remote-chart':
      return values;
  }
}

/** A chart folder and, through `file://` dependencies at any depth, the folders of the charts it copies in. */
async function chartInputs(tree: TreeReader, chartPath: string): Promise<RenderInputs> {
  const subtrees = new Set<string>();
  const visit = async (folder: string, depth: number): Promise<void> => {
    const real = (await tree.realPath?.(folder)) ?? folder;
    if (subtrees.has(folder) || depth > 16) return;
    subtrees.add(folder);
    if (real !== folder) subtrees.add(real);
    for (const dependency of await fileDependencies(tree, real)) {
      const target = posix.normalize(posix.join(real, dependency));
      if (target === '..' || target.startsWith('../') || posix.isAbsolute(target)) continue;
      await visit(target, depth + 1);
    }
  };
  await visit(normalizeFolder(chartPath), 0);
  return { ...emptyInputs([]), subtrees: [...subtrees] };
}

/** The `file://` paths of a chart's Chart.yaml dependencies (none when it does not parse). */
async function fileDependencies(tree: TreeReader, chartFolder: string): Promise<string[]> {
  const text = await tree.readText(chartFolder ? `${chartFolder}/Chart.yaml` : 'Chart.yaml');
  if (text === undefined) return [];
  try {
    const chart = parse(text, { maxAliasCount: 100 }) as { dependencies?: unknown } | null;
    const dependencies = Array.isArray(chart?.dependencies) ? chart.dependencies : [];
    return dependencies.flatMap((d: unknown) => {
      const repository = (d as { repository?: unknown } | null)?.repository;
      return typeof repository === 'string' && repository.startsWith('file://')
        ? [repository.slice('file://'.length)]
        : [];
    });
  } catch {
    return [];
  }
}

function emptyInputs(files: readonly string[]): RenderInputs {
  const folders = new Set<string>();
  for (const file of files)
    for (let dir = posix.dirname(file); dir !== '.' && !folders.has(dir); dir = posix.dirname(dir)) folders.add(dir);
  return { files: new Set(files), resources: new Set(), parsed: new Set(), folders, subtrees: [], forbidden: [] };
}

/** The union of several renders' inputs. Pure. */
export function mergeInputs(all: readonly RenderInputs[]): RenderInputs {
  const union = <T>(pick: (inputs: RenderInputs) => Iterable<T>) => new Set(all.flatMap((i) => [...pick(i)]));
  return {
    files: union((i) => i.files),
    resources: union((i) => i.resources),
    parsed: union((i) => i.parsed),
    folders: union((i) => i.folders),
    subtrees: [...union((i) => i.subtrees)],
    forbidden: all.flatMap((i) => i.forbidden),
  };
}
