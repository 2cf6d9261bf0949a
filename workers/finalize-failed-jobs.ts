import { type Job, Queue, QueueEvents } from 'bullmq';
import type { Logger } from '../src/logging/create-logger.ts';
import { type PlumblineJob, QUEUE_NAMES } from '../src/queue/jobs.ts';
import { duplicateConnection, type RedisConnection } from '../src/redis/redis-topology.ts';
import type { Reporter } from '../src/reporting/github-reporter.ts';
import { MAX_STALLED_COUNT } from './job-consumer.ts';

/**
 * Whether BullMQ failed a job because its workers kept dying: each time it finds a job's lock expired it
 * counts the stall on the job (`stalledCounter`), and past `maxStalledCount` it fails the job without
 * running its processor again. From the job's own count, not from the text of its failure. Pure.
 */
export function abandonedByWorkers(job: Pick<Job, 'stalledCounter'>): boolean {
  return job.stalledCounter > MAX_STALLED_COUNT;
}

/**
 * The last line of "no status is left pending": a job whose workers kept dying fails inside BullMQ
 * without its processor running again. Every worker listens for such failures and ends the commit's
 * pending statuses with `error`; the reporter's write-only-on-change record keeps that to one write.
 */
export function finalizeFailedJobs(options: {
  readonly connection: RedisConnection;
  readonly prefix: string;
  readonly reporter: Reporter;
  readonly logger: Logger;
}): { close(): Promise<void> } {
  const parts = (['sync', 'preview'] as const).map((name) => {
    // QueueEvents blocks on its connection: it needs one of its own.
    const blocking = duplicateConnection(options.connection);
    // Its outages are reported through the QueueEvents below; unheard, ioredis prints every one to stderr.
    blocking.on('error', () => {});
    const events = new QueueEvents(QUEUE_NAMES[name], { connection: blocking, prefix: options.prefix });
    const queue = new Queue<PlumblineJob>(QUEUE_NAMES[name], {
      connection: options.connection,
      prefix: options.prefix,
    });
    events.on('error', (error) => options.logger.warn({ error: error.message }, 'queue events error'));
    queue.on('error', (error) => options.logger.warn({ error: error.message }, 'queue error'));
    events.on('failed', ({ jobId }) => {
      void (async () => {
        const job = await queue.getJob(jobId);
        // A job that failed in its processor reported itself; only one its workers abandoned is left here.
        if (!job || !abandonedByWorkers(job)) return;
        const data = job.data;
        const sha = data.type === 'sync' ? data.after : data.headSha;
        const report = options.reporter.forCommit({
          repository: data.repository,
          installationId: data.installationId,
          sha,
        });
        await report.abandon(`not finished: the worker running it stopped ${job.stalledCounter} times`);
        const failed = await report.flush();
        options.logger.error({ jobId, sha, failedWrites: failed }, 'a job was abandoned by its workers');
      })().catch((error: unknown) =>
        options.logger.warn({ jobId, error: (error as Error).message }, 'could not finalize a failed job'),
      );
    });
    return { events, queue, blocking };
  });
  return {
    async close() {
      await Promise.all(parts.flatMap(({ events, queue }) => [events.close(), queue.close()]));
      for (const { blocking } of parts) blocking.disconnect();
    },
  };
}
