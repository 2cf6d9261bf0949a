import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { testEnvironment } from '../helpers/environment.ts';
import { fakeSha, githubDelivery, pushPayload, send } from '../helpers/github-delivery.ts';
import { type ReceiverHarness, startReceiverHarness } from '../helpers/receiver-harness.ts';

const env = testEnvironment();
const OLD_SECRET = 'rotation-old-secret-51c2';
const NEW_SECRET = 'rotation-new-secret-9e07';

/** The JSON log lines written for one delivery. */
const linesFor = (harness: ReceiverHarness, deliveryId: string) =>
  harness.logs
    .flatMap((chunk) => chunk.split('\n'))
    .filter((line) => line.includes(deliveryId))
    .map((line) => JSON.parse(line) as Record<string, unknown>);

describe('rotating the webhook secret', () => {
  let rotating: ReceiverHarness;
  let rotated: ReceiverHarness;

  beforeAll(async () => {
    rotating = await startReceiverHarness(env.redisUrl, {
      GITHUB_WEBHOOK_SECRET: NEW_SECRET,
      GITHUB_WEBHOOK_SECRET_PREVIOUS: OLD_SECRET,
    });
    rotated = await startReceiverHarness(env.redisUrl, { GITHUB_WEBHOOK_SECRET: NEW_SECRET });
  });
  afterAll(async () => {
    await Promise.all([rotating.close(), rotated.close()]);
  });

  it('accepts deliveries signed with either secret while the previous one is set, and logs which one matched', async () => {
    const old = githubDelivery('push', pushPayload({ after: fakeSha(1), repositoryId: 9201 }), OLD_SECRET);
    const current = githubDelivery('push', pushPayload({ after: fakeSha(2), repositoryId: 9202 }), NEW_SECRET);
    const neither = githubDelivery('push', pushPayload({ after: fakeSha(3), repositoryId: 9203 }), 'a third secret');

    expect(await send(rotating.baseUrl, old)).toEqual({ status: 202, body: { queued: 1 } });
    expect(await send(rotating.baseUrl, current)).toEqual({ status: 202, body: { queued: 1 } });
    expect((await send(rotating.baseUrl, neither)).status).toBe(401);

    const queued = (id: string) => linesFor(rotating, id).find((line) => line.msg === 'delivery queued');
    expect(queued(old.headers['x-github-delivery']!)).toMatchObject({ signedWith: 'previous' });
    expect(queued(current.headers['x-github-delivery']!)).toMatchObject({ signedWith: 'current' });
    const logs = rotating.logs.join('\n');
    expect(logs).not.toContain(OLD_SECRET);
    expect(logs).not.toContain(NEW_SECRET);

    const metrics = await (await fetch(`${rotating.baseUrl}/metrics`)).text();
    expect(metrics).toMatch(/plumbline_webhook_signatures_total\{secret="previous"\} 1\b/);
    expect(metrics).toMatch(/plumbline_webhook_signatures_total\{secret="current"\} 1\b/);
  });

  it('refuses the old secret once the previous one is unset', async () => {
    const old = githubDelivery('push', pushPayload({ after: fakeSha(4), repositoryId: 9204 }), OLD_SECRET);
    expect(await send(rotated.baseUrl, old)).toEqual({
      status: 401,
      body: { error: 'signature does not match the webhook secret' },
    });
    const current = githubDelivery('push', pushPayload({ after: fakeSha(5), repositoryId: 9205 }), NEW_SECRET);
    expect((await send(rotated.baseUrl, current)).status).toBe(202);
  });
});
