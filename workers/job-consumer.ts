import { type Job, Worker } from 'bullmq';
import type { Logger } from '../src/logging/create-logger.ts';
import { type PlumblineJob, QUEUE_NAMES } from '../src/queue/jobs.ts';
import { readLatestJob } from '../src/queue/latest-jobs.ts';
import { redisKeys } from '../src/redis/redis-keys.ts';
import type { RedisConnection } from '../src/redis/redis-topology.ts';
import { queueWaitSeconds } from './worker-metrics.ts';

export interface JobConsumerOptions<Result> {
  /** Must be created with `maxRetriesPerRequest: null`, as BullMQ requires for workers. */
  readonly connection: RedisConnection;
  readonly prefix: string;
  readonly queue: keyof typeof QUEUE_NAMES;
  readonly concurrency: number;
  /**
   * How long a job stays claimed by a worker that stopped renewing its lock: after that, another worker
   * takes it over (a crashed worker's job is run again). BullMQ's default is 30 s.
   */
  readonly lockDurationMs?: number;
  /** Receives the newest job for the job's branch or pull request (see ADR 2). */
  readonly process: (
    job: PlumblineJob,
    context: { readonly jobId: string; readonly attempt: number; readonly maxAttempts: number },
  ) => Promise<Result>;
  readonly onError: (error: Error) => void;
  /** Where a latest-job record that does not parse is reported (the job then runs as queued). */
  readonly logger?: Pick<Logger, 'warn'>;
  /** Told how long a job waited for a worker once it could run (first attempts only; the metrics). */
  readonly observeWait?: ((seconds: number) => void) | undefined;
}

/**
 * The newest of a job and the receiver's record for its coalescing key. A push that BullMQ
 * deduplicated against a job already waiting exists only in that record, so the job must run it.
 */
export function newestJob(job: PlumblineJob, recorded: PlumblineJob | undefined): PlumblineJob {
  if (!recorded || recorded.type !== job.type) return job;
  return Date.parse(recorded.receivedAt) > Date.parse(job.receivedAt) ? recorded : job;
}

export const MAX_STALLED_COUNT = 3;

/** Consumer side of the job protocol: a BullMQ worker that always runs the newest job for its key. */
export function createJobConsumer<Result>(options: JobConsumerOptions<Result>): Worker<PlumblineJob, Result> {
  const latestJobs = {
    redis: options.connection,
    keys: redisKeys(options.prefix),
    ...(options.logger ? { logger: options.logger } : {}),
  };
  const worker = new Worker<PlumblineJob, Result>(
    QUEUE_NAMES[options.queue],
    async (job: Job<PlumblineJob, Result>) => {
      const waited = queueWaitSeconds(job, Date.now());
      if (waited !== undefined) options.observeWait?.(waited);
      const effective = newestJob(job.data, await readLatestJob(latestJobs, job.data));
      return options.process(effective, {
        jobId: job.id ?? '',
        attempt: job.attemptsMade + 1,
        maxAttempts: job.opts.attempts ?? 1,
      });
    },
    {
      connection: options.connection,
      prefix: options.prefix,
      concurrency: options.concurrency,
      autorun: true,
      ...(options.lockDurationMs
        ? { lockDuration: options.lockDurationMs, stalledInterval: options.lockDurationMs }
        : {}),
      // A job whose worker died is run again this often before it fails (and its statuses say so).
      maxStalledCount: MAX_STALLED_COUNT,
    },
  );
  worker.on('error', options.onError);
  return worker;
}
