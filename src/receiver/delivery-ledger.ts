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
    async release(deliveryId) {
      await redis.del(key(deliveryId));
    },
  };
}

function claimOf(answer: string): DeliveryClaim {
  if (answer === 'new' || answer === 'duplicate' || answer === 'in-flight') return answer;
  throw new Error(`unexpected answer from the delivery claim script: ${answer}`);
}
