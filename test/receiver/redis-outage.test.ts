import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { freePort } from '../../dev/local-stack/free-port.ts';
import { stopProcess } from '../../dev/local-stack/processes.ts';
import { type RedisRecord, startRedisServer } from '../../dev/local-stack/redis-server.ts';
import type { SyncJob } from '../../src/queue/jobs.ts';
import { fakeSha, githubDelivery, pushPayload, send } from '../helpers/github-delivery.ts';
import { type ReceiverHarness, startReceiverHarness, WEBHOOK_SECRET } from '../helpers/receiver-harness.ts';

/** This test stops and restarts Redis, so it runs its own durable one instead of the shared stack's. */
describe('the receiver while Redis goes away and comes back', () => {
  let dir: string;
  let port: number;
  let redis: RedisRecord;
  let harness: ReceiverHarness;
  const acknowledged: string[] = [];

  const push = async (n: number) => {
    const payload = pushPayload({ after: fakeSha(n), repositoryId: n });
    const started = Date.now();
    const response = await send(harness.baseUrl, githubDelivery('push', payload, WEBHOOK_SECRET));
    if (response.status === 202) acknowledged.push(fakeSha(n));
    return { status: response.status, ms: Date.now() - started };
  };

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'plumbline-redis-'));
    port = await freePort();
    redis = await startRedisServer(dir, port, { name: 'outage', durable: true });
    harness = await startReceiverHarness(redis.url, { PLUMBLINE_PUSH_COALESCE_MS: '60000' });
  });
  afterAll(async () => {
    await harness.close();
    await stopProcess(redis.pid, redis.command);
    await rm(dir, { recursive: true, force: true });
  });

  it('answers 202 before, 503 during and 202 after the outage, and loses no acknowledged job', async () => {
    expect((await push(1)).status).toBe(202);
    expect((await push(2)).status).toBe(202);

    await stopProcess(redis.pid, redis.command);
    const during = await push(3);
    expect(during.status).toBe(503);
    expect(during.ms).toBeLessThan(8_000); // well inside GitHub's 10 s delivery timeout
    expect((await fetch(`${harness.baseUrl}/readyz`)).status).toBe(503);
    expect((await fetch(`${harness.baseUrl}/metrics`)).status).toBe(200);

    redis = await startRedisServer(dir, port, { name: 'outage', durable: true });
    const deadline = Date.now() + 20_000;
    while ((await fetch(`${harness.baseUrl}/readyz`)).status !== 200 && Date.now() < deadline) await sleep(100);
    expect((await push(4)).status).toBe(202);

    const queued = (await harness.queues.sync.getJobs(['delayed', 'waiting'])).map(
      (job) => (job.data as SyncJob).after,
    );
    expect(queued.sort()).toEqual([...acknowledged].sort());
    expect(acknowledged).toEqual([fakeSha(1), fakeSha(2), fakeSha(4)]);
  });
});
