import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { Redis } from 'ioredis';
import type { SyncJob } from '../../src/queue/jobs.ts';
import { createJobConsumer, newestJob } from '../../workers/job-consumer.ts';
import { testEnvironment } from '../helpers/environment.ts';
import { fakeSha, githubDelivery, pushPayload, send } from '../helpers/github-delivery.ts';
import { type ReceiverHarness, startReceiverHarness, WEBHOOK_SECRET } from '../helpers/receiver-harness.ts';

const env = testEnvironment();

describe('coalescing pushes end to end (receiver → Redis → worker)', () => {
  let harness: ReceiverHarness;
  let workerConnection: Redis;

  beforeAll(async () => {
    harness = await startReceiverHarness(env.redisUrl, { PLUMBLINE_PUSH_COALESCE_MS: '200' });
    workerConnection = new Redis(env.redisUrl, { maxRetriesPerRequest: null });
  });
  afterAll(async () => {
    await harness.close();
    workerConnection.disconnect();
  });

  const push = (n: number, repositoryId: number) =>
    send(harness.baseUrl, githubDelivery('push', pushPayload({ after: fakeSha(n), repositoryId }), WEBHOOK_SECRET));

  it('runs the newest push even when it arrived while an older job was already waiting for a worker', async () => {
    expect((await push(1, 700)).status).toBe(202);
    // The first job leaves its delay (as when every worker is busy): it now waits for a worker, and
    // BullMQ drops an add with the same deduplication key instead of replacing it.
    const [first] = await harness.queues.sync.getJobs(['delayed']);
    await first!.promote();
    expect(await harness.queues.sync.getWaitingCount()).toBe(1);
    expect((await push(2, 700)).status).toBe(202);
    expect((await harness.queues.sync.getJobs(['waiting', 'delayed'])).map((j) => (j.data as SyncJob).after)).toEqual([
      fakeSha(1),
    ]);

    const processed: string[] = [];
    const worker = createJobConsumer({
      connection: workerConnection,
      prefix: harness.prefix,
      queue: 'sync',
      concurrency: 1,
      process: async (job) => {
        processed.push(job.type === 'sync' ? job.after : job.headSha);
      },
      onError: () => {},
    });
    try {
      const deadline = Date.now() + 10_000;
      while (processed.length === 0 && Date.now() < deadline) await sleep(20);
      await sleep(500); // any further job for the key would have started by now
    } finally {
      await worker.close();
    }
    expect(processed).toEqual([fakeSha(2)]);
  });

  it('a delivery whose job was written but not acknowledged is not queued twice when GitHub redelivers it', async () => {
    const { createJobProducer } = await import('../../src/queue/job-producer.ts');
    const producer = createJobProducer(workerConnection, { prefix: harness.prefix, coalesceMs: 0, onError: () => {} });
    const processed: string[] = [];
    const worker = createJobConsumer<void>({
      connection: workerConnection,
      prefix: harness.prefix,
      queue: 'sync',
      concurrency: 1,
      process: async (job) => {
        processed.push(job.deliveryId);
      },
      onError: () => {},
    });
    try {
      // The job of delivery "lost-answer" is in Redis, but its claim was released (the receiver answered
      // 5xx): a redelivery claims it anew and adds the job again, after the first one has already run.
      const delivery = githubDelivery('push', pushPayload({ after: fakeSha(90), repositoryId: 790 }), WEBHOOK_SECRET, {
        deliveryId: 'lost-answer',
      });
      const job = {
        type: 'sync',
        trigger: 'push',
        deliveryId: 'lost-answer',
        repository: { id: 790, fullName: 'acme/lost' },
        installationId: 1,
        branch: 'main',
        before: undefined,
        after: fakeSha(90),
        forced: false,
        receivedAt: new Date().toISOString(),
      } satisfies SyncJob;
      await producer.add(job);
      const deadline = Date.now() + 10_000;
      while (processed.length === 0 && Date.now() < deadline) await sleep(50);
      expect((await send(harness.baseUrl, delivery)).status).toBe(202);
      await sleep(1_000);
      expect(processed).toEqual(['lost-answer']);
    } finally {
      await worker.close();
      await producer.close();
    }
  });

  it('prefers the job itself when the record is older or of another kind', () => {
    const job = { type: 'sync', after: fakeSha(5), receivedAt: '2026-11-28T10:00:01Z' } as SyncJob;
    const older = { ...job, after: fakeSha(4), receivedAt: '2026-11-28T10:00:00Z' };
    expect(newestJob(job, older)).toBe(job);
    expect(newestJob(job, undefined)).toBe(job);
    expect(newestJob(older, job)).toBe(job);
  });
});
