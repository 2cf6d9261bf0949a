import { defineCommands } from '../redis/define-commands.ts';
import { redisKeys } from '../redis/redis-keys.ts';
import type { RedisConnection } from '../redis/redis-topology.ts';

export type DeliveryClaim = 'new' | 'duplicate' | 'in-flight';

/** A key to write together with a successful claim (the newest job per branch, see ADR 2). */
export interface ClaimRecord {
  readonly key: string;
  readonly value: string;
  readonly ttlSeconds: number;
}

/**
 * Remembers deliveries by `X-GitHub-Delivery` so a redelivery is acknowledged, not queued again.
 * A claim starts `pending` with a short expiry and becomes `done` once its job is in Redis: if the
 * receiver dies in between, the claim lapses and GitHub's redelivery is processed rather than dropped.
 */
export interface DeliveryLedger {
  /** Claims the delivery and, only if the claim is new, writes `records` in the same round trip. */
  claim(deliveryId: string, records?: readonly ClaimRecord[]): Promise<DeliveryClaim>;
  confirm(deliveryId: string): Promise<void>;
  /**
   * `confirm`, then Redis' `WAIT replicas timeoutMs` on the same connection and primary, in one round trip:
   * how many replicas have every write of this delivery (the claim, the job, this confirmation — a replica
   * acknowledges an offset, and these were written before it). Fewer than asked after `timeoutMs` leaves the
   * writes on the primary: WAIT delays the answer, it undoes nothing.
   */
  confirmReplicated(deliveryId: string, replicas: number, timeoutMs: number): Promise<number>;
  release(deliveryId: string): Promise<void>;
}

const PENDING_SECONDS = 60;
/** Longer than GitHub keeps deliveries available for redelivery. */
const DONE_SECONDS = 7 * 24 * 60 * 60;

export function createDeliveryLedger(redis: RedisConnection, prefix: string): DeliveryLedger {
  const key = redisKeys(prefix).delivery;
  const scripts = defineCommands(redis);
  return {
    async claim(deliveryId, records = []) {
      const keys = [key(deliveryId), ...records.map((r) => r.key)];
      const args = [PENDING_SECONDS, ...records.flatMap((r) => [r.value, r.ttlSeconds])];
      return claimOf(await scripts.plumblineClaimDelivery(keys.length, ...keys, ...args));
    },
    async confirm(deliveryId) {
      await redis.set(key(deliveryId), 'done', 'EX', DONE_SECONDS);
    },
    async confirmReplicated(deliveryId, replicas, timeoutMs) {
      // WAIT names no key: in a pipeline with the SET, a Redis Cluster client sends both to the primary of the
      // key's slot — Plumbline's one slot, whose primary took the claim and the job.
      const results = await redis
        .pipeline()
        .set(key(deliveryId), 'done', 'EX', DONE_SECONDS)
        .call('WAIT', replicas, timeoutMs)
        .exec();
      const failure = results?.find(([error]) => error)?.[0];
      if (failure) throw failure;
      const acknowledged = Number(results?.[1]?.[1]);
      if (!Number.isInteger(acknowledged)) throw new Error('unexpected answer from WAIT');
      return acknowledged;
    },
    async release(deliveryId) {
      await redis.del(key(deliveryId));
    },
  };
}

function claimOf(answer: string): DeliveryClaim {
  if (answer === 'new' || answer === 'duplicate' || answer === 'in-flight') return answer;
  throw new Error(`unexpected answer from the delivery claim script: ${answer}`);
}
