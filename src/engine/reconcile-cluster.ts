import type { TenancyLimits } from '../clusters/cluster-registry.ts';
import { type ApplyOptions, applyObjects } from './apply-objects.ts';
import { baselinesDigest, readBaselines, writeBaselines } from './baseline-store.ts';
import type { ChangeSet, ObjectChange } from './change-set.ts';
import type { ClusterClient } from './cluster-client.ts';
import { type InventoryEntry, idKey, inventoryWriter, type ObjectId, objectIdOf, readInventory } from './inventory.ts';
import { objectRef, type RenderedObject } from './manifest.ts';
import { withOwnerLabel } from './ownership.ts';
import { executePrune, type PruneGuards, planPrune } from './prune.ts';
import { checkTenancy, readScopes, type TenancyProblem } from './tenancy.ts';

export interface ReconcileInput {
  readonly client: ClusterClient;
  readonly clusterName: string;
  /** The commit being applied; recorded in the inventory. */
  readonly revision: string;
  readonly objects: readonly RenderedObject[];
  readonly prune: boolean;
  readonly pruneGuards: PruneGuards;
  /** `apply.fence`: the cluster lock's; every write of the reconcile (objects, prune, records) is behind it. */
  readonly apply: ApplyOptions;
  /** The registry entry's tenancy limits; without them only `plumbline-system` is out of bounds. */
  readonly limits?: TenancyLimits | undefined;
}

export type ReconcileOutcome =
  /** Applied (and pruned); the inventory now records `revision`. */
  | { readonly status: 'applied'; readonly changeSet: ChangeSet }
  /** The commit is wrong (rejected objects) or unsafe (guards): a `failure`, and retrying cannot help. */
  | { readonly status: 'failed'; readonly reason: string; readonly changeSet: ChangeSet };

/**
 * Applies a rendered commit to one cluster and prunes what the commit no longer contains, keeping the
 * inventory in the cluster. An object outside the tenancy limits fails the commit before anything is
 * written. Infrastructure errors (apiserver unreachable, timeouts, a lost lock) throw, to be retried.
 */
export async function reconcileCluster(input: ReconcileInput): Promise<ReconcileOutcome> {
  const outside = await tenancyProblems(input.client, input.objects, input.limits, input.clusterName);
  if (outside) return outside;
  const objects = withOwnerLabel(input.objects, input.clusterName);
  const previous = await readInventory(input.client, input.clusterName);
  // Every write below is behind the lock's fence, and the first one claims the inventory (inventory.ts).
  const writer = inventoryWriter(input.client, input.clusterName, previous, input.apply.fence);
  const fence = writer.fence;
  if (objects.length === 0 && (previous?.objects.length ?? 0) > 0) {
    return {
      status: 'failed',
      reason: `refusing an empty render: the commit would remove all ${previous?.objects.length} objects; delete them explicitly or disable the cluster`,
      changeSet: { changes: [] },
    };
  }
  const current = objects.map((o) => objectIdOf(o.manifest));
  const plan =
    input.prune && previous
      ? planPrune(previous.objects, current, input.pruneGuards)
      : ({ ok: true, stale: [] } as const);
  if (!plan.ok) return { status: 'failed', reason: plan.reason, changeSet: { changes: [] } };

  const previousBaselines = previous?.baselineDigest ? await readBaselines(input.client, input.clusterName) : new Map();
  const recorded = new Map(
    (previous?.objects ?? []).flatMap((entry) =>
      entry.digest && entry.resourceVersion
        ? [
            [
              idKey(entry),
              {
                digest: entry.digest,
                resourceVersion: entry.resourceVersion,
                baseline: previousBaselines.get(idKey(entry)),
              },
            ] as const,
          ]
        : [],
    ),
  );
  const applied = await applyObjects(input.client, objects, { ...input.apply, fence, recorded });
  if (!applied.ok) {
    // Whatever the first stage wrote is now ours too: remember it so a later commit can prune it.
    const written = writtenObjects(applied.changeSet.changes, objects);
    if (written.length > 0) {
      await writer.write({
        revision: previous?.revision ?? '',
        objects: union(previous?.objects ?? [], written),
        baselineDigest: previous?.baselineDigest,
      });
    }
    const failed = applied.changeSet.changes.filter((c) => c.action === 'failed').length;
    return {
      status: 'failed',
      reason: `${failed} object(s) rejected by the cluster; the rest of the commit was not applied`,
      changeSet: applied.changeSet,
    };
  }

  const pruned =
    plan.stale.length > 0
      ? await executePrune(input.client, plan.stale, {
          concurrency: input.apply.concurrency,
          clusterName: input.clusterName,
          limits: input.limits,
          fence,
        })
      : { changes: [], retained: [] };
  const entries = current.map((id) => {
    const record = applied.records.get(idKey(id));
    return record ? { ...id, digest: record.digest, resourceVersion: record.resourceVersion } : id;
  });
  const baselines = new Map(
    current.flatMap((id) => {
      const baseline = applied.records.get(idKey(id))?.baseline;
      return baseline ? [[idKey(id), baseline] as const] : [];
    }),
  );
  const baselineDigest = baselinesDigest(baselines);
  if (baselineDigest !== previous?.baselineDigest) {
    await fence?.confirm();
    await writeBaselines(input.client, input.clusterName, baselines, fence && (() => fence.assertFresh()));
  }
  await writer.write({ revision: input.revision, objects: union(entries, pruned.retained), baselineDigest });
  return { status: 'applied', changeSet: { changes: [...applied.changeSet.changes, ...pruned.changes] } };
}

/**
 * The failed outcome of a commit with objects outside the tenancy limits (each naming its file and the
 * limit), or undefined when every object is within them. Reads discovery only.
 */
export async function tenancyProblems(
  client: ClusterClient,
  objects: readonly RenderedObject[],
  limits: TenancyLimits | undefined,
  clusterName: string,
  verb = 'nothing was applied',
): Promise<Extract<ReconcileOutcome, { status: 'failed' }> | undefined> {
  const manifests = objects.map((o) => o.manifest);
  const problems = checkTenancy(objects, limits, clusterName, await readScopes(client, manifests, manifests));
  if (problems.length === 0) return undefined;
  return {
    status: 'failed',
    reason: `${problems.length} object(s) outside the tenancy limits of cluster ${clusterName}; ${verb}`,
    changeSet: { changes: problems.map(failedChange) },
  };
}

function failedChange(problem: TenancyProblem): ObjectChange {
  return { object: problem.object, action: 'failed', source: problem.source, message: problem.message };
}

function writtenObjects(changes: readonly ObjectChange[], objects: readonly RenderedObject[]): ObjectId[] {
  const wroteRefs = new Set(
    changes.filter((c) => c.action === 'created' || c.action === 'configured').map((c) => c.object),
  );
  return objects.filter((o) => wroteRefs.has(objectRef(o.manifest))).map((o) => objectIdOf(o.manifest));
}

function union(a: readonly InventoryEntry[], b: readonly InventoryEntry[]): InventoryEntry[] {
  const seen = new Map(a.map((id) => [idKey(id), id]));
  for (const id of b) seen.set(idKey(id), id);
  return [...seen.values()];
}
