import { parseStored } from '../redis/parse-stored.ts';
import type { RedisKeys } from '../redis/redis-keys.ts';
import type { RedisConnection } from '../redis/redis-topology.ts';
import { coalescingKey, type PlumblineJob, plumblineJobSchema } from './jobs.ts';

/**
 * The newest job seen for a branch or pull request (ADR 2): written before its job is queued (by the
 * receiver with its delivery claim, by the resync before it queues), read by the job that runs.
 */
export interface LatestJobs {
  readonly redis: RedisConnection;
  readonly keys: RedisKeys;
  /** Where a record that does not parse is reported (it is then treated as absent). */
  readonly logger?: { warn(fields: Record<string, unknown>, message: string): void };
}

const RECORD_TTL_SECONDS = 7 * 24 * 60 * 60;

/** The record of a job as one key, value and expiry, for a caller that writes it with other keys. Pure. */
export function latestJobRecord(
  keys: RedisKeys,
  job: PlumblineJob,
): { readonly key: string; readonly value: string; readonly ttlSeconds: number } {
  return { key: keys.latestJob(coalescingKey(job)), value: JSON.stringify(job), ttlSeconds: RECORD_TTL_SECONDS };
}

export async function recordLatestJob(store: LatestJobs, job: PlumblineJob): Promise<void> {
  const record = latestJobRecord(store.keys, job);
  await store.redis.set(record.key, record.value, 'EX', record.ttlSeconds);
}

/** The newest job recorded for the job's branch or pull request; undefined if none, or if it does not parse. */
export async function readLatestJob(store: LatestJobs, job: PlumblineJob): Promise<PlumblineJob | undefined> {
  const key = store.keys.latestJob(coalescingKey(job));
  const stored = parseStored(plumblineJobSchema, await store.redis.get(key));
  if (stored.state === 'invalid') {
    store.logger?.warn({ key, issue: stored.issue }, 'the latest-job record does not parse: ignored');
    return undefined;
  }
  return stored.state === 'valid' ? stored.value : undefined;
}
