/** Job payloads: only what a worker needs to pull and apply the commit. Never a token or a secret. */

/**
 * A repository as a job names it. No clone URL: a worker resolves that itself from the id (see
 * repository-resolver.ts), so nothing written into Redis decides where the installation token goes.
 */
export interface RepositoryRef {
  /** GitHub's numeric id: stable across renames, so it keys everything per repository. */
  readonly id: number;
  /** For logs only; clusters are matched against the name GitHub reports for the id. */
  readonly fullName: string;
}

/** Reconcile the clusters a branch deploys to, at `after`. */
export interface SyncJob {
  readonly type: 'sync';
  /**
   * `push` from a webhook, `rerun` when someone asked GitHub to re-run our check, `resync` when a
   * scheduled resync found the branch moved without a webhook.
   */
  readonly trigger: 'push' | 'rerun' | 'resync';
  readonly deliveryId: string;
  readonly repository: RepositoryRef;
  readonly installationId: number | undefined;
  readonly branch: string;
  /** Unknown for a re-run: GitHub only names the commit to check. */
  readonly before: string | undefined;
  readonly after: string;
  readonly forced: boolean;
  readonly receivedAt: string;
}

/** Dry-run a pull request's head commit against the live clusters; nothing is applied. */
export interface PreviewJob {
  readonly type: 'preview';
  readonly trigger: 'pull_request' | 'rerun';
  readonly deliveryId: string;
  /** The base repository: a fork's head commit is fetched from it through `refs/pull/<n>/head`. */
  readonly repository: RepositoryRef;
  /**
   * Where the head commit lives: the base repository's id for a branch of it, a fork's id, or null when
   * the fork was deleted. Anything but the base repository is a fork (invariant 9).
   */
  readonly headRepositoryId: number | null;
  readonly installationId: number | undefined;
  readonly number: number;
  readonly headSha: string;
  readonly baseBranch: string;
  readonly receivedAt: string;
}

export type PlumblineJob = SyncJob | PreviewJob;

/** The periodic full resync of one registered cluster, produced by a BullMQ job scheduler. */
export interface ResyncJob {
  readonly type: 'resync';
  readonly cluster: string;
}

export const QUEUE_NAMES = { sync: 'sync', preview: 'preview', resync: 'resync' } as const;

/** One pending job per branch (or pull request): a burst collapses onto this id. */
export function coalescingKey(job: PlumblineJob): string {
  return job.type === 'sync' ? `sync:${job.repository.id}:${job.branch}` : `preview:${job.repository.id}:${job.number}`;
}
