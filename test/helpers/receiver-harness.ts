import { Writable } from 'node:stream';
import { Queue } from 'bullmq';
import { readEnvOptions } from '../../src/config/read-env-options.ts';
import { createLogger } from '../../src/logging/create-logger.ts';
import { QUEUE_NAMES } from '../../src/queue/jobs.ts';
import { createProducerConnection, type RunningReceiver, startReceiver } from '../../src/receiver/start-receiver.ts';
import { connectRedis, type RedisConnection, type RedisTopologyEnv } from '../../src/redis/redis-topology.ts';
import { uniqueName } from './environment.ts';

export const WEBHOOK_SECRET = 'test-webhook-secret-3f9a';

export interface ReceiverHarness {
  readonly baseUrl: string;
  readonly receiver: RunningReceiver;
  readonly prefix: string;
  /** Every log line the receiver wrote. */
  readonly logs: string[];
  readonly queues: { readonly sync: Queue; readonly preview: Queue };
  /** A plain connection for inspecting what the receiver stored. */
  readonly redis: RedisConnection;
  close(): Promise<void>;
}

/**
 * A real receiver on a loopback port, with its own queue prefix so tests never see each other's jobs.
 * `redisAt`: a URL, or the variables of another topology (Sentinel, Redis Cluster).
 */
export async function startReceiverHarness(
  redisAt: string | RedisTopologyEnv,
  env: Record<string, string> = {},
): Promise<ReceiverHarness> {
  const topologyEnv = typeof redisAt === 'string' ? { REDIS_URL: redisAt } : redisAt;
  const described = typeof redisAt === 'string' ? redisAt : JSON.stringify(redisAt);
  const logs: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      logs.push(chunk.toString('utf8'));
      done();
    },
  });
  const options = readEnvOptions({
    PORT: '0',
    ...topologyEnv,
    GITHUB_WEBHOOK_SECRET: WEBHOOK_SECRET,
    PLUMBLINE_QUEUE_PREFIX: uniqueName('test'),
    LOG_LEVEL: 'debug',
    ...env,
  });
  const receiver = await startReceiver(options, createLogger(options.logLevel, sink));
  const prefix = options.queuePrefix;
  const redis = createProducerConnection(options.redis);
  redis.on('error', () => {});
  const queueConnection = connectRedis(options.redis, { maxRetriesPerRequest: null });
  queueConnection.on('error', () => {});
  const queues = {
    sync: new Queue(QUEUE_NAMES.sync, { connection: queueConnection, prefix }),
    preview: new Queue(QUEUE_NAMES.preview, { connection: queueConnection, prefix }),
  };
  queues.sync.on('error', () => {});
  queues.preview.on('error', () => {});
  const baseUrl = `http://127.0.0.1:${receiver.port}`;
  // The receiver listens before Redis is connected (and answers 503 meanwhile); tests start once it is ready.
  const deadline = Date.now() + 15_000;
  while ((await fetch(`${baseUrl}/readyz`)).status !== 200) {
    if (Date.now() > deadline) throw new Error(`receiver not ready: Redis at ${described} unreachable`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return {
    baseUrl,
    receiver,
    prefix,
    logs,
    queues,
    redis,
    async close() {
      await receiver.close();
      await Promise.all([queues.sync.close(), queues.preview.close()]);
      queueConnection.disconnect();
      redis.disconnect();
    },
  };
}
