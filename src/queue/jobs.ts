/** Job payloads: only what a worker needs to pull and apply the commit. Never a token or a secret. */
import { z } from 'zod';

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
  return job.type === 'sync'
    ? `sync:${job.repository.id}:${job.branch}`
    : previewCoalescingKey(job.repository.id, job.number);
}

/** The coalescing key of a pull request's previews. */
export function previewCoalescingKey(repositoryId: number, number: number): string {
  return `preview:${repositoryId}:${number}`;
}

const text = z.string().min(1);
/** A key JSON drops when its value is undefined: absent reads back as undefined, still a key of the type. */
const orUndefined = <T extends z.ZodType>(schema: T) => schema.optional().transform((value) => value);
const repositoryRefSchema = z.looseObject({ id: z.number().int(), fullName: text });

/**
 * A job as read back from Redis (the latest-job record, ADR 2): every field a worker uses is checked, any
 * other kept. The record is run in place of the job that read it, so it must be a whole job.
 */
export const plumblineJobSchema = z.discriminatedUnion('type', [
  z.looseObject({
    type: z.literal('sync'),
    trigger: z.enum(['push', 'rerun', 'resync']),
    deliveryId: text,
    repository: repositoryRefSchema,
    installationId: orUndefined(z.number().int()),
    branch: text,
    before: orUndefined(z.string()),
    after: text,
    forced: z.boolean(),
    receivedAt: text,
  }),
  z.looseObject({
    type: z.literal('preview'),
    trigger: z.enum(['pull_request', 'rerun']),
    deliveryId: text,
    repository: repositoryRefSchema,
    headRepositoryId: z.number().int().nullable(),
    installationId: orUndefined(z.number().int()),
    number: z.number().int(),
    headSha: text,
    baseBranch: text,
    receivedAt: text,
  }),
]) satisfies z.ZodType<PlumblineJob>;
