import { UnrecoverableError } from 'bullmq';
import type { ClusterEntry } from '../src/clusters/cluster-registry.ts';
import type { ClusterOutcome } from '../src/engine/cluster-outcome.ts';
import type { Logger } from '../src/logging/create-logger.ts';
import { describeInfrastructureError } from '../src/reporting/describe-infrastructure-error.ts';
import { CommitNotFoundError } from '../src/source/git-mirror.ts';
import { mapLimited } from '../src/support/limit-concurrency.ts';
import type { CommitReporting, JobRun } from './report-outcome.ts';

/** Raised after every cluster had its turn when at least one failed for infrastructure reasons: BullMQ retries the job. */
export class RetryableSyncError extends Error {
  override readonly name = 'RetryableSyncError';
}

export interface SyncResult {
  readonly sha: string;
  readonly outcomes: readonly ClusterOutcome[];
}

export interface ClusterJob {
  readonly sha: string;
  readonly clusters: readonly ClusterEntry[];
  readonly reporting: CommitReporting;
  readonly run: JobRun;
  readonly log: Logger;
  /** What an infrastructure failure means for a cluster's status: "not applied", "no dry-run". */
  readonly notDone: string;
  /** One cluster's work; throws for infrastructure failures (retried), returns problems with the commit. */
  readonly perCluster: (cluster: ClusterEntry) => Promise<ClusterOutcome>;
  /** After a cluster's final status is queued (the status page, for syncs). */
  readonly recorded?: (cluster: ClusterEntry, outcome: ClusterOutcome) => Promise<void>;
}

/**
 * The part sync and preview jobs share: every cluster has its turn (four at a time), each ends with a
 * final status, an infrastructure failure is retried by failing the attempt — and on the last attempt
 * becomes that cluster's `error` — then the roll-up and the end of the commit's reporting.
 */
export async function runClusterJob(job: ClusterJob): Promise<SyncResult> {
  const { run, log, reporting } = job;
  const finalAttempt = run.attempt >= run.maxAttempts;
  const unreachable: string[] = [];
  const outcomes = await mapLimited(job.clusters, 4, async (cluster): Promise<ClusterOutcome | undefined> => {
    let outcome: ClusterOutcome;
    try {
      outcome = await job.perCluster(cluster);
    } catch (error) {
      if (error instanceof CommitNotFoundError) throw error;
      const message = (error as Error).message;
      // Job data and failure reasons live in Redis: the category, not the transport's text.
      unreachable.push(`${cluster.name}: ${describeInfrastructureError(error)}`);
      log.warn({ cluster: cluster.name, error: message, attempt: run.attempt }, 'cluster failed; the job is retried');
      if (!finalAttempt) return undefined;
      // The transport's text (internal addresses, socket errors) stays in the log line above.
      outcome = {
        cluster: cluster.name,
        status: 'error',
        description: `${job.notDone} after ${run.attempt} attempt(s): ${describeInfrastructureError(error)}`,
      };
    }
    reporting.clusterFinished(outcome);
    await job.recorded?.(cluster, outcome);
    return outcome;
  });
  const done = outcomes.filter((o): o is ClusterOutcome => o !== undefined);
  for (const outcome of done) {
    const changes =
      'changeSet' in outcome ? outcome.changeSet?.changes.filter((c) => c.action !== 'unchanged') : undefined;
    log.info(
      { cluster: outcome.cluster, status: outcome.status, description: outcome.description, changes },
      'cluster done',
    );
  }
  if (unreachable.length > 0 && !finalAttempt) {
    await reporting.settle(log, false);
    throw new RetryableSyncError(`${unreachable.length} cluster(s) could not be reached: ${unreachable.join('; ')}`);
  }
  reporting.jobFinished(done);
  await reporting.completed(log, finalAttempt);
  return { sha: job.sha, outcomes: done };
}

/**
 * A job that fails outside its clusters' work: retried unless this was its last attempt or the commit
 * is gone, in which case every status it started ends with the reason. Always rethrows.
 */
export async function failClusterJob(
  error: unknown,
  job: Pick<ClusterJob, 'reporting' | 'run' | 'log' | 'notDone'>,
): Promise<never> {
  const finalAttempt = job.run.attempt >= job.run.maxAttempts;
  const recoverable = !(error instanceof CommitNotFoundError || error instanceof UnrecoverableError);
  if (recoverable && !finalAttempt) throw error;
  job.log.warn({ error: error instanceof Error ? error.message : String(error) }, 'the job gave up');
  await job.reporting.gaveUp(`${job.notDone}: ${describeInfrastructureError(error)}`);
  await job.reporting.settle(job.log, true);
  if (error instanceof CommitNotFoundError) throw new UnrecoverableError(error.message);
  throw error;
}
