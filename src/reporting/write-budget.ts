import { setTimeout as sleep } from 'node:timers/promises';
import { defineCommands } from '../redis/define-commands.ts';
import { redisKeys } from '../redis/redis-keys.ts';
import type { RedisConnection } from '../redis/redis-topology.ts';

export interface WriteBudgetOptions {
  readonly prefix: string;
  /** GitHub asks for at most ~80 content-creating requests per minute per installation. */
  readonly perMinute: number;
  /** Writes allowed back to back before the pace applies. */
  readonly burst: number;
  /** How a write waits for its token; `timers/promises`' setTimeout unless a test watches the waits. */
  readonly sleep?: (ms: number) => Promise<unknown>;
}

export interface WriteBudget {
  /** Resolves when the installation may make one more content write; shared by every worker. */
  take(installationId: number): Promise<void>;
}

/**
 * A token bucket per installation, in Redis so that all workers draw from one budget
 * (`src/redis/commands/take-write-token.lua`): RedisConnection's clock is the only clock, so workers with skewed
 * clocks still agree. A write that finds the bucket empty sleeps until a token will be there, then asks again.
 */
export function createWriteBudget(redis: RedisConnection, options: WriteBudgetOptions): WriteBudget {
  const scripts = defineCommands(redis);
  const keys = redisKeys(options.prefix);
  const wait = options.sleep ?? sleep;
  return {
    async take(installationId) {
      const bucket = keys.writeBudget(installationId);
      for (;;) {
        const ms = Number(await scripts.plumblineTakeWriteToken(bucket, options.perMinute, options.burst));
        if (ms === 0) return;
        await wait(ms);
      }
    },
  };
}
