import { mkdtemp, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { ClusterEntry } from '../clusters/cluster-registry.ts';
import type { SyncJob } from '../queue/jobs.ts';
import { type AffectedReason, selectAffectedClusters } from './affected-clusters.ts';
import { CommitNotFoundError, type GitMirror, type Remote } from './git-mirror.ts';
import { type HistoryVerdict, judgeHistory } from './history-guard.ts';
import { fsTreeReader } from './tree-reader.ts';

export type ClusterPlan =
  | {
      readonly cluster: ClusterEntry;
      readonly action: 'refuse';
      readonly verdict: Extract<HistoryVerdict, { allowed: false }>;
    }
  | { readonly cluster: ClusterEntry; readonly action: 'skip'; readonly reason: 'unaffected' }
  | {
      readonly cluster: ClusterEntry;
      readonly action: 'reconcile';
      readonly reason: AffectedReason;
      readonly changedInputs: readonly string[];
    };

export interface SyncPlan {
  /** The exported tree of the commit, for the render. Removed by `cleanup`. */
  readonly treeDir: string;
  readonly plans: readonly ClusterPlan[];
  cleanup(): Promise<void>;
}

export interface PlanSyncInput {
  readonly job: Pick<SyncJob, 'trigger' | 'branch' | 'after' | 'before' | 'forced'>;
  /** Where the commit is fetched from: the repository as GitHub reports it for the job's id. */
  readonly remote: Remote;
  /** The registered clusters for the job's repository and branch. */
  readonly clusters: readonly ClusterEntry[];
  readonly appliedSha: (cluster: ClusterEntry) => string | undefined;
  readonly mirror: GitMirror;
  /** Scratch folder for exported trees. */
  readonly workDir: string;
}

/**
 * Source side of a sync: pulls exactly the commit, applies the history guard per cluster, and decides
 * which clusters the commit affects. Nothing here touches a cluster.
 *
 * The guard holds on every path (invariant 10). Ancestry over the applied commit is proven from Git,
 * except for a real push payload, where GitHub's own `forced: false` with `before` = the applied commit
 * already says so. Every job also proves the commit is on the branch now (`ls-remote`, then ancestry):
 * GitHub names any commit a check ran on (a fork's, a deleted branch's), and a push may be delivered
 * after the branch moved away from it.
 */
export async function planSync(input: PlanSyncInput): Promise<SyncPlan> {
  const commit = await prepareCommit(input);
  try {
    const plans = await planClusters(commit, input.clusters, input.appliedSha);
    return { treeDir: commit.treeDir, plans, cleanup: commit.cleanup };
  } catch (error) {
    await commit.cleanup();
    throw error;
  }
}

/** A job's commit, fetched and exported once for all its clusters. */
export interface PreparedCommit {
  readonly job: PlanSyncInput['job'];
  readonly remote: Remote;
  readonly mirror: GitMirror;
  /** The exported tree of the commit, for the render. Removed by `cleanup`. */
  readonly treeDir: string;
  cleanup(): Promise<void>;
}

/** Fetches exactly the commit and exports its tree: once per job, shared by every cluster it concerns. */
export async function prepareCommit(input: Omit<PlanSyncInput, 'clusters' | 'appliedSha'>): Promise<PreparedCommit> {
  const { job, mirror, remote } = input;
  await mirror.fetch(remote, job.after);
  const treeDir = await mkdtemp(join(input.workDir, `tree-${job.after.slice(0, 12)}-`));
  const cleanup = () => rm(treeDir, { recursive: true, force: true });
  try {
    await mirror.exportTree(remote.repositoryId, job.after, treeDir);
    return { job, remote, mirror, treeDir, cleanup };
  } catch (error) {
    await cleanup();
    throw error;
  }
}

/**
 * The history guard and the affected-clusters choice for clusters of a prepared commit, called under
 * their locks (the applied commit is read there), so the branch head is looked up here, not earlier.
 */
export async function planClusters(
  commit: PreparedCommit,
  clusters: readonly ClusterEntry[],
  appliedSha: (cluster: ClusterEntry) => string | undefined,
): Promise<ClusterPlan[]> {
  const { job, mirror, remote } = commit;
  // Every path, pushes too: a push delivered late or redelivered after the branch moved away must not land.
  const head = await mirror.headOf(remote, job.branch);
  const onBranch = await reaches(mirror, remote, head, job.after);
  const plans: ClusterPlan[] = [];
  const allowed: ClusterEntry[] = [];
  for (const cluster of clusters) {
    const applied = appliedSha(cluster);
    // An applied commit that no longer exists upstream (history rewritten, repository replaced) cannot be
    // an ancestor: the guard refuses unless the operator allows rewrites.
    const appliedExists = applied === undefined || (await present(() => mirror.fetch(remote, applied)));
    const githubSaysDescends = job.trigger === 'push' && job.before === applied && !job.forced;
    const descends =
      applied === undefined || applied === job.after
        ? undefined
        : appliedExists && (githubSaysDescends || (await mirror.isAncestor(remote, applied, job.after)));
    const older =
      applied !== undefined && appliedExists && descends === false
        ? await mirror.isAncestor(remote, job.after, applied)
        : false;
    // An older candidate is superseded only while the applied commit is still on the branch; once the
    // branch dropped it, going back is a rewrite of what the cluster runs.
    const appliedOnBranch =
      older && applied !== undefined && onBranch ? await reaches(mirror, remote, head, applied) : undefined;
    const verdict = judgeHistory({
      applied,
      candidate: job.after,
      forced: job.forced,
      descends,
      older,
      onBranch,
      appliedOnBranch,
      allowHistoryRewrite: cluster.allowHistoryRewrite,
    });
    if (verdict.allowed) allowed.push(cluster);
    else plans.push({ cluster, action: 'refuse', verdict });
  }
  const { affected, unaffected } = await selectAffectedClusters({
    clusters: allowed,
    appliedSha,
    targetSha: job.after,
    tree: fsTreeReader(commit.treeDir),
    changedPaths: async (from, to) => {
      if (!(await present(() => mirror.fetch(remote, from)))) return 'unknown';
      return mirror.changedPaths(remote.repositoryId, from, to);
    },
  });
  for (const a of affected)
    plans.push({ cluster: a.cluster, action: 'reconcile', reason: a.reason, changedInputs: a.changedInputs });
  for (const cluster of unaffected) plans.push({ cluster, action: 'skip', reason: 'unaffected' });
  const order = new Map(clusters.map((c, i) => [c.name, i]));
  return plans.sort((a, b) => (order.get(a.cluster.name) ?? 0) - (order.get(b.cluster.name) ?? 0));
}

/** Whether `sha` is the branch's head or one of its ancestors (false when the branch is gone). */
async function reaches(mirror: GitMirror, remote: Remote, head: string | undefined, sha: string): Promise<boolean> {
  if (head === undefined) return false;
  return head === sha || mirror.isAncestor(remote, sha, head);
}

/** False when the commit does not exist upstream; any other failure is thrown (it may be worth a retry). */
async function present(fetch: () => Promise<void>): Promise<boolean> {
  try {
    await fetch();
    return true;
  } catch (error) {
    if (error instanceof CommitNotFoundError) return false;
    throw error;
  }
}
