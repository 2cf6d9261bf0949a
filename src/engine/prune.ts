import type { TenancyLimits } from '../clusters/cluster-registry.ts';
import { mapLimited } from '../support/limit-concurrency.ts';
import type { ObjectChange } from './change-set.ts';
import { type ClusterClient, FIELD_MANAGER, KubeError, type LiveObject } from './cluster-client.ts';
import type { Fence } from './cluster-lock.ts';
import { idKey, manifestOf, type ObjectId } from './inventory.ts';
import { objectKey, objectRef } from './manifest.ts';
import { OWNER_LABEL } from './ownership.ts';
import { readLiveObjects } from './read-live-objects.ts';
import { STAGES, stageOf } from './stages.ts';
import { checkTenancy, readScopes } from './tenancy.ts';

/** Deleting these loses data or everything inside them: only with this annotation on the live object. */
export const PRUNE_OPT_IN_ANNOTATION = 'plumbline.dev/prune';
const PROTECTED_KINDS = new Set(['Namespace', 'CustomResourceDefinition', 'PersistentVolumeClaim']);

export type PrunePlan =
  | { readonly ok: true; readonly stale: readonly ObjectId[] }
  | { readonly ok: false; readonly reason: string };

export interface PruneGuards {
  /** Largest share of the inventory one commit may prune without `override` (default 0.5). */
  readonly maxShare: number;
  readonly override: boolean;
}

/** Stale = previous inventory − current render; refused when it looks like an accident. Pure. */
export function planPrune(previous: readonly ObjectId[], current: readonly ObjectId[], guards: PruneGuards): PrunePlan {
  const keep = new Set(current.map(idKey));
  const stale = previous.filter((id) => !keep.has(idKey(id)));
  if (previous.length > 0 && stale.length / previous.length > guards.maxShare && !guards.override) {
    return {
      ok: false,
      reason: `refusing to prune ${stale.length} of ${previous.length} objects (more than ${Math.round(guards.maxShare * 100)} %); allow it explicitly if intended`,
    };
  }
  // Reverse stage order: workloads before the classes and definitions they use.
  const order = (id: ObjectId) => STAGES.length - STAGES.indexOf(stageOf(id));
  return { ok: true, stale: [...stale].sort((a, b) => order(a) - order(b)) };
}

export interface PruneOptions {
  readonly concurrency: number;
  /** The registry entry: only objects labelled as its own are deleted. */
  readonly clusterName: string;
  /** `dry-run`: nothing is deleted, the changes say what would be (for pull-request previews). */
  readonly mode?: 'delete' | 'dry-run';
  /** The registry entry's tenancy limits: nothing outside them is deleted either. */
  readonly limits?: TenancyLimits | undefined;
  /** The cluster lock's fencing, as for applies: confirmed before each stage, checked before each delete. */
  readonly fence?: Fence | undefined;
}

/** How often a delete whose object changed between the read and the delete is looked at again. */
const DELETE_ATTEMPTS = 3;

/**
 * Deletes stale objects, one stage at a time in reverse order. Nothing is deleted that is not in the
 * inventory, still managed by Plumbline and labelled `plumbline.dev/cluster: <this registry entry>` (two
 * entries on one apiserver never prune each other's objects, even with a tampered inventory), nor anything
 * outside the entry's tenancy limits or in `plumbline-system`; protected kinds need the opt-in annotation.
 * The delete is conditional on the uid and resourceVersion that were checked. Objects whose delete failed
 * are returned so they stay in the inventory and are retried next time.
 */
export async function executePrune(
  client: ClusterClient,
  stale: readonly ObjectId[],
  options: PruneOptions,
): Promise<{ changes: ObjectChange[]; retained: ObjectId[] }> {
  const { concurrency } = options;
  const changes: ObjectChange[] = [];
  const retained: ObjectId[] = [];
  const manifests = stale.map(manifestOf);
  const outside = new Map(
    checkTenancy(
      manifests.map((manifest) => ({ manifest, source: undefined })),
      options.limits,
      options.clusterName,
      await readScopes(client, manifests),
    ).map((problem) => [problem.object, problem.reason] as const),
  );
  const live = await readLiveObjects(client, manifests, concurrency);
  for (const stage of [...STAGES].reverse()) {
    const batch = stale.filter((id) => stageOf(id) === stage);
    if (batch.length > 0 && options.mode !== 'dry-run') await options.fence?.confirm();
    const results = await mapLimited(batch, concurrency, async (id) => {
      const limit = outside.get(objectRef(manifestOf(id)));
      if (limit !== undefined) {
        const message = `left alone: outside the tenancy limits (${limit})`;
        return { change: { object: objectRef(manifestOf(id)), action: 'skipped' as const, message }, retain: false };
      }
      return pruneOne(client, id, live, options);
    });
    for (const [index, result] of results.entries()) {
      changes.push(result.change);
      if (result.retain) retained.push(batch[index] as ObjectId);
    }
  }
  return { changes, retained };
}

type Pruned = { change: ObjectChange; retain: boolean };

async function pruneOne(
  client: ClusterClient,
  id: ObjectId,
  known: Map<string, LiveObject | undefined>,
  options: PruneOptions,
): Promise<Pruned> {
  const manifest = manifestOf(id);
  const object = objectRef(manifest);
  const key = objectKey(manifest);
  try {
    let live = known.has(key) ? known.get(key) : await client.get(manifest);
    for (let attempt = 1; ; attempt += 1) {
      if (!live) return { change: { object, action: 'deleted', message: 'already gone' }, retain: false };
      const verdict = judge(id, live, options.clusterName);
      if (verdict) return verdict;
      if (options.mode === 'dry-run')
        return { change: { object, action: 'deleted', message: 'would be pruned' }, retain: true };
      const metadata = live.metadata as { uid?: string; resourceVersion?: string } | undefined;
      const fence = options.fence;
      await fence?.check();
      try {
        await client.delete(manifest, {
          preconditions: { uid: metadata?.uid, resourceVersion: metadata?.resourceVersion },
          guard: fence && (() => fence.assertFresh()),
        });
        return { change: { object, action: 'deleted' }, retain: false };
      } catch (error) {
        // Changed since it was read (or replaced by another object of that name): look again.
        if (!(error instanceof KubeError) || error.kind !== 'modified' || attempt >= DELETE_ATTEMPTS) throw error;
        live = await client.get(manifest);
      }
    }
  } catch (error) {
    if (error instanceof KubeError && error.kind === 'not-found')
      return { change: { object, action: 'deleted', message: 'already gone' }, retain: false };
    if (!(error instanceof KubeError)) throw error;
    return { change: { object, action: 'failed', message: `delete failed: ${error.message}` }, retain: true };
  }
}

/** Why a live object must be left alone, or undefined when it may be deleted. Pure. */
function judge(id: ObjectId, live: LiveObject, clusterName: string): Pruned | undefined {
  const object = objectRef(manifestOf(id));
  const metadata = live.metadata as
    | { annotations?: Record<string, string>; labels?: Record<string, string>; managedFields?: { manager?: string }[] }
    | undefined;
  const leftAlone = (message: string): Pruned => ({ change: { object, action: 'skipped', message }, retain: false });
  if (!metadata?.managedFields?.some((f) => f.manager === FIELD_MANAGER))
    return leftAlone('left alone: no longer managed by plumbline');
  const owner = metadata.labels?.[OWNER_LABEL];
  if (owner !== clusterName)
    return leftAlone(
      owner
        ? `left alone: labelled ${OWNER_LABEL}=${owner}, another registry entry's object`
        : `left alone: no ${OWNER_LABEL} label naming this cluster`,
    );
  if (PROTECTED_KINDS.has(id.kind) && metadata.annotations?.[PRUNE_OPT_IN_ANNOTATION] !== 'enabled')
    return leftAlone(`left alone: ${id.kind} is pruned only with annotation ${PRUNE_OPT_IN_ANNOTATION}: enabled`);
  return undefined;
}
