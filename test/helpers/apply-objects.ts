import type { ChangeSet } from '../../src/engine/change-set.ts';
import type { ClusterClient } from '../../src/engine/cluster-client.ts';
import type { Fence } from '../../src/engine/cluster-lock.ts';
import { execute } from '../../src/engine/execute-plan.ts';
import type { RenderedObject } from '../../src/engine/manifest.ts';
import { observeCluster } from '../../src/engine/observe-cluster.ts';
import type { PlanPolicy, RecordedState } from '../../src/engine/plan/plan.ts';
import { planCluster } from '../../src/engine/plan/plan-cluster.ts';

export interface ApplyOptions {
  readonly concurrency: number;
  readonly conflicts: PlanPolicy['conflicts'];
  readonly establishTimeoutMs: number;
  readonly fence?: Fence | undefined;
  readonly dryRun?: boolean;
}

const NOTHING_RECORDED: RecordedState = { inventory: undefined, baselines: new Map() };

/**
 * The engine's staged apply alone — observe, plan, execute — with no inventory and no prune: what the
 * executor tests exercise against the real apiserver. The objects are applied exactly as given (no owner
 * label), and nothing is recorded, so every run dry-runs every object.
 */
export async function applyObjects(
  client: ClusterClient,
  objects: readonly RenderedObject[],
  options: ApplyOptions,
): Promise<{ readonly ok: boolean; readonly changeSet: ChangeSet }> {
  const policy: PlanPolicy = {
    clusterName: 'executor-test',
    prune: false,
    pruneGuards: { maxShare: 1, override: true },
    conflicts: options.conflicts,
  };
  const view = await observeCluster(client, objects, NOTHING_RECORDED, policy, { concurrency: options.concurrency });
  const plan = planCluster(objects, view, NOTHING_RECORDED, policy);
  const execution = await execute(client, plan, {
    dryRun: options.dryRun ?? false,
    concurrency: options.concurrency,
    conflicts: options.conflicts,
    establishTimeoutMs: options.establishTimeoutMs,
    clusterName: policy.clusterName,
    fence: options.fence,
  });
  return { ok: execution.ok, changeSet: execution.changeSet };
}
