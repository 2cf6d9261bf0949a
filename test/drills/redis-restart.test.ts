import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { Redis } from 'ioredis';
import { freePort } from '../../dev/local-stack/free-port.ts';
import { stopProcess } from '../../dev/local-stack/processes.ts';
import { type RedisRecord, startRedisServer } from '../../dev/local-stack/redis-server.ts';
import { createJobConsumer } from '../../workers/job-consumer.ts';
import { fakeSha, githubDelivery, pushPayload, send } from '../helpers/github-delivery.ts';
import { type ReceiverHarness, startReceiverHarness, WEBHOOK_SECRET } from '../helpers/receiver-harness.ts';

const DELIVERIES = 150;

/** Runs its own durable Redis (AOF, fsync always), which it kills and restarts mid-stream. */
describe('drill: Redis restarted under a steady stream of webhooks', () => {
  let dir: string;
  let port: number;
  let redis: RedisRecord;
  /** Two receivers and two workers share the queue, as replicas behind a load balancer do. */
  let receivers: ReceiverHarness[];
  const prefix = `drill-${Date.now().toString(36)}`;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'plumbline-redis-drill-'));
    port = await freePort();
    redis = await startRedisServer(dir, port, { name: 'drill', durable: true });
    const env = { PLUMBLINE_PUSH_COALESCE_MS: '20', PLUMBLINE_QUEUE_PREFIX: prefix };
    receivers = [await startReceiverHarness(redis.url, env), await startReceiverHarness(redis.url, env)];
  });
  afterAll(async () => {
    await Promise.all(receivers.map((r) => r.close()));
    await stopProcess(redis.pid, redis.command);
    await rm(dir, { recursive: true, force: true });
  });

  it('every delivery that got a 2xx is processed exactly once; the others got a 5xx', async () => {
    const connections = [0, 1].map(() => {
      const connection = new Redis(redis.url, { maxRetriesPerRequest: null });
      connection.on('error', () => {});
      return connection;
    });
    const processed = new Map<string, number>();
    const workers = connections.map((connection) =>
      createJobConsumer<void>({
        connection,
        prefix,
        queue: 'sync',
        concurrency: 4,
        process: async (job) => {
          processed.set(job.deliveryId, (processed.get(job.deliveryId) ?? 0) + 1);
        },
        onError: () => {},
      }),
    );
    const answers = new Map<string, number>();
    const sent = new Map<string, ReturnType<typeof githubDelivery>>();
    const redelivered: number[] = [];
    try {
      const restart = (async () => {
        await sleep(1_000);
        // A crash, not a shutdown: the process is killed; the AOF has every acknowledged write.
        process.kill(redis.pid, 'SIGKILL');
        await sleep(1_000);
        redis = await startRedisServer(dir, port, { name: 'drill', durable: true });
      })();
      for (let n = 1; n <= DELIVERIES; n += 1) {
        // One repository per delivery: nothing coalesces, every acknowledged delivery must run.
        const delivery = githubDelivery(
          'push',
          pushPayload({ after: fakeSha(n), repositoryId: 10_000 + n }),
          WEBHOOK_SECRET,
        );
        const id = delivery.headers['x-github-delivery'] ?? String(n);
        const [first, second] = n % 2 === 0 ? receivers : [...receivers].reverse();
        const response = await send(first?.baseUrl ?? '', delivery).catch(() => ({ status: 0 }));
        answers.set(id, response.status);
        sent.set(id, delivery);
        // Every tenth delivery is redelivered to the other receiver, as GitHub does on request.
        if (n % 10 === 0 && response.status === 202) {
          const again = await send(second?.baseUrl ?? '', delivery).catch(() => ({ status: 0 }));
          redelivered.push(again.status);
        }
        await sleep(25);
      }
      await restart;
      const acknowledged = [...answers].filter(([, status]) => status >= 200 && status < 300).map(([id]) => id);
      const refused = [...answers].filter(([, status]) => status < 200 || status >= 300);
      const deadline = Date.now() + 60_000;
      while (acknowledged.some((id) => !processed.has(id)) && Date.now() < deadline) await sleep(200);
      await sleep(1_000); // time for a duplicate to show up, if there were one

      expect(refused.length).toBeGreaterThan(0); // the outage was real
      // The receiver recovered by itself: the last deliveries of the stream were all acknowledged.
      expect([...answers.values()].slice(-20)).toEqual(Array.from({ length: 20 }, () => 202));
      for (const [, status] of refused) expect(status).toBeGreaterThanOrEqual(500);
      expect(acknowledged.filter((id) => processed.get(id) !== 1)).toEqual([]);
      // A redelivery of an acknowledged delivery, to the other receiver, is a duplicate (or a 5xx in the outage).
      expect(redelivered.filter((status) => status !== 200 && status < 500)).toEqual([]);
      expect(redelivered.filter((status) => status === 200).length).toBeGreaterThan(0);
      // Nothing ran twice. A refused delivery may still have run once — Redis can crash after it wrote the
      // job and before it answered — and GitHub's "Redeliver" of it must not run it again.
      expect([...processed.values()].filter((count) => count !== 1)).toEqual([]);
      const refusedButRun = [...processed.keys()].filter((id) => !acknowledged.includes(id));
      for (const id of refusedButRun) {
        const again = await send(receivers[0]?.baseUrl ?? '', sent.get(id)!);
        expect([200, 202]).toContain(again.status);
      }
      await sleep(1_000);
      expect(refusedButRun.filter((id) => processed.get(id) !== 1)).toEqual([]);
    } finally {
      await Promise.all(workers.map((w) => w.close()));
      for (const c of connections) c.disconnect();
    }
  }, 120_000);
});
