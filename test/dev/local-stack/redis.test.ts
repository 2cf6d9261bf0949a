import { afterAll, describe, expect, it } from '@jest/globals';
import { Queue, QueueEvents, Worker } from 'bullmq';
import { testEnvironment, uniqueName } from '../../helpers/environment.ts';

const env = testEnvironment();
const connection = { url: env.redisUrl };

describe('the Redis the tests run against', () => {
  const queueName = uniqueName('roundtrip');
  const queue = new Queue(queueName, { connection });
  const events = new QueueEvents(queueName, { connection });
  const worker = new Worker(queueName, async (job) => ({ doubled: (job.data as { n: number }).n * 2 }), {
    connection: { ...connection, maxRetriesPerRequest: null },
  });

  afterAll(async () => {
    await worker.close();
    await events.close();
    await queue.obliterate({ force: true });
    await queue.close();
  });

  it('carries a BullMQ job to a worker and its result back', async () => {
    await events.waitUntilReady();
    const job = await queue.add('double', { n: 21 });
    await expect(job.waitUntilFinished(events, 20_000)).resolves.toEqual({ doubled: 42 });
  });
});
