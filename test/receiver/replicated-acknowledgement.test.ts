import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { infoField } from '../../dev/local-stack/redis-cluster.ts';
import { readEnvOptions } from '../../src/config/read-env-options.ts';
import { redisKeys } from '../../src/redis/redis-keys.ts';
import { testEnvironment } from '../helpers/environment.ts';
import { fakeSha, githubDelivery, pushPayload, send } from '../helpers/github-delivery.ts';
import { type ReceiverHarness, startReceiverHarness, WEBHOOK_SECRET } from '../helpers/receiver-harness.ts';

const env = testEnvironment();

describe('PLUMBLINE_REDIS_WAIT_REPLICAS / PLUMBLINE_REDIS_WAIT_TIMEOUT_MS', () => {
  const base = { GITHUB_WEBHOOK_SECRET: 'x' };

  it('are off by default (a 2xx once the primary has the delivery) and bounded', () => {
    expect(readEnvOptions(base)).toEqual(expect.objectContaining({ redisWaitReplicas: 0, redisWaitTimeoutMs: 500 }));
    expect(
      readEnvOptions({ ...base, PLUMBLINE_REDIS_WAIT_REPLICAS: '2', PLUMBLINE_REDIS_WAIT_TIMEOUT_MS: '250' }),
    ).toEqual(expect.objectContaining({ redisWaitReplicas: 2, redisWaitTimeoutMs: 250 }));
    expect(() => readEnvOptions({ ...base, PLUMBLINE_REDIS_WAIT_REPLICAS: 'one' })).toThrow(
      /PLUMBLINE_REDIS_WAIT_REPLICAS: must be a whole number/,
    );
    expect(() => readEnvOptions({ ...base, PLUMBLINE_REDIS_WAIT_TIMEOUT_MS: '0' })).toThrow(
      /PLUMBLINE_REDIS_WAIT_TIMEOUT_MS/,
    );
    // GitHub gives a delivery 10 s: the wait may not take most of them.
    expect(() => readEnvOptions({ ...base, PLUMBLINE_REDIS_WAIT_TIMEOUT_MS: '5001' })).toThrow(
      /PLUMBLINE_REDIS_WAIT_TIMEOUT_MS/,
    );
  });
});

/** The stack's single Redis has no replica: waiting for one can only time out. */
describe('a receiver that waits for a replica, on a Redis without one', () => {
  let waiting: ReceiverHarness;
  let plain: ReceiverHarness;

  beforeAll(async () => {
    const quiet = { PLUMBLINE_PUSH_COALESCE_MS: '60000' };
    waiting = await startReceiverHarness(env.redisUrl, {
      ...quiet,
      PLUMBLINE_REDIS_WAIT_REPLICAS: '1',
      PLUMBLINE_REDIS_WAIT_TIMEOUT_MS: '200',
    });
    plain = await startReceiverHarness(env.redisUrl, quiet);
  });
  afterAll(async () => {
    await waiting?.close();
    await plain?.close();
  });

  it('answers 503, keeps the job on the primary and releases the delivery, so that its redelivery is waited for again', async () => {
    const replication = String(await waiting.redis.call('INFO', 'replication'));
    expect(infoField(replication, 'connected_slaves')).toBe('0');
    const delivery = githubDelivery('push', pushPayload({ after: fakeSha(1), repositoryId: 81_001 }), WEBHOOK_SECRET);
    const id = delivery.headers['x-github-delivery'] ?? '';

    const first = await send(waiting.baseUrl, delivery);
    expect(first).toEqual({
      status: 503,
      body: { error: 'queue not replicated in time; GitHub will show this delivery as failed' },
    });
    // WAIT delays the answer; it undoes nothing: the job is queued on the primary, the delivery released.
    await expect(waiting.queues.sync.getJob(`delivery-${id}`)).resolves.toEqual(
      expect.objectContaining({ data: expect.objectContaining({ deliveryId: id }) }),
    );
    await expect(waiting.redis.exists(redisKeys(waiting.prefix).delivery(id))).resolves.toBe(0);
    // Redelivered: queued again (the same job id: still one job) and waited for again, not "duplicate".
    expect((await send(waiting.baseUrl, delivery)).status).toBe(503);
    expect(await waiting.queues.sync.getJobCounts('delayed', 'waiting')).toEqual({ delayed: 1, waiting: 0 });

    const text = await (await fetch(`${waiting.baseUrl}/metrics`)).text();
    expect(text).toMatch(/plumbline_webhook_deliveries_total\{event="push",outcome="unreplicated"\} 2/);
  });

  it('answers a redelivery of a delivery done before 503 too, and keeps it done', async () => {
    const delivery = githubDelivery('push', pushPayload({ after: fakeSha(2), repositoryId: 81_002 }), WEBHOOK_SECRET);
    const id = delivery.headers['x-github-delivery'] ?? '';
    // Acknowledged by a receiver that does not wait (PLUMBLINE_REDIS_WAIT_REPLICAS unset).
    const sameQueue = await startReceiverHarness(env.redisUrl, {
      PLUMBLINE_PUSH_COALESCE_MS: '60000',
      PLUMBLINE_QUEUE_PREFIX: waiting.prefix,
    });
    try {
      expect((await send(sameQueue.baseUrl, delivery)).status).toBe(202);
      expect((await send(sameQueue.baseUrl, delivery)).status).toBe(200);
    } finally {
      await sameQueue.close();
    }
    expect((await send(waiting.baseUrl, delivery)).status).toBe(503);
    await expect(waiting.redis.get(redisKeys(waiting.prefix).delivery(id))).resolves.toBe('done');
  });

  it('without the setting, answers 202 as soon as the primary has the delivery', async () => {
    const delivery = githubDelivery('push', pushPayload({ after: fakeSha(3), repositoryId: 81_003 }), WEBHOOK_SECRET);
    expect((await send(plain.baseUrl, delivery)).status).toBe(202);
  });
});
