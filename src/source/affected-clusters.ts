import type { ClusterEntry } from '../clusters/cluster-registry.ts';
import { collectClusterInputs } from './cluster-inputs.ts';
import { isAffectedBy, type TreeReader } from './render-inputs.ts';

export type AffectedReason = 'first-apply' | 'inputs-changed' | 'history-unknown' | 'already-applied';

export interface AffectedCluster {
  readonly cluster: ClusterEntry;
  /**
   * `first-apply`: nothing applied yet; `inputs-changed`: a file its render reads changed;
   * `history-unknown`: the applied commit no longer exists upstream, so nothing can be compared;
   * `already-applied`: the same commit again (a re-run, or a job retried after a crash) — applying it
   * is cheap when nothing changed, and it is the only way the job ends with a final status.
   */
  readonly reason: AffectedReason;
  /** The changed paths among its inputs (empty for a first apply). */
  readonly changedInputs: readonly string[];
}

export interface AffectedClustersInput {
  readonly clusters: readonly ClusterEntry[];
  /** The commit last applied to each cluster, if any. */
  readonly appliedSha: (cluster: ClusterEntry) => string | undefined;
  readonly targetSha: string;
  /** The target commit's tree. */
  readonly tree: TreeReader;
  /** `git diff --name-only from to` (the truth, unlike a webhook's truncated file list); `unknown` when `from` is gone. */
  readonly changedPaths: (from: string, to: string) => Promise<readonly string[] | 'unknown'>;
}

/**
 * Which clusters a commit affects: a cluster is affected when a file its render reads (at the target
 * commit) differs from the commit it last applied. Unaffected clusters are not reconciled.
 */
export async function selectAffectedClusters(input: AffectedClustersInput): Promise<{
  affected: AffectedCluster[];
  unaffected: ClusterEntry[];
}> {
  const diffs = new Map<string, Promise<readonly string[] | 'unknown'>>();
  const affected: AffectedCluster[] = [];
  const unaffected: ClusterEntry[] = [];
  for (const cluster of input.clusters) {
    const applied = input.appliedSha(cluster);
    if (applied === undefined) {
      affected.push({ cluster, reason: 'first-apply', changedInputs: [] });
      continue;
    }
    if (applied === input.targetSha) {
      affected.push({ cluster, reason: 'already-applied', changedInputs: [] });
      continue;
    }
    if (!diffs.has(applied)) diffs.set(applied, input.changedPaths(applied, input.targetSha));
    const changed = (await diffs.get(applied)) ?? [];
    if (changed === 'unknown') {
      affected.push({ cluster, reason: 'history-unknown', changedInputs: [] });
      continue;
    }
    const inputs = await collectClusterInputs(input.tree, cluster.path);
    const changedInputs = changed.filter((path) => isAffectedBy(inputs, [path]));
    if (changedInputs.length > 0) affected.push({ cluster, reason: 'inputs-changed', changedInputs });
    else unaffected.push(cluster);
  }
  return { affected, unaffected };
}
