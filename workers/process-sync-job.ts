import { mkdir } from 'node:fs/promises';
import { UnrecoverableError } from 'bullmq';
import { type ClusterEntry, type ClusterRegistry, clustersForRepository } from '../src/clusters/cluster-registry.ts';
import type { ClusterClient } from '../src/engine/cluster-client.ts';
import { type ClusterLock, type Fence, withClusterLock } from '../src/engine/cluster-lock.ts';
import type { ClusterOutcome } from '../src/engine/cluster-outcome.ts';
import { waitForHealth } from '../src/engine/health.ts';
import { readRecordedState } from '../src/engine/reconcile-cluster.ts';
import type { RenderCache } from '../src/engine/render-cache.ts';
import type { RepositoryDirectory } from '../src/github/repository-directory.ts';
import {
  ForeignCloneUrlError,
  RepositoryNotFoundError,
  type RepositoryResolver,
  type ResolvedRepository,
} from '../src/github/repository-resolver.ts';
import type { Logger } from '../src/logging/create-logger.ts';
import { coalescingKey, type SyncJob } from '../src/queue/jobs.ts';
import type { RedisConnection } from '../src/redis/redis-topology.ts';
import { describeApplied } from '../src/reporting/describe-outcome.ts';
import type { Reporter } from '../src/reporting/github-reporter.ts';
import { publishableHealth } from '../src/reporting/mask-live-text.ts';
import type { GitMirror, Remote } from '../src/source/git-mirror.ts';
import { type PreparedCommit, planClusters, prepareCommit } from '../src/source/plan-sync.ts';
import { type ClusterStateStore, clusterBase } from '../src/status/cluster-state.ts';
import { failClusterJob, runClusterJob, type SyncResult } from './cluster-job.ts';
import type { EngineSettings } from './engine-settings.ts';
import { reconcileCommit } from './reconcile-commit.ts';
import { CommitReporting, type JobRun, SINGLE_RUN } from './report-outcome.ts';
import type { WorkerMetrics } from './worker-metrics.ts';

export interface SyncDependencies {
  readonly registry: ClusterRegistry;
  readonly mirror: GitMirror;
  /** Renders a cluster folder of an exported tree (cached by input content in production). */
  readonly render: RenderCache['render'];
  readonly workDir: string;
  readonly tokenFor: (installationId: number | undefined) => Promise<string | undefined>;
  readonly clusterClient: (cluster: ClusterEntry) => ClusterClient;
  readonly redis: RedisConnection;
  readonly prefix: string;
  readonly logger: Logger;
  readonly engine: EngineSettings;
  readonly reporter: Reporter;
  /** The status page's public URL, for `target_url`; statuses carry no link without it. */
  readonly statusPageUrl: string | undefined;
  /** Per-cluster state for the status page and /api/clusters. */
  readonly state: ClusterStateStore;
  /** Registered repositories' ids and installations, for the resync (which has no webhook). */
  readonly directory: RepositoryDirectory;
  /** Clone URLs by repository id, from GitHub: never from job data. */
  readonly repositories: RepositoryResolver;
  /** This process's metrics (reconcile and phase durations, push → applied); none in most tests. */
  readonly metrics?: WorkerMetrics | undefined;
}

export { RetryableSyncError, type SyncResult } from './cluster-job.ts';

/**
 * A sync job end to end, per registered cluster of the branch: under the cluster's lock, read what it
 * has applied, pull the commit and apply the history guard, then render → secrets gate → apply → prune →
 * health. Problems with the commit are outcomes; infrastructure errors are retried. Every cluster the
 * commit concerns gets a `pending` status when its work starts and a final one when it ends, and the
 * commit a roll-up; the job's last attempt turns whatever is still pending into `error`.
 */
export async function processSyncJob(
  job: SyncJob,
  deps: SyncDependencies,
  run: JobRun = SINGLE_RUN,
): Promise<SyncResult> {
  const log = deps.logger.child({ deliveryId: job.deliveryId, repo: job.repository.fullName, sha: job.after });
  // Cheap first look by the job's own words; the clusters are chosen again from what GitHub says.
  if (clustersForRepository(deps.registry, job.repository, job.branch).length === 0) {
    log.info({ branch: job.branch }, 'no cluster is registered for this repository and branch');
    return { sha: job.after, outcomes: [] };
  }
  if (job.installationId === undefined) {
    log.warn('the job names no installation: the App cannot reach its repository');
    return { sha: job.after, outcomes: [] };
  }
  const repository = await deps.repositories.resolve(job.repository.id, job.installationId).catch(terminalSource);
  const clusters = clustersForRepository(deps.registry, repository, job.branch);
  if (clusters.length === 0) {
    log.warn(
      { reported: repository.fullName },
      'GitHub names the repository differently: no cluster is registered for it',
    );
    return { sha: job.after, outcomes: [] };
  }
  const target = {
    repository: { id: repository.id, fullName: repository.fullName },
    installationId: job.installationId,
  };
  const reporting = new CommitReporting(
    deps.reporter,
    { ...target, sha: job.after },
    coalescingKey(job),
    'sync',
    deps.statusPageUrl,
    job.trigger === 'rerun',
  );
  const shape = { reporting, run, log, notDone: 'not applied' };
  let commit: PreparedCommit | undefined;
  try {
    await reporting.jobStarted();
    await deps.directory.remember(target);
    await mkdir(deps.workDir, { recursive: true });
    const remote: Remote = {
      repositoryId: repository.id,
      cloneUrl: repository.cloneUrl,
      token: await deps.tokenFor(job.installationId),
    };
    // One fetch and one export for every cluster of the job.
    commit = await prepareCommit({ job, remote, mirror: deps.mirror, workDir: deps.workDir });
    const prepared = commit;
    return await runClusterJob({
      ...shape,
      sha: job.after,
      clusters,
      perCluster: (cluster) =>
        withClusterLock(
          deps.redis,
          {
            prefix: deps.prefix,
            cluster: cluster.name,
            leaseMs: deps.engine.lockLeaseMs,
            waitMs: deps.engine.lockWaitMs,
          },
          async (lock) => {
            const outcome = await timedSync(cluster, deps, () =>
              syncCluster(job, cluster, deps, prepared, {
                fence: lock,
                started: () => reporting.clusterStarted(cluster.name),
              }),
            );
            if (outcome.status === 'applied' && !outcome.repeated)
              deps.metrics?.pushApplied(cluster.name, job.trigger, (Date.now() - Date.parse(job.receivedAt)) / 1000);
            // The status page's state is written under the lock, behind its fence, like the cluster's records.
            await recordState(deps.state, cluster, job, repository, outcome, lock);
            return outcome;
          },
        ),
      // An infrastructure failure's final outcome: the lock is not (or no longer) held.
      recorded: (cluster, outcome) =>
        outcome.status === 'error' ? recordState(deps.state, cluster, job, repository, outcome) : Promise.resolve(),
    });
  } catch (error) {
    // Awaited here, not returned: `finally` must not clean up while the rejection is pending.
    return await failClusterJob(error, shape);
  } finally {
    await commit?.cleanup();
  }
}

/** A cluster's sync, timed by its outcome (`error` when it throws) for the metrics. */
async function timedSync(
  cluster: ClusterEntry,
  deps: SyncDependencies,
  sync: () => Promise<ClusterOutcome>,
): Promise<ClusterOutcome> {
  const started = performance.now();
  const seconds = () => (performance.now() - started) / 1000;
  try {
    const outcome = await sync();
    deps.metrics?.reconciled(cluster.name, outcome.status, seconds());
    return outcome;
  } catch (error) {
    deps.metrics?.reconciled(cluster.name, 'error', seconds());
    throw error;
  }
}

/** `work`, its duration observed as the reconcile phase `phase` (when there are metrics). */
async function timed<T>(metrics: WorkerMetrics | undefined, phase: string, work: () => Promise<T>): Promise<T> {
  const started = performance.now();
  try {
    return await work();
  } finally {
    metrics?.phase(phase, (performance.now() - started) / 1000);
  }
}

/** A repository that cannot be resolved, or resolves off the GitHub host, will not resolve on a retry either. */
export function terminalSource(error: unknown): never {
  if (error instanceof RepositoryNotFoundError || error instanceof ForeignCloneUrlError)
    throw new UnrecoverableError(error.message);
  throw error;
}

/** The status page's view of a cluster after a sync; nothing for a commit that does not concern it. */
async function recordState(
  state: ClusterStateStore,
  cluster: ClusterEntry,
  job: SyncJob,
  repository: ResolvedRepository,
  outcome: ClusterOutcome,
  lock?: ClusterLock,
) {
  if (outcome.status === 'unchanged') return;
  const at = new Date().toISOString();
  const sha = job.after;
  const repoUrl = webUrlOf(repository.cloneUrl);
  await state.update(
    clusterBase(cluster),
    {
      lastSync: { sha, status: outcome.status, description: outcome.description, at },
      reconciled: { sha, status: outcome.status, description: outcome.description, at },
      ...(repoUrl ? { repoUrl } : {}),
      ...(outcome.status === 'applied' ? { appliedRevision: sha, appliedAt: at } : {}),
    },
    lock ? { fence: lock } : {},
  );
}

/** `https://github.com/acme/gitops.git` → `https://github.com/acme/gitops`; no credentials ever kept. Pure. */
export function webUrlOf(cloneUrl: string): string | undefined {
  try {
    const url = new URL(cloneUrl);
    if (url.protocol !== 'https:' && url.protocol !== 'http:') return undefined;
    return `${url.origin}${url.pathname.replace(/\.git$/, '')}`;
  } catch {
    return undefined;
  }
}

async function syncCluster(
  job: SyncJob,
  cluster: ClusterEntry,
  deps: SyncDependencies,
  commit: PreparedCommit,
  hooks: { readonly fence: Fence; readonly started: () => void },
): Promise<ClusterOutcome> {
  const started = Date.now();
  const client = deps.clusterClient(cluster);
  // Read once, under the lock: the history guard, the affected check and the plan all use this copy.
  const recorded = await readRecordedState(client, cluster.name);
  const [decision] = await planClusters(commit, [cluster], () => recorded.inventory?.revision || undefined);
  if (!decision || decision.action === 'skip')
    return { cluster: cluster.name, status: 'unchanged', description: 'no change affects this cluster' };
  if (decision.action === 'refuse') {
    return decision.verdict.reason === 'superseded'
      ? { cluster: cluster.name, status: 'superseded', description: `not applied: ${decision.verdict.message}` }
      : { cluster: cluster.name, status: 'failed', description: decision.verdict.message, problems: [] };
  }
  if (cluster.suspend)
    return { cluster: cluster.name, status: 'suspended', description: 'suspended by the operator: not applied' };
  hooks.started();

  const reconciled = await reconcileCommit({
    cluster,
    client,
    treeDir: commit.treeDir,
    revision: job.after,
    recorded,
    render: (treeDir, path, target) => timed(deps.metrics, 'render', () => deps.render(treeDir, path, target)),
    engine: deps.engine,
    mode: { dryRun: false, fence: hooks.fence },
    onPhase: deps.metrics?.phase,
  });
  if (reconciled.done) return reconciled.outcome;
  const { changeSet, objects, apps, notices } = reconciled;
  const unhealthy = publishableHealth(
    await timed(deps.metrics, 'health', () =>
      waitForHealth(
        client,
        objects.map((o) => o.manifest),
        { timeoutMs: deps.engine.healthTimeoutMs, concurrency: deps.engine.applyConcurrency },
      ),
    ),
    objects,
  );
  const again = decision.reason === 'already-applied';
  const nothingWritten = changeSet.changes.every((c) => c.action === 'unchanged');
  return {
    cluster: cluster.name,
    status: 'applied',
    changeSet,
    unhealthy,
    apps,
    notices,
    description: describeApplied({ changeSet, unhealthy, seconds: (Date.now() - started) / 1000, again }),
    repeated: again && nothingWritten && unhealthy.length === 0,
  };
}
