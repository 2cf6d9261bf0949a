import type { Redis } from 'ioredis';

export type DeliveryClaim = 'new' | 'duplicate' | 'in-flight';

/**
 * Remembers deliveries by `X-GitHub-Delivery` so a redelivery is acknowledged, not queued again.
 * A claim starts `pending` with a short expiry and becomes `done` once its job is in Redis: if the
 * receiver dies in between, the claim lapses and GitHub's redelivery is processed rather than dropped.
 */
export interface DeliveryLedger {
  claim(deliveryId: string): Promise<DeliveryClaim>;
  confirm(deliveryId: string): Promise<void>;
  release(deliveryId: string): Promise<void>;
}

const PENDING_SECONDS = 60;
/** Longer than GitHub keeps deliveries available for redelivery. */
const DONE_SECONDS = 7 * 24 * 60 * 60;

export function createDeliveryLedger(redis: Redis, prefix: string): DeliveryLedger {
  const key = (deliveryId: string) => `${prefix}:delivery:${deliveryId}`;
  return {
    async claim(deliveryId) {
      const claimed = await redis.set(key(deliveryId), 'pending', 'EX', PENDING_SECONDS, 'NX');
      if (claimed === 'OK') return 'new';
      return (await redis.get(key(deliveryId))) === 'done' ? 'duplicate' : 'in-flight';
    },
    async confirm(deliveryId) {
      await redis.set(key(deliveryId), 'done', 'EX', DONE_SECONDS);
    },
    async release(deliveryId) {
      await redis.del(key(deliveryId));
    },
  };
}
