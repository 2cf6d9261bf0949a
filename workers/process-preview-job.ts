import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { type ClusterEntry, clustersForRepository } from '../src/clusters/cluster-registry.ts';
import type { ClusterOutcome } from '../src/engine/cluster-outcome.ts';
import { readRecordedState } from '../src/engine/reconcile-cluster.ts';
import { coalescingKey, type PreviewJob } from '../src/queue/jobs.ts';
import { readLatestJob } from '../src/queue/latest-jobs.ts';
import { redisKeys } from '../src/redis/redis-keys.ts';
import { describePreviewed } from '../src/reporting/describe-outcome.ts';
import { selectAffectedClusters } from '../src/source/affected-clusters.ts';
import { CommitNotFoundError, type Remote } from '../src/source/git-mirror.ts';
import { fsTreeReader } from '../src/source/tree-reader.ts';
import { failClusterJob, runClusterJob, type SyncResult } from './cluster-job.ts';
import { type SyncDependencies, terminalSource } from './process-sync-job.ts';
import { reconcileCommit } from './reconcile-commit.ts';
import { CommitReporting, type JobRun, SINGLE_RUN } from './report-outcome.ts';

/**
 * A pull request's preview: the head commit rendered for every cluster of the base branch that it
 * affects (compared with what each cluster runs), and server-side dry-run against the live cluster.
 * Statuses and check runs on the head commit say what merging would do; nothing is applied, and no
 * cluster lock is taken. A newer push to the pull request supersedes the clusters not yet previewed.
 */
export async function processPreviewJob(
  job: PreviewJob,
  deps: SyncDependencies,
  run: JobRun = SINGLE_RUN,
): Promise<SyncResult> {
  const log = deps.logger.child({
    deliveryId: job.deliveryId,
    repo: job.repository.fullName,
    pullRequest: job.number,
    sha: job.headSha,
  });
  if (clustersForRepository(deps.registry, job.repository, job.baseBranch).length === 0) {
    log.info({ branch: job.baseBranch }, 'no cluster is registered for the base branch: nothing to preview');
    return { sha: job.headSha, outcomes: [] };
  }
  if (job.installationId === undefined) {
    log.warn('the job names no installation: the App cannot reach its repository');
    return { sha: job.headSha, outcomes: [] };
  }
  const repository = await deps.repositories.resolve(job.repository.id, job.installationId).catch(terminalSource);
  const clusters = clustersForRepository(deps.registry, repository, job.baseBranch);
  if (clusters.length === 0) return { sha: job.headSha, outcomes: [] };
  const reporting = new CommitReporting(
    deps.reporter,
    {
      repository: { id: repository.id, fullName: repository.fullName },
      installationId: job.installationId,
      sha: job.headSha,
    },
    coalescingKey(job),
    'preview',
    deps.statusPageUrl,
    job.trigger === 'rerun',
  );
  const shape = { reporting, run, log, notDone: 'no dry-run' };
  // A fork's head reaches only the clusters whose operator opted in (invariant 9); the others are told
  // so without their cluster, or the fork's commit, being touched.
  const fromFork = job.headRepositoryId !== repository.id;
  const previewed = clusters.filter((c) => !fromFork || c.previewForks);
  let treeDir: string | undefined;
  try {
    await reporting.jobStarted();
    if (fromFork) log.info({ previewed: previewed.map((c) => c.name) }, 'pull request from a fork');
    const tree = previewed.length === 0 ? undefined : await exportHead();
    return await runClusterJob({
      ...shape,
      sha: job.headSha,
      clusters,
      perCluster: async (cluster) => {
        if (!tree || !previewed.includes(cluster)) return forkNotPreviewed(cluster.name);
        return previewOne(job, cluster, deps, tree.remote, tree.dir, () => reporting.clusterStarted(cluster.name));
      },
    });
  } catch (error) {
    // Awaited here, not returned: its rejection would otherwise sit unhandled while `finally` awaits the
    // clean-up, and Node ends the whole process on an unhandled rejection (issue 13, item 10).
    return await failClusterJob(error, shape);
  } finally {
    if (treeDir) await rm(treeDir, { recursive: true, force: true });
  }

  async function exportHead(): Promise<{ remote: Remote; dir: string }> {
    await mkdir(deps.workDir, { recursive: true });
    const remote: Remote = {
      repositoryId: repository.id,
      cloneUrl: repository.cloneUrl,
      token: await deps.tokenFor(job.installationId),
    };
    await deps.mirror.fetch(remote, job.headSha);
    treeDir = await mkdtemp(join(deps.workDir, `preview-${job.headSha.slice(0, 12)}-`));
    await deps.mirror.exportTree(repository.id, job.headSha, treeDir);
    return { remote, dir: treeDir };
  }
}

/** A fork's pull request on a cluster without `previewForks`: nothing fetched, rendered or sent to the cluster. */
function forkNotPreviewed(cluster: string): ClusterOutcome {
  return {
    cluster,
    status: 'not-previewed',
    description: 'not previewed: pull requests from forks are not dry-run on this cluster (previewForks is off)',
  };
}

async function previewOne(
  job: PreviewJob,
  cluster: ClusterEntry,
  deps: SyncDependencies,
  remote: Remote,
  treeDir: string,
  started: () => void,
): Promise<ClusterOutcome> {
  const newer = await newerHead(job, deps);
  if (newer) {
    return {
      cluster: cluster.name,
      status: 'superseded',
      description: `no dry-run: superseded by ${newer.slice(0, 7)}, the pull request's newer head`,
    };
  }
  const client = deps.clusterClient(cluster);
  // Read once: the affected check and the plan use this copy.
  const recorded = await readRecordedState(client, cluster.name);
  const { affected } = await selectAffectedClusters({
    clusters: [cluster],
    appliedSha: () => recorded.inventory?.revision || undefined,
    targetSha: job.headSha,
    tree: fsTreeReader(treeDir),
    changedPaths: async (from, to) => {
      try {
        await deps.mirror.fetch(remote, from);
      } catch (error) {
        if (error instanceof CommitNotFoundError) return 'unknown';
        throw error;
      }
      return deps.mirror.changedPaths(job.repository.id, from, to);
    },
  });
  if (affected.length === 0)
    return { cluster: cluster.name, status: 'unchanged', description: 'no change affects this cluster' };

  started();
  // The same plan a sync would make, executed with nothing written.
  const reconciled = await reconcileCommit({
    cluster,
    client,
    treeDir,
    revision: job.headSha,
    recorded,
    render: deps.render,
    engine: deps.engine,
    mode: { dryRun: true },
  });
  if (reconciled.done) return reconciled.outcome;
  return {
    cluster: cluster.name,
    status: 'previewed',
    changeSet: reconciled.changeSet,
    apps: reconciled.apps,
    notices: reconciled.notices,
    description: describePreviewed(reconciled.changeSet, cluster.suspend),
  };
}

/** The pull request's newer head commit, when a later push to it has arrived since this job's. */
async function newerHead(job: PreviewJob, deps: SyncDependencies): Promise<string | undefined> {
  const latest = await readLatestJob({ redis: deps.redis, keys: redisKeys(deps.prefix), logger: deps.logger }, job);
  if (latest?.type !== 'preview' || latest.headSha === job.headSha) return undefined;
  return Date.parse(latest.receivedAt) > Date.parse(job.receivedAt) ? latest.headSha : undefined;
}
