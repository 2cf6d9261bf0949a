import type { Redis } from 'ioredis';

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

/** KEYS[1] delivery, KEYS[2..] records; ARGV[1] pending ttl, then value and ttl per record. */
const CLAIM_SCRIPT = `
if redis.call('SET', KEYS[1], 'pending', 'EX', ARGV[1], 'NX') then
  for i = 2, #KEYS do
    redis.call('SET', KEYS[i], ARGV[i * 2 - 2], 'EX', ARGV[i * 2 - 1])
  end
  return 'new'
end
if redis.call('GET', KEYS[1]) == 'done' then return 'duplicate' end
return 'in-flight'
`;

type LedgerRedis = Redis & {
  plumblineClaim(numberOfKeys: number, ...args: (string | number)[]): Promise<DeliveryClaim>;
};

export function createDeliveryLedger(redis: Redis, prefix: string): DeliveryLedger {
  const key = (deliveryId: string) => `${prefix}:delivery:${deliveryId}`;
  if (!('plumblineClaim' in redis)) redis.defineCommand('plumblineClaim', { lua: CLAIM_SCRIPT });
  const scripted = redis as LedgerRedis;
  return {
    claim(deliveryId, records = []) {
      const keys = [key(deliveryId), ...records.map((r) => r.key)];
      const args = [PENDING_SECONDS, ...records.flatMap((r) => [r.value, r.ttlSeconds])];
      return scripted.plumblineClaim(keys.length, ...keys, ...args);
    },
    async confirm(deliveryId) {
      await redis.set(key(deliveryId), 'done', 'EX', DONE_SECONDS);
    },
    async release(deliveryId) {
      await redis.del(key(deliveryId));
    },
  };
}
