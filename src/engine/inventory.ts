import { type ClusterClient, KubeError } from './cluster-client.ts';
import type { Manifest } from './manifest.ts';

/** How an applied object is remembered: enough to find and delete it later. */
export interface ObjectId {
  readonly apiVersion: string;
  readonly kind: string;
  readonly namespace?: string;
  readonly name: string;
}

/** An inventory entry: the object, and what its last apply recorded (see `AppliedRecord`). */
export interface InventoryEntry extends ObjectId {
  readonly digest?: string;
  readonly resourceVersion?: string;
}

export interface Inventory {
  /** The commit last applied to the cluster. */
  readonly revision: string;
  readonly objects: readonly InventoryEntry[];
  /** Digest of the baselines written beside the inventory (baseline-store.ts); none before any was. */
  readonly baselineDigest?: string | undefined;
}

export const INVENTORY_NAMESPACE = 'plumbline-system';

export function objectIdOf(manifest: Pick<Manifest, 'apiVersion' | 'kind' | 'metadata'>): ObjectId {
  const { name, namespace } = manifest.metadata;
  return namespace
    ? { apiVersion: manifest.apiVersion, kind: manifest.kind, namespace, name }
    : { apiVersion: manifest.apiVersion, kind: manifest.kind, name };
}

/** Group/kind/namespace/name: the version may change between commits without making it another object. */
export function idKey(id: ObjectId): string {
  const group = id.apiVersion.includes('/') ? id.apiVersion.split('/')[0] : '';
  return `${group}|${id.kind}|${id.namespace ?? ''}|${id.name}`;
}

export function manifestOf(id: ObjectId): Manifest {
  return {
    apiVersion: id.apiVersion,
    kind: id.kind,
    metadata: id.namespace ? { name: id.name, namespace: id.namespace } : { name: id.name },
  };
}

/** One ConfigMap per registered cluster, in the cluster itself (ADR 5). */
function inventoryConfigMap(clusterName: string, inventory?: Inventory): Manifest {
  return {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: {
      name: `plumbline-inventory-${clusterName}`,
      namespace: INVENTORY_NAMESPACE,
      labels: { 'app.kubernetes.io/managed-by': 'plumbline', 'plumbline.dev/cluster': clusterName },
    },
    ...(inventory
      ? {
          data: {
            revision: inventory.revision,
            objects: JSON.stringify(inventory.objects),
            ...(inventory.baselineDigest ? { baselineDigest: inventory.baselineDigest } : {}),
          },
        }
      : {}),
  };
}

export async function readInventory(client: ClusterClient, clusterName: string): Promise<Inventory | undefined> {
  const live = await client.get(inventoryConfigMap(clusterName));
  const data = live?.data as { revision?: string; objects?: string; baselineDigest?: string } | undefined;
  // An empty revision is a first commit that failed after writing its first stage: its objects still count.
  if (data?.objects === undefined) return undefined;
  return {
    revision: data.revision ?? '',
    objects: JSON.parse(data.objects) as InventoryEntry[],
    ...(data.baselineDigest ? { baselineDigest: data.baselineDigest } : {}),
  };
}

/**
 * Records the inventory; nothing is written when it is what `previous` already says (a no-op reconcile
 * makes no write at all), and the namespace is created only the first time.
 */
export async function writeInventory(
  client: ClusterClient,
  clusterName: string,
  inventory: Inventory,
  previous?: Inventory,
): Promise<void> {
  if (previous && JSON.stringify(previous) === JSON.stringify(inventory)) return;
  await applyRecord(client, inventoryConfigMap(clusterName, inventory));
}

/**
 * Writes one of Plumbline's own records (inventory, baselines) into `plumbline-system`, creating the
 * namespace the first time a cluster sees Plumbline.
 */
export async function applyRecord(client: ClusterClient, record: Manifest): Promise<void> {
  try {
    await client.apply(record, { dryRun: false, force: true });
  } catch (error) {
    if (!(error instanceof KubeError) || error.kind !== 'missing-namespace') throw error;
    await client.apply(
      { apiVersion: 'v1', kind: 'Namespace', metadata: { name: INVENTORY_NAMESPACE } },
      { dryRun: false, force: true },
    );
    await client.apply(record, { dryRun: false, force: true });
  }
}
