import { z } from 'zod';
import { type ClusterClient, KubeError } from './cluster-client.ts';
import { type Fence, LockLostError } from './cluster-lock.ts';
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
  /**
   * As read from the cluster: the ConfigMap's resourceVersion. A write over this inventory is conditional on
   * it, so a worker that lost its lock cannot overwrite what a newer holder wrote (the apiserver answers 409).
   */
  readonly resourceVersion?: string | undefined;
  /** As read: the fencing token of the lock holder that wrote it last (see `claimInventory`). */
  readonly fencingToken?: number | undefined;
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
/** The name of a cluster's inventory ConfigMap in `plumbline-system`. */
export function inventoryName(clusterName: string): string {
  return `plumbline-inventory-${clusterName}`;
}

interface Fencing {
  readonly token: number;
  readonly holder: string;
}

function inventoryConfigMap(
  clusterName: string,
  inventory?: Inventory,
  fencing?: Fencing,
  resourceVersion?: string,
): Manifest {
  return {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: {
      name: inventoryName(clusterName),
      namespace: INVENTORY_NAMESPACE,
      labels: { 'app.kubernetes.io/managed-by': 'plumbline', 'plumbline.dev/cluster': clusterName },
      // Server-side apply takes a resourceVersion in the object as a precondition.
      ...(resourceVersion ? { resourceVersion } : {}),
    },
    ...(inventory || fencing
      ? {
          data: {
            ...(inventory
              ? {
                  revision: inventory.revision,
                  objects: JSON.stringify(inventory.objects),
                  ...(inventory.baselineDigest ? { baselineDigest: inventory.baselineDigest } : {}),
                }
              : {}),
            ...(fencing ? { fencingToken: String(fencing.token), fencingHolder: fencing.holder } : {}),
          },
        }
      : {}),
  };
}

export async function readInventory(client: ClusterClient, clusterName: string): Promise<Inventory | undefined> {
  return (await readInventoryRecord(client, clusterName)).inventory;
}

/** The inventory ConfigMap as read: its content (if any), version and fencing. */
interface InventoryRecord {
  readonly inventory: Inventory | undefined;
  readonly resourceVersion: string | undefined;
  readonly fencing: Fencing | undefined;
}

async function readInventoryRecord(client: ClusterClient, clusterName: string): Promise<InventoryRecord> {
  const live = await records(client).get(inventoryConfigMap(clusterName));
  const resourceVersion = (live?.metadata as { resourceVersion?: string } | undefined)?.resourceVersion;
  const data = live?.data as
    | { revision?: string; objects?: string; baselineDigest?: string; fencingToken?: string; fencingHolder?: string }
    | undefined;
  const fencing = data?.fencingToken
    ? { token: Number(data.fencingToken), holder: data.fencingHolder ?? '' }
    : undefined;
  // An empty revision is a first commit that failed after writing its first stage: its objects still count.
  if (data?.objects === undefined) return { inventory: undefined, resourceVersion, fencing };
  return {
    inventory: {
      revision: data.revision ?? '',
      objects: parseEntries(clusterName, data.objects),
      ...(data.baselineDigest ? { baselineDigest: data.baselineDigest } : {}),
      resourceVersion,
      ...(fencing ? { fencingToken: fencing.token } : {}),
    },
    resourceVersion,
    fencing,
  };
}

/** The inventory drives prune: an entry must name an object exactly, or nothing is trusted. */
const inventoryEntries = z.array(
  z.object({
    apiVersion: z.string().min(1),
    kind: z.string().min(1),
    namespace: z.string().min(1).optional(),
    name: z.string().min(1),
    digest: z.string().optional(),
    resourceVersion: z.string().optional(),
  }),
);

/**
 * The inventory ConfigMap holds something Plumbline did not write (hand-edited, truncated, another
 * tool's): nothing is applied or pruned from it until an operator repairs or deletes it.
 */
export class InventoryUnreadableError extends Error {
  override readonly name = 'InventoryUnreadableError';
}

function parseEntries(clusterName: string, text: string): InventoryEntry[] {
  const where = `${INVENTORY_NAMESPACE}/${inventoryName(clusterName)}`;
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new InventoryUnreadableError(`the inventory ${where} is not JSON: repair or delete it`);
  }
  const parsed = inventoryEntries.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const at = issue ? `objects[${issue.path.join('.')}]: ${issue.message}` : 'invalid';
    throw new InventoryUnreadableError(`the inventory ${where} is invalid (${at}): repair or delete it`);
  }
  // In the order `objectIdOf` and the records write them: equal content must compare equal (`contentOf`).
  return parsed.data.map(({ apiVersion, kind, namespace, name, digest, resourceVersion }) => ({
    apiVersion,
    kind,
    ...(namespace ? { namespace } : {}),
    name,
    ...(digest ? { digest } : {}),
    ...(resourceVersion ? { resourceVersion } : {}),
  }));
}

/** What an inventory says, without how it was read: equal content means nothing to write. */
function contentOf(inventory: Inventory): string {
  return JSON.stringify({
    revision: inventory.revision,
    objects: inventory.objects,
    baselineDigest: inventory.baselineDigest,
  });
}

/**
 * Records the inventory; nothing is written when it is what `previous` already says (a no-op reconcile
 * makes no write at all), and the namespace is created only the first time. The write is conditional on
 * `previous.resourceVersion` (the version this run read or claimed): when someone wrote the inventory in
 * between — a newer lock holder, after our lease expired — the apiserver refuses it and LockLostError is
 * thrown: an infrastructure error, retried, never the commit's failure. Returns the inventory as written.
 */
export async function writeInventory(
  client: ClusterClient,
  clusterName: string,
  inventory: Inventory,
  previous?: Inventory,
  fence?: Pick<Fence, 'token' | 'holder' | 'assertFresh'>,
): Promise<Inventory> {
  if (previous && contentOf(previous) === contentOf(inventory)) return previous;
  const fencing = fence && { token: fence.token, holder: fence.holder };
  const written = await conditionally(clusterName, () =>
    applyRecord(
      client,
      inventoryConfigMap(clusterName, inventory, fencing, previous?.resourceVersion),
      fence && (() => fence.assertFresh()),
    ),
  );
  return { ...inventory, resourceVersion: versionOf(written), fencingToken: fence?.token };
}

/**
 * Before a lock holder's first write to the cluster: records its fencing token in the inventory, on the
 * condition that the inventory is still what it read. From then on a former holder that resumes after its
 * lease expired (a paused process) cannot write the inventory any more: its writes are conditional on the
 * version before this claim. Returns the inventory as claimed (empty if none was recorded yet): the
 * precondition of this run's next write.
 */
export async function claimInventory(
  client: ClusterClient,
  clusterName: string,
  previous: Inventory | undefined,
  fence: Fence,
): Promise<Inventory> {
  await fence.confirm();
  const fencing = { token: fence.token, holder: fence.holder };
  let version = previous?.resourceVersion;
  if (!previous) {
    // Nothing recorded when this run read it (or only an earlier claim): still so, and conditional on it.
    const record = await readInventoryRecord(client, clusterName);
    if (record.inventory) throw staleError(clusterName);
    version = record.resourceVersion;
  }
  const written = await conditionally(clusterName, () =>
    applyRecord(client, inventoryConfigMap(clusterName, previous, fencing, version), () => fence.assertFresh()),
  );
  return {
    ...(previous ?? { revision: '', objects: [] }),
    resourceVersion: versionOf(written),
    fencingToken: fence.token,
  };
}

/** How one run (a reconcile, a drift correction) writes behind its lock. */
export interface InventoryWriter {
  /** For the run's object writes: the lock's fence, and before the first write, the claim of the inventory. */
  readonly fence: Fence | undefined;
  /**
   * Records the inventory (nothing when unchanged): claimed first if nothing was written yet, the lock
   * confirmed just before, conditional on the version this run read or last wrote.
   */
  write(inventory: Inventory): Promise<void>;
}

/**
 * The writer of a run that read `previous` holding `fence`. Without a fence (tests, tools) the writes are
 * still conditional on what was read, but nothing is claimed.
 */
export function inventoryWriter(
  client: ClusterClient,
  clusterName: string,
  previous: Inventory | undefined,
  lock: Fence | undefined,
): InventoryWriter {
  let latest = previous;
  let claim: Promise<void> | undefined;
  const claimed = (held: Fence) => {
    claim ??= claimInventory(client, clusterName, previous, held).then((inventory) => {
      latest = inventory;
    });
    return claim;
  };
  const fence: Fence | undefined = lock && {
    token: lock.token,
    holder: lock.holder,
    check: async () => {
      await lock.check();
      await claimed(lock);
    },
    confirm: async () => {
      await lock.confirm();
      await claimed(lock);
    },
    assertFresh: () => lock.assertFresh(),
  };
  return {
    fence,
    async write(inventory) {
      if (latest && contentOf(latest) === contentOf(inventory)) return;
      if (lock) {
        await claimed(lock);
        await lock.confirm();
      }
      latest = await writeInventory(client, clusterName, inventory, latest, lock);
    },
  };
}

function staleError(clusterName: string): LockLostError {
  return new LockLostError(
    `the inventory of cluster ${clusterName} changed since this run read it: another worker holds its lock now`,
  );
}

async function conditionally<T>(clusterName: string, write: () => Promise<T>): Promise<T> {
  try {
    return await write();
  } catch (error) {
    if (error instanceof KubeError && error.kind === 'modified') throw staleError(clusterName);
    throw error;
  }
}

function versionOf(object: { metadata?: unknown } | undefined): string | undefined {
  return (object?.metadata as { resourceVersion?: string } | undefined)?.resourceVersion;
}

/** Plumbline's own identity, for its records, even when the cluster's client impersonates a tenant. */
export function records(client: ClusterClient): ClusterClient {
  return client.forRecords?.() ?? client;
}

/**
 * Writes one of Plumbline's own records (inventory, baselines) into `plumbline-system`, creating the
 * namespace the first time a cluster sees Plumbline.
 */
export async function applyRecord(client: ClusterClient, record: Manifest, guard?: () => void) {
  const own = records(client);
  try {
    return await own.apply(record, { dryRun: false, force: true, guard });
  } catch (error) {
    if (!(error instanceof KubeError) || error.kind !== 'missing-namespace') throw error;
    await own.apply(
      { apiVersion: 'v1', kind: 'Namespace', metadata: { name: INVENTORY_NAMESPACE } },
      { dryRun: false, force: true },
    );
    return await own.apply(record, { dryRun: false, force: true, guard });
  }
}
