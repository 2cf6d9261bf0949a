import type { ClusterOutcome } from '../engine/cluster-outcome.ts';

export type StatusState = 'pending' | 'success' | 'failure' | 'error';

export interface StatusText {
  readonly state: StatusState;
  readonly description: string;
}

/** What the work was: a push being applied, or a pull request's dry-run. */
export type ReportMode = 'sync' | 'preview';

/** GitHub refuses longer status descriptions. */
export const MAX_DESCRIPTION = 140;

/** The roll-up context branch protection can require; one per commit. */
export const ROLL_UP_CONTEXT = 'plumbline';

export function clusterContext(cluster: string): string {
  return `${ROLL_UP_CONTEXT}/${cluster}`;
}

/** Cuts a description to GitHub's limit on a word boundary, marking the cut. Pure. */
export function fitDescription(text: string, limit = MAX_DESCRIPTION): string {
  const oneLine = text.replace(/\s+/g, ' ').trim();
  if (oneLine.length <= limit) return oneLine;
  const cut = oneLine.slice(0, limit - 1);
  const space = cut.lastIndexOf(' ');
  return `${space > limit * 0.6 ? cut.slice(0, space) : cut}…`;
}

/** The same text for every attempt of a job, so a re-run does not write it again. */
export function pendingText(mode: ReportMode): StatusText {
  return {
    state: 'pending',
    description: mode === 'sync' ? 'applying this commit' : 'dry-run of this commit against the live cluster',
  };
}

/**
 * The final status of a cluster for an outcome, or undefined when the commit does not concern it.
 * An applied commit fails when a rollout failed; objects still progressing at the deadline do not.
 * A superseded commit succeeds: the newer, applied commit contains it. A suspended cluster is an
 * `error`: the commit is fine, but it is not live there. A fork's pull request that a cluster does not
 * preview is an `error` too: nothing was checked.
 */
export function clusterStatusText(outcome: ClusterOutcome): StatusText | undefined {
  switch (outcome.status) {
    case 'applied':
      return {
        // A failed rollout is the commit's fault; one still progressing at the deadline is not (yet).
        state: outcome.unhealthy.some((u) => u.health.state === 'failed') ? 'failure' : 'success',
        description: fitDescription(outcome.description),
      };
    case 'previewed':
      return { state: 'success', description: fitDescription(outcome.description) };
    case 'failed':
      return { state: 'failure', description: fitDescription(outcome.description) };
    case 'error':
      return { state: 'error', description: fitDescription(outcome.description) };
    case 'superseded':
      return { state: 'success', description: fitDescription(outcome.description) };
    case 'suspended':
      return { state: 'error', description: fitDescription(outcome.description) };
    // Not a verdict on the commit, and not a pass either: a required `plumbline` check stays unmet
    // until a maintainer pushes the change to a branch of the repository (or the operator opts in).
    case 'not-previewed':
      return { state: 'error', description: fitDescription(outcome.description) };
    case 'unchanged':
      return undefined;
  }
}

/**
 * The roll-up for a commit: failure if any cluster failed, else error if any errored, else success;
 * the description counts clusters per result and names the ones that need attention.
 */
export function rollUpText(outcomes: readonly ClusterOutcome[], mode: ReportMode): StatusText {
  const reported = outcomes.flatMap((o) => {
    const text = clusterStatusText(o);
    return text ? [{ outcome: o, text }] : [];
  });
  if (reported.length === 0) {
    return {
      state: 'success',
      description:
        outcomes.length === 0
          ? 'no registered cluster deploys this branch'
          : `no change for any of ${outcomes.length} cluster(s)`,
    };
  }
  const named = (state: StatusState) => reported.filter((r) => r.text.state === state).map((r) => r.outcome.cluster);
  const failed = named('failure');
  const errored = named('error');
  const state: StatusState = failed.length > 0 ? 'failure' : errored.length > 0 ? 'error' : 'success';
  const counts = new Map<string, number>();
  for (const { outcome } of reported) counts.set(outcome.status, (counts.get(outcome.status) ?? 0) + 1);
  const unaffected = outcomes.length - reported.length;
  if (unaffected > 0) counts.set('unaffected', unaffected);
  const parts = [...counts].map(([status, n]) => `${n} ${VERBS[status] ?? status}`);
  const attention = [...failed, ...errored];
  const suffix = attention.length > 0 ? ` — see ${attention.join(', ')}` : '';
  const subject = mode === 'preview' ? 'dry-run: ' : '';
  return { state, description: fitDescription(`${subject}${parts.join(', ')}${suffix}`) };
}

const VERBS: Record<string, string> = {
  applied: 'applied',
  previewed: 'previewed',
  failed: 'failed',
  error: 'unreachable',
  superseded: 'superseded',
  suspended: 'suspended',
  'not-previewed': 'not previewed (fork)',
  unaffected: 'unaffected',
};
