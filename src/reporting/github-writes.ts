import { createHash } from 'node:crypto';
import { classifyGitHubError } from '../github/classify-github-error.ts';
import type { PlumblineOctokit } from '../github/github-app.ts';
import type { Logger } from '../logging/create-logger.ts';
import { annotationBatches, type CheckAnnotation, type CheckRunContent } from './check-run-report.ts';
import type { CheckRecord, CommitLedger, StatusLedger } from './status-ledger.ts';
import { fitDescription, type StatusState } from './status-text.ts';
import type { WriteBudget } from './write-budget.ts';

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

interface CheckRunOutput {
  readonly title: string;
  readonly summary: string;
  readonly text?: string;
  readonly annotations: CheckAnnotation[];
}

/** Everything a write about one commit needs: where it goes, what was written, and the shared budget. */
export interface CommitWriter {
  readonly octokit: PlumblineOctokit;
  readonly installationId: number;
  readonly owner: string;
  readonly repo: string;
  readonly sha: string;
  readonly ledger: CommitLedger;
  readonly installations: Pick<StatusLedger, 'checksOff' | 'turnChecksOff'>;
  readonly budget: WriteBudget;
  readonly log: Logger;
}

/**
 * Writes a commit status unless GitHub already shows it (see `CommitLedger.claimStatus`). A context GitHub
 * declares full (1,000 statuses) is marked and never written again; any other failure is thrown.
 */
export async function writeStatus(writer: CommitWriter, update: StatusUpdate): Promise<void> {
  const description = fitDescription(update.description);
  const claim = await writer.ledger.claimStatus(
    update.context,
    { state: update.state, description },
    update.replaceFinal !== false,
  );
  if (!claim) return;
  try {
    await writer.budget.take(writer.installationId);
    await writer.octokit.request('POST /repos/{owner}/{repo}/statuses/{sha}', {
      owner: writer.owner,
      repo: writer.repo,
      sha: writer.sha,
      context: update.context,
      state: update.state,
      description,
      ...(update.targetUrl ? { target_url: update.targetUrl } : {}),
    });
  } catch (error) {
    if (classifyGitHubError(error) === 'context-full') {
      await claim.contextFull();
      writer.log.warn(
        { context: update.context },
        'GitHub holds 1,000 statuses for this commit and context: not writing more',
      );
      return;
    }
    await claim.release();
    throw error;
  }
  await claim.written();
}

/**
 * Creates or completes a check run, then sends its remaining annotation batches. Progress is recorded
 * after every request, so a retry resumes where it stopped (annotations append on GitHub: a batch sent
 * twice would show twice). An App without the Checks permission is left to its statuses for an hour.
 */
export async function writeCheckRun(writer: CommitWriter, update: CheckRunUpdate): Promise<void> {
  const { installationId, ledger } = writer;
  if (await writer.installations.checksOff(installationId)) return;
  const digest = createHash('sha256').update(JSON.stringify(update)).digest('hex').slice(0, 24);
  const recorded = await ledger.checkRun(update.name);
  const batches = annotationBatches(update.annotations);
  const resuming = recorded?.digest === digest;
  if (resuming && recorded.sent >= batches.length) return;
  if (!resuming && recorded?.completed && recorded.sent > 0 && update.replaceFinal === false) return;
  const output = (annotations: readonly CheckAnnotation[]): CheckRunOutput => ({
    title: update.title,
    summary: update.summary,
    ...(update.text ? { text: update.text } : {}),
    annotations: [...annotations],
  });
  const completed = update.status === 'completed';
  try {
    let checkRunId: number;
    let sent: number;
    if (resuming) {
      checkRunId = recorded.id;
      sent = recorded.sent;
    } else {
      checkRunId = await startCheckRun(writer, update, recorded, output(batches[0] ?? []));
      sent = 1;
      await ledger.saveCheckRun(update.name, { id: checkRunId, digest, completed, sent });
    }
    for (; sent < batches.length; sent += 1) {
      await writer.budget.take(installationId);
      await writer.octokit.request('PATCH /repos/{owner}/{repo}/check-runs/{check_run_id}', {
        owner: writer.owner,
        repo: writer.repo,
        check_run_id: checkRunId,
        output: output(batches[sent] ?? []),
      });
      await ledger.saveCheckRun(update.name, { id: checkRunId, digest, completed, sent: sent + 1 });
    }
  } catch (error) {
    if (classifyGitHubError(error) === 'forbidden') {
      await writer.installations.turnChecksOff(installationId);
      writer.log.warn(
        { installationId },
        'the App may not write check runs (Checks permission missing): reporting with commit statuses only',
      );
      return;
    }
    throw error;
  }
}

/** The first request for new content: a new run, or an update of the run still in progress. Returns its id. */
async function startCheckRun(
  writer: CommitWriter,
  update: CheckRunUpdate,
  recorded: CheckRecord | undefined,
  output: CheckRunOutput,
): Promise<number> {
  const fields = {
    owner: writer.owner,
    repo: writer.repo,
    name: update.name,
    status: update.status,
    ...(update.conclusion ? { conclusion: update.conclusion } : {}),
    ...(update.detailsUrl ? { details_url: update.detailsUrl } : {}),
    output,
  };
  await writer.budget.take(writer.installationId);
  // A finished run is not rewritten (its annotations would pile up): a re-run gets a new one.
  if (recorded === undefined || recorded.completed) {
    const created = await writer.octokit.request('POST /repos/{owner}/{repo}/check-runs', {
      ...fields,
      head_sha: writer.sha,
    });
    return Number(created.data.id);
  }
  await writer.octokit.request('PATCH /repos/{owner}/{repo}/check-runs/{check_run_id}', {
    ...fields,
    check_run_id: recorded.id,
  });
  return recorded.id;
}

/** A failed write as one line for the job's log and its failure list: status and message, bounded. Pure. */
export function describeWriteError(error: unknown): string {
  const status = typeof error === 'object' && error !== null && 'status' in error ? Number(error.status) : undefined;
  const message = error instanceof Error ? error.message : String(error);
  return (status ? `${status} ${message}` : message).slice(0, 300);
}
