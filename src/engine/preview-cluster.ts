import type { TenancyLimits } from '../clusters/cluster-registry.ts';
import { type ApplyOptions, previewObjects } from './apply-objects.ts';
import type { ChangeSet } from './change-set.ts';
import type { ClusterClient } from './cluster-client.ts';
import { objectIdOf, readInventory } from './inventory.ts';
import type { RenderedObject } from './manifest.ts';
import { withOwnerLabel } from './ownership.ts';
import { executePrune, type PruneGuards, planPrune } from './prune.ts';
import { tenancyProblems } from './reconcile-cluster.ts';

export interface PreviewInput {
  readonly client: ClusterClient;
  readonly clusterName: string;
  readonly objects: readonly RenderedObject[];
  readonly prune: boolean;
  readonly pruneGuards: PruneGuards;
  readonly apply: Pick<ApplyOptions, 'concurrency' | 'conflicts' | 'establishTimeoutMs'>;
  /** The registry entry's tenancy limits: a commit outside them would be refused, and the preview says so. */
  readonly limits?: TenancyLimits | undefined;
}

export type PreviewOutcome =
  | { readonly status: 'previewed'; readonly changeSet: ChangeSet }
  | { readonly status: 'failed'; readonly reason: string; readonly changeSet: ChangeSet };

/**
 * What reconciling the objects would do to the live cluster, with nothing written: a server-side
 * dry-run of every object and the prune plan against the inventory, refused for the same reasons a
 * real reconcile would refuse (tenancy limits, empty render, prune share).
 */
export async function previewCluster(input: PreviewInput): Promise<PreviewOutcome> {
  const outside = await tenancyProblems(
    input.client,
    input.objects,
    input.limits,
    input.clusterName,
    'it would be refused',
  );
  if (outside) return outside;
  const objects = withOwnerLabel(input.objects, input.clusterName);
  const previous = await readInventory(input.client, input.clusterName);
  if (objects.length === 0 && (previous?.objects.length ?? 0) > 0) {
    return {
      status: 'failed',
      reason: `an empty render would remove all ${previous?.objects.length} objects: it would be refused`,
      changeSet: { changes: [] },
    };
  }
  const plan =
    input.prune && previous
      ? planPrune(
          previous.objects,
          objects.map((o) => objectIdOf(o.manifest)),
          input.pruneGuards,
        )
      : ({ ok: true, stale: [] } as const);
  if (!plan.ok) return { status: 'failed', reason: `would be refused: ${plan.reason}`, changeSet: { changes: [] } };
  const previewed = await previewObjects(input.client, objects, { ...input.apply });
  if (!previewed.ok) {
    const failed = previewed.changeSet.changes.filter((c) => c.action === 'failed').length;
    return {
      status: 'failed',
      reason: `${failed} object(s) would be rejected by the cluster`,
      changeSet: previewed.changeSet,
    };
  }
  const pruned =
    plan.stale.length > 0
      ? await executePrune(input.client, plan.stale, {
          concurrency: input.apply.concurrency,
          clusterName: input.clusterName,
          limits: input.limits,
          mode: 'dry-run',
        })
      : { changes: [] };
  return { status: 'previewed', changeSet: { changes: [...previewed.changeSet.changes, ...pruned.changes] } };
}
