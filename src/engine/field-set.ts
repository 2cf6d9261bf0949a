import { isDeepStrictEqual } from 'node:util';
import { FIELD_MANAGER, type LiveObject } from './cluster-client.ts';

/**
 * The server's record of which fields a manager set (`managedFields[].fieldsV1`): `f:<name>` for a
 * field, `k:{…}` for a list item by its keys, `v:<json>` for a set member, `i:<n>` by index, `.` for
 * the node itself.
 */
export interface FieldsV1 {
  readonly [segment: string]: FieldsV1;
}

export type FieldPath = readonly string[];

/**
 * What Plumbline set at its last apply: its field set, and the server-normalized value of each leaf
 * (aligned with `leafPaths(fields)`). Drift is measured against this, not against the object's current
 * `managedFields`: an edit moves ownership of the edited field away, which would hide exactly that drift.
 */
export interface Baseline {
  readonly fields: FieldsV1;
  readonly values: readonly unknown[];
}

export interface FieldDrift {
  readonly path: FieldPath;
  readonly recorded: unknown;
  /** Undefined when the field is gone. */
  readonly live: unknown;
  /** Who changed it: the managers that own the field now (or, if nobody does, who changed the object last). */
  readonly changedBy: readonly string[];
}

interface ManagedFieldsEntry {
  readonly manager?: string;
  readonly operation?: string;
  readonly time?: string;
  readonly fieldsV1?: FieldsV1;
}

/** Leaf paths of a field set, in a stable order: the fields whose values were set. Pure. */
export function leafPaths(fields: FieldsV1, prefix: FieldPath = []): FieldPath[] {
  const paths: FieldPath[] = [];
  for (const segment of Object.keys(fields).sort()) {
    if (segment === '.') continue;
    const child = fields[segment] ?? {};
    const path = [...prefix, segment];
    if (Object.keys(child).some((key) => key !== '.')) paths.push(...leafPaths(child, path));
    else paths.push(path);
  }
  return paths;
}

/** The value a field path points to in an object, or undefined when it is not there. Pure. */
export function valueAt(object: unknown, path: FieldPath): unknown {
  let current: unknown = object;
  for (const segment of path) {
    if (current === undefined || current === null) return undefined;
    const kind = segment.slice(0, 2);
    const rest = segment.slice(2);
    if (kind === 'f:') {
      if (typeof current !== 'object' || Array.isArray(current)) return undefined;
      current = (current as Record<string, unknown>)[rest];
    } else if (kind === 'k:' || kind === 'v:' || kind === 'i:') {
      if (!Array.isArray(current)) return undefined;
      const list: unknown[] = current;
      if (kind === 'i:') current = list[Number(rest)];
      else {
        const wanted = JSON.parse(rest) as unknown;
        current =
          kind === 'v:'
            ? list.find((item) => isDeepStrictEqual(item, wanted))
            : list.find((item) => matchesKeys(item, wanted as Record<string, unknown>));
      }
    } else {
      return undefined;
    }
  }
  return current;
}

function matchesKeys(item: unknown, keys: Record<string, unknown>): boolean {
  if (typeof item !== 'object' || item === null) return false;
  return Object.entries(keys).every(([key, value]) => isDeepStrictEqual((item as Record<string, unknown>)[key], value));
}

function managedFieldsOf(object: LiveObject): ManagedFieldsEntry[] {
  return ((object.metadata as { managedFields?: ManagedFieldsEntry[] } | undefined)?.managedFields ?? []).filter(
    (entry) => entry.fieldsV1 !== undefined,
  );
}

/** The baseline of an object as an apply (or its dry-run) returned it; undefined if Plumbline set no field. */
export function baselineOf(applied: LiveObject, manager = FIELD_MANAGER): Baseline | undefined {
  const entry = managedFieldsOf(applied).find((e) => e.manager === manager && e.operation === 'Apply');
  if (!entry?.fieldsV1) return undefined;
  const fields = entry.fieldsV1;
  return { fields, values: leafPaths(fields).map((path) => valueAt(applied, path) ?? null) };
}

/**
 * The fields of a baseline whose live value differs from the recorded one, each with who changed it.
 * Fields Plumbline never set are not looked at, so a value another controller owns (an HPA's replicas)
 * is never drift; values are compared as the server normalized them, so formatting is never drift. Pure.
 */
export function driftOf(live: LiveObject, baseline: Baseline, manager = FIELD_MANAGER): FieldDrift[] {
  const entries = managedFieldsOf(live).filter((e) => e.manager !== manager);
  const drift: FieldDrift[] = [];
  leafPaths(baseline.fields).forEach((path, index) => {
    const recorded = baseline.values[index] ?? null;
    const now = valueAt(live, path);
    if (isDeepStrictEqual(recorded, now ?? null)) return;
    drift.push({ path, recorded, live: now, changedBy: changedBy(entries, path) });
  });
  return drift;
}

function changedBy(entries: readonly ManagedFieldsEntry[], path: FieldPath): string[] {
  const owners = entries.filter((e) => e.fieldsV1 && contains(e.fieldsV1, path)).map((e) => e.manager ?? 'unknown');
  if (owners.length > 0) return [...new Set(owners)];
  // A removed field has no owner left: name whoever changed the object last.
  const latest = [...entries]
    .filter((e) => e.operation === 'Update' || e.operation === 'Apply')
    .sort((a, b) => (b.time ?? '').localeCompare(a.time ?? ''))[0];
  return latest?.manager ? [latest.manager] : [];
}

function contains(fields: FieldsV1, path: FieldPath): boolean {
  let node: FieldsV1 | undefined = fields;
  for (const segment of path) {
    node = node?.[segment];
    if (node === undefined) return false;
  }
  return true;
}

/** Plain names of a path's segments, for display and masking: `containers`, `app`, `image`. Pure. */
export function segmentNames(path: FieldPath): string[] {
  return path.map((segment) => {
    const rest = segment.slice(2);
    if (segment.startsWith('f:') || segment.startsWith('i:')) return rest;
    const value = JSON.parse(rest) as unknown;
    if (segment.startsWith('k:') && typeof value === 'object' && value !== null)
      return Object.values(value).map(String).join(',');
    return typeof value === 'string' ? value : JSON.stringify(value);
  });
}

/** `spec.template.spec.containers[app].image`. Pure. */
export function displayPath(path: FieldPath): string {
  const names = segmentNames(path);
  return path.reduce((text, segment, i) => {
    const name = names[i] ?? '';
    if (segment.startsWith('f:')) return text === '' ? name : `${text}.${name}`;
    return `${text}[${name}]`;
  }, '');
}
