import { posix } from 'node:path';
import type { Document } from 'yaml';
import { isAlias, isMap, isNode, isScalar, isSeq, LineCounter, parseAllDocuments } from 'yaml';
import type { z } from 'zod';
import type { ManifestProblem } from '../engine/manifest.ts';
import { normalizeFolder } from '../source/render-inputs.ts';
import type { AppInput } from './apps-schema.ts';
import { APPS_FILE_FIELDS, appSchema, appsFileSchema } from './apps-schema.ts';

/** The file that turns a cluster folder into a list of apps. */
export const APPS_FILE_NAME = 'plumbline.yaml';

/** A larger `plumbline.yaml` is refused, not parsed: it is parsed on the event loop. */
export const MAX_APPS_FILE_BYTES = 1024 * 1024;

/** An alias bomb is refused rather than expanded, as for manifests (a few anchors are normal). */
const MAX_ALIAS_COUNT = 1_000;

/** Where an app's objects come from; every path is repository-relative, POSIX, normalized. */
export type AppSource =
  /** A kustomize or plain-YAML folder, rendered as a cluster folder is today. */
  | { readonly kind: 'path'; readonly path: string }
  /** A chart folder in the repository. */
  | { readonly kind: 'local-chart'; readonly path: string }
  /** A published chart, by exact version. */
  | { readonly kind: 'remote-chart'; readonly repository: string; readonly name: string; readonly version: string };

/** One app of a cluster, as `plumbline.yaml` declares it. */
export interface AppSpec {
  readonly name: string;
  /** Helm's release name: `releaseName`, or the app's name. */
  readonly releaseName: string;
  /** The release namespace, when the file sets one. */
  readonly namespace?: string;
  readonly source: AppSource;
  /** Values files (repository-relative), layered over the chart's values.yaml in order. */
  readonly values: readonly string[];
  /** Values layered last. */
  readonly valuesInline?: Readonly<Record<string, unknown>>;
  /** Unset: the cluster's prune. */
  readonly prune?: boolean;
  /** Names of the apps applied (and healthy) first, without repeats. */
  readonly dependsOn: readonly string[];
  /** 1-based line of the app's entry in the file. */
  readonly line: number;
}

export type AppsFileResult =
  | { readonly ok: true; readonly apps: readonly AppSpec[] }
  | { readonly ok: false; readonly problems: readonly ManifestProblem[] };

type Segment = string | number;

interface Located {
  readonly path: readonly Segment[];
  readonly message: string;
}

/**
 * Parses a cluster's `plumbline.yaml` (its text, and its repository-relative path `file`, which paths in
 * it are relative to). Pure. Every problem names the file and the line of the offending key; all of them
 * are returned at once, in the order of the file.
 */
export function parseAppsFile(text: string, file: string): AppsFileResult {
  const fail = (message: string, line?: number): AppsFileResult => ({
    ok: false,
    problems: [{ message, source: line === undefined ? { file } : { file, line } }],
  });
  if (Buffer.byteLength(text, 'utf8') > MAX_APPS_FILE_BYTES) {
    return fail(`${posix.basename(file)} is larger than ${MAX_APPS_FILE_BYTES / 1024 / 1024} MiB`);
  }
  const lineCounter = new LineCounter();
  const lineAt = (offset: number) => lineCounter.linePos(offset).line;
  const documents = parseAllDocuments(text, { lineCounter, prettyErrors: false, uniqueKeys: true });
  for (const document of documents) {
    const [error] = document.errors;
    if (error) return fail(`invalid YAML: ${error.message.split('\n')[0]}`, lineAt(error.pos[0]));
  }
  const filled = documents.filter((document) => document.contents !== null);
  const [document, second] = filled;
  if (!document) return fail(`${posix.basename(file)} is empty: it needs apiVersion, kind and apps`, 1);
  if (second) {
    return fail(
      'holds more than one YAML document: the apps of a cluster are one Apps document',
      lineAt(second.range[0]),
    );
  }
  let value: unknown;
  try {
    value = document.toJS({ maxAliasCount: MAX_ALIAS_COUNT });
  } catch (thrown) {
    return fail(`invalid YAML: ${(thrown as Error).message}`, lineAt(document.range[0]));
  }

  const located: Located[] = [];
  const parsed = appsFileSchema.safeParse(value);
  if (!parsed.success) located.push(...parsed.error.issues.flatMap((issue) => describeIssue(issue, value, [])));
  // Apps that are well formed on their own are checked further, so that one pass reports everything.
  const items = isRecord(value) && Array.isArray(value.apps) ? (value.apps as unknown[]) : [];
  const folder = normalizeFolder(posix.dirname(file));
  const apps: AppSpec[] = [];
  const firstIndex = new Map<string, number>();
  for (const [index, item] of items.entries()) {
    const app = appSchema.safeParse(item);
    if (!app.success) continue;
    const at = (...path: Segment[]) => ['apps', index, ...path];
    const first = firstIndex.get(app.data.name);
    if (first === undefined) firstIndex.set(app.data.name, index);
    else {
      const where = `apps[${first}], line ${lineOf(document, lineCounter, ['apps', first])}`;
      located.push({ path: at('name'), message: `"${app.data.name}" is already the name of ${where}` });
    }
    // valuesInline as YAML gave it: zod's copy drops a `__proto__` key, which Helm reads as any other.
    const valuesInline = isRecord(item) && isRecord(item.valuesInline) ? item.valuesInline : undefined;
    const spec = toAppSpec({ ...app.data, valuesInline }, folder, file, lineOf(document, lineCounter, at()));
    if ('problems' in spec) located.push(...spec.problems.map((p) => ({ ...p, path: at(...p.path) })));
    else apps.push(spec.app);
  }

  if (located.length > 0) {
    const problems = located
      .map((problem) => ({ problem, line: lineOf(document, lineCounter, problem.path) }))
      .sort((a, b) => a.line - b.line)
      .map(({ problem, line }): ManifestProblem => ({ message: withPath(problem), source: { file, line } }));
    return { ok: false, problems: Object.freeze(problems) };
  }
  return { ok: true, apps: Object.freeze(apps) };
}

/** One app's fields resolved: paths against the file's folder, defaults filled in. */
function toAppSpec(
  app: AppInput & { readonly valuesInline: Record<string, unknown> | undefined },
  folder: string,
  file: string,
  line: number,
): { readonly app: AppSpec } | { readonly problems: readonly Located[] } {
  const problems: Located[] = [];
  const resolve = (ref: string, path: readonly Segment[], what: 'folder' | 'file'): string => {
    const resolved = resolveInRepository(folder, ref, what, file);
    if (typeof resolved === 'string') return resolved;
    problems.push({ path, message: resolved.problem });
    return '';
  };
  let source: AppSource | undefined;
  if (app.path !== undefined && app.chart !== undefined) {
    problems.push({ path: ['chart'], message: 'set only one of path or chart' });
  } else if (app.path !== undefined) {
    const path = resolve(app.path, ['path'], 'folder');
    if (path === folder && !problems.length) {
      problems.push({
        path: ['path'],
        message: `"${app.path}" is the folder of ${posix.basename(file)} itself: a cluster with apps is only its apps`,
      });
    }
    source = { kind: 'path', path };
  } else if (typeof app.chart === 'string') {
    source = { kind: 'local-chart', path: resolve(app.chart, ['chart'], 'folder') };
  } else if (app.chart !== undefined) {
    const { repository, name, version } = app.chart;
    source = { kind: 'remote-chart', repository: repository.replace(/\/+$/, ''), name, version };
  } else {
    problems.push({ path: [], message: 'set one of path (a kustomize or plain-YAML folder) or chart' });
  }
  const values = (app.values ?? []).map((ref, index) => resolve(ref, ['values', index], 'file'));
  if (problems.length > 0 || source === undefined) return { problems };
  return {
    app: Object.freeze({
      name: app.name,
      releaseName: app.releaseName ?? app.name,
      ...(app.namespace !== undefined ? { namespace: app.namespace } : {}),
      source: Object.freeze(source),
      values: Object.freeze(values),
      ...(app.valuesInline !== undefined ? { valuesInline: app.valuesInline } : {}),
      ...(app.prune !== undefined ? { prune: app.prune } : {}),
      dependsOn: Object.freeze([...new Set(app.dependsOn ?? [])]),
      line,
    }),
  };
}

/**
 * A path of the file, relative to its folder, as a repository-relative POSIX path (`''` is the root);
 * or why it is refused: it must stay inside the repository, and be a plain relative path.
 */
function resolveInRepository(
  folder: string,
  ref: string,
  what: 'folder' | 'file',
  file: string,
): string | { readonly problem: string } {
  const shown = JSON.stringify(ref);
  if (ref.includes('\0')) return { problem: `${shown} contains a NUL character` };
  if (ref.includes('\\')) return { problem: `${shown} contains a backslash: separate folders with /` };
  if (/^[a-z][a-z0-9+.-]*:/i.test(ref)) {
    return {
      problem: `${shown} is a URL: it must be a ${what} in the repository (a remote chart is { repository, name, version })`,
    };
  }
  if (ref.startsWith('/')) return { problem: `${shown} is absolute: paths are relative to ${file}` };
  const resolved = normalizeFolder(posix.join(folder, ref));
  if (resolved === '..' || resolved.startsWith('../')) {
    return { problem: `${shown} leaves the repository (paths are relative to ${file})` };
  }
  if (what === 'file' && resolved === '') return { problem: `${shown} is the repository's root: it must name a file` };
  return resolved;
}

/** A zod issue as problems with a path into the file; unions are narrowed to the branch the value meant. */
function describeIssue(issue: z.core.$ZodIssue, value: unknown, base: readonly Segment[]): Located[] {
  const path = [...base, ...issue.path.filter((s): s is Segment => typeof s !== 'symbol')];
  const input = valueAt(value, path);
  switch (issue.code) {
    case 'unrecognized_keys': {
      const allowed = fieldsAt(path).join(', ');
      return issue.keys.map((key) => ({
        path: [...path, key],
        message: `unknown field (the fields here are ${allowed})`,
      }));
    }
    case 'invalid_union': {
      // The branch that did not fail on the value's type is the one the author meant.
      const meant = issue.errors.filter(
        (branch) => !branch.some((inner) => inner.path.length === 0 && inner.code === 'invalid_type'),
      );
      const [branch] = meant;
      if (meant.length === 1 && branch) return branch.flatMap((inner) => describeIssue(inner, value, path));
      return [{ path, message: issue.message }];
    }
    case 'invalid_type':
      if (input === undefined) return [{ path, message: 'is required' }];
      return [{ path, message: `must be ${describeType(issue.expected)}${quoteHint(issue.expected, input)}` }];
    case 'invalid_value':
      return [{ path, message: input === undefined ? `is required (${issue.message})` : issue.message }];
    default:
      return [{ path, message: issue.message }];
  }
}

const describeType = (expected: string) =>
  ({ string: 'a string', boolean: 'true or false', array: 'a list', object: 'a mapping', record: 'a mapping' })[
    expected
  ] ?? expected;

/** YAML reads `1.10` as a number and `true` as a boolean: a string field needs them quoted. */
const quoteHint = (expected: string, input: unknown) =>
  expected === 'string' && (typeof input === 'number' || typeof input === 'boolean')
    ? ` (YAML reads this one as a ${typeof input}: quote it)`
    : '';

/** The fields allowed by the object at a path of the file. */
function fieldsAt(path: readonly Segment[]): readonly string[] {
  if (path.length === 0) return APPS_FILE_FIELDS.file;
  return path.at(-1) === 'chart' ? APPS_FILE_FIELDS.remoteChart : APPS_FILE_FIELDS.app;
}

const isRecord = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

function valueAt(value: unknown, path: readonly Segment[]): unknown {
  let current = value;
  for (const segment of path) {
    if (Array.isArray(current) && typeof segment === 'number') current = current[segment];
    else if (isRecord(current) && Object.hasOwn(current, segment)) current = current[segment];
    else return undefined;
  }
  return current;
}

/**
 * The line a path leads to: the key's line for a field, the item's for a list item. Where the path stops
 * (a missing field, or an alias, whose fields are written at its anchor) it is the last node reached.
 */
function lineOf(document: Document, lineCounter: LineCounter, path: readonly Segment[]): number {
  const lineAt = (node: unknown) => (isNode(node) && node.range ? lineCounter.linePos(node.range[0]).line : undefined);
  let node: unknown = document.contents;
  let line = lineAt(node) ?? 1;
  for (const segment of path) {
    if (isAlias(node)) break;
    if (isMap(node)) {
      const pair = node.items.find((p) => isScalar(p.key) && String(p.key.value) === String(segment));
      if (!pair) break;
      line = lineAt(pair.key) ?? line;
      node = pair.value;
    } else if (isSeq(node) && typeof segment === 'number') {
      node = node.items[segment];
      line = lineAt(node) ?? line;
    } else break;
  }
  return line;
}

/** `apps[2].chart.version: message`. */
function withPath({ path, message }: Located): string {
  const where = path.reduce<string>(
    (text, part) => (typeof part === 'number' ? `${text}[${part}]` : text ? `${text}.${part}` : part),
    '',
  );
  return where ? `${where}: ${message}` : message;
}
