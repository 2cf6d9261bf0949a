import type { TenancyLimits } from '../clusters/cluster-registry.ts';
import { baselinesDigest, readBaselines, writeBaselines } from './baseline-store.ts';
import type { ChangeSet } from './change-set.ts';
import type { ClusterClient } from './cluster-client.ts';
import type { Fence } from './cluster-lock.ts';
import { type Execution, execute } from './execute-plan.ts';
import type { HealthReport } from './health.ts';
import { type InventoryEntry, idKey, inventoryWriter, objectIdOf, readInventory } from './inventory.ts';
import { objectRef, type RenderedApp, type RenderedObject } from './manifest.ts';
import { observeCluster } from './observe-cluster.ts';
import { withOwnerLabel } from './ownership.ts';
import type { Phase, PlanPolicy, PruneGuards, RecordedState, Refusal } from './plan/plan.ts';
import { planCluster } from './plan/plan-cluster.ts';

export interface ReconcileInput {
  readonly client: ClusterClient;
  readonly clusterName: string;
  /** The commit being applied; recorded in the inventory. */
  readonly revision: string;
  readonly objects: readonly RenderedObject[];
  /** The apps of the cluster's plumbline.yaml: applied in waves, each gated on the health of what it depends on. */
  readonly apps?: readonly RenderedApp[] | undefined;
  readonly prune: boolean;
  readonly pruneGuards: PruneGuards;
  readonly apply: {
    /** Requests in flight at once. */
    readonly concurrency: number;
    readonly conflicts: PlanPolicy['conflicts'];
    readonly establishTimeoutMs: number;
    /** How long an app others depend on (or a hook) may take to become healthy. */
    readonly healthTimeoutMs?: number | undefined;
    /** The cluster lock's; every write of the reconcile (objects, prune, records) is behind it. */
    readonly fence?: Fence | undefined;
  };
  /** The registry entry's tenancy limits; without them only `plumbline-system` is out of bounds. */
  readonly limits?: TenancyLimits | undefined;
  /** What the cluster recorded, as the caller already read it (read here when absent). */
  readonly recorded?: RecordedState | undefined;
  /** A preview: the same plan, executed with nothing written. */
  readonly dryRun?: boolean | undefined;
  /** Told how long each phase took: observe, the plan's phases, record (the worker's metrics). */
  readonly onPhase?: ((phase: ReconcilePhase, seconds: number) => void) | undefined;
}

/** A reconcile's phases: what the cluster holds is read (`observe`), the plan's phases run, the records are written. */
export type ReconcilePhase = 'observe' | Phase['kind'] | 'record';

/** Why a reconcile did not apply the commit: the plan's refusal, or a write the cluster refused after its dry-run. */
export type ReconcileFailure =
  | Refusal
  | { readonly reason: 'write-refused'; readonly failed: number }
  /** A chart hook failed (or the cluster refused it): the apps after it were not applied. */
  | { readonly reason: 'hook-failed'; readonly hooks: readonly string[] }
  /** Apps others depend on did not become healthy in time: the apps after them were not applied. */
  | {
      readonly reason: 'unhealthy-dependency';
      readonly apps: readonly string[];
      readonly unhealthy: readonly HealthReport[];
    };

export type ReconcileOutcome =
  /** Applied (and pruned); the inventory now records `revision`. */
  | { readonly status: 'applied'; readonly changeSet: ChangeSet }
  /** A dry run: what applying would do; nothing was written. */
  | { readonly status: 'previewed'; readonly changeSet: ChangeSet }
  /** The commit is wrong (rejected objects) or unsafe (guards): a `failure`, and retrying cannot help. */
  | { readonly status: 'failed'; readonly failure: ReconcileFailure; readonly changeSet: ChangeSet };

/** The cluster's records of the last apply: the inventory and, when it has them, the baselines. */
export async function readRecordedState(client: ClusterClient, clusterName: string): Promise<RecordedState> {
  const inventory = await readInventory(client, clusterName);
  const baselines = inventory?.baselineDigest ? await readBaselines(client, clusterName) : new Map();
  return { inventory, baselines };
}

/**
 * One reconcile of a rendered commit against one cluster: observe what the cluster holds, plan (pure),
 * execute. A sync then records the inventory and baselines in the cluster; a preview is the same plan
 * executed dry. Infrastructure errors (apiserver unreachable, timeouts, a lost lock) throw, to be retried.
 */
export async function reconcileCluster(input: ReconcileInput): Promise<ReconcileOutcome> {
  const { client, clusterName } = input;
  const dryRun = input.dryRun ?? false;
  const desired = withOwnerLabel(input.objects, clusterName);
  const recorded = input.recorded ?? (await readRecordedState(client, clusterName));
  const policy: PlanPolicy = {
    clusterName,
    prune: input.prune,
    pruneGuards: input.pruneGuards,
    conflicts: input.apply.conflicts,
    limits: input.limits,
  };
  const observed = performance.now();
  const view = await observeCluster(client, desired, recorded, policy, { concurrency: input.apply.concurrency });
  input.onPhase?.('observe', (performance.now() - observed) / 1000);
  const plan = planCluster(desired, view, recorded, policy, input.apps);
  // Every write below is behind the lock's fence, and the first one claims the inventory (inventory.ts).
  const writer = dryRun ? undefined : inventoryWriter(client, clusterName, recorded.inventory, input.apply.fence);
  const execution = await execute(client, plan, {
    dryRun,
    concurrency: input.apply.concurrency,
    conflicts: input.apply.conflicts,
    establishTimeoutMs: input.apply.establishTimeoutMs,
    healthTimeoutMs: input.apply.healthTimeoutMs,
    clusterName,
    fence: writer?.fence,
    onPhase: input.onPhase,
  });
  const failure = plan.refusal ?? failureOf(execution);
  if (writer) {
    const recording = performance.now();
    await record(input, recorded, desired, execution, writer, failure === undefined);
    input.onPhase?.('record', (performance.now() - recording) / 1000);
  }
  if (failure) return { status: 'failed', failure, changeSet: execution.changeSet };
  return { status: dryRun ? 'previewed' : 'applied', changeSet: execution.changeSet };
}

function failureOf(execution: Execution): ReconcileFailure | undefined {
  if (execution.ok) return undefined;
  if (execution.rejected) return { reason: 'rejected', rejected: execution.rejected };
  if (execution.unhealthy)
    return { reason: 'unhealthy-dependency', apps: execution.unhealthy.apps, unhealthy: execution.unhealthy.reports };
  if (execution.failedHooks) return { reason: 'hook-failed', hooks: execution.failedHooks };
  return { reason: 'write-refused', failed: execution.changeSet.changes.filter((c) => c.action === 'failed').length };
}

/**
 * The records after a sync. Applied: the commit's objects with what their writes left, plus the stale
 * objects whose delete failed, and the baselines when they changed. Not applied: the previous inventory
 * plus whatever was written anyway (the first stage), so that a later commit can prune it.
 */
async function record(
  input: ReconcileInput,
  recorded: RecordedState,
  desired: readonly RenderedObject[],
  execution: Execution,
  writer: ReturnType<typeof inventoryWriter>,
  applied: boolean,
): Promise<void> {
  const previous = recorded.inventory;
  // Hooks are not the app's objects (Helm keeps them out of the release): never inventoried, never pruned.
  const current = desired.filter((o) => !o.hook).map((o) => objectIdOf(o.manifest));
  if (!applied) {
    const written = execution.changeSet.changes.filter((c) => c.action === 'created' || c.action === 'configured');
    if (written.length === 0) return;
    const wroteRefs = new Set(written.map((c) => c.object));
    const writtenIds = desired
      .filter((o) => !o.hook && wroteRefs.has(objectRef(o.manifest)))
      .map((o) => objectIdOf(o.manifest));
    await writer.write({
      revision: previous?.revision ?? '',
      objects: union(previous?.objects ?? [], writtenIds),
      baselineDigest: previous?.baselineDigest,
    });
    return;
  }
  const entries = current.map((id): InventoryEntry => {
    const applied = execution.records.get(idKey(id));
    return applied ? { ...id, digest: applied.digest, resourceVersion: applied.resourceVersion } : id;
  });
  const baselines = new Map(
    current.flatMap((id) => {
      const baseline = execution.records.get(idKey(id))?.baseline;
      return baseline ? [[idKey(id), baseline] as const] : [];
    }),
  );
  const baselineDigest = baselinesDigest(baselines);
  if (baselineDigest !== previous?.baselineDigest) {
    const fence = writer.fence;
    await fence?.confirm();
    await writeBaselines(input.client, input.clusterName, baselines, fence && (() => fence.assertFresh()));
  }
  await writer.write({ revision: input.revision, objects: union(entries, execution.retained), baselineDigest });
}

function union(a: readonly InventoryEntry[], b: readonly InventoryEntry[]): InventoryEntry[] {
  const seen = new Map(a.map((id) => [idKey(id), id]));
  for (const id of b) seen.set(idKey(id), id);
  return [...seen.values()];
}
