import type { Logger } from '../logging/create-logger.ts';
import type { RedisConnection } from '../redis/redis-topology.ts';

/** One line when Redis goes away and one when it is back, not one per reconnect attempt. */
export function logConnectionChanges(redis: RedisConnection, logger: Logger): void {
  let lost = false;
  redis.on('error', (error: Error) => {
    if (!lost) logger.warn({ error: error.message }, 'redis unavailable; retrying');
    lost = true;
  });
  redis.on('ready', () => {
    if (lost) logger.info('redis available again');
    lost = false;
  });
}
