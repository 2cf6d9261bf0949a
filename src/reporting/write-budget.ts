import { setTimeout as sleep } from 'node:timers/promises';
import type { Redis } from 'ioredis';

export interface WriteBudgetOptions {
  readonly prefix: string;
  /** GitHub asks for at most ~80 content-creating requests per minute per installation. */
  readonly perMinute: number;
  /** Writes allowed back to back before the pace applies. */
  readonly burst: number;
}

export interface WriteBudget {
  /** Resolves when the installation may make one more content write; shared by every worker. */
  take(installationId: number): Promise<void>;
}

/**
 * A token bucket per installation, in Redis so that all workers draw from one budget. Redis's clock
 * is the only clock, so workers with skewed clocks still agree. Returns 0 when a token was taken,
 * otherwise how many milliseconds until one will be there.
 */
const TAKE_TOKEN = `
local now = redis.call('TIME')
local nowMs = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local ratePerMs = tonumber(ARGV[1]) / 60000
local burst = tonumber(ARGV[2])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1]) or burst
local at = tonumber(state[2]) or nowMs
tokens = math.min(burst, tokens + (nowMs - at) * ratePerMs)
local wait = 0
if tokens >= 1 then
  tokens = tokens - 1
else
  wait = math.ceil((1 - tokens) / ratePerMs)
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(nowMs))
redis.call('PEXPIRE', KEYS[1], 120000)
return wait
`;

export function createWriteBudget(redis: Redis, options: WriteBudgetOptions): WriteBudget {
  return {
    async take(installationId) {
      const key = `${options.prefix}:github:budget:${installationId}`;
      for (;;) {
        const wait = Number(await redis.eval(TAKE_TOKEN, 1, key, options.perMinute, options.burst));
        if (wait === 0) return;
        await sleep(wait);
      }
    },
  };
}
