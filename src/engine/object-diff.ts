import { isDeepStrictEqual } from 'node:util';
import type { LiveObject } from './cluster-client.ts';
import { comparable } from './normalize-object.ts';
import {
  containsSecret,
  isSecretPayloadField,
  isSecretSegment,
  itemNames,
  looksLikeCredential,
  MASK,
} from './secret-masking.ts';

/** Re-exported for the callers that show masked values next to a diff. */
export { MASK } from './secret-masking.ts';

/**
 * A small, pure, field-level diff of two Kubernetes objects — the live object and the server-side
 * dry-run of the new manifest — short enough for a GitHub check run and safe to publish there:
 * Secret payloads, secret-looking keys and credential-looking values are masked on both sides, so a
 * reader learns *that* a field changed, never *what* it holds (the detectors live in `secret-masking.ts`).
 *
 * For GitHub (`desired` given) the diff carries no value read from the cluster at all (invariant 9):
 * no `before`, and an `after` only where the commit's own manifest holds exactly that value — a field
 * the server defaulted, or another manager set, is named without its value.
 */

/** One differing field, as shown to a person; `before`/`after` are display strings, already masked. */
export interface FieldChange {
  /**
   * Dotted path; list items are named by their identity when the list has one
   * (`spec.template.spec.containers[podinfo].env[DB_PASSWORD].value`, `ports[8080]`), else by index
   * (`args[2]`). Keys that are not plain identifiers are quoted: `metadata.labels["app.kubernetes.io/name"]`.
   */
  readonly path: string;
  readonly change: 'added' | 'removed' | 'changed';
  /** Display string (JSON-ish, at most ~80 chars), absent on the `added` side. */
  readonly before?: string;
  /** Display string (JSON-ish, at most ~80 chars), absent on the `removed` side. */
  readonly after?: string;
}

/** Options for {@link diffObjects}. */
export interface DiffOptions {
  /** The object's kind; a `Secret` (given here or found on either object) masks everything under `data`/`stringData`. */
  readonly kind?: string | undefined;
  /** At most this many changes are returned (default 20); the rest are only counted in `truncated`. */
  readonly maxChanges?: number | undefined;
  /**
   * The manifest from the commit. When given, the diff is for publishing: values are shown only where
   * they come from it, and never a live (`before`) one.
   */
  readonly desired?: unknown;
}

const DEFAULT_MAX_CHANGES = 20;
const MAX_DISPLAY_CHARS = 80;
/**
 * Display only: kubectl's last-applied annotation can hold a whole earlier object — Secret data
 * included — so a diff never shows it. (What apply compares on, {@link comparable}, keeps it: a change to
 * it is a change to the object.)
 */
const LAST_APPLIED = 'kubectl.kubernetes.io/last-applied-configuration';

type JsonRecord = Record<string, unknown>;

const isRecord = (value: unknown): value is JsonRecord =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

/** JSON with sorted keys, so summaries are deterministic. */
function stableStringify(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map((item) => stableStringify(item ?? null)).join(',')}]`;
  if (isRecord(value)) {
    const entries = Object.keys(value)
      .filter((key) => value[key] !== undefined)
      .sort()
      .map((key) => `${JSON.stringify(key)}:${stableStringify(value[key])}`);
    return `{${entries.join(',')}}`;
  }
  return JSON.stringify(value) ?? 'null';
}

function display(value: unknown): string {
  const text = stableStringify(value);
  if (text.length <= MAX_DISPLAY_CHARS) return text;
  return `${Array.from(text)
    .slice(0, MAX_DISPLAY_CHARS - 1)
    .join('')}…`;
}

const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_-]*$/;

function keyPath(parent: string, key: string): string {
  const shown = looksLikeCredential(key) ? MASK : key;
  if (IDENTIFIER.test(shown)) return parent === '' ? shown : `${parent}.${shown}`;
  return `${parent}[${JSON.stringify(shown)}]`;
}

const itemPath = (parent: string, identity: string | number): string =>
  `${parent}[${typeof identity === 'string' && looksLikeCredential(identity) ? MASK : identity}]`;

type IdentityField = 'name' | 'key' | 'containerPort' | 'port';
const IDENTITY_FIELDS: readonly IdentityField[] = ['name', 'key', 'containerPort', 'port'];

/** The field that identifies items of both lists, if every item has a unique one; else lists match by index. */
function listIdentity(before: readonly unknown[], after: readonly unknown[]): IdentityField | undefined {
  return IDENTITY_FIELDS.find((field) => {
    const wanted = field === 'name' || field === 'key' ? 'string' : 'number';
    return [before, after].every((list) => {
      const seen = new Set<unknown>();
      for (const item of list) {
        if (!isRecord(item) || typeof item[field] !== wanted || seen.has(item[field])) return false;
        seen.add(item[field]);
      }
      return true;
    });
  });
}

function compareIdentities(a: string | number, b: string | number): number {
  if (typeof a === 'number' && typeof b === 'number') return a - b;
  const [x, y] = [String(a), String(b)];
  return x < y ? -1 : x > y ? 1 : 0;
}

interface Walk {
  readonly out: FieldChange[];
  readonly secretKind: boolean;
  /** Publishing: show only values the commit's manifest holds, never a live one. */
  readonly publish: boolean;
}

/** Records one leaf-level difference; a masked change keeps its kind but shows {@link MASK} on each present side. */
function record(walk: Walk, path: string, before: unknown, after: unknown, masked: boolean, desired: unknown): void {
  const mask = masked || containsSecret(before) || containsSecret(after);
  const show = (value: unknown) => (mask ? MASK : display(value));
  if (walk.publish) {
    const fromCommit = after !== undefined && !mask && isDeepStrictEqual(desired, after);
    const change = before === undefined ? 'added' : after === undefined ? 'removed' : 'changed';
    walk.out.push({ path, change, ...(fromCommit ? { after: display(after) } : {}) });
    return;
  }
  if (before === undefined) walk.out.push({ path, change: 'added', after: show(after) });
  else if (after === undefined) walk.out.push({ path, change: 'removed', before: show(before) });
  else walk.out.push({ path, change: 'changed', before: show(before), after: show(after) });
}

/** `desired` is the commit's value at the same place (undefined where the commit says nothing). */
function diffValue(walk: Walk, path: string, before: unknown, after: unknown, masked: boolean, desired: unknown): void {
  if (before === undefined && after === undefined) return;
  if (isRecord(before) && isRecord(after)) diffRecords(walk, path, before, after, masked, false, desired);
  else if (Array.isArray(before) && Array.isArray(after)) diffLists(walk, path, before, after, masked, desired);
  else if (before !== after) record(walk, path, before, after, masked, desired);
}

function diffRecords(
  walk: Walk,
  path: string,
  before: JsonRecord,
  after: JsonRecord,
  masked: boolean,
  root: boolean,
  desired: unknown,
): void {
  const keys = [...new Set([...Object.keys(before), ...Object.keys(after)])].sort();
  for (const key of keys) {
    const secretPayload = root && walk.secretKind && isSecretPayloadField(key);
    const childMasked = masked || secretPayload || isSecretSegment(key);
    const wanted = isRecord(desired) ? desired[key] : undefined;
    diffValue(walk, keyPath(path, key), before[key], after[key], childMasked, wanted);
  }
}

function diffLists(
  walk: Walk,
  path: string,
  before: readonly unknown[],
  after: readonly unknown[],
  masked: boolean,
  desired: unknown,
) {
  const wantedList = Array.isArray(desired) ? desired : [];
  const field = listIdentity(before, after);
  if (field === undefined) {
    for (let i = 0; i < Math.max(before.length, after.length); i++) {
      const secretItem = [...itemNames(before[i]), ...itemNames(after[i])].some(isSecretSegment);
      diffValue(walk, itemPath(path, i), before[i], after[i], masked || secretItem, wantedList[i]);
    }
    return;
  }
  const byIdentity = (list: readonly unknown[]) =>
    new Map(list.filter(isRecord).map((item) => [item[field] as string | number, item] as const));
  const [old, next, wanted] = [byIdentity(before), byIdentity(after), byIdentity(wantedList)];
  const identities = [...new Set([...old.keys(), ...next.keys()])].sort(compareIdentities);
  for (const identity of identities) {
    const secretItem = typeof identity === 'string' && isSecretSegment(identity);
    const item = [old.get(identity), next.get(identity), wanted.get(identity)] as const;
    diffValue(walk, itemPath(path, identity), item[0], item[1], masked || secretItem, item[2]);
  }
}

/**
 * What a diff shows of an object: its {@link comparable} form (no `status`, no server bookkeeping in
 * `metadata`) and, for display only, without the last-applied annotation; annotations left empty by
 * that are dropped too. Values that are not objects are diffed as they are.
 */
function forDisplay(value: unknown): unknown {
  if (!isRecord(value)) return value;
  // comparable reads only `status` and `metadata`, and takes a `metadata` of any shape.
  const normal = comparable(value as LiveObject);
  if (!isRecord(normal) || !isRecord(normal.metadata) || !isRecord(normal.metadata.annotations)) return normal;
  const { annotations: allAnnotations, ...metadata } = normal.metadata;
  if (!(LAST_APPLIED in allAnnotations)) return normal;
  const { [LAST_APPLIED]: _lastApplied, ...annotations } = allAnnotations;
  return { ...normal, metadata: Object.keys(annotations).length > 0 ? { ...metadata, annotations } : metadata };
}

const kindOf = (value: unknown): unknown => (isRecord(value) ? value.kind : undefined);

/**
 * The field changes that turn `before` (the live object) into `after` (the dry-run result), deepest
 * differing paths only, in sorted path order, with secrets masked on both sides. A whole added or
 * removed subtree is one change at its root. At most `maxChanges` (default 20) are returned;
 * `truncated` counts the rest. Objects are compared in their {@link forDisplay} form; nothing else is stripped.
 */
export function diffObjects(
  before: unknown,
  after: unknown,
  options: DiffOptions = {},
): { changes: FieldChange[]; truncated: number } {
  const secretKind = [options.kind, kindOf(before), kindOf(after)].includes('Secret');
  const walk: Walk = { out: [], secretKind, publish: 'desired' in options };
  const [old, next] = [forDisplay(before), forDisplay(after)];
  if (isRecord(old) && isRecord(next)) diffRecords(walk, '', old, next, false, true, options.desired);
  else {
    const secretPayload =
      secretKind && [old, next].some((o) => isRecord(o) && Object.keys(o).some(isSecretPayloadField));
    diffValue(walk, '', old, next, secretPayload, options.desired);
  }
  const limit = Math.max(0, Math.floor(options.maxChanges ?? DEFAULT_MAX_CHANGES));
  return { changes: walk.out.slice(0, limit), truncated: Math.max(0, walk.out.length - limit) };
}

/**
 * One line per change for a check run's Markdown (`~ spec.replicas: 2 → 3`, `+ metadata.labels.team: "platform"`,
 * `- …args[1]: "--debug"`); the values are the already-masked display strings.
 */
export function formatDiff(changes: readonly FieldChange[]): string[] {
  return changes.map(({ path, change, before, after }) => {
    const where = path === '' ? '(object)' : path;
    if (change === 'added') return after === undefined ? `+ ${where}` : `+ ${where}: ${after}`;
    if (change === 'removed') return before === undefined ? `- ${where}` : `- ${where}: ${before}`;
    if (before === undefined) return after === undefined ? `~ ${where}` : `~ ${where} → ${after}`;
    return `~ ${where}: ${before} → ${after ?? ''}`;
  });
}

/**
 * One value as a report shows it, masked when it is a Secret's payload, when a segment of its path
 * names a secret (`DB_PASSWORD`, `apiKey`, …) or when the value itself looks like a credential.
 * `segments` are plain names: field names and list items' identities.
 */
export function showValue(
  value: unknown,
  at: { readonly kind?: string; readonly segments: readonly string[] },
): string {
  const secretPayload = at.kind === 'Secret' && isSecretPayloadField(at.segments[0]);
  if (secretPayload || at.segments.some(isSecretSegment) || containsSecret(value)) return MASK;
  return value === undefined ? '(absent)' : display(value);
}
