import type { TenancyLimits } from '../clusters/cluster-registry.ts';
import { mapLimited } from '../support/limit-concurrency.ts';
import { manifestDigest } from './apply-objects.ts';
import { type Baselines, baselinesDigest, writeBaselines } from './baseline-store.ts';
import type { ChangeSet, ObjectChange } from './change-set.ts';
import { type ClusterClient, KubeError } from './cluster-client.ts';
import type { Fence } from './cluster-lock.ts';
import type { DriftedObject } from './drift.ts';
import { baselineOf } from './field-set.ts';
import { type Inventory, type InventoryEntry, idKey, inventoryWriter, objectIdOf } from './inventory.ts';
import { objectRef, type RenderedObject } from './manifest.ts';
import { withOwnerLabel } from './ownership.ts';
import { checkTenancy, readScopes } from './tenancy.ts';

export interface CorrectionInput {
  readonly client: ClusterClient;
  readonly clusterName: string;
  readonly inventory: Inventory;
  readonly baselines: Baselines;
  readonly drifted: readonly DriftedObject[];
  /** The render of the applied commit (`inventory.revision`). */
  readonly desired: readonly RenderedObject[];
  readonly concurrency: number;
  /** The cluster lock's fencing: checked before every write, confirmed before the records (as for a reconcile). */
  readonly fence?: Fence | undefined;
  /** The registry entry's tenancy limits (they may have narrowed since the commit was applied). */
  readonly limits?: TenancyLimits | undefined;
}

/**
 * Puts drifted objects back as the applied commit has them: only those objects, written with force so
 * that fields another manager took are taken back (the change set says from whom), and deleted ones
 * recreated. Their records and baselines are updated, so the next scan starts from the corrected state.
 * Objects outside the tenancy limits are left as they are.
 */
export async function correctDrift(input: CorrectionInput): Promise<ChangeSet> {
  const desired = new Map(
    withOwnerLabel(input.desired, input.clusterName).map((o) => [idKey(objectIdOf(o.manifest)), o] as const),
  );
  const drifted = input.drifted.flatMap((d) => {
    const object = desired.get(idKey(d.entry));
    return object ? [object] : [];
  });
  const manifests = drifted.map((o) => o.manifest);
  const outside = new Map(
    checkTenancy(drifted, input.limits, input.clusterName, await readScopes(input.client, manifests)).map(
      (p) => [p.object, p.reason] as const,
    ),
  );
  // The first write claims the inventory (after asking Redis); every write is checked.
  const writer = inventoryWriter(input.client, input.clusterName, input.inventory, input.fence);
  const updates = new Map<string, InventoryEntry>();
  const baselines = new Map(input.baselines);
  const changes = await mapLimited(input.drifted, input.concurrency, async (drift): Promise<ObjectChange> => {
    const key = idKey(drift.entry);
    const object = desired.get(key);
    if (!object) return { object: drift.object, action: 'skipped', message: 'not in the render of the applied commit' };
    const limit = outside.get(objectRef(object.manifest));
    if (limit !== undefined)
      return { object: drift.object, action: 'skipped', message: `left alone: outside the tenancy limits (${limit})` };
    const fence = writer.fence;
    await fence?.check();
    try {
      const guard = fence && (() => fence.assertFresh());
      const result = await input.client.apply(object.manifest, { dryRun: false, force: true, guard });
      const resourceVersion = (result.metadata as { resourceVersion?: string } | undefined)?.resourceVersion;
      updates.set(key, {
        ...drift.entry,
        digest: manifestDigest(object.manifest),
        ...(resourceVersion ? { resourceVersion } : {}),
      });
      const baseline = baselineOf(result);
      if (baseline) baselines.set(key, baseline);
      const takenFrom = [...new Set(drift.fields.flatMap((f) => f.changedBy))];
      return {
        object: objectRef(object.manifest),
        action: drift.kind === 'deleted' ? 'created' : 'configured',
        source: object.source,
        ...(takenFrom.length > 0 ? { tookOwnershipFrom: takenFrom } : {}),
      };
    } catch (error) {
      if (error instanceof KubeError && error.retryable) throw error;
      return { object: drift.object, action: 'failed', source: object.source, message: (error as Error).message };
    }
  });
  if (updates.size > 0) {
    const objects = input.inventory.objects.map((entry) => updates.get(idKey(entry)) ?? entry);
    const baselineDigest = baselinesDigest(baselines);
    if (baselineDigest !== input.inventory.baselineDigest) {
      const fence = writer.fence;
      await fence?.confirm();
      await writeBaselines(input.client, input.clusterName, baselines, fence && (() => fence.assertFresh()));
    }
    await writer.write({ revision: input.inventory.revision, objects, baselineDigest });
  }
  return { changes };
}
