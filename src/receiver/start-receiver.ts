import { createServer, type Server } from 'node:http';
import { type EnvOptions, requireWebhookSecret } from '../config/read-env-options.ts';
import type { Logger } from '../logging/create-logger.ts';
import { createJobProducer } from '../queue/job-producer.ts';
import { logConnectionChanges } from '../queue/log-connection-changes.ts';
import { connectRedis, type RedisConnection, type RedisTopology } from '../redis/redis-topology.ts';
import { createClusterStateStore } from '../status/cluster-state.ts';
import {
  type Deadline,
  deadlineIn,
  drainDeadline,
  type ShutdownReport,
  shutdownSteps,
} from '../support/close-within.ts';
import { createBodyBudget } from './body-budget.ts';
import { createReceiverApp, MAX_WEBHOOK_BYTES } from './create-receiver-app.ts';
import { createDeliveryLedger } from './delivery-ledger.ts';
import { createReceiverMetrics } from './receiver-metrics.ts';

export interface RunningReceiver {
  readonly server: Server;
  readonly port: number;
  /**
   * Stops accepting, lets in-flight requests finish, then closes Redis, all by `deadline`; connections
   * still open by then are cut, and the report says so.
   */
  shutdown(deadline: Deadline): Promise<ShutdownReport>;
  /** `shutdown` within the shutdown grace (`PLUMBLINE_SHUTDOWN_GRACE_MS`) from now. */
  close(): Promise<void>;
}

/** Producer connection: fail fast while Redis is away (503), reconnect by itself when it is back. */
export function createProducerConnection(topology: RedisTopology): RedisConnection {
  return connectRedis(topology, {
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    commandTimeout: 5_000,
    connectTimeout: 5_000,
    retryStrategy: (attempt) => Math.min(attempt * 100, 2_000),
  });
}

export async function startReceiver(options: EnvOptions, logger: Logger): Promise<RunningReceiver> {
  const secrets = { current: requireWebhookSecret(options), previous: options.previousWebhookSecret };
  const bodyBudget = createBodyBudget(options.maxInflightBodies * MAX_WEBHOOK_BYTES);
  const redis = createProducerConnection(options.redis);
  logConnectionChanges(redis, logger);
  const producer = createJobProducer(redis, {
    prefix: options.queuePrefix,
    coalesceMs: options.pushCoalesceMs,
    onError: (error) => logger.debug({ error: error.message }, 'queue connection error'),
  });
  const clusters = createClusterStateStore(redis, options.queuePrefix, { logger });
  const metrics = createReceiverMetrics(producer, bodyBudget);
  const app = createReceiverApp({
    secrets,
    bodyBudget,
    producer,
    ledger: createDeliveryLedger(redis, options.queuePrefix),
    metrics,
    logger,
    enqueueTimeoutMs: 5_000,
    replication:
      options.redisWaitReplicas > 0
        ? { replicas: options.redisWaitReplicas, timeoutMs: options.redisWaitTimeoutMs }
        : undefined,
    isRedisReady: async () => redis.status === 'ready' && (await redis.ping()) === 'PONG',
    clusters,
    statusPage: {
      mode: options.statusPage,
      token: options.statusPageToken,
      secureCookie: options.publicUrl?.startsWith('https://') ?? false,
    },
  });
  // Timeouts are enforced when connections are checked: every 2 s rather than Node's default 30 s, so a
  // slow sender is cut close to the limits below.
  const server = await new Promise<Server>((resolve, reject) => {
    const listening = createServer({ connectionsCheckingInterval: 2_000 }, app);
    listening.once('error', reject);
    listening.listen(options.port, '0.0.0.0', () => resolve(listening));
  });
  // Slow senders cannot hold a socket for ever (slow-loris); GitHub sends a delivery in one go.
  server.requestTimeout = 30_000;
  server.headersTimeout = 10_000;
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : options.port;
  logger.info({ port }, 'receiver listening');
  const running: RunningReceiver = {
    server,
    port,
    async close() {
      await running.shutdown(deadlineIn(options.shutdownGraceMs));
    },
    async shutdown(deadline) {
      const steps = shutdownSteps('receiver', deadline);
      // A delivery in flight gets its answer (a 503 within its enqueue timeout when Redis is away).
      const requests = () =>
        new Promise<void>((resolve) => {
          server.close(() => resolve());
          server.closeIdleConnections();
        });
      await steps.run('requests in flight', requests, {
        by: drainDeadline(deadline),
        force: () => server.closeAllConnections(),
      });
      await steps.run('job producer', () => producer.close());
      // A connection that cannot take QUIT (Redis away: no offline queue) has nothing left to send.
      await steps.run('redis', () => redis.quit().catch(() => redis.disconnect()), { force: () => redis.disconnect() });
      const report = steps.report();
      if (report.gaveUp.length === 0 && report.failed.length === 0) logger.info('receiver stopped');
      else logger.warn(report, 'receiver stopped without finishing everything');
      return report;
    },
  };
  return running;
}
