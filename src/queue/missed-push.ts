import type { PlumblineJob, RepositoryRef, SyncJob } from './jobs.ts';

/** The branch head the resync must act on: the branch moved away from what the cluster runs. Pure. */
export function unappliedHead(branch: {
  readonly head: string | undefined;
  readonly applied: string | undefined;
}): string | undefined {
  return branch.head && branch.head !== branch.applied ? branch.head : undefined;
}

/**
 * What to do about a head that is not applied:
 * - `wait`: a job for the branch is still waiting or running; it will handle it;
 * - `sync`: queue a sync. `announced` says a webhook's job recorded this head (so its job gave up — a cluster
 *   unreachable for longer than the retries); otherwise the push came without a webhook (a missed push).
 */
export type MissedPushPlan = { readonly action: 'wait' } | { readonly action: 'sync'; readonly announced: boolean };

/** Pure: from the head, whether a job for its branch is in flight, and the branch's latest-job record. */
export function planMissedPush(input: {
  readonly head: string;
  readonly inFlight: boolean;
  readonly latest: PlumblineJob | undefined;
}): MissedPushPlan {
  if (input.inFlight) return { action: 'wait' };
  return { action: 'sync', announced: input.latest?.type === 'sync' && input.latest.after === input.head };
}

/** The sync job a resync queues for an unapplied head. Pure (the clock is passed in). */
export function resyncSyncJob(input: {
  readonly cluster: { readonly name: string; readonly branch: string };
  readonly repository: RepositoryRef;
  readonly installationId: number;
  readonly head: string;
  readonly applied: string | undefined;
  readonly now: Date;
}): SyncJob {
  return {
    type: 'sync',
    trigger: 'resync',
    // Unique per resync: a head re-queued later (its earlier job gave up) must get a job of its own.
    deliveryId: `resync-${input.cluster.name}-${input.head.slice(0, 12)}-${input.now.getTime().toString(36)}`,
    repository: input.repository,
    installationId: input.installationId,
    branch: input.cluster.branch,
    // Records what was applied, for logs; the worker proves ancestry from Git for a resync's job.
    before: input.applied || undefined,
    after: input.head,
    forced: false,
    receivedAt: input.now.toISOString(),
  };
}
