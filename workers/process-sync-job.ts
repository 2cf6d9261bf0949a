import { mkdir } from 'node:fs/promises';
import { UnrecoverableError } from 'bullmq';
import type { Redis } from 'ioredis';
import { type ClusterEntry, type ClusterRegistry, clustersForRepository } from '../src/clusters/cluster-registry.ts';
import { describeChangeSet } from '../src/engine/change-set.ts';
import type { ClusterClient } from '../src/engine/cluster-client.ts';
import { type Fence, withClusterLock } from '../src/engine/cluster-lock.ts';
import type { ClusterOutcome } from '../src/engine/cluster-outcome.ts';
import { waitForHealth } from '../src/engine/health.ts';
import { readInventory } from '../src/engine/inventory.ts';
import { reconcileCluster } from '../src/engine/reconcile-cluster.ts';
import type { RenderResult } from '../src/engine/render-cluster.ts';
import { checkSecrets } from '../src/engine/secrets-gate.ts';
import type { RepositoryDirectory } from '../src/github/repository-directory.ts';
import {
  ForeignCloneUrlError,
  RepositoryNotFoundError,
  type RepositoryResolver,
  type ResolvedRepository,
} from '../src/github/repository-resolver.ts';
import type { Logger } from '../src/logging/create-logger.ts';
import { coalescingKey, type SyncJob } from '../src/queue/jobs.ts';
import type { Reporter } from '../src/reporting/github-reporter.ts';
import { publishableChangeSet, publishableHealth, withoutAddresses } from '../src/reporting/mask-live-text.ts';
import type { GitMirror, Remote } from '../src/source/git-mirror.ts';
import { planSync } from '../src/source/plan-sync.ts';
import { type ClusterStateStore, clusterBase } from '../src/status/cluster-state.ts';
import { failClusterJob, runClusterJob, type SyncResult } from './cluster-job.ts';
import { CommitReporting, describeRejection, failedOutcome, type JobRun, SINGLE_RUN } from './report-outcome.ts';

export interface EngineSettings {
  readonly applyConcurrency: number;
  readonly establishTimeoutMs: number;
  readonly healthTimeoutMs: number;
  readonly lockLeaseMs: number;
  readonly lockWaitMs: number;
}

export const DEFAULT_ENGINE_SETTINGS: EngineSettings = {
  applyConcurrency: 32,
  establishTimeoutMs: 60_000,
  healthTimeoutMs: 120_000,
  lockLeaseMs: 30_000,
  lockWaitMs: 60_000,
};

export interface SyncDependencies {
  readonly registry: ClusterRegistry;
  readonly mirror: GitMirror;
  /** Renders a cluster folder of an exported tree (cached by input content in production). */
  readonly render: (treeDir: string, clusterPath: string) => Promise<RenderResult>;
  readonly workDir: string;
  readonly tokenFor: (installationId: number | undefined) => Promise<string | undefined>;
  readonly clusterClient: (cluster: ClusterEntry) => ClusterClient;
  readonly redis: Redis;
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
  try {
    await reporting.jobStarted();
    await deps.directory.remember(target);
    await mkdir(deps.workDir, { recursive: true });
    const remote: Remote = {
      repositoryId: repository.id,
      cloneUrl: repository.cloneUrl,
      token: await deps.tokenFor(job.installationId),
    };
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
          (lock) =>
            syncCluster(job, cluster, deps, remote, {
              fence: lock,
              started: () => reporting.clusterStarted(cluster.name),
            }),
        ),
      recorded: (cluster, outcome) => recordState(deps.state, cluster, job, repository, outcome),
    });
  } catch (error) {
    return failClusterJob(error, shape);
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
) {
  if (outcome.status === 'unchanged') return;
  const at = new Date().toISOString();
  const sha = job.after;
  const repoUrl = webUrlOf(repository.cloneUrl);
  await state.update(clusterBase(cluster), {
    lastSync: { sha, status: outcome.status, description: outcome.description, at },
    reconciled: { sha, status: outcome.status, description: outcome.description, at },
    ...(repoUrl ? { repoUrl } : {}),
    ...(outcome.status === 'applied' ? { appliedRevision: sha, appliedAt: at } : {}),
  });
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
  remote: Remote,
  hooks: { readonly fence: Fence; readonly started: () => void },
): Promise<ClusterOutcome> {
  const started = Date.now();
  const client = deps.clusterClient(cluster);
  const inventory = await readInventory(client, cluster.name);
  const plan = await planSync({
    job,
    remote,
    clusters: [cluster],
    appliedSha: () => inventory?.revision || undefined,
    mirror: deps.mirror,
    workDir: deps.workDir,
  });
  try {
    const [decision] = plan.plans;
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

    const rendered = await deps.render(plan.treeDir, cluster.path);
    if (!rendered.ok) return failedOutcome(cluster.name, rendered.problems);
    const secretProblems = checkSecrets(rendered.objects);
    if (secretProblems.length > 0) return failedOutcome(cluster.name, secretProblems);

    const outcome = await reconcileCluster({
      client,
      clusterName: cluster.name,
      revision: job.after,
      objects: rendered.objects,
      prune: cluster.prune,
      pruneGuards: { maxShare: cluster.maxPruneShare, override: false },
      apply: {
        concurrency: deps.engine.applyConcurrency,
        conflicts: cluster.onConflict === 'fail' ? 'fail' : 'take-ownership',
        establishTimeoutMs: deps.engine.establishTimeoutMs,
        fence: hooks.fence,
      },
      limits: cluster.limits,
    });
    // What goes to GitHub carries no live value (invariant 9); the log line of the job keeps the detail.
    const changeSet = publishableChangeSet(outcome.changeSet, rendered.objects);
    if (outcome.status === 'failed') {
      const problems = changeSet.changes
        .filter((c) => c.action === 'failed')
        .map((c) => ({ message: c.message ?? 'rejected', source: c.source, object: c.object }));
      return {
        cluster: cluster.name,
        status: 'failed',
        description: describeRejection(problems) ?? withoutAddresses(outcome.reason),
        problems,
        changeSet,
      };
    }
    const unhealthy = publishableHealth(
      await waitForHealth(
        client,
        rendered.objects.map((o) => o.manifest),
        { timeoutMs: deps.engine.healthTimeoutMs, concurrency: deps.engine.applyConcurrency },
      ),
      rendered.objects,
    );
    const seconds = ((Date.now() - started) / 1000).toFixed(1);
    const failing = unhealthy.filter((u) => u.health.state === 'failed').map((u) => u.object);
    const progressing = unhealthy.filter((u) => u.health.state !== 'failed').map((u) => u.object);
    const health = [
      failing.length > 0 ? `; failing: ${failing.join(', ')}` : '',
      progressing.length > 0 ? `; still progressing: ${progressing.join(', ')}` : '',
    ].join('');
    const again = decision.reason === 'already-applied' ? 'already applied; ' : '';
    const nothingWritten = changeSet.changes.every((c) => c.action === 'unchanged');
    return {
      cluster: cluster.name,
      status: 'applied',
      changeSet,
      unhealthy,
      description: `${again}${describeChangeSet(changeSet)} in ${seconds} s${health}`,
      repeated: decision.reason === 'already-applied' && nothingWritten && unhealthy.length === 0,
    };
  } finally {
    await plan.cleanup();
  }
}
