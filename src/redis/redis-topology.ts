import { Cluster, Redis, type RedisOptions } from 'ioredis';

/** A connection to Plumbline's Redis, whatever its topology: every caller uses the commands both share. */
export type RedisConnection = Redis | Cluster;

export interface RedisNode {
  readonly host: string;
  readonly port: number;
}

/** Where Redis is (product.md, *Queue topology*): exactly one of the three forms. */
export type RedisTopology =
  | { readonly kind: 'single'; readonly url: string }
  | { readonly kind: 'sentinel'; readonly sentinels: readonly RedisNode[]; readonly name: string }
  | { readonly kind: 'cluster'; readonly nodes: readonly RedisNode[] };

export interface RedisTopologyEnv {
  readonly REDIS_URL?: string | undefined;
  readonly REDIS_SENTINELS?: string | undefined;
  readonly REDIS_SENTINEL_NAME?: string | undefined;
  readonly REDIS_CLUSTER_NODES?: string | undefined;
}

export type ParsedTopology =
  | { readonly ok: true; readonly topology: RedisTopology }
  | { readonly ok: false; readonly problem: string };

const DEFAULT_URL = 'redis://127.0.0.1:6379';

/**
 * The topology the environment names, or what is wrong with it (naming variables, never values, since a
 * URL may carry a password). Nothing set: one Redis on localhost. Pure.
 */
export function parseRedisTopology(env: RedisTopologyEnv): ParsedTopology {
  const set = (['REDIS_URL', 'REDIS_SENTINELS', 'REDIS_CLUSTER_NODES'] as const).filter((name) => env[name]);
  if (set.length > 1)
    return {
      ok: false,
      problem: `set exactly one of REDIS_URL, REDIS_SENTINELS, REDIS_CLUSTER_NODES (found ${set.join(' and ')})`,
    };
  if (env.REDIS_SENTINEL_NAME && !env.REDIS_SENTINELS)
    return { ok: false, problem: 'REDIS_SENTINEL_NAME is set without REDIS_SENTINELS' };
  if (env.REDIS_SENTINELS) {
    const sentinels = parseNodes(env.REDIS_SENTINELS);
    if (typeof sentinels === 'string') return { ok: false, problem: `REDIS_SENTINELS: ${sentinels}` };
    if (!env.REDIS_SENTINEL_NAME)
      return { ok: false, problem: 'REDIS_SENTINELS needs REDIS_SENTINEL_NAME: the name of the monitored primary' };
    return { ok: true, topology: { kind: 'sentinel', sentinels, name: env.REDIS_SENTINEL_NAME } };
  }
  if (env.REDIS_CLUSTER_NODES) {
    const nodes = parseNodes(env.REDIS_CLUSTER_NODES);
    if (typeof nodes === 'string') return { ok: false, problem: `REDIS_CLUSTER_NODES: ${nodes}` };
    return { ok: true, topology: { kind: 'cluster', nodes } };
  }
  const url = env.REDIS_URL ?? DEFAULT_URL;
  if (!/^rediss?:\/\//.test(url)) return { ok: false, problem: 'REDIS_URL: must be a redis:// or rediss:// URL' };
  return { ok: true, topology: { kind: 'single', url } };
}

/** `host:port,host:port`; a problem text when an entry is not one. */
function parseNodes(list: string): RedisNode[] | string {
  const nodes: RedisNode[] = [];
  for (const entry of list
    .split(',')
    .map((part) => part.trim())
    .filter(Boolean)) {
    const match = /^(\[[0-9a-fA-F:.]+\]|[^:\s]+):(\d{1,5})$/.exec(entry);
    const port = Number(match?.[2]);
    if (!match?.[1] || !Number.isInteger(port) || port < 1 || port > 65_535) return `"${entry}" is not host:port`;
    nodes.push({ host: match[1].replace(/^\[|\]$/g, ''), port });
  }
  return nodes.length > 0 ? nodes : 'needs at least one host:port';
}

/**
 * The key prefix for a topology. On Redis Cluster every key of one Lua script or BullMQ command must hash
 * to one slot, so the whole prefix is a hash tag (`{plumbline}`): all of Plumbline's keys and queues live
 * on one shard, replicated, as BullMQ requires (ADR 15). A prefix that already holds a tag is kept. Pure.
 */
export function keyPrefixFor(prefix: string, topology: RedisTopology): string {
  if (topology.kind !== 'cluster' || hashTagOf(prefix) !== undefined) return prefix;
  return `{${prefix}}`;
}

/**
 * The part of a key Redis Cluster hashes when it is not the whole key: the text between the first `{` and
 * the first `}` after it, when that is not empty (so `a{}{b}` has none: the whole key is hashed). Pure.
 */
export function hashTagOf(key: string): string | undefined {
  const open = key.indexOf('{');
  const close = open < 0 ? -1 : key.indexOf('}', open + 1);
  return close > open + 1 ? key.slice(open + 1, close) : undefined;
}

/** ioredis' own options, less the reply mapping (its types clash under `exactOptionalPropertyTypes`). */
export type ConnectionOptions = Omit<RedisOptions, 'replyMapping'>;

/** A connection with the caller's options (they decide retries and queueing), of the topology's class. */
export function connectRedis(topology: RedisTopology, options: ConnectionOptions = {}): RedisConnection {
  switch (topology.kind) {
    case 'single':
      return new Redis(topology.url, options);
    case 'sentinel':
      return new Redis({
        ...options,
        sentinels: topology.sentinels.map((node) => ({ ...node })),
        name: topology.name,
        // The primary can move: reconnect to whichever one the sentinels name now.
        ...(options.retryStrategy ? {} : { retryStrategy: (attempt: number) => Math.min(attempt * 100, 2_000) }),
      });
    case 'cluster': {
      const { retryStrategy, enableOfflineQueue, ...nodeOptions } = options;
      return new Cluster(
        topology.nodes.map((node) => ({ ...node })),
        {
          redisOptions: nodeOptions,
          enableOfflineQueue: enableOfflineQueue ?? true,
          ...(retryStrategy ? { clusterRetryStrategy: (times: number) => retryStrategy(times) ?? null } : {}),
          // A command to a primary that died is retried every `retryDelayOnFailover` ms, `maxRedirections`
          // times: ioredis' 16 × 100 ms is shorter than a failover (the node timeout, 15 s by default, and
          // an election), so it fails mid-failover. A caller that waits for Redis (the workers:
          // `maxRetriesPerRequest: null`) waits through one, up to a minute; the others still fail fast.
          ...(options.maxRetriesPerRequest === null ? { retryDelayOnFailover: 200, maxRedirections: 300 } : {}),
        },
      );
    }
  }
}

/** Another connection to the same Redis (a blocking reader needs its own), of the same class. */
export function duplicateConnection(connection: RedisConnection): RedisConnection {
  return connection instanceof Cluster ? connection.duplicate() : connection.duplicate();
}
