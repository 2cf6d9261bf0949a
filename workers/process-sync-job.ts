import { mkdir } from 'node:fs/promises';
import { UnrecoverableError } from 'bullmq';
import type { Redis } from 'ioredis';
import { type ClusterEntry, type ClusterRegistry, clustersForRepository } from '../src/clusters/cluster-registry.ts';
import { type ChangeSet, describeChangeSet } from '../src/engine/change-set.ts';
import type { ClusterClient } from '../src/engine/cluster-client.ts';
import { withClusterLock } from '../src/engine/cluster-lock.ts';
import { type HealthReport, waitForHealth } from '../src/engine/health.ts';
import { readInventory } from '../src/engine/inventory.ts';
import type { ManifestProblem } from '../src/engine/manifest.ts';
import { reconcileCluster } from '../src/engine/reconcile-cluster.ts';
import type { RenderResult } from '../src/engine/render-cluster.ts';
import { checkSecrets } from '../src/engine/secrets-gate.ts';
import type { Logger } from '../src/logging/create-logger.ts';
import type { SyncJob } from '../src/queue/jobs.ts';
import { CommitNotFoundError, type GitMirror } from '../src/source/git-mirror.ts';
import { planSync } from '../src/source/plan-sync.ts';
import { mapLimited } from '../src/support/limit-concurrency.ts';

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
}

/** What happened to one cluster; the status text, metrics and logs all derive from it. */
export type ClusterOutcome =
  | {
      readonly cluster: string;
      readonly status: 'applied';
      readonly changeSet: ChangeSet;
      readonly unhealthy: readonly HealthReport[];
      readonly description: string;
    }
  | {
      readonly cluster: string;
      readonly status: 'failed';
      readonly description: string;
      readonly problems: readonly ManifestProblem[];
      readonly changeSet?: ChangeSet;
    }
  | {
      readonly cluster: string;
      readonly status: 'unchanged' | 'superseded' | 'suspended';
      readonly description: string;
    };

export interface SyncResult {
  readonly sha: string;
  readonly outcomes: readonly ClusterOutcome[];
}

/** Raised after every cluster had its turn when at least one failed for infrastructure reasons: BullMQ retries the job. */
export class RetryableSyncError extends Error {
  override readonly name = 'RetryableSyncError';
}

/**
 * A sync job end to end, per registered cluster of the branch: under the cluster's lock, read what it
 * has applied, pull the commit and apply the history guard, then render → secrets gate → apply → prune →
 * health. Problems with the commit are outcomes; infrastructure errors are retried.
 */
export async function processSyncJob(job: SyncJob, deps: SyncDependencies): Promise<SyncResult> {
  const log = deps.logger.child({ deliveryId: job.deliveryId, repo: job.repository.fullName, sha: job.after });
  const clusters = clustersForRepository(deps.registry, job.repository.fullName, job.branch);
  if (clusters.length === 0) {
    log.info({ branch: job.branch }, 'no cluster is registered for this repository and branch');
    return { sha: job.after, outcomes: [] };
  }
  await mkdir(deps.workDir, { recursive: true });
  const token = await deps.tokenFor(job.installationId);
  const infrastructure: Error[] = [];
  const outcomes = await mapLimited(clusters, 4, async (cluster) => {
    try {
      return await withClusterLock(
        deps.redis,
        {
          prefix: deps.prefix,
          cluster: cluster.name,
          leaseMs: deps.engine.lockLeaseMs,
          waitMs: deps.engine.lockWaitMs,
        },
        (lock) => syncCluster(job, cluster, deps, token, () => lock.assertHeld()),
      );
    } catch (error) {
      if (error instanceof CommitNotFoundError) throw new UnrecoverableError(error.message);
      infrastructure.push(error as Error);
      log.warn({ cluster: cluster.name, error: (error as Error).message }, 'cluster sync failed; will retry');
      return undefined;
    }
  });
  const done = outcomes.filter((o): o is ClusterOutcome => o !== undefined);
  for (const outcome of done) {
    const changes =
      'changeSet' in outcome ? outcome.changeSet?.changes.filter((c) => c.action !== 'unchanged') : undefined;
    log.info(
      { cluster: outcome.cluster, status: outcome.status, description: outcome.description, changes },
      'cluster synced',
    );
  }
  if (infrastructure.length > 0) {
    throw new RetryableSyncError(
      `${infrastructure.length} cluster(s) could not be reached: ${infrastructure.map((e) => e.message).join('; ')}`,
    );
  }
  return { sha: job.after, outcomes: done };
}

async function syncCluster(
  job: SyncJob,
  cluster: ClusterEntry,
  deps: SyncDependencies,
  token: string | undefined,
  assertLockHeld: () => Promise<void>,
): Promise<ClusterOutcome> {
  const started = Date.now();
  const client = deps.clusterClient(cluster);
  const inventory = await readInventory(client, cluster.name);
  const plan = await planSync({
    job,
    clusters: [cluster],
    appliedSha: () => inventory?.revision || undefined,
    mirror: deps.mirror,
    token,
    workDir: deps.workDir,
  });
  try {
    const [decision] = plan.plans;
    if (!decision || decision.action === 'skip')
      return { cluster: cluster.name, status: 'unchanged', description: 'no change affects this cluster' };
    if (decision.action === 'refuse') {
      return decision.verdict.reason === 'superseded'
        ? { cluster: cluster.name, status: 'superseded', description: decision.verdict.message }
        : { cluster: cluster.name, status: 'failed', description: decision.verdict.message, problems: [] };
    }
    if (cluster.suspend)
      return { cluster: cluster.name, status: 'suspended', description: 'suspended by the operator: not applied' };

    const rendered = await deps.render(plan.treeDir, cluster.path);
    if (!rendered.ok) return failed(cluster, rendered.problems);
    const secretProblems = checkSecrets(rendered.objects);
    if (secretProblems.length > 0) return failed(cluster, secretProblems);

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
        beforeWrite: assertLockHeld,
      },
    });
    if (outcome.status === 'failed') {
      const problems = outcome.changeSet.changes
        .filter((c) => c.action === 'failed')
        .map((c) => ({ message: c.message ?? 'rejected', source: c.source, object: c.object }));
      return {
        cluster: cluster.name,
        status: 'failed',
        description: outcome.reason,
        problems,
        changeSet: outcome.changeSet,
      };
    }
    const unhealthy = await waitForHealth(
      client,
      rendered.objects.map((o) => o.manifest),
      { timeoutMs: deps.engine.healthTimeoutMs, concurrency: deps.engine.applyConcurrency },
    );
    const seconds = ((Date.now() - started) / 1000).toFixed(1);
    const health = unhealthy.length > 0 ? `; ${unhealthy.length} not healthy` : '';
    return {
      cluster: cluster.name,
      status: 'applied',
      changeSet: outcome.changeSet,
      unhealthy,
      description: `${describeChangeSet(outcome.changeSet)} in ${seconds} s${health}`,
    };
  } finally {
    await plan.cleanup();
  }
}

function failed(cluster: ClusterEntry, problems: readonly ManifestProblem[]): ClusterOutcome {
  const [first] = problems;
  const where = first?.source ? ` (${first.source.file}${first.source.line ? `:${first.source.line}` : ''})` : '';
  const more = problems.length > 1 ? ` and ${problems.length - 1} more` : '';
  return {
    cluster: cluster.name,
    status: 'failed',
    description: `${first?.message ?? 'render failed'}${where}${more}`,
    problems,
  };
}
