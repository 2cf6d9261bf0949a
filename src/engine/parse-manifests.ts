import { LineCounter, parseAllDocuments } from 'yaml';
import type { ManifestProblem, RenderedObject } from './manifest.ts';
import { objectKey, objectRef } from './manifest.ts';

/** An alias bomb is refused rather than expanded (a few aliases are normal in real manifests). */
const MAX_ALIAS_COUNT = 1_000;

export interface ParseResult {
  readonly objects: RenderedObject[];
  readonly problems: ManifestProblem[];
}

/**
 * Parses a YAML stream as Kubernetes and kustomize do — YAML 1.1, so `0755` is octal 493 — expands
 * `*List` documents into their items, and checks that every object can be applied: apiVersion, kind
 * and metadata.name present. `file` is the repository-relative name used in messages (undefined for
 * kustomize output, which has no single source file).
 */
export function parseManifests(text: string, file: string | undefined): ParseResult {
  const lineCounter = new LineCounter();
  const objects: RenderedObject[] = [];
  const problems: ManifestProblem[] = [];
  const at = (offset: number | undefined) =>
    file === undefined ? undefined : offset === undefined ? { file } : { file, line: lineCounter.linePos(offset).line };
  for (const document of parseAllDocuments(text, { version: '1.1', lineCounter, uniqueKeys: true })) {
    const [error] = document.errors;
    if (error) {
      problems.push({ message: `invalid YAML: ${error.message.split('\n')[0]}`, source: at(error.pos[0]) });
      continue;
    }
    let value: unknown;
    try {
      value = document.toJS({ maxAliasCount: MAX_ALIAS_COUNT });
    } catch (thrown) {
      problems.push({ message: `invalid YAML: ${(thrown as Error).message}`, source: at(document.range[0]) });
      continue;
    }
    if (value === null || value === undefined) continue;
    const source = at(document.contents?.range[0] ?? document.range[0]);
    for (const item of expandLists(value)) {
      const problem = checkObject(item);
      if (problem) problems.push({ message: problem, source });
      else objects.push({ manifest: item as RenderedObject['manifest'], source });
    }
  }
  return { objects, problems };
}

/** `kind: List` (and `ConfigMapList`, `RoleList`, …) documents stand for their items. */
function expandLists(value: unknown): unknown[] {
  if (typeof value === 'object' && value !== null && !Array.isArray(value)) {
    const record = value as Record<string, unknown>;
    if (typeof record.kind === 'string' && record.kind.endsWith('List') && Array.isArray(record.items)) {
      return record.items.flatMap(expandLists);
    }
  }
  return [value];
}

function checkObject(value: unknown): string | undefined {
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    return 'a document is not a Kubernetes object';
  const record = value as Record<string, unknown>;
  const metadata = record.metadata as Record<string, unknown> | undefined;
  const kind = typeof record.kind === 'string' ? record.kind : undefined;
  const name = typeof metadata?.name === 'string' && metadata.name !== '' ? metadata.name : undefined;
  if (typeof record.apiVersion !== 'string' || record.apiVersion === '')
    return `${kind ?? 'an object'}${name ? `/${name}` : ''} has no apiVersion`;
  if (!kind) return `an object of ${record.apiVersion} has no kind`;
  if (!name) return `a ${kind} has no metadata.name (generateName cannot be applied declaratively)`;
  if (metadata?.namespace !== undefined && typeof metadata.namespace !== 'string')
    return `${kind}/${name} has a namespace that is not a string (YAML 1.1 reads y, n, yes, no, on, off as booleans: quote it)`;
  return undefined;
}

/** Two objects with the same identity would overwrite each other: the commit is ambiguous. */
export function findDuplicates(objects: readonly RenderedObject[]): ManifestProblem[] {
  const seen = new Map<string, RenderedObject>();
  const problems: ManifestProblem[] = [];
  for (const object of objects) {
    const key = objectKey(object.manifest);
    const first = seen.get(key);
    if (!first) {
      seen.set(key, object);
      continue;
    }
    const where = first.source
      ? ` (first defined in ${first.source.file}${first.source.line ? `:${first.source.line}` : ''})`
      : '';
    problems.push({
      message: `${objectRef(object.manifest)} is defined twice${where}`,
      source: object.source,
      object: objectRef(object.manifest),
    });
  }
  return problems;
}
