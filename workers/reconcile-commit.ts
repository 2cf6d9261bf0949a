import type { ClusterEntry } from '../src/clusters/cluster-registry.ts';
import type { ChangeSet } from '../src/engine/change-set.ts';
import type { ClusterClient } from '../src/engine/cluster-client.ts';
import type { Fence } from '../src/engine/cluster-lock.ts';
import type { ClusterOutcome } from '../src/engine/cluster-outcome.ts';
import type { ManifestProblem, RenderedApp, RenderedObject } from '../src/engine/manifest.ts';
import type { RecordedState } from '../src/engine/plan/plan.ts';
import { type ReconcileInput, reconcileCluster } from '../src/engine/reconcile-cluster.ts';
import { targetOf } from '../src/engine/render-apps.ts';
import type { RenderCache } from '../src/engine/render-cache.ts';
import { RenderUnavailableError } from '../src/engine/render-cluster.ts';
import { checkSecrets } from '../src/engine/secrets-gate.ts';
import { describeFailedReconcile, describeProblems } from '../src/reporting/describe-outcome.ts';
import { publishableChangeSet } from '../src/reporting/mask-live-text.ts';
import type { EngineSettings } from './engine-settings.ts';

export interface CommitReconcile {
  readonly cluster: ClusterEntry;
  readonly client: ClusterClient;
  /** The commit's exported tree (one per job, shared by its clusters). */
  readonly treeDir: string;
  readonly revision: string;
  /** The cluster's records as read for this job (under its lock, for a sync). */
  readonly recorded: RecordedState;
  readonly render: RenderCache['render'];
  readonly engine: EngineSettings;
  /** A sync writes behind the lock's fence; a preview writes nothing. */
  readonly mode: { readonly dryRun: false; readonly fence: Fence } | { readonly dryRun: true };
  /** Told how long each phase of the reconcile took (the worker's metrics). */
  readonly onPhase?: ReconcileInput['onPhase'];
}

export type CommitReconciled =
  /** The commit is wrong or unsafe: the cluster's final outcome. */
  | { readonly done: true; readonly outcome: ClusterOutcome }
  /** Applied or previewed; the change set carries no live value (invariant 9). */
  | {
      readonly done: false;
      readonly objects: readonly RenderedObject[];
      readonly changeSet: ChangeSet;
      readonly apps?: readonly RenderedApp[] | undefined;
      readonly notices?: readonly ManifestProblem[] | undefined;
    };

/**
 * The part a sync and a preview share, so the two cannot drift apart: render → secrets gate → reconcile
 * (the preview the same plan with `dryRun`), and the change set made publishable.
 */
export async function reconcileCommit(input: CommitReconcile): Promise<CommitReconciled> {
  const { cluster } = input;
  const rendered = await input.render(input.treeDir, cluster.path, targetOf(input.client));
  if (!rendered.ok && rendered.transient) throw new RenderUnavailableError(rendered.problems);
  if (!rendered.ok) return { done: true, outcome: failedOutcome(cluster.name, rendered.problems) };
  const secretProblems = checkSecrets(rendered.objects);
  if (secretProblems.length > 0) return { done: true, outcome: failedOutcome(cluster.name, secretProblems) };
  const { dryRun } = input.mode;
  const outcome = await reconcileCluster({
    client: input.client,
    clusterName: cluster.name,
    revision: input.revision,
    objects: rendered.objects,
    apps: rendered.apps,
    prune: cluster.prune,
    pruneGuards: { maxShare: cluster.maxPruneShare, override: false },
    apply: {
      concurrency: input.engine.applyConcurrency,
      conflicts: cluster.onConflict === 'fail' ? 'fail' : 'take-ownership',
      establishTimeoutMs: input.engine.establishTimeoutMs,
      healthTimeoutMs: input.engine.healthTimeoutMs,
      fence: input.mode.dryRun ? undefined : input.mode.fence,
    },
    limits: cluster.limits,
    recorded: input.recorded,
    dryRun,
    onPhase: input.onPhase,
  });
  // What goes to GitHub carries no live value (invariant 9); the job's log line keeps the detail.
  const changeSet = publishableChangeSet(outcome.changeSet, rendered.objects);
  const { apps, notices } = rendered;
  if (outcome.status !== 'failed') return { done: false, objects: rendered.objects, changeSet, apps, notices };
  const problems = changeSet.changes
    .filter((c) => c.action === 'failed')
    .map((c) => ({ message: c.message ?? 'rejected', source: c.source, object: c.object }));
  return {
    done: true,
    outcome: {
      cluster: cluster.name,
      status: 'failed',
      description: describeFailedReconcile(outcome.failure, problems, cluster.name, dryRun),
      problems,
      changeSet,
      apps,
    },
  };
}

/** A failed outcome from the commit's problems (render, secrets gate). Pure. */
export function failedOutcome(cluster: string, problems: readonly ManifestProblem[]): ClusterOutcome {
  return { cluster, status: 'failed', description: describeProblems(problems), problems };
}
