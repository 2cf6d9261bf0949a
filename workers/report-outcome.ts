import type { ClusterOutcome } from '../src/engine/cluster-outcome.ts';
import type { Logger } from '../src/logging/create-logger.ts';
import { completedCheckRun, inProgressCheckRun } from '../src/reporting/check-run-report.ts';
import type { CommitReport, Reporter, ReportTarget } from '../src/reporting/github-reporter.ts';
import {
  clusterContext,
  clusterStatusText,
  pendingText,
  type ReportMode,
  ROLL_UP_CONTEXT,
  rollUpText,
} from '../src/reporting/status-text.ts';

/** Where statuses link to: the status page, anchored at the cluster. */
export function statusPageLink(statusPageUrl: string | undefined, cluster?: string): string | undefined {
  if (!statusPageUrl) return undefined;
  return cluster ? `${statusPageUrl}/#cluster-${encodeURIComponent(cluster)}` : `${statusPageUrl}/`;
}

/** Reports what a job is about to do to one commit and its clusters, and how it ended. */
export class CommitReporting {
  private readonly report: CommitReport;
  private readonly sha: string;

  constructor(
    private readonly reporter: Reporter,
    private readonly target: ReportTarget,
    /** The branch or pull request: its other commits are superseded when this job completes. */
    private readonly scope: string,
    private readonly mode: ReportMode,
    private readonly statusPageUrl: string | undefined,
    /** Someone asked for this run (GitHub's re-run): everything is reported again. */
    private readonly requested = false,
  ) {
    this.report = reporter.forCommit(target);
    this.sha = target.sha;
  }

  async jobStarted(): Promise<void> {
    await this.reporter.track(this.scope, this.target);
    this.report.status({
      context: ROLL_UP_CONTEXT,
      ...pendingText(this.mode),
      targetUrl: statusPageLink(this.statusPageUrl),
      replaceFinal: this.requested,
    });
  }

  clusterStarted(cluster: string): void {
    const targetUrl = statusPageLink(this.statusPageUrl, cluster);
    // A retried job (a crash, an outage) keeps showing the last final state until it has a new one.
    const replaceFinal = this.requested;
    this.report.status({ context: clusterContext(cluster), ...pendingText(this.mode), targetUrl, replaceFinal });
    this.report.checkRun({
      name: clusterContext(cluster),
      detailsUrl: targetUrl,
      replaceFinal,
      ...inProgressCheckRun(cluster, this.sha, this.mode === 'preview'),
    });
  }

  /** The final status and check run of a cluster; nothing for a cluster the commit does not concern. */
  clusterFinished(outcome: ClusterOutcome): void {
    const text = clusterStatusText(outcome);
    const checkRun = completedCheckRun(outcome, this.sha);
    if (!text || !checkRun) return;
    const targetUrl = statusPageLink(this.statusPageUrl, outcome.cluster);
    const replaceFinal = this.requested || !(outcome.status === 'applied' && outcome.repeated === true);
    this.report.status({ context: clusterContext(outcome.cluster), ...text, targetUrl, replaceFinal });
    this.report.checkRun({ name: clusterContext(outcome.cluster), detailsUrl: targetUrl, replaceFinal, ...checkRun });
  }

  jobFinished(outcomes: readonly ClusterOutcome[]): void {
    this.report.status({
      context: ROLL_UP_CONTEXT,
      ...rollUpText(outcomes, this.mode),
      targetUrl: statusPageLink(this.statusPageUrl),
    });
  }

  /** A job that gives up still ends every status it started: `error`, saying why. */
  async gaveUp(reason: string): Promise<void> {
    await this.report.abandon(reason);
  }

  /**
   * The job is over for this commit: once its writes landed, the scope's other commits this job
   * replaced end as superseded, and a status of this commit that the final run never reached (a
   * cluster an earlier attempt started that no longer concerns the commit) is ended too.
   */
  async completed(log: Logger, finalAttempt: boolean): Promise<void> {
    await this.settle(log, finalAttempt);
    const short = this.sha.slice(0, 7);
    await this.reporter.supersede(this.scope, this.target, () =>
      this.mode === 'sync'
        ? `not applied: superseded by ${short}, which is newer and contains it`
        : `no dry-run: superseded by ${short}, the newer head`,
    );
    await this.report.abandon('nothing left to do for this commit', 'success');
    await this.settle(log, finalAttempt);
  }

  /**
   * Waits for the writes. Failed writes make the job fail (to be retried: re-running a commit is cheap
   * and idempotent), except on its last attempt, where they can only be logged.
   */
  async settle(log: Logger, finalAttempt: boolean): Promise<void> {
    const failed = await this.report.flush();
    if (failed.length === 0) return;
    if (finalAttempt) {
      log.error({ failed }, 'could not report to GitHub; giving up');
      return;
    }
    throw new ReportingError(`could not report to GitHub: ${failed.join('; ')}`);
  }
}

/** Reporting to GitHub failed; the job is retried so that the final statuses still arrive. */
export class ReportingError extends Error {
  override readonly name = 'ReportingError';
}

/** How many times BullMQ runs a job, and which run this is. */
export interface JobRun {
  readonly attempt: number;
  readonly maxAttempts: number;
}

export const SINGLE_RUN: JobRun = { attempt: 1, maxAttempts: 1 };
