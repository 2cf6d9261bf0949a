import { mapLimited } from '../support/limit-concurrency.ts';
import type { Baselines } from './baseline-store.ts';
import { type ClusterClient, KubeError, type LiveObject } from './cluster-client.ts';
import { displayPath, driftOf, type FieldDrift, segmentNames } from './field-set.ts';
import { type Inventory, type InventoryEntry, idKey, manifestOf } from './inventory.ts';
import { objectRef } from './manifest.ts';
import { showValue } from './object-diff.ts';
import { ownerSelector } from './ownership.ts';

/** One field that drifted, as reports show it: values masked when they look secret. */
export interface DriftedField {
  readonly path: string;
  readonly expected: string;
  readonly actual: string;
  readonly changedBy: readonly string[];
}

export interface DriftedObject {
  readonly entry: InventoryEntry;
  /** `Kind/namespace/name`. */
  readonly object: string;
  /** `deleted`: the object is gone; `changed`: fields Plumbline set hold other values. */
  readonly kind: 'changed' | 'deleted';
  readonly fields: readonly DriftedField[];
}

export interface DriftScan {
  readonly drifted: readonly DriftedObject[];
  /** Objects compared (those with a baseline, or deleted). */
  readonly checked: number;
  /** Requests sent to the apiserver. */
  readonly requests: number;
}

/** Namespaces of one kind beyond which a single cluster-wide LIST is cheaper than one per namespace. */
const PER_NAMESPACE_LISTS = 3;

/**
 * Compares the live cluster with what Plumbline set at its last apply: one label-selected LIST per kind
 * (per namespace, or cluster-wide when the kind spans many), then each object's recorded fields against
 * their live values. An object whose resourceVersion is still the recorded one was not touched and is
 * not even compared. Objects the LIST misses are confirmed with a GET (their label may have been
 * removed) before they count as deleted.
 */
export async function scanDrift(
  client: ClusterClient,
  clusterName: string,
  inventory: Inventory,
  baselines: Baselines,
  concurrency: number,
): Promise<DriftScan> {
  let requests = 0;
  const byKind = new Map<string, InventoryEntry[]>();
  for (const entry of inventory.objects) {
    const kind = `${entry.apiVersion}|${entry.kind}`;
    byKind.set(kind, [...(byKind.get(kind) ?? []), entry]);
  }
  type List = { apiVersion: string; kind: string; namespace: string | undefined; all: boolean };
  const perNamespace = (apiVersion: string, kind: string, namespaces: readonly (string | undefined)[]): List[] =>
    namespaces.map((namespace) => ({ apiVersion, kind, namespace, all: false }));
  const namespacesOf = new Map<string, (string | undefined)[]>();
  const lists: List[] = [];
  for (const [key, entries] of byKind) {
    const { apiVersion, kind } = entries[0] as InventoryEntry;
    const namespaces = [...new Set(entries.map((e) => e.namespace))];
    namespacesOf.set(key, namespaces);
    if (namespaces.length > PER_NAMESPACE_LISTS) lists.push({ apiVersion, kind, namespace: undefined, all: true });
    else lists.push(...perNamespace(apiVersion, kind, namespaces));
  }
  const live = new Map<string, LiveObject>();
  const listOne = async ({ apiVersion, kind, namespace, all }: List): Promise<void> => {
    requests += 1;
    let items: LiveObject[];
    try {
      items = await client.list(apiVersion, kind, namespace, {
        labelSelector: ownerSelector(clusterName),
        allNamespaces: all,
      });
    } catch (error) {
      // Narrow RBAC (a Role per namespace, an impersonated tenant) forbids the cluster-wide LIST: one per namespace.
      if (all && error instanceof KubeError && error.status === 403) {
        const namespaces = namespacesOf.get(`${apiVersion}|${kind}`) ?? [];
        // In this lane, one after another: the scan's concurrency limit holds.
        for (const list of perNamespace(apiVersion, kind, namespaces)) await listOne(list);
        return;
      }
      // The kind is no longer served (its CRD was deleted) or the namespace is gone: every object is missing.
      if (error instanceof KubeError && !error.retryable) return;
      throw error;
    }
    for (const item of items) {
      const metadata = item.metadata as { name?: string; namespace?: string };
      const id = { apiVersion, kind, name: metadata.name ?? '' };
      live.set(idKey(metadata.namespace ? { ...id, namespace: metadata.namespace } : id), item);
    }
  };
  await mapLimited(lists, concurrency, listOne);

  const missing = inventory.objects.filter((entry) => !live.has(idKey(entry)));
  await mapLimited(missing, concurrency, async (entry) => {
    requests += 1;
    const found = await client.get(manifestOf(entry));
    if (found) live.set(idKey(entry), found);
  });

  const drifted: DriftedObject[] = [];
  let checked = 0;
  for (const entry of inventory.objects) {
    const object = objectRef(manifestOf(entry));
    const current = live.get(idKey(entry));
    if (!current) {
      checked += 1;
      drifted.push({ entry, object, kind: 'deleted', fields: [] });
      continue;
    }
    const baseline = baselines.get(idKey(entry));
    if (!baseline) continue;
    checked += 1;
    const version = (current.metadata as { resourceVersion?: string }).resourceVersion;
    if (entry.resourceVersion !== undefined && version === entry.resourceVersion) continue;
    const fields = driftOf(current, baseline);
    if (fields.length > 0)
      drifted.push({ entry, object, kind: 'changed', fields: fields.map((f) => shown(f, entry.kind)) });
  }
  return { drifted, checked, requests };
}

function shown(drift: FieldDrift, kind: string): DriftedField {
  const at = { kind, segments: segmentNames(drift.path) };
  return {
    path: displayPath(drift.path),
    expected: showValue(drift.recorded, at),
    actual: showValue(drift.live, at),
    changedBy: drift.changedBy,
  };
}

/** "2 drifted: ConfigMap/a/b (data.mode changed by kubectl-edit), Deployment/a/web (deleted)". Pure. */
export function describeDrift(
  drifted: readonly DriftedObject[],
  { limit = 3, managers = true }: { readonly limit?: number; readonly managers?: boolean } = {},
): string {
  const parts = drifted.slice(0, limit).map((d) => {
    if (d.kind === 'deleted') return `${d.object} (deleted)`;
    const [first] = d.fields;
    const by = managers && first?.changedBy.length ? ` by ${first.changedBy.join(', ')}` : '';
    const more = d.fields.length > 1 ? ` and ${d.fields.length - 1} more` : '';
    return `${d.object} (${first?.path ?? 'fields'} changed${by}${more})`;
  });
  const rest = drifted.length > limit ? `, and ${drifted.length - limit} more` : '';
  return `${drifted.length} drifted: ${parts.join(', ')}${rest}`;
}
