import type { TenancyLimits } from '../clusters/cluster-registry.ts';
import { type Baselines, baselinesDigest, writeBaselines } from './baseline-store.ts';
import type { ChangeSet } from './change-set.ts';
import type { ClusterClient } from './cluster-client.ts';
import type { Fence } from './cluster-lock.ts';
import type { DriftedObject } from './drift.ts';
import { execute } from './execute-plan.ts';
import { type Inventory, idKey, inventoryWriter } from './inventory.ts';
import type { RenderedObject } from './manifest.ts';
import { withOwnerLabel } from './ownership.ts';
import { planCorrection } from './plan/plan-cluster.ts';
import { readScopes } from './tenancy.ts';

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
 * recreated — a plan of its own (`planCorrection`), run by the same executor as a reconcile. Their records
 * and baselines are updated, so the next scan starts from the corrected state. Objects outside the
 * tenancy limits are left as they are.
 */
export async function correctDrift(input: CorrectionInput): Promise<ChangeSet> {
  const desired = withOwnerLabel(input.desired, input.clusterName);
  const manifests = desired.map((o) => o.manifest);
  const scopes = await readScopes(input.client, manifests, manifests);
  const plan = planCorrection(input.drifted, desired, scopes, { clusterName: input.clusterName, limits: input.limits });
  // The first write claims the inventory (after asking Redis); every write is checked.
  const writer = inventoryWriter(input.client, input.clusterName, input.inventory, input.fence);
  const execution = await execute(input.client, plan, {
    dryRun: false,
    concurrency: input.concurrency,
    conflicts: 'take-ownership',
    establishTimeoutMs: 0,
    clusterName: input.clusterName,
    fence: writer.fence,
  });
  if (execution.records.size > 0) {
    const baselines = new Map(input.baselines);
    for (const [key, applied] of execution.records) if (applied.baseline) baselines.set(key, applied.baseline);
    const objects = input.inventory.objects.map((entry) => {
      const applied = execution.records.get(idKey(entry));
      return applied ? { ...entry, digest: applied.digest, resourceVersion: applied.resourceVersion } : entry;
    });
    const baselineDigest = baselinesDigest(baselines);
    if (baselineDigest !== input.inventory.baselineDigest) {
      const fence = writer.fence;
      await fence?.confirm();
      await writeBaselines(input.client, input.clusterName, baselines, fence && (() => fence.assertFresh()));
    }
    await writer.write({ revision: input.inventory.revision, objects, baselineDigest });
  }
  return execution.changeSet;
}
