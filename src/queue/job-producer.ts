import { Queue } from 'bullmq';
import { redisKeys } from '../redis/redis-keys.ts';
import type { RedisConnection } from '../redis/redis-topology.ts';
import { coalescingKey, type PlumblineJob, previewCoalescingKey, QUEUE_NAMES } from './jobs.ts';
import { latestJobRecord } from './latest-jobs.ts';

export interface JobProducer {
  /**
   * The record of the newest job for the job's branch or pull request. It must be written before the
   * job is added (the delivery ledger writes it with its claim, in one round trip).
   */
  latestRecord(job: PlumblineJob): { key: string; value: string; ttlSeconds: number };
  /** Resolves once the job is durably in Redis; rejects (fast) when Redis cannot take it. */
  add(job: PlumblineJob): Promise<void>;
  /** Removes previews of a pull request that have not started; returns how many were removed. */
  cancelPreviews(repositoryId: number, number: number): Promise<number>;
  /** Whether a job for the job's branch (or pull request) is still waiting or running. */
  inFlight(job: PlumblineJob): Promise<boolean>;
  /** Job counts per queue and state, for the queue-depth gauge. */
  depths(): Promise<Record<string, Record<string, number>>>;
  close(): Promise<void>;
}

export interface JobProducerOptions {
  readonly prefix: string;
  /** A push waits this long for a newer push to the same branch to replace it. */
  readonly coalesceMs: number;
  /** Connection errors surface as rejected calls; this only reports them (BullMQ requires a listener). */
  readonly onError: (error: Error) => void;
  /** Attempts per job and the first backoff (doubling); 5 and 5 s unless a drill needs them shorter. */
  readonly retry?: { readonly attempts: number; readonly backoffMs: number };
}

const DAY_SECONDS = 24 * 60 * 60;

/** Retries and retention shared by every job: a worker crash or a transient error is retried with backoff. */
const JOB_DEFAULTS = {
  attempts: 5,
  backoff: { type: 'exponential', delay: 5_000 },
  removeOnComplete: { age: DAY_SECONDS, count: 1_000 },
  removeOnFail: { age: 7 * DAY_SECONDS },
} as const;

/** BullMQ job ids may not contain ':' or be plain integers. Pure. */
export function jobIdOf(job: PlumblineJob): string {
  return `delivery-${job.deliveryId.replace(/:/g, '-')}${job.type === 'preview' ? `-${job.number}` : ''}`;
}

/**
 * Producer side of the job protocol (docs/adr/0002-coalescing-pushes.md). The connection must be created
 * with `enableOfflineQueue: false` so that a Redis outage rejects at once instead of queueing in memory.
 */
export function createJobProducer(connection: RedisConnection, options: JobProducerOptions): JobProducer {
  const keys = redisKeys(options.prefix);
  const defaults = options.retry
    ? {
        ...JOB_DEFAULTS,
        attempts: options.retry.attempts,
        backoff: { type: 'exponential', delay: options.retry.backoffMs },
      }
    : JOB_DEFAULTS;
  const queues = {
    sync: new Queue(QUEUE_NAMES.sync, { connection, prefix: options.prefix, defaultJobOptions: defaults }),
    preview: new Queue(QUEUE_NAMES.preview, { connection, prefix: options.prefix, defaultJobOptions: defaults }),
  };
  queues.sync.on('error', options.onError);
  queues.preview.on('error', options.onError);
  return {
    // A job that BullMQ deduplicates against one that already left its delay is not lost: the waiting
    // job reads this record when it starts.
    latestRecord(job) {
      return latestJobRecord(keys, job);
    },
    async add(job) {
      await queues[job.type].add(job.type, job, {
        // One job per delivery: a delivery whose job was written but whose answer was lost (RedisConnection died
        // in between, the receiver answered 5xx) is redelivered by GitHub — adding it again is a no-op.
        jobId: jobIdOf(job),
        delay: options.coalesceMs,
        deduplication: { id: coalescingKey(job), replace: true, keepLastIfActive: true },
      });
    },
    async cancelPreviews(repositoryId, number) {
      const id = previewCoalescingKey(repositoryId, number);
      const jobId = await queues.preview.getDeduplicationJobId(id);
      if (!jobId) return 0;
      const job = await queues.preview.getJob(jobId);
      const state = job ? await job.getState() : 'unknown';
      if (!job || (state !== 'delayed' && state !== 'waiting' && state !== 'prioritized')) return 0;
      await job.remove();
      await queues.preview.removeDeduplicationKey(id);
      return 1;
    },
    async inFlight(job) {
      // BullMQ keeps a deduplication id until its job completes or fails.
      const jobId = await queues[job.type].getDeduplicationJobId(coalescingKey(job));
      if (!jobId) return false;
      const state = await (await queues[job.type].getJob(jobId))?.getState();
      return state === 'waiting' || state === 'delayed' || state === 'active' || state === 'prioritized';
    },
    async depths() {
      const entries = await Promise.all(
        Object.entries(queues).map(async ([name, queue]) => {
          const counts = await queue.getJobCounts('waiting', 'delayed', 'active', 'failed', 'prioritized');
          return [name, counts] as const;
        }),
      );
      return Object.fromEntries(entries);
    },
    async close() {
      await Promise.all([queues.sync.close(), queues.preview.close()]);
    },
  };
}
