import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { collectRenderInputs, KUSTOMIZATION_FILES, normalizeFolder } from '../source/render-inputs.ts';
import { fsTreeReader } from '../source/tree-reader.ts';
import { CommandTimeoutError, runCommand } from '../support/run-command.ts';
import type { ManifestProblem, RenderedObject, SourceLocation } from './manifest.ts';
import { findDuplicates, parseManifests } from './parse-manifests.ts';

export type RenderResult =
  | { readonly ok: true; readonly objects: readonly RenderedObject[]; readonly renderer: 'kustomize' | 'plain' }
  | {
      readonly ok: false;
      readonly problems: readonly ManifestProblem[];
      /** The render may succeed when tried again (it timed out): not to be cached. */
      readonly transient?: true;
    };

/** How to run kustomize: the standalone binary, or the copy built into kubectl. */
export interface KustomizeCommand {
  readonly command: string;
  readonly args: (dir: string) => string[];
}

export const KUBECTL_KUSTOMIZE: KustomizeCommand = { command: 'kubectl', args: (dir) => ['kustomize', dir] };
export const STANDALONE_KUSTOMIZE: KustomizeCommand = { command: 'kustomize', args: (dir) => ['build', dir] };

export interface RenderOptions {
  readonly kustomize: KustomizeCommand;
  readonly timeoutMs: number;
}

const MANIFEST_FILE = /\.(ya?ml|json)$/i;

/**
 * Renders one cluster folder of an exported commit. A folder with a kustomization is built by the real
 * kustomize (spawned without a shell, with a timeout), after refusing remote bases and references that
 * leave the repository; a folder without one is plain YAML, read recursively. Problems are values.
 */
export async function renderCluster(
  treeDir: string,
  clusterPath: string,
  options: RenderOptions,
): Promise<RenderResult> {
  const tree = fsTreeReader(treeDir);
  if (!(await tree.isDirectory(clusterPath))) {
    return {
      ok: false,
      problems: [{ message: `cluster folder ${clusterPath} does not exist in this commit`, source: undefined }],
    };
  }
  const inputs = await collectRenderInputs(tree, clusterPath);
  if (inputs.forbidden.length > 0) {
    return {
      ok: false,
      problems: inputs.forbidden.map((f) => ({
        message:
          f.reason === 'remote'
            ? `remote base ${f.reference} is not allowed: vendor it into the repository`
            : f.reason === 'outside-repository'
              ? `${f.reference} leaves the repository`
              : `${f.reference} is not a file or folder inside the repository (missing, a link out of it, or remote)`,
        source: { file: f.file },
      })),
    };
  }
  const folder = normalizeFolder(clusterPath);
  const isKustomization = KUSTOMIZATION_FILES.some((name) => inputs.files.has(folder ? `${folder}/${name}` : name));
  if (isKustomization) {
    // kustomize expands YAML aliases without a limit: a "billion laughs" file would exhaust the worker.
    const bombs = await aliasBombs(tree, [...inputs.files]);
    if (bombs.length > 0) return { ok: false, problems: bombs };
  }
  const parsed = isKustomization
    ? await runKustomize(treeDir, clusterPath, options)
    : await readPlainFolder(treeDir, clusterPath);
  if (!parsed.ok) return parsed;
  // Files listed as resources declare objects; patches only mention them, so they come last.
  if (isKustomization) await attachSources(parsed.objects, [...inputs.resources, ...inputs.files], tree);
  const problems = [...parsed.problems, ...findDuplicates(parsed.objects)];
  if (problems.length > 0) return { ok: false, problems };
  return { ok: true, objects: parsed.objects, renderer: isKustomization ? 'kustomize' : 'plain' };
}

type Parsed =
  | { readonly ok: true; readonly objects: RenderedObject[]; readonly problems: ManifestProblem[] }
  | { readonly ok: false; readonly problems: ManifestProblem[]; readonly transient?: true };

/** Input files whose YAML expands aliases beyond the limit Plumbline applies to its own parsing. */
async function aliasBombs(tree: ReturnType<typeof fsTreeReader>, files: readonly string[]): Promise<ManifestProblem[]> {
  const problems: ManifestProblem[] = [];
  for (const file of files.filter((f) => MANIFEST_FILE.test(f) || KUSTOMIZATION_FILES.some((k) => f.endsWith(k)))) {
    const text = await tree.readText(file);
    if (text === undefined || !text.includes('*')) continue;
    problems.push(...parseManifests(text, file).problems.filter((p) => /alias/i.test(p.message)));
  }
  return problems;
}

/** kubectl's klog prefix (`E1128 12:14:33.1 123 run.go:72] "command failed" err="…"`) says nothing to a user. */
export function cleanKustomizeError(stderr: string): string {
  return stderr
    .replace(/^[EWIF]\d{4} [\d:.]+\s+\d+ [\w.]+:\d+\] "command failed" err="(.*)"$/gm, (_line, error: string) =>
      error.replace(/\\"/g, '"'),
    )
    .replace(/^error: /gm, '');
}

async function runKustomize(treeDir: string, clusterPath: string, options: RenderOptions): Promise<Parsed> {
  const kustomization = { file: `${clusterPath}/kustomization.yaml` };
  try {
    const result = await runCommand(options.kustomize.command, options.kustomize.args(clusterPath || '.'), {
      cwd: treeDir,
      timeoutMs: options.timeoutMs,
    });
    if (result.code !== 0) {
      // kustomize names the file it failed on; paths are relative to the tree, so they read as repository paths.
      const message = cleanKustomizeError(result.stderr)
        .replace(new RegExp(escapeRegExp(`${treeDir}/`), 'g'), '')
        .trim()
        .split('\n')
        .slice(-3)
        .join(' ');
      return { ok: false, problems: [{ message: `kustomize build failed: ${message}`, source: kustomization }] };
    }
    return { ok: true, ...parseManifests(result.stdout.toString('utf8'), undefined) };
  } catch (error) {
    // kustomize missing or the machine out of processes is the worker's problem: thrown, so the job retries.
    if (!(error instanceof CommandTimeoutError)) throw error;
    const message = `kustomize build did not finish within ${options.timeoutMs / 1000} s`;
    return { ok: false, problems: [{ message, source: kustomization }], transient: true };
  }
}

/**
 * kustomize's output has no file names. Objects are traced back to the input file (and line) that
 * declares the same kind and name, so errors and annotations point at what a person edits. Objects
 * kustomize generates or renames keep no source.
 */
async function attachSources(
  objects: RenderedObject[],
  inputFiles: readonly string[],
  tree: ReturnType<typeof fsTreeReader>,
): Promise<void> {
  const declared = new Map<string, SourceLocation>();
  for (const file of inputFiles.filter((f) => MANIFEST_FILE.test(f) && !/(^|\/)kustomization\.ya?ml$/.test(f))) {
    const text = await tree.readText(file);
    if (text === undefined) continue;
    for (const { manifest, source } of parseManifests(text, file).objects) {
      const key = `${manifest.kind}|${manifest.metadata.name}`;
      if (source && !declared.has(key)) declared.set(key, source);
    }
  }
  for (const [index, object] of objects.entries()) {
    const source = declared.get(`${object.manifest.kind}|${object.manifest.metadata.name}`);
    if (source && !object.source) objects[index] = { ...object, source };
  }
}

/** Every *.yaml, *.yml and *.json below the folder, in a stable order (the convention Flux uses). */
async function readPlainFolder(treeDir: string, clusterPath: string): Promise<Parsed> {
  const files = (await listFiles(join(treeDir, clusterPath), clusterPath)).filter((f) => MANIFEST_FILE.test(f)).sort();
  const objects: RenderedObject[] = [];
  const problems: ManifestProblem[] = [];
  const tree = fsTreeReader(treeDir);
  for (const file of files) {
    const text = await tree.readText(file);
    if (text === undefined) {
      problems.push({ message: `${file} points outside the repository`, source: { file } });
      continue;
    }
    const result = parseManifests(text, file);
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

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** The standalone `kustomize` when installed (as in the image), else the one built into kubectl. */
export async function resolveKustomize(): Promise<KustomizeCommand> {
  const standalone = await runCommand('kustomize', ['version'], { timeoutMs: 10_000 }).then(
    (result) => result.code === 0,
    () => false,
  );
  return standalone ? STANDALONE_KUSTOMIZE : KUBECTL_KUSTOMIZE;
}
