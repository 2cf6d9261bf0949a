import { posix } from 'node:path';
import { parse } from 'yaml';

/** Read access to one commit's tree, by repository-relative path. */
export interface TreeReader {
  /** File contents, or undefined when there is no such file. */
  readText(path: string): Promise<string | undefined>;
  isDirectory(path: string): Promise<boolean>;
}

/** Every path a cluster's render reads: exact files, and folders whose whole subtree counts. */
export interface RenderInputs {
  readonly files: ReadonlySet<string>;
  /** The files among them listed as `resources`: where objects are declared (not patched). */
  readonly resources: ReadonlySet<string>;
  readonly subtrees: readonly string[];
  /** References the render must refuse: remote bases, and paths that leave the repository. */
  readonly forbidden: readonly ForbiddenReference[];
}

export interface ForbiddenReference {
  /** The kustomization that makes the reference. */
  readonly file: string;
  readonly reference: string;
  readonly reason: 'remote' | 'outside-repository' | 'not-in-repository';
}

export const KUSTOMIZATION_FILES = ['kustomization.yaml', 'kustomization.yml', 'Kustomization'] as const;

type Kustomization = Record<string, unknown>;

/** URLs, go-getter (`git::…`) and scp-like (`user@host:path`) forms, and bare hosts kustomize fetches. */
const isRemote = (ref: string) =>
  /^[a-z][a-z0-9+.-]*:\/\//i.test(ref) ||
  ref.includes('::') ||
  /^[\w.-]+@[\w.-]+:/.test(ref) ||
  /^(github|gitlab|bitbucket)\.(com|org)\//i.test(ref);
const strings = (value: unknown): string[] =>
  Array.isArray(value) ? value.filter((v): v is string => typeof v === 'string') : [];
const records = (value: unknown): Record<string, unknown>[] =>
  Array.isArray(value) ? value.filter((v): v is Record<string, unknown> => typeof v === 'object' && v !== null) : [];
const optionalString = (value: unknown): string[] => (typeof value === 'string' ? [value] : []);

/**
 * Local references of one kustomization, relative to its folder: folders that may hold kustomizations of
 * their own (`resources`, `bases`, `components`, `generators`, …) and files it reads directly. Inline
 * patches are not paths and are left out. Remote references — in any field, since kustomize downloads
 * patches, generator files and CRDs from URLs too — are returned apart, for the render to refuse.
 */
export function kustomizationReferences(k: Kustomization): { entries: string[]; files: string[]; remote: string[] } {
  const generatorFiles = (g: Record<string, unknown>) => [
    ...strings(g.files).map((f) => f.slice(f.indexOf('=') + 1)),
    ...strings(g.envs),
    ...optionalString(g.env),
  ];
  const listed = [
    ...strings(k.resources),
    ...strings(k.bases),
    ...strings(k.components),
    ...strings(k.generators),
    ...strings(k.transformers),
    ...strings(k.validators),
  ].filter((ref) => !ref.includes('\n'));
  const entries = listed.filter((ref) => !isRemote(ref));
  const fileRefs = [
    ...strings(k.crds),
    ...strings(k.configurations),
    ...strings(k.patchesStrategicMerge).filter((p) => !p.includes('\n')),
    ...records(k.patches).flatMap((p) => optionalString(p.path)),
    ...records(k.patchesJson6902).flatMap((p) => optionalString(p.path)),
    ...records(k.replacements).flatMap((r) => optionalString(r.path)),
    ...records(k.configMapGenerator).flatMap(generatorFiles),
    ...records(k.secretGenerator).flatMap(generatorFiles),
    ...records(k.helmCharts).flatMap((h) => [...optionalString(h.valuesFile), ...strings(h.additionalValuesFiles)]),
    ...(typeof k.openapi === 'object' && k.openapi !== null ? optionalString((k.openapi as Kustomization).path) : []),
  ];
  return {
    entries,
    files: fileRefs.filter((ref) => !isRemote(ref)),
    remote: [...listed, ...fileRefs].filter(isRemote),
  };
}

/** Joins a reference to its folder; undefined when it would leave the repository. */
function resolveInRepository(dir: string, ref: string): string | undefined {
  const joined = posix.normalize(posix.join(dir, ref)).replace(/\/+$/, '');
  if (joined === '..' || joined.startsWith('../') || posix.isAbsolute(ref)) return undefined;
  return joined === '.' ? '' : joined;
}

/**
 * Walks a cluster folder the way its render will read it: a folder with a kustomization is followed
 * through its local references; a folder without one is a plain-YAML folder whose whole subtree counts.
 * A kustomization that cannot be parsed makes its whole folder count, so the commit is rendered and the
 * error reported rather than silently skipped.
 */
export async function collectRenderInputs(tree: TreeReader, clusterPath: string): Promise<RenderInputs> {
  const files = new Set<string>();
  const resources = new Set<string>();
  const subtrees = new Set<string>();
  const visited = new Set<string>();
  const forbidden: ForbiddenReference[] = [];

  const visitFolder = async (dir: string): Promise<void> => {
    if (visited.has(dir)) return;
    visited.add(dir);
    for (const name of KUSTOMIZATION_FILES) {
      const path = dir ? `${dir}/${name}` : name;
      const text = await tree.readText(path);
      if (text === undefined) continue;
      files.add(path);
      let kustomization: unknown;
      try {
        kustomization = parse(text);
      } catch {
        subtrees.add(dir);
        return;
      }
      if (typeof kustomization !== 'object' || kustomization === null) return;
      const refs = kustomizationReferences(kustomization as Kustomization);
      for (const reference of refs.remote) forbidden.push({ file: path, reference, reason: 'remote' });
      for (const file of refs.files) {
        const resolved = resolveInRepository(dir, file);
        if (resolved === undefined) forbidden.push({ file: path, reference: file, reason: 'outside-repository' });
        else if ((await tree.readText(resolved)) === undefined && !(await tree.isDirectory(resolved))) {
          // Missing, a link out of the tree, or a remote form we do not recognise: kustomize must not read it.
          forbidden.push({ file: path, reference: file, reason: 'not-in-repository' });
        } else files.add(resolved);
      }
      for (const entry of refs.entries) {
        const resolved = resolveInRepository(dir, entry);
        if (resolved === undefined) {
          forbidden.push({ file: path, reference: entry, reason: 'outside-repository' });
          continue;
        }
        if (await tree.isDirectory(resolved)) await visitFolder(resolved);
        else if ((await tree.readText(resolved)) !== undefined) {
          files.add(resolved);
          resources.add(resolved);
        } else {
          // Whatever kustomize would make of it (a remote in a form we do not recognise), it is not ours.
          forbidden.push({ file: path, reference: entry, reason: 'not-in-repository' });
        }
      }
      return;
    }
    subtrees.add(dir);
  };

  await visitFolder(normalizeFolder(clusterPath));
  return { files, resources, subtrees: [...subtrees].sort(), forbidden };
}

/** `./a/b/`, `a//b`, `.` → `a/b`, `a/b`, `` (the repository root). */
export function normalizeFolder(path: string): string {
  const normalized = posix.normalize(path).replace(/\/+$/, '');
  return normalized === '.' ? '' : normalized;
}

/** True when a changed path is one the render reads. Pure. */
export function isAffectedBy(inputs: RenderInputs, changedPaths: readonly string[]): boolean {
  return changedPaths.some(
    (path) => inputs.files.has(path) || inputs.subtrees.some((dir) => dir === '' || path.startsWith(`${dir}/`)),
  );
}
