import type { PlumblineOctokit } from '../github/github-app.ts';
import type { Logger } from '../logging/create-logger.ts';
import type { RedisConnection } from '../redis/redis-topology.ts';
import {
  type CheckRunUpdate,
  type CommitWriter,
  describeWriteError,
  type StatusUpdate,
  writeCheckRun,
  writeStatus,
} from './github-writes.ts';
import { LatestWins } from './latest-wins.ts';
import { createOpenCommits } from './open-commits.ts';
import type { ReportTarget } from './report-target.ts';
import { createStatusLedger } from './status-ledger.ts';
import { fitDescription } from './status-text.ts';
import type { WriteBudget } from './write-budget.ts';

export type { CheckRunUpdate, StatusUpdate } from './github-writes.ts';
export type { ReportTarget } from './report-target.ts';

/** Everything reported about one commit. Calls return at once; writes happen in order per context. */
export interface CommitReport {
  status(update: StatusUpdate): void;
  checkRun(update: CheckRunUpdate): void;
  /**
   * Ends every status of the commit still `pending` with this reason: `error` for a job that gave up,
   * `success` for a commit superseded by a newer one that contains it.
   */
  abandon(reason: string, state?: 'error' | 'success'): Promise<void>;
  /** Waits for every write; returns a line per write that failed for good (empty: all written). */
  flush(): Promise<readonly string[]>;
}

export interface Reporter {
  forCommit(target: ReportTarget): CommitReport;
  /** Remembers that a job works on `target` for `scope` (a branch, a pull request). */
  track(scope: string, target: ReportTarget): Promise<void>;
  /**
   * The job for `current` finished: every other commit still tracked for the scope — one whose retry a
   * newer push replaced, or whose job moved on to a newer commit — has its pending statuses ended.
   */
  supersede(scope: string, current: ReportTarget, describe: (sha: string) => string): Promise<void>;
}

export interface GitHubReporterOptions {
  readonly redis: RedisConnection;
  readonly prefix: string;
  readonly octokitFor: (installationId: number) => PlumblineOctokit;
  readonly budget: WriteBudget;
  readonly logger: Logger;
}

/**
 * Reports to GitHub as commit statuses and check runs, composed of three parts: the write ledger in
 * Redis (`status-ledger.ts`: only what changed is written, so re-runs, duplicate jobs and other workers
 * skip it), the writes themselves (`github-writes.ts`: every write draws from the installation's shared
 * budget; a full context is given up, an App without the Checks permission keeps its statuses), and one
 * latest-wins lane per status context or check run (`latest-wins.ts`).
 */
export function createGitHubReporter(options: GitHubReporterOptions): Reporter {
  const { logger } = options;
  const ledger = createStatusLedger(options.redis, options.prefix, logger);
  const open = createOpenCommits(options.redis, options.prefix, logger);
  const octokits = new Map<number, PlumblineOctokit>();
  const octokitFor = (installationId: number) => {
    let octokit = octokits.get(installationId);
    if (!octokit) {
      octokit = options.octokitFor(installationId);
      octokits.set(installationId, octokit);
    }
    return octokit;
  };

  const reporter: Reporter = {
    track: (scope, target) => open.add(scope, target),
    async supersede(scope, current, describe) {
      for (const target of await open.list(scope)) {
        if (target.sha !== current.sha) {
          const report = reporter.forCommit(target);
          await report.abandon(describe(current.sha), 'success');
          // Kept for the next job of the scope to try again if GitHub did not take the writes.
          if ((await report.flush()).length > 0) continue;
        }
        await open.remove(scope, target.sha);
      }
    },
    forCommit(target) {
      const [owner, repo] = target.repository.fullName.split('/') as [string, string];
      const commit = ledger.forCommit(target.repository.id, target.sha);
      const log = logger.child({ repo: target.repository.fullName, sha: target.sha });
      const lanes = new LatestWins();
      const failures: string[] = [];
      const installationId = target.installationId;
      const writer = (id: number): CommitWriter => ({
        octokit: octokitFor(id),
        installationId: id,
        owner,
        repo,
        sha: target.sha,
        ledger: commit,
        installations: ledger,
        budget: options.budget,
        log,
      });

      const enqueue = <T>(lane: string, update: T, write: (w: CommitWriter, u: T) => Promise<void>) => {
        if (installationId === undefined) {
          log.warn({ lane }, 'no GitHub App installation for this repository: cannot report');
          return;
        }
        lanes.push(lane, async () => {
          try {
            await write(writer(installationId), update);
          } catch (error) {
            failures.push(`${lane}: ${describeWriteError(error)}`);
            log.warn({ lane, error: describeWriteError(error) }, 'writing to GitHub failed');
          }
        });
      };

      const report: CommitReport = {
        status(update) {
          enqueue(`status ${update.context}`, update, writeStatus);
        },
        checkRun(update) {
          enqueue(`check ${update.name}`, update, writeCheckRun);
        },
        async abandon(reason, state = 'error') {
          // What is queued lands first: a final state on its way must not be overtaken by this `error`.
          await lanes.idle();
          for (const context of await commit.pendingContexts()) {
            report.status({ context, state, description: reason });
          }
          for (const name of await commit.openCheckRuns()) {
            report.checkRun({
              name,
              status: 'completed',
              conclusion: state === 'success' ? 'neutral' : 'failure',
              title: fitDescription(reason),
              summary: reason,
              annotations: [],
            });
          }
        },
        async flush() {
          await lanes.idle();
          return failures.splice(0);
        },
      };
      return report;
    },
  };
  return reporter;
}
