import { posix } from 'node:path';
import { isMap, LineCounter, parseAllDocuments, visit } from 'yaml';
import {
  DEFAULT_CHART_HOME,
  fieldValues,
  foldKey as fold,
  isRecord,
  kustomizeChartFolder,
  listItems,
  recordItems,
  scalarItems,
} from './kustomize-fields.ts';

/** Read access to one commit's tree, by repository-relative path. */
export interface TreeReader {
  /** File contents, or undefined when there is no such file. */
  readText(path: string): Promise<string | undefined>;
  isDirectory(path: string): Promise<boolean>;
  /**
   * The repository-relative path a path resolves to through symlinks inside the repository (undefined
   * when it does not exist or leaves the repository). Readers without links may leave it out.
   */
  realPath?(path: string): Promise<string | undefined>;
  /** Size in bytes of a file of the tree, undefined when it is not one; lets a walk skip reading it. */
  fileSize?(path: string): Promise<number | undefined>;
}

/** Every path a cluster's render reads: exact files, and folders whose whole subtree counts. */
export interface RenderInputs {
  readonly files: ReadonlySet<string>;
  /** The files among them listed as `resources`: where objects are declared (not patched). */
  readonly resources: ReadonlySet<string>;
  /**
   * The files among them that kustomize parses as YAML (kustomizations, resources, patches, plugin
   * configs, …), whatever their extension: each is checked for alias bombs before kustomize runs.
   * Generator data (`files:`, `envs:`) is read, not parsed, and is not in here.
   */
  readonly parsed: ReadonlySet<string>;
  /**
   * The folders the render passes through on the way to its files. git lists no folders, so a change
   * at one of these paths is a symlink re-pointed (or a folder replaced by a file): the render changes.
   */
  readonly folders: ReadonlySet<string>;
  readonly subtrees: readonly string[];
  /** References the render must refuse: remote, outside the repository, or not checkable. */
  readonly forbidden: readonly ForbiddenReference[];
}

export type ForbiddenReason =
  /** A URL or a git reference as a base (resources, components, generators, …): kustomize would fetch it. */
  | 'remote'
  /** A URL or a git reference as a file (a patch, a generator's file, …): kustomize would fetch it. */
  | 'remote-file'
  /** Absolute, or `..` past the repository root. */
  | 'outside-repository'
  /** Missing, a link out of the repository, or a remote form not recognised. */
  | 'not-in-repository'
  /** A path field holding something other than a string (`!!binary`, a number, a map). */
  | 'not-a-path'
  /** A kustomization or plugin config Plumbline cannot parse, so cannot check. */
  | 'unreadable'
  /** A folder of generator/transformer configs whose kustomization could change them after the check. */
  | 'rewrites-plugin-configs';

export interface ForbiddenReference {
  /** The file that makes the reference (a kustomization, or a generator/transformer config). */
  readonly file: string;
  /** 1-based line of the reference in that file, when known. */
  readonly line?: number;
  readonly reference: string;
  readonly reason: ForbiddenReason;
}

export const KUSTOMIZATION_FILES = ['kustomization.yaml', 'kustomization.yml', 'Kustomization'] as const;

/**
 * How kustomize uses a path: `entry` a resource file or kustomization folder; `plugin-entry` a file or
 * folder of generator/transformer configs; `yaml` a file it parses (patch, replacement, CRD, …);
 * `data` a file it reads as bytes (generator `files`, `envs`); `folder` a folder it reads (helm chartHome);
 * `chart` the folder of one chart below it, which may not be there yet (Plumbline fetches it there).
 */
type Role = 'entry' | 'plugin-entry' | 'yaml' | 'data' | 'folder' | 'chart';

interface Reference {
  readonly role: Role;
  /** What kustomize resolves (a generator's `key=` stripped), or a non-string found in a path field. */
  readonly value: unknown;
  readonly line: number | undefined;
}

/** The parsed documents of one YAML file (or of an inline config), with a line for each string in it. */
interface Parsed {
  readonly values: unknown[];
  readonly lineOf: (text: string) => number | undefined;
  readonly error?: { readonly message: string; readonly line: number | undefined };
}

type Kustomization = Record<string, unknown>;

/**
 * Kustomizations and generator/transformer configs are parsed on the event loop (they are small: a
 * large one is refused, not parsed, so a hostile one cannot stall lock renewal).
 */
const MAX_CONFIG_CHARS = 256 * 1024;

/** URLs, go-getter (`git::…`) and scp-like (`user@host:path`) forms, and bare hosts kustomize fetches. */
const isRemote = (ref: string) =>
  /^[a-z][a-z0-9+.-]*:\/\//i.test(ref) ||
  ref.includes('::') ||
  /^[\w.-]+@[\w.-]+:/.test(ref) ||
  // `github.com/org/repo` and `github.com:org/repo` are both repository specs to kustomize.
  /^(github|gitlab|bitbucket)\.(com|org)[/:]/i.test(ref);

/**
 * Inline YAML (a generator config, a strategic-merge patch) rather than a path — by kustomize's own rule:
 * only text that parses as resources (every document a map with a `kind`) is inline; anything else,
 * `[gen.yaml]` or a name with a newline included, kustomize loads as a file, so it is followed as one.
 */
function isInlineYaml(text: string): boolean {
  const documents = parseAllDocuments(text, { version: '1.1' }).filter((d) => d.contents !== null);
  return (
    documents.length > 0 &&
    documents.every((d) => d.errors.length === 0 && isMap(d.contents) && typeof d.get('kind') === 'string')
  );
}

function parseYaml(text: string, lineOffset = 0): Parsed {
  const lineCounter = new LineCounter();
  const documents = parseAllDocuments(text, { version: '1.1', lineCounter, uniqueKeys: true });
  const lines = new Map<string, number>();
  const lineAt = (offset: number) => lineCounter.linePos(offset).line + lineOffset;
  for (const document of documents) {
    visit(document, {
      Scalar(_key, node) {
        if (typeof node.value !== 'string' || lines.has(node.value) || !node.range) return;
        // A block scalar's range starts at its `|` or `>`: an inline config in it begins on the next line.
        const block = node.type === 'BLOCK_LITERAL' || node.type === 'BLOCK_FOLDED';
        lines.set(node.value, lineAt(node.range[0]) - (block ? 0 : 1));
      },
    });
  }
  // Stored as "the line before the text's first line", so that inline configs add their own lines.
  const lineOf = (value: string) => {
    const before = lines.get(value);
    return before === undefined ? undefined : before + 1;
  };
  const values: unknown[] = [];
  for (const document of documents) {
    const [error] = document.errors;
    if (error) {
      const message = error.message.split('\n')[0] ?? 'invalid YAML';
      return { values, lineOf, error: { message, line: lineAt(error.pos[0]) } };
    }
    try {
      values.push(document.toJS({ maxAliasCount: 1_000 }));
    } catch (thrown) {
      return { values, lineOf, error: { message: (thrown as Error).message, line: lineAt(document.range[0]) } };
    }
  }
  return { values, lineOf };
}

/** The line of a path: of its text, or (for a value that is not a string) of the first key naming the field. */
const lineFor = (parsed: Parsed, raw: unknown, field: string) =>
  typeof raw === 'string' ? parsed.lineOf(raw) : parsed.lineOf(field);

/** The line of an inline block's n-th line, given the line `lineOf` reports for the block itself. */
const blockLineOffset = (parsed: Parsed, text: string) => (parsed.lineOf(text) ?? 1) - 1;

/**
 * The paths a kustomization (or a Component) reads, by role. Inline generator/transformer configs are
 * returned apart, with the line offset of their text, to be read as configs of this kustomization.
 */
function kustomizationReferences(
  k: Kustomization,
  parsed: Parsed,
): { references: Reference[]; inlineConfigs: { text: string; lineOffset: number }[] } {
  const references: Reference[] = [];
  const inlineConfigs: { text: string; lineOffset: number }[] = [];
  const add = (role: Role, field: string, value: unknown) =>
    references.push({ role, value, line: lineFor(parsed, value, field) });
  for (const name of ['resources', 'bases', 'components']) for (const v of listItems(k, name)) add('entry', name, v);
  for (const name of ['generators', 'transformers', 'validators']) {
    for (const v of listItems(k, name)) {
      if (typeof v === 'string' && isInlineYaml(v)) {
        // Whatever else it is, kustomize would try a one-line entry as a path too.
        if (!v.includes('\n') && isRemote(v)) add('plugin-entry', name, v);
        inlineConfigs.push({ text: v, lineOffset: blockLineOffset(parsed, v) });
      } else add('plugin-entry', name, v);
    }
  }
  for (const name of ['crds', 'configurations']) for (const v of listItems(k, name)) add('yaml', name, v);
  for (const v of listItems(k, 'patchesStrategicMerge')) {
    // kustomize loads each entry as a path first (a URL would be fetched), then as an inline patch.
    if (typeof v === 'string' && isInlineYaml(v) && !isRemote(v)) continue;
    add('yaml', 'patchesStrategicMerge', v);
  }
  for (const name of ['patches', 'patchesJson6902', 'replacements']) {
    for (const item of listItems(k, name)) {
      if (isRecord(item)) for (const v of scalarItems(item, 'path')) add('yaml', 'path', v);
      else add('yaml', name, item);
    }
  }
  for (const name of ['configMapGenerator', 'secretGenerator']) {
    for (const generator of recordItems(k, name)) references.push(...generatorArgs(generator, parsed));
  }
  const homes = chartHomes(k);
  for (const chart of recordItems(k, 'helmCharts')) {
    for (const v of scalarItems(chart, 'valuesFile')) add('yaml', 'valuesFile', v);
    for (const v of listItems(chart, 'additionalValuesFiles')) add('yaml', 'additionalValuesFiles', v);
    references.push(...chartFolders(chart, { name: 'name', version: 'version', repo: 'repo' }, homes, parsed));
  }
  for (const globals of fieldValues(k, 'helmGlobals').filter(isRecord)) {
    for (const v of scalarItems(globals, 'chartHome')) add('folder', 'chartHome', v);
  }
  for (const legacy of recordItems(k, 'helmChartInflationGenerator')) {
    for (const v of scalarItems(legacy, 'values')) add('yaml', 'values', v);
    for (const v of scalarItems(legacy, 'chartHome')) add('folder', 'chartHome', v);
    references.push(
      ...chartFolders(legacy, { name: 'chartName', version: 'chartVersion', repo: 'chartRepoUrl' }, homes, parsed),
    );
  }
  for (const openapi of fieldValues(k, 'openapi').filter(isRecord)) {
    for (const v of scalarItems(openapi, 'path')) add('yaml', 'path', v);
  }
  return { references, inlineConfigs };
}

const strings = (values: readonly unknown[]) => values.filter((v): v is string => typeof v === 'string');

/**
 * The chartHome a kustomization's charts live under, as kustomize 5.5 decides it: `helmGlobals.chartHome`;
 * without helmGlobals, the last chartHome of the legacy `helmChartInflationGenerator` entries; else `charts`.
 */
function chartHomes(k: Kustomization): string[] {
  const globals = fieldValues(k, 'helmGlobals').filter(isRecord);
  if (globals.length > 0) {
    const homes = strings(globals.flatMap((g) => scalarItems(g, 'chartHome'))).filter((home) => home !== '');
    return homes.length > 0 ? homes : [DEFAULT_CHART_HOME];
  }
  const legacy = strings(recordItems(k, 'helmChartInflationGenerator').flatMap((l) => scalarItems(l, 'chartHome')));
  return [legacy.filter((home) => home !== '').at(-1) ?? DEFAULT_CHART_HOME];
}

/** The folder helm reads one chart entry from (see kustomizeChartFolder), at the line of its name. */
function chartFolders(
  chart: Record<string, unknown>,
  fields: { readonly name: string; readonly version: string; readonly repo: string },
  homes: readonly string[],
  parsed: Parsed,
): Reference[] {
  const version = strings(scalarItems(chart, fields.version))[0];
  const repo = strings(scalarItems(chart, fields.repo))[0];
  return strings(scalarItems(chart, fields.name))
    .filter((name) => name !== '')
    .flatMap((name) =>
      homes.map(
        (chartHome): Reference => ({
          role: 'chart',
          value: kustomizeChartFolder({ chartHome, name, version, repo }),
          line: lineFor(parsed, name, fields.name),
        }),
      ),
    );
}

/** `files` (`[key=]path`), `envs` and `env` of a ConfigMap or Secret generator: data kustomize reads. */
function generatorArgs(generator: Record<string, unknown>, parsed: Parsed): Reference[] {
  const data = (field: string, raw: unknown, value: unknown = raw): Reference => ({
    role: 'data',
    value,
    line: lineFor(parsed, raw, field),
  });
  return [
    ...listItems(generator, 'files').map((raw) =>
      data('files', raw, typeof raw === 'string' ? raw.slice(raw.indexOf('=') + 1) : raw),
    ),
    ...listItems(generator, 'envs').map((raw) => data('envs', raw)),
    ...scalarItems(generator, 'env').map((raw) => data('env', raw)),
  ];
}

/**
 * The paths one generator/transformer config reads, for every builtin plugin of kustomize 5.5 that
 * loads files: ConfigMap/SecretGenerator `files`/`envs`/`env`, PatchTransformer and
 * PatchJson6902Transformer `path`, PatchStrategicMergeTransformer `paths`, ReplacementTransformer
 * `replacements[].path`, HelmChartInflationGenerator `valuesFile`/`additionalValuesFiles`/`chartHome`.
 * Read whatever the kind says: a field that loads nothing for one kind costs only a file in the inputs.
 */
function pluginConfigReferences(config: Record<string, unknown>, parsed: Parsed): Reference[] {
  const add = (role: Role, field: string) => (value: unknown) => ({ role, value, line: lineFor(parsed, value, field) });
  return [
    ...generatorArgs(config, parsed),
    ...scalarItems(config, 'path').map(add('yaml', 'path')),
    ...listItems(config, 'paths').map(add('yaml', 'paths')),
    ...recordItems(config, 'replacements').flatMap((r) => scalarItems(r, 'path').map(add('yaml', 'path'))),
    ...scalarItems(config, 'valuesFile').map(add('yaml', 'valuesFile')),
    ...listItems(config, 'additionalValuesFiles').map(add('yaml', 'additionalValuesFiles')),
    ...scalarItems(config, 'chartHome').map(add('folder', 'chartHome')),
    ...(strings(scalarItems(config, 'kind')).some((kind) => fold(kind) === fold('HelmChartInflationGenerator'))
      ? chartFolders(
          config,
          { name: 'name', version: 'version', repo: 'repo' },
          [strings(scalarItems(config, 'chartHome'))[0] || DEFAULT_CHART_HOME],
          parsed,
        )
      : []),
  ];
}

/**
 * A kustomization listed under `generators:`/`transformers:` turns its resources into plugin configs.
 * Only fields that cannot change a config's content are allowed there: a patch or a replacement
 * could point a checked config at a URL, or at a file Plumbline never saw.
 */
const PLUGIN_FOLDER_FIELDS = new Set(
  [
    'apiVersion',
    'kind',
    'metadata',
    'resources',
    'bases',
    'namespace',
    'namePrefix',
    'nameSuffix',
    'commonLabels',
    'commonAnnotations',
    'buildMetadata',
    'sortOptions',
  ].map(fold),
);

/** Joins a reference to its folder; undefined when it would leave the repository. */
function resolveInRepository(dir: string, ref: string): string | undefined {
  const joined = posix.normalize(posix.join(dir, ref)).replace(/\/+$/, '');
  if (joined === '..' || joined.startsWith('../') || posix.isAbsolute(ref)) return undefined;
  return joined === '.' ? '' : joined;
}

const describeValue = (value: unknown) =>
  ArrayBuffer.isView(value) ? '(binary data)' : (JSON.stringify(value) ?? String(value)).slice(0, 80);

/**
 * Walks a cluster folder the way its render will read it — every file kustomize reads, at any depth:
 * resources, bases and components (recursively), patches, replacements, CRDs, configurations, OpenAPI
 * schemas, helm values, generator files, and generator/transformer configs (inline, in files, or in
 * folders) with the files they read in turn. A folder without a kustomization is a plain-YAML folder
 * whose whole subtree counts. Anything kustomize would fetch, or that is not a file of the repository,
 * is returned as forbidden with its file and line, for the render to refuse before kustomize runs. The
 * same walk decides which clusters a commit affects and keys the render cache.
 */
export async function collectRenderInputs(tree: TreeReader, clusterPath: string): Promise<RenderInputs> {
  const files = new Set<string>();
  const resources = new Set<string>();
  const parsedFiles = new Set<string>();
  const subtrees = new Set<string>();
  const visited = new Set<string>();
  const forbidden: ForbiddenReference[] = [];

  /** Records a path read (and, through a symlink inside the repository, the file it points at). */
  const folders = new Set<string>();
  const record = async (path: string, into: Set<string>) => {
    into.add(path);
    const real = await tree.realPath?.(path);
    if (real !== undefined && real !== path) into.add(real);
    for (const p of [path, real ?? path]) {
      for (let dir = posix.dirname(p); dir !== '.' && !folders.has(dir); dir = posix.dirname(dir)) folders.add(dir);
    }
  };

  const isFile = async (path: string) =>
    tree.fileSize ? (await tree.fileSize(path)) !== undefined : (await tree.readText(path)) !== undefined;

  /** A kustomization or a plugin config: parsed here, on the event loop, so its size is bounded. */
  const readYamlFile = async (path: string): Promise<Parsed | undefined> => {
    const size = await tree.fileSize?.(path);
    if (tree.fileSize && size === undefined) return undefined;
    const text = size !== undefined && size > MAX_CONFIG_CHARS ? undefined : await tree.readText(path);
    if (text === undefined && size === undefined) return undefined;
    await record(path, files);
    await record(path, parsedFiles);
    if (text === undefined || text.length > MAX_CONFIG_CHARS) {
      const reference = `larger than ${MAX_CONFIG_CHARS / 1024} KiB, too large to check`;
      forbidden.push({ file: path, reference, reason: 'unreadable' });
      return { values: [], lineOf: () => undefined };
    }
    const parsed = parseYaml(text);
    if (parsed.error) {
      forbidden.push({
        file: path,
        ...(parsed.error.line !== undefined ? { line: parsed.error.line } : {}),
        reference: parsed.error.message,
        reason: 'unreadable',
      });
    }
    return parsed;
  };

  /**
   * Checks one reference made by `file` and follows it. Paths resolve against `base`: the folder of the
   * kustomization (plugin configs read their files from the kustomization that lists them). `owner` is
   * the folder whose kustomization lists the generators, carried into folders of configs.
   */
  const follow = async (reference: Reference, file: string, base: string, owner: string): Promise<void> => {
    const refuse = (ref: string, reason: ForbiddenReason) =>
      forbidden.push({
        file,
        ...(reference.line !== undefined ? { line: reference.line } : {}),
        reference: ref,
        reason,
      });
    if (typeof reference.value !== 'string') return void refuse(describeValue(reference.value), 'not-a-path');
    const ref = reference.value;
    if (isRemote(ref)) {
      const asBase = reference.role === 'entry' || reference.role === 'plugin-entry';
      return void refuse(ref, asBase ? 'remote' : 'remote-file');
    }
    const resolved = resolveInRepository(base, ref);
    if (resolved === undefined) return void refuse(ref, 'outside-repository');
    if (await tree.isDirectory(resolved)) {
      if (reference.role === 'entry') return visitKustomization(resolved);
      if (reference.role === 'plugin-entry') return visitPluginFolder(resolved, owner);
      await record(resolved, subtrees);
      // A chart folder linked elsewhere in the repository: git reports a re-pointed link at the link itself.
      if (reference.role === 'chart') folders.add(resolved);
      return;
    }
    if (reference.role === 'chart' || (reference.role === 'folder' && !(await isFile(resolved)))) {
      // Not there yet — Plumbline fetches remote charts there — or a link out of the repository, which
      // prepareKustomizeHelmCharts and the helm gate refuse. Either way a change at that path changes the render.
      await record(resolved, subtrees);
      folders.add(resolved);
      return;
    }
    if (reference.role === 'folder' || !(await isFile(resolved))) {
      // Missing, a link out of the tree, or a remote form we do not recognise: kustomize must not read it.
      return void refuse(ref, 'not-in-repository');
    }
    await record(resolved, files);
    if (reference.role === 'data') return;
    if (reference.role === 'plugin-entry') return readPluginConfigs(resolved, owner);
    // Resource files and patches are leaves: kustomize parses them, Plumbline checks them before it runs.
    await record(resolved, parsedFiles);
    if (reference.role === 'entry') await record(resolved, resources);
  };

  const followAll = async (refs: readonly Reference[], file: string, base: string, owner: string) => {
    for (const reference of refs) await follow(reference, file, base, owner);
  };

  /** A file of generator/transformer configs (one per YAML document). */
  const readPluginConfigs = async (path: string, owner: string): Promise<void> => {
    const parsed = await readYamlFile(path);
    if (!parsed) return;
    for (const config of parsed.values.filter(isRecord)) {
      await followAll(pluginConfigReferences(config, parsed), path, owner, owner);
    }
  };

  /** The kustomization file of a folder, parsed; undefined when the folder has none. */
  const readKustomization = async (dir: string) => {
    for (const name of KUSTOMIZATION_FILES) {
      const path = dir ? `${dir}/${name}` : name;
      const parsed = await readYamlFile(path);
      if (!parsed) continue;
      // One Plumbline cannot read is refused (above); its folder counts as a whole for change detection.
      if (parsed.error) subtrees.add(dir);
      return { path, parsed, kustomizations: parsed.values.filter(isRecord) };
    }
    return undefined;
  };

  const visitKustomization = async (dir: string): Promise<void> => {
    if (visited.has(`entry\0${dir}`)) return;
    visited.add(`entry\0${dir}`);
    const found = await readKustomization(dir);
    if (!found) {
      await record(dir, subtrees);
      return;
    }
    for (const k of found.kustomizations) {
      const { references, inlineConfigs } = kustomizationReferences(k, found.parsed);
      await followAll(references, found.path, dir, dir);
      for (const inline of inlineConfigs) {
        const parsed = parseYaml(inline.text, inline.lineOffset);
        if (parsed.error) {
          const { message, line } = parsed.error;
          forbidden.push({
            file: found.path,
            ...(line !== undefined ? { line } : {}),
            reference: message,
            reason: 'unreadable',
          });
        }
        for (const config of parsed.values.filter(isRecord)) {
          await followAll(pluginConfigReferences(config, parsed), found.path, dir, dir);
        }
      }
    }
  };

  /** A folder listed under `generators:`/`transformers:`: its resources are configs of `owner`. */
  const visitPluginFolder = async (dir: string, owner: string): Promise<void> => {
    if (visited.has(`plugin\0${owner}\0${dir}`)) return;
    visited.add(`plugin\0${owner}\0${dir}`);
    const found = await readKustomization(dir);
    if (!found) {
      await record(dir, subtrees);
      return;
    }
    for (const k of found.kustomizations) {
      for (const key of Object.keys(k).filter((key) => !PLUGIN_FOLDER_FIELDS.has(fold(key)))) {
        const line = found.parsed.lineOf(key);
        forbidden.push({
          file: found.path,
          ...(line !== undefined ? { line } : {}),
          reference: key,
          reason: 'rewrites-plugin-configs',
        });
      }
      const entries = ['resources', 'bases'].flatMap((field) =>
        listItems(k, field).map((value) => ({
          role: 'plugin-entry' as const,
          value,
          line: lineFor(found.parsed, value, field),
        })),
      );
      await followAll(entries, found.path, dir, owner);
    }
  };

  await visitKustomization(normalizeFolder(clusterPath));
  return { files, resources, parsed: parsedFiles, folders, subtrees: [...subtrees].sort(), forbidden };
}

/** `./a/b/`, `a//b`, `.` → `a/b`, `a/b`, `` (the repository root). */
export function normalizeFolder(path: string): string {
  const normalized = posix.normalize(path).replace(/\/+$/, '');
  return normalized === '.' ? '' : normalized;
}

/** True when a changed path is one the render reads. Pure. */
export function isAffectedBy(inputs: RenderInputs, changedPaths: readonly string[]): boolean {
  return changedPaths.some(
    (path) =>
      inputs.files.has(path) ||
      inputs.folders.has(path) ||
      inputs.subtrees.some((dir) => dir === '' || path.startsWith(`${dir}/`)),
  );
}
