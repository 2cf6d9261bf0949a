import { createHash } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { PlumblineOctokit } from '../github/github-app.ts';
import type { Logger } from '../logging/create-logger.ts';
import { annotationBatches, type CheckRunContent } from './check-run-report.ts';
import { fitDescription, type StatusState } from './status-text.ts';
import type { WriteBudget } from './write-budget.ts';

export interface ReportTarget {
  readonly repository: { readonly id: number; readonly fullName: string };
  readonly installationId: number | undefined;
  readonly sha: string;
}

export interface StatusUpdate {
  readonly context: string;
  readonly state: StatusState;
  readonly description: string;
  readonly targetUrl?: string | undefined;
  /**
   * False: leave a final state the commit already shows in place (a retried job's `pending`, or a
   * re-run that found nothing to do must not hide what the first run reported). Default true.
   */
  readonly replaceFinal?: boolean;
}

export interface CheckRunUpdate extends CheckRunContent {
  readonly name: string;
  readonly detailsUrl?: string | undefined;
  /** False: a completed run of this name on the commit stays as it is. Default true. */
  readonly replaceFinal?: boolean;
}

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
  readonly redis: Redis;
  readonly prefix: string;
  readonly octokitFor: (installationId: number) => PlumblineOctokit;
  readonly budget: WriteBudget;
  readonly logger: Logger;
}

const RECORD_TTL_SECONDS = 30 * 24 * 60 * 60;
const CHECKS_OFF_SECONDS = 60 * 60;
const EXHAUSTED = 'exhausted';

/**
 * Whether a status must be written: 0 when GitHub already shows this value (or the context is
 * exhausted, or a final state must stay); otherwise 1, after claiming the write for a short while so
 * that other workers do not send the same value at the same time. The value is recorded as written
 * only once GitHub accepted it, so a crash mid-write leaves the record as it was.
 */
const SHOULD_WRITE = `
local current = redis.call('HGET', KEYS[1], ARGV[1])
if current == ARGV[2] or current == '${EXHAUSTED}' then return 0 end
if ARGV[3] == '0' and current and string.sub(current, 1, 7) ~= 'pending' then return 0 end
if not redis.call('SET', KEYS[2], '1', 'NX', 'PX', ARGV[4]) then return 0 end
return 1
`;
const CLAIM_MS = 60_000;

/**
 * Reports to GitHub as commit statuses and check runs. Writes only what changed: the last value
 * written per (commit, context) lives in Redis, so re-runs, duplicate jobs and other workers skip
 * it. Every write draws from the installation's shared budget. A context GitHub declares full
 * (1,000 statuses) is marked and never retried; an App without the Checks permission keeps its statuses.
 */
export function createGitHubReporter(options: GitHubReporterOptions): Reporter {
  const { redis, prefix, logger } = options;
  const octokits = new Map<number, PlumblineOctokit>();
  const octokitFor = (installationId: number) => {
    let octokit = octokits.get(installationId);
    if (!octokit) {
      octokit = options.octokitFor(installationId);
      octokits.set(installationId, octokit);
    }
    return octokit;
  };

  const openKey = (scope: string) => `${prefix}:github:open:${scope}`;
  const reporter: Reporter = {
    async track(scope, target) {
      await redis
        .multi()
        .hset(openKey(scope), target.sha, JSON.stringify(target))
        .expire(openKey(scope), RECORD_TTL_SECONDS)
        .exec();
    },
    async supersede(scope, current, describe) {
      const open = await redis.hgetall(openKey(scope));
      for (const [sha, raw] of Object.entries(open)) {
        if (sha !== current.sha) {
          const report = reporter.forCommit(JSON.parse(raw) as ReportTarget);
          await report.abandon(describe(current.sha), 'success');
          // Kept for the next job of the scope to try again if GitHub did not take the writes.
          if ((await report.flush()).length > 0) continue;
        }
        await redis.hdel(openKey(scope), sha);
      }
    },
    forCommit(target) {
      const [owner, repo] = target.repository.fullName.split('/') as [string, string];
      const base = `${prefix}:github:${target.repository.id}:${target.sha}`;
      const statusKey = `${base}:statuses`;
      const checkKey = `${base}:checks`;
      const log = logger.child({ repo: target.repository.fullName, sha: target.sha });
      const lanes = new LatestWins();
      const failures: string[] = [];
      const installationId = target.installationId;

      const writeStatus = async (update: StatusUpdate, octokit: PlumblineOctokit, id: number) => {
        const description = fitDescription(update.description);
        const value = `${update.state}\n${description}`;
        const replaceFinal = update.replaceFinal === false ? '0' : '1';
        const claimKey = `${statusKey}:claim:${createHash('sha256').update(update.context).update(value).digest('hex').slice(0, 16)}`;
        const write = await redis.eval(
          SHOULD_WRITE,
          2,
          statusKey,
          claimKey,
          update.context,
          value,
          replaceFinal,
          CLAIM_MS,
        );
        if (write === 0) return;
        try {
          await options.budget.take(id);
          await octokit.request('POST /repos/{owner}/{repo}/statuses/{sha}', {
            owner,
            repo,
            sha: target.sha,
            context: update.context,
            state: update.state,
            description,
            ...(update.targetUrl ? { target_url: update.targetUrl } : {}),
          });
        } catch (error) {
          if (isContextFull(error)) {
            await redis.hset(statusKey, update.context, EXHAUSTED);
            log.warn(
              { context: update.context },
              'GitHub holds 1,000 statuses for this commit and context: not writing more',
            );
            return;
          }
          throw error;
        } finally {
          await redis.del(claimKey);
        }
        await redis.multi().hset(statusKey, update.context, value).expire(statusKey, RECORD_TTL_SECONDS).exec();
      };

      const writeCheckRun = async (update: CheckRunUpdate, octokit: PlumblineOctokit, id: number) => {
        if (await redis.exists(`${prefix}:github:checks-off:${id}`)) return;
        const digest = createHash('sha256').update(JSON.stringify(update)).digest('hex').slice(0, 24);
        const recorded = parseCheckRecord(await redis.hget(checkKey, update.name));
        const batches = annotationBatches(update.annotations);
        const resuming = recorded?.digest === digest;
        if (resuming && recorded.sent >= batches.length) return;
        if (!resuming && recorded?.completed && recorded.sent > 0 && update.replaceFinal === false) return;
        const output = (annotations: CheckRunContent['annotations']) => ({
          title: update.title,
          summary: update.summary,
          ...(update.text ? { text: update.text } : {}),
          annotations: [...annotations],
        });
        // Progress is saved after every request, so a retry resumes where it stopped: annotations
        // append on GitHub, and sending a batch twice would show it twice.
        const save = (record: CheckRecord) =>
          redis.multi().hset(checkKey, update.name, JSON.stringify(record)).expire(checkKey, RECORD_TTL_SECONDS).exec();
        const completed = update.status === 'completed';
        try {
          let checkRunId: number;
          let sent: number;
          if (resuming) {
            checkRunId = recorded.id;
            sent = recorded.sent;
          } else {
            const fields = {
              owner,
              repo,
              name: update.name,
              status: update.status,
              ...(update.conclusion ? { conclusion: update.conclusion } : {}),
              ...(update.detailsUrl ? { details_url: update.detailsUrl } : {}),
              output: output(batches[0] ?? []),
            };
            await options.budget.take(id);
            // A finished run is not rewritten (its annotations would pile up): a re-run gets a new one.
            if (recorded === undefined || recorded.completed) {
              const created = await octokit.request('POST /repos/{owner}/{repo}/check-runs', {
                ...fields,
                head_sha: target.sha,
              });
              checkRunId = Number(created.data.id);
            } else {
              checkRunId = recorded.id;
              await octokit.request('PATCH /repos/{owner}/{repo}/check-runs/{check_run_id}', {
                ...fields,
                check_run_id: checkRunId,
              });
            }
            sent = 1;
            await save({ id: checkRunId, digest, completed, sent });
          }
          for (; sent < batches.length; sent += 1) {
            await options.budget.take(id);
            await octokit.request('PATCH /repos/{owner}/{repo}/check-runs/{check_run_id}', {
              owner,
              repo,
              check_run_id: checkRunId,
              output: output(batches[sent] ?? []),
            });
            await save({ id: checkRunId, digest, completed, sent: sent + 1 });
          }
        } catch (error) {
          if (isMissingPermission(error)) {
            await redis.set(`${prefix}:github:checks-off:${id}`, '1', 'EX', CHECKS_OFF_SECONDS);
            log.warn(
              { installationId: id },
              'the App may not write check runs (Checks permission missing): reporting with commit statuses only',
            );
            return;
          }
          throw error;
        }
      };

      const enqueue = <T>(lane: string, update: T, write: (u: T, o: PlumblineOctokit, id: number) => Promise<void>) => {
        if (installationId === undefined) {
          log.warn({ lane }, 'no GitHub App installation for this repository: cannot report');
          return;
        }
        lanes.push(lane, async () => {
          try {
            await write(update, octokitFor(installationId), installationId);
          } catch (error) {
            const message = `${lane}: ${describeError(error)}`;
            failures.push(message);
            log.warn({ lane, error: describeError(error) }, 'writing to GitHub failed');
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
          const recorded = await redis.hgetall(statusKey);
          for (const [context, value] of Object.entries(recorded)) {
            if (value.startsWith('pending\n')) report.status({ context, state, description: reason });
          }
          const checks = await redis.hgetall(checkKey);
          for (const [name, value] of Object.entries(checks)) {
            if (parseCheckRecord(value)?.completed === false) {
              report.checkRun({
                name,
                status: 'completed',
                conclusion: state === 'success' ? 'neutral' : 'failure',
                title: fitDescription(reason),
                summary: reason,
                annotations: [],
              });
            }
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

interface CheckRecord {
  readonly id: number;
  /** Of the content being written; `sent` of its annotation batches have reached GitHub. */
  readonly digest: string;
  readonly completed: boolean;
  readonly sent: number;
}

function parseCheckRecord(raw: string | null): CheckRecord | undefined {
  if (!raw) return undefined;
  const record = JSON.parse(raw) as Partial<CheckRecord> & { id: number; digest: string };
  return { completed: false, sent: 0, ...record };
}

/**
 * Runs tasks one at a time per lane; a task queued while another waits replaces it, since only the
 * newest state of a status matters (a `pending` not yet sent when the final one arrives is never sent).
 */
class LatestWins {
  private readonly lanes = new Map<string, { running: Promise<void>; next: (() => Promise<void>) | undefined }>();

  push(lane: string, task: () => Promise<void>): void {
    const current = this.lanes.get(lane);
    if (current) {
      current.next = task;
      return;
    }
    const state = { running: Promise.resolve(), next: task as (() => Promise<void>) | undefined };
    state.running = (async () => {
      while (state.next) {
        const run = state.next;
        state.next = undefined;
        await run();
      }
      this.lanes.delete(lane);
    })();
    this.lanes.set(lane, state);
  }

  async idle(): Promise<void> {
    while (this.lanes.size > 0) await Promise.all([...this.lanes.values()].map((l) => l.running));
  }
}

function statusOf(error: unknown): number | undefined {
  return typeof error === 'object' && error !== null && 'status' in error ? Number(error.status) : undefined;
}

function isContextFull(error: unknown): boolean {
  return statusOf(error) === 422 && /maximum number of statuses/i.test(JSON.stringify(responseData(error)));
}

function isMissingPermission(error: unknown): boolean {
  return statusOf(error) === 403 && /not accessible by integration/i.test(describeError(error));
}

function responseData(error: unknown): unknown {
  return (error as { response?: { data?: unknown } }).response?.data;
}

function describeError(error: unknown): string {
  const status = statusOf(error);
  const message = error instanceof Error ? error.message : String(error);
  return status ? `${status} ${message}`.slice(0, 300) : message.slice(0, 300);
}
