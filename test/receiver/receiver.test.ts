import { request } from 'node:http';
import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { Webhooks } from '@octokit/webhooks';
import type { PreviewJob, SyncJob } from '../../src/queue/jobs.ts';
import { readLatestJob } from '../../src/queue/latest-jobs.ts';
import { redisKeys } from '../../src/redis/redis-keys.ts';
import { testEnvironment } from '../helpers/environment.ts';
import { fakeSha, githubDelivery, pushPayload, send, signature } from '../helpers/github-delivery.ts';
import { type ReceiverHarness, startReceiverHarness, WEBHOOK_SECRET } from '../helpers/receiver-harness.ts';

const env = testEnvironment();

describe('the webhook receiver', () => {
  let harness: ReceiverHarness;

  beforeAll(async () => {
    harness = await startReceiverHarness(env.redisUrl, { PLUMBLINE_PUSH_COALESCE_MS: '3000' });
  });
  afterAll(async () => {
    await harness.close();
  });

  const syncJobs = async () =>
    (await harness.queues.sync.getJobs(['delayed', 'waiting'])).map((job) => job.data as SyncJob);

  describe('signatures', () => {
    it("accepts GitHub's documented test vector", async () => {
      const secret = "It's a Secret to Everybody";
      const expected = 'sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17';
      expect(signature(secret, 'Hello, World!')).toBe(expected);
      await expect(new Webhooks({ secret }).verify('Hello, World!', expected)).resolves.toBe(true);
    });

    it('answers 401 to a body signed with another secret, and queues nothing', async () => {
      const delivery = githubDelivery('push', pushPayload({ after: fakeSha(1), repositoryId: 1 }), 'not-the-secret');
      const response = await send(harness.baseUrl, delivery);
      expect(response).toEqual({ status: 401, body: { error: 'signature does not match the webhook secret' } });
      expect(await syncJobs()).toEqual([]);
    });

    it('answers 401 to a truncated signature', async () => {
      const delivery = githubDelivery('push', pushPayload({ after: fakeSha(1), repositoryId: 2 }), WEBHOOK_SECRET);
      const truncated = {
        ...delivery.headers,
        'x-hub-signature-256': delivery.headers['x-hub-signature-256']!.slice(0, 40),
      };
      expect((await send(harness.baseUrl, { ...delivery, headers: truncated })).status).toBe(401);
    });

    it('checks the signature over the raw bytes: re-serialised JSON does not pass', async () => {
      const payload = pushPayload({ after: fakeSha(1), repositoryId: 3 });
      const delivery = githubDelivery('push', payload, WEBHOOK_SECRET);
      const reformatted = { ...delivery, body: JSON.stringify(payload, null, 2) };
      expect((await send(harness.baseUrl, reformatted)).status).toBe(401);
    });
  });

  describe('bad requests', () => {
    it('answers 400 naming the missing GitHub headers', async () => {
      const { headers, body } = githubDelivery('push', pushPayload({ after: fakeSha(1) }), WEBHOOK_SECRET);
      const { 'x-github-event': _e, 'x-github-delivery': _d, ...rest } = headers;
      const response = await send(harness.baseUrl, { headers: rest, body });
      expect(response).toEqual({
        status: 400,
        body: { error: 'missing required header(s): x-github-event, x-github-delivery' },
      });
    });

    it('answers 415 to a form-encoded delivery', async () => {
      const delivery = githubDelivery('push', pushPayload({ after: fakeSha(1) }), WEBHOOK_SECRET);
      const form = { ...delivery.headers, 'content-type': 'application/x-www-form-urlencoded' };
      expect((await send(harness.baseUrl, { ...delivery, headers: form })).status).toBe(415);
    });

    it('answers 400 to a signed body that is not JSON', async () => {
      const delivery = githubDelivery('push', null, WEBHOOK_SECRET, { body: '{"ref": "refs/heads/main",' });
      expect(await send(harness.baseUrl, delivery)).toEqual({ status: 400, body: { error: 'body is not valid JSON' } });
    });

    it('answers 400 naming the field when a signed push has the wrong shape', async () => {
      const payload = { ...pushPayload({ after: fakeSha(1) }), repository: { id: 'not-a-number' } };
      const response = await send(harness.baseUrl, githubDelivery('push', payload, WEBHOOK_SECRET));
      expect(response.status).toBe(400);
      expect(response.body).toEqual({ error: expect.stringMatching(/^push payload: repository\.id /) });
    });

    it('answers 413 from the Content-Length alone, before the body arrives', async () => {
      const delivery = githubDelivery('push', pushPayload({ after: fakeSha(1) }), WEBHOOK_SECRET);
      const status = await new Promise<number>((resolve, reject) => {
        const req = request(`${harness.baseUrl}/api/github/webhooks`, {
          method: 'POST',
          headers: { ...delivery.headers, 'content-length': String(26 * 1024 * 1024) },
        });
        req.on('response', (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
          req.destroy();
        });
        req.on('error', reject);
        req.write('{"ref":'); // the rest never comes: the answer must not wait for it
      });
      expect(status).toBe(413);
    });

    it('answers 413 to a chunked body that grows past 25 MB', async () => {
      // A raw socket: the server may close the connection while we are still sending, and an HTTP client
      // would then drop the answer it already received. The status line is what we check.
      const delivery = githubDelivery('push', pushPayload({ after: fakeSha(1) }), WEBHOOK_SECRET);
      const { port } = new URL(harness.baseUrl);
      const status = await new Promise<number>((resolve) => {
        const socket = connect(Number(port), '127.0.0.1');
        let received = '';
        const headers = Object.entries({
          ...delivery.headers,
          host: `127.0.0.1:${port}`,
          'transfer-encoding': 'chunked',
        })
          .map(([name, value]) => `${name}: ${value}\r\n`)
          .join('');
        const chunk = Buffer.concat([Buffer.from('100000\r\n'), Buffer.alloc(0x100000, 0x20), Buffer.from('\r\n')]);
        let sent = 0;
        const pump = () => {
          while (sent < 30 && !socket.destroyed && socket.write(chunk)) sent += 1;
          if (sent < 30 && !socket.destroyed) socket.once('drain', pump);
        };
        socket.on('data', (data: Buffer) => {
          received += data.toString('latin1');
          const match = /^HTTP\/1\.1 (\d{3})/.exec(received);
          if (match) {
            resolve(Number(match[1]));
            socket.destroy();
          }
        });
        socket.on('error', () => {});
        socket.on('close', () => resolve(Number(/^HTTP\/1\.1 (\d{3})/.exec(received)?.[1] ?? 0)));
        socket.write(`POST /api/github/webhooks HTTP/1.1\r\n${headers}\r\n`);
        pump();
      });
      expect(status).toBe(413);
    });
  });

  describe('queueing', () => {
    it('queues one sync job per branch push and acknowledges with 202', async () => {
      const payload = pushPayload({ after: fakeSha(10), repositoryId: 100 });
      const response = await send(harness.baseUrl, githubDelivery('push', payload, WEBHOOK_SECRET));
      expect(response).toEqual({ status: 202, body: { queued: 1 } });
      expect((await syncJobs()).filter((job) => job.repository.id === 100).map((job) => job.after)).toEqual([
        fakeSha(10),
      ]);
    });

    it('acknowledges a redelivery (same X-GitHub-Delivery) without queueing again', async () => {
      const payload = pushPayload({ after: fakeSha(20), repositoryId: 200 });
      const first = githubDelivery('push', payload, WEBHOOK_SECRET);
      expect((await send(harness.baseUrl, first)).status).toBe(202);
      await harness.queues.sync.obliterate({ force: true });
      expect(await send(harness.baseUrl, first)).toEqual({ status: 200, body: { duplicate: true } });
      expect(await syncJobs()).toEqual([]);
    });

    it('collapses a burst of 20 pushes to one branch into one job for the newest commit', async () => {
      for (let n = 1; n <= 20; n += 1) {
        const payload = pushPayload({ after: fakeSha(300 + n), before: fakeSha(299 + n), repositoryId: 300 });
        expect((await send(harness.baseUrl, githubDelivery('push', payload, WEBHOOK_SECRET))).status).toBe(202);
      }
      const jobs = (await syncJobs()).filter((job) => job.repository.id === 300);
      expect(jobs.map((job) => job.after)).toEqual([fakeSha(320)]);
    });

    it('records the newest push per branch, which a job that was deduplicated against reads', async () => {
      const payload = pushPayload({ after: fakeSha(401), repositoryId: 400, branch: 'prod' });
      await send(harness.baseUrl, githubDelivery('push', payload, WEBHOOK_SECRET));
      const [job] = (await syncJobs()).filter((j) => j.repository.id === 400);
      const latest = await readLatestJob({ redis: harness.redis, keys: redisKeys(harness.prefix) }, job!);
      expect(latest).toMatchObject({ after: fakeSha(401), branch: 'prod' });
    });

    it('does not let a re-run of an older commit pose as the newest push of its branch', async () => {
      const newest = pushPayload({ after: fakeSha(801), repositoryId: 800 });
      await send(harness.baseUrl, githubDelivery('push', newest, WEBHOOK_SECRET));
      const rerun = {
        action: 'rerequested',
        check_run: { head_sha: fakeSha(800), check_suite: { head_branch: 'main' }, pull_requests: [] },
        repository: newest.repository,
        installation: { id: 77 },
      };
      expect((await send(harness.baseUrl, githubDelivery('check_run', rerun, WEBHOOK_SECRET))).status).toBe(202);
      const [job] = (await syncJobs()).filter((j) => j.repository.id === 800);
      const latest = await readLatestJob({ redis: harness.redis, keys: redisKeys(harness.prefix) }, job!);
      expect(latest).toMatchObject({ type: 'sync', after: fakeSha(801) });
    });

    it('keeps pushes to different branches apart', async () => {
      for (const branch of ['main', 'staging']) {
        const payload = pushPayload({ after: fakeSha(500), repositoryId: 500, branch });
        await send(harness.baseUrl, githubDelivery('push', payload, WEBHOOK_SECRET));
      }
      const branches = (await syncJobs()).filter((job) => job.repository.id === 500).map((job) => job.branch);
      expect(branches.sort()).toEqual(['main', 'staging']);
    });

    it('queues a preview for an opened pull request and cancels it when the pull request closes', async () => {
      const pr = (action: string) => ({
        action,
        number: 7,
        pull_request: { head: { sha: fakeSha(600) }, base: { ref: 'main' } },
        repository: { id: 600, full_name: 'acme/platform-gitops', clone_url: 'https://github.com/acme/x.git' },
        installation: { id: 77 },
      });
      const previews = async () =>
        (await harness.queues.preview.getJobs(['delayed', 'waiting'])).map((job) => job.data as PreviewJob);
      expect((await send(harness.baseUrl, githubDelivery('pull_request', pr('opened'), WEBHOOK_SECRET))).status).toBe(
        202,
      );
      expect((await previews()).map((job) => [job.number, job.headSha])).toEqual([[7, fakeSha(600)]]);
      expect((await send(harness.baseUrl, githubDelivery('pull_request', pr('closed'), WEBHOOK_SECRET))).status).toBe(
        202,
      );
      expect(await previews()).toEqual([]);
    });
  });

  describe('operations', () => {
    it('answers /healthz and /readyz', async () => {
      expect((await fetch(`${harness.baseUrl}/healthz`)).status).toBe(200);
      expect(await (await fetch(`${harness.baseUrl}/readyz`)).json()).toEqual({ status: 'ready' });
    });

    it('exposes deliveries by event and outcome, enqueue latency and queue depth on /metrics', async () => {
      const text = await (await fetch(`${harness.baseUrl}/metrics`)).text();
      expect(text).toMatch(/plumbline_webhook_deliveries_total\{event="push",outcome="queued"\} \d+/);
      expect(text).toMatch(/plumbline_webhook_deliveries_total\{event="push",outcome="rejected"\} \d+/);
      expect(text).toMatch(/plumbline_webhook_enqueue_seconds_bucket\{le="0\.05",event="push"\} \d+/);
      expect(text).toMatch(/plumbline_queue_depth\{queue="sync",state="delayed"\} \d+/);
      expect(text).toMatch(/plumbline_webhook_deliveries_total\{event="push",outcome="too-large"\} [1-9]/);
    });

    it('counts ignored deliveries by reason', async () => {
      const tag = { ...pushPayload({ after: fakeSha(1) }), ref: 'refs/tags/v1' };
      expect(await send(harness.baseUrl, githubDelivery('push', tag, WEBHOOK_SECRET))).toEqual({
        status: 200,
        body: { ignored: 'tag-push' },
      });
      const text = await (await fetch(`${harness.baseUrl}/metrics`)).text();
      expect(text).toMatch(/plumbline_webhook_ignored_total\{event="push",reason="tag-push"\} [1-9]/);
    });

    it('never writes the webhook secret or a signature to its logs or answers', async () => {
      const delivery = githubDelivery('push', pushPayload({ after: fakeSha(1) }), 'wrong');
      const response = await send(harness.baseUrl, delivery);
      const everything = harness.logs.join('\n') + JSON.stringify(response.body);
      expect(harness.logs.length).toBeGreaterThan(10);
      expect(everything).not.toContain(WEBHOOK_SECRET);
      expect(everything).not.toContain(delivery.headers['x-hub-signature-256']!.slice(7));
    });
  });
});
