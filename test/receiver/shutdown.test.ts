import { request } from 'node:http';
import { describe, expect, it } from '@jest/globals';
import { testEnvironment } from '../support/environment.ts';
import { fakeSha, githubDelivery, pushPayload } from '../support/github-delivery.ts';
import { startReceiverHarness, WEBHOOK_SECRET } from '../support/receiver-harness.ts';

describe('receiver shutdown', () => {
  it('finishes a delivery that is in flight, then stops accepting', async () => {
    const harness = await startReceiverHarness(testEnvironment().redisUrl);
    const delivery = githubDelivery('push', pushPayload({ after: fakeSha(1), repositoryId: 1 }), WEBHOOK_SECRET);
    const half = Math.floor(delivery.body.length / 2);

    const req = request(`${harness.baseUrl}/api/github/webhooks`, {
      method: 'POST',
      headers: { ...delivery.headers, 'content-length': String(Buffer.byteLength(delivery.body)) },
    });
    const answered = new Promise<number>((resolve, reject) => {
      req.on('response', (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on('error', reject);
    });
    req.write(delivery.body.slice(0, half));
    await new Promise((resolve) => setTimeout(resolve, 100));

    const closing = harness.close();
    req.end(delivery.body.slice(half));
    expect(await answered).toBe(202);
    await closing;
    await expect(fetch(`${harness.baseUrl}/healthz`)).rejects.toThrow();
  });
});
