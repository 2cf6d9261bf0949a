import { readFileSync } from 'node:fs';
import type { RedisConnection } from './redis-topology.ts';

/**
 * Every Lua script Plumbline runs, one `.lua` file each under `./commands` (as BullMQ keeps
 * `src/commands/*.lua`; `npm run build` copies them next to the compiled code). A script without a fixed
 * number of keys takes that number as its first argument.
 */
const COMMANDS = {
  plumblineAcquireLease: { file: 'acquire-lease.lua', numberOfKeys: 2 },
  plumblineExtendLease: { file: 'extend-lease.lua', numberOfKeys: 1 },
  plumblineReleaseLease: { file: 'release-lease.lua', numberOfKeys: 1 },
  plumblineClaimDelivery: { file: 'claim-delivery.lua' },
  plumblineTakeWriteToken: { file: 'take-write-token.lua', numberOfKeys: 1 },
  plumblineSetFieldIfUnchanged: { file: 'set-field-if-unchanged.lua' },
  plumblineClaimStatus: { file: 'claim-status.lua', numberOfKeys: 1 },
} as const satisfies Record<string, { readonly file: string; readonly numberOfKeys?: number }>;

type CommandName = keyof typeof COMMANDS;

/** The scripts as ioredis methods; what each takes and returns is written at the top of its file. */
export interface PlumblineCommands {
  plumblineAcquireLease(lease: string, fence: string, holder: string, leaseMs: number): Promise<number>;
  plumblineExtendLease(lease: string, holder: string, leaseMs: number): Promise<number>;
  plumblineReleaseLease(lease: string, holder: string): Promise<number>;
  plumblineClaimDelivery(numberOfKeys: number, ...keysThenArgs: (string | number)[]): Promise<string>;
  plumblineTakeWriteToken(bucket: string, perMinute: number, burst: number): Promise<number>;
  plumblineSetFieldIfUnchanged(numberOfKeys: number, ...keysThenArgs: string[]): Promise<number>;
  plumblineClaimStatus(
    status: string,
    context: string,
    value: string,
    replaceFinal: string,
    claimMs: number,
    claimField: string,
    ttlSeconds: number,
  ): Promise<number>;
}

export type CommandRedis = RedisConnection & PlumblineCommands;

let sources: ReadonlyMap<CommandName, string> | undefined;

/** The scripts' text, read from disk once per process. */
function scriptSources(): ReadonlyMap<CommandName, string> {
  sources ??= new Map(
    Object.entries(COMMANDS).map(([name, { file }]) => [
      name as CommandName,
      readFileSync(new URL(`./commands/${file}`, import.meta.url), 'utf8'),
    ]),
  );
  return sources;
}

/**
 * Defines Plumbline's scripts on a connection (once: a connection that has them is returned as is).
 * ioredis runs them by EVALSHA and falls back to EVAL when Redis lost its script cache (a restart).
 */
export function defineCommands(redis: RedisConnection): CommandRedis {
  for (const [name, lua] of scriptSources()) {
    if (name in redis) continue;
    const spec = COMMANDS[name];
    redis.defineCommand(name, 'numberOfKeys' in spec ? { lua, numberOfKeys: spec.numberOfKeys } : { lua });
  }
  return redis as CommandRedis;
}
