import { mapLimited } from '../support/limit-concurrency.ts';
import type { ObjectChange } from './change-set.ts';
import { type ClusterClient, FIELD_MANAGER, KubeError, type LiveObject } from './cluster-client.ts';
import { idKey, manifestOf, type ObjectId } from './inventory.ts';
import { objectKey, objectRef } from './manifest.ts';
import { readLiveObjects } from './read-live-objects.ts';
import { STAGES, stageOf } from './stages.ts';

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

/**
 * Deletes stale objects, one stage at a time in reverse order. Nothing is deleted that is not in the
 * inventory and still managed by Plumbline; protected kinds need the opt-in annotation. In `dry-run` mode
 * nothing is deleted: the changes say what would be (for pull-request previews). Objects whose
 * delete failed are returned so they stay in the inventory and are retried next time.
 */
export async function executePrune(
  client: ClusterClient,
  stale: readonly ObjectId[],
  concurrency: number,
  mode: 'delete' | 'dry-run' = 'delete',
): Promise<{ changes: ObjectChange[]; retained: ObjectId[] }> {
  const changes: ObjectChange[] = [];
  const retained: ObjectId[] = [];
  const live = await readLiveObjects(client, stale.map(manifestOf), concurrency);
  for (const stage of [...STAGES].reverse()) {
    const batch = stale.filter((id) => stageOf(id) === stage);
    const results = await mapLimited(batch, concurrency, async (id) => pruneOne(client, id, live, mode));
    for (const [index, result] of results.entries()) {
      changes.push(result.change);
      if (result.retain) retained.push(batch[index] as ObjectId);
    }
  }
  return { changes, retained };
}

async function pruneOne(
  client: ClusterClient,
  id: ObjectId,
  known: Map<string, LiveObject | undefined>,
  mode: 'delete' | 'dry-run',
): Promise<{ change: ObjectChange; retain: boolean }> {
  const manifest = manifestOf(id);
  const object = objectRef(manifest);
  try {
    const key = objectKey(manifest);
    const live = known.has(key) ? known.get(key) : await client.get(manifest);
    if (!live) return { change: { object, action: 'deleted', message: 'already gone' }, retain: false };
    const metadata = live.metadata as
      | { annotations?: Record<string, string>; managedFields?: { manager?: string }[] }
      | undefined;
    if (!metadata?.managedFields?.some((f) => f.manager === FIELD_MANAGER)) {
      return {
        change: { object, action: 'skipped', message: 'left alone: no longer managed by plumbline' },
        retain: false,
      };
    }
    if (PROTECTED_KINDS.has(id.kind) && metadata.annotations?.[PRUNE_OPT_IN_ANNOTATION] !== 'enabled') {
      return {
        change: {
          object,
          action: 'skipped',
          message: `left alone: ${id.kind} is pruned only with annotation ${PRUNE_OPT_IN_ANNOTATION}: enabled`,
        },
        retain: false,
      };
    }
    if (mode === 'dry-run') return { change: { object, action: 'deleted', message: 'would be pruned' }, retain: true };
    await client.delete(manifest);
    return { change: { object, action: 'deleted' }, retain: false };
  } catch (error) {
    if (error instanceof KubeError && error.kind === 'not-found')
      return { change: { object, action: 'deleted', message: 'already gone' }, retain: false };
    const message = error instanceof Error ? error.message : String(error);
    return { change: { object, action: 'failed', message: `delete failed: ${message}` }, retain: true };
  }
}
