import { execFile } from 'node:child_process';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Redis } from 'ioredis';
import { freePort } from './free-port.ts';
import { isRunning, type ProcessRecord, startDaemon, stopProcess, waitUntilReady } from './processes.ts';
import { findRedisServer } from './redis-server.ts';

/** One `redis-server --cluster-enabled yes` on loopback; its data and `nodes.conf` live in `dir`. */
export interface RedisClusterNodeRecord extends ProcessRecord {
  readonly port: number;
  /** The cluster bus port, named explicitly: the default (port + 10000) may be past 65535 or taken. */
  readonly busPort: number;
  readonly dir: string;
}

/** A 3-primary + 3-replica Redis Cluster; which node is a primary is the cluster's to say (it moves on failover). */
export interface RedisClusterRecord {
  readonly nodes: readonly RedisClusterNodeRecord[];
}

export const CLUSTER_PRIMARIES = 3;
const CLUSTER_SIZE = CLUSTER_PRIMARIES * 2;
/** A primary unreachable this long is failed over by its replica: short, so drills fail over in seconds. */
export const CLUSTER_NODE_TIMEOUT_MS = 3_000;

/** Absolute path of `redis-cli` (Debian's `redis-tools`, a dependency of `redis-server`). */
export async function findRedisCli(): Promise<string> {
  for (const candidate of ['/usr/bin/redis-cli', '/usr/local/bin/redis-cli']) {
    const found = await promisify(execFile)(candidate, ['--version']).then(
      () => true,
      () => false,
    );
    if (found) return candidate;
  }
  throw new Error('redis-cli was not found: install it (`apt-get install -y redis-tools`)');
}

/**
 * Starts (or restarts, after a drill killed it) one cluster node in `dir`. A node restarted on a `dir` that
 * holds its `nodes.conf` rejoins the cluster it was part of, as a replica when its slots moved meanwhile.
 */
export async function startRedisClusterNode(
  dir: string,
  port: number,
  busPort: number,
): Promise<RedisClusterNodeRecord> {
  await mkdir(dir, { recursive: true });
  const command = await findRedisServer();
  const daemon = await startDaemon({
    what: `redis-server (cluster node) on port ${port}`,
    timeoutMs: 15_000,
    ready: () => answersPing(port),
    logFile: join(dir, 'redis.log'),
    command,
    args: [
      ...loopbackServerArgs(port, dir),
      '--cluster-enabled',
      'yes',
      '--cluster-config-file',
      'nodes.conf',
      '--cluster-port',
      String(busPort),
      '--cluster-node-timeout',
      String(CLUSTER_NODE_TIMEOUT_MS),
    ],
  });
  return { ...daemon, port, busPort, dir };
}

/**
 * The arguments every loopback Redis of the stack's topologies shares: `noeviction` (BullMQ requires it),
 * an append-only file fsynced on every write, no RDB snapshots.
 */
export function loopbackServerArgs(port: number, dir: string): string[] {
  return [
    '--port',
    String(port),
    '--bind',
    '127.0.0.1',
    '--dir',
    dir,
    '--save',
    '',
    '--appendonly',
    'yes',
    '--appendfsync',
    'always',
    '--maxmemory-policy',
    'noeviction',
  ];
}

export interface StartRedisClusterOptions {
  /** Each node gets `<dir>/node-<port>/`. */
  readonly dir: string;
  readonly log?: (line: string) => void;
}

/**
 * Six nodes, joined by `redis-cli --cluster create … --cluster-replicas 1`, and ready: every node agrees
 * on three primaries owning all 16384 slots, each with a replica in sync. Nothing is leaked on failure.
 */
export async function startRedisCluster(options: StartRedisClusterOptions): Promise<RedisClusterRecord> {
  const ports = await distinctFreePorts(CLUSTER_SIZE * 2);
  const starting = await Promise.allSettled(
    Array.from({ length: CLUSTER_SIZE }, (_, i) => {
      const port = ports[i * 2] as number;
      return startRedisClusterNode(join(options.dir, `node-${port}`), port, ports[i * 2 + 1] as number);
    }),
  );
  const nodes = starting.flatMap((result) => (result.status === 'fulfilled' ? [result.value] : []));
  const record: RedisClusterRecord = { nodes };
  try {
    const failure = starting.find((result) => result.status === 'rejected');
    if (failure) throw failure.reason;
    options.log?.(`joining redis-server on ports ${nodes.map((n) => n.port).join(', ')} into a Redis Cluster`);
    await promisify(execFile)(
      await findRedisCli(),
      ['--cluster', 'create', ...nodes.map((n) => `127.0.0.1:${n.port}`), '--cluster-replicas', '1', '--cluster-yes'],
      { timeout: 60_000 },
    );
    await waitUntilReady(() => redisClusterReady(record), {
      what: 'the Redis Cluster',
      timeoutMs: 45_000,
      logFile: join(options.dir, `node-${ports[0]}`, 'redis.log'),
    });
    return record;
  } catch (error) {
    await stopRedisCluster(record);
    throw error;
  }
}

/** Every node runs and agrees that the cluster is whole (as `startRedisCluster` leaves it). */
export async function redisClusterHealthy(record: RedisClusterRecord): Promise<boolean> {
  const alive = await Promise.all(record.nodes.map((node) => isRunning(node.pid, node.command)));
  return alive.every(Boolean) && (await redisClusterReady(record).catch(() => false));
}

export async function stopRedisCluster(record: RedisClusterRecord): Promise<void> {
  await Promise.all(record.nodes.map((node) => stopProcess(node.pid, node.command)));
}

/** `127.0.0.1:p1,…` — the value of `REDIS_CLUSTER_NODES`. */
export function redisClusterNodesList(record: RedisClusterRecord): string {
  return record.nodes.map((node) => `127.0.0.1:${node.port}`).join(',');
}

/**
 * True when every node says `cluster_state:ok`, sees the same six nodes (three primaries with slots, three
 * replicas each following one), none flagged failing or in handshake, and every replica's link is up.
 */
async function redisClusterReady(record: RedisClusterRecord): Promise<boolean> {
  if (record.nodes.length !== CLUSTER_SIZE) return false;
  const views = await Promise.all(record.nodes.map((node) => nodeSeesWholeCluster(node.port)));
  return views.every((whole) => whole === true);
}

async function nodeSeesWholeCluster(port: number): Promise<boolean | undefined> {
  return withClient(port, async (client) => {
    const info = String(await client.call('CLUSTER', 'INFO'));
    const nodes = parseClusterNodes(String(await client.call('CLUSTER', 'NODES')));
    const replication = String(await client.call('INFO', 'replication'));
    const primaries = nodes.filter((n) => n.flags.includes('master') && n.slots > 0);
    const replicas = nodes.filter((n) => n.flags.includes('slave') && n.primaryId !== '-');
    const troubled = nodes.some((n) => n.flags.some((f) => /fail|handshake|noaddr/.test(f)) || !n.connected);
    const slots = primaries.reduce((sum, n) => sum + n.slots, 0);
    const isReplica = infoField(replication, 'role') === 'slave';
    return (
      infoField(info, 'cluster_state') === 'ok' &&
      nodes.length === CLUSTER_SIZE &&
      primaries.length === CLUSTER_PRIMARIES &&
      replicas.length === CLUSTER_PRIMARIES &&
      slots === 16_384 &&
      !troubled &&
      (!isReplica || infoField(replication, 'master_link_status') === 'up')
    );
  });
}

/** One `name:value` field of an `INFO` or `CLUSTER INFO` reply (lines end in CRLF). Pure. */
export function infoField(reply: string, name: string): string | undefined {
  for (const line of reply.split(/\r?\n/)) {
    if (line.startsWith(`${name}:`)) return line.slice(name.length + 1);
  }
  return undefined;
}

/** One line of `CLUSTER NODES`, as far as readiness and the tests need it. */
export interface ClusterNodeLine {
  readonly id: string;
  readonly port: number;
  readonly flags: readonly string[];
  /** The primary a replica follows; `-` for a primary. */
  readonly primaryId: string;
  readonly connected: boolean;
  /** How many slots it serves. */
  readonly slots: number;
  /** Its slot ranges, inclusive. */
  readonly ranges: ReadonlyArray<readonly [number, number]>;
}

/** `<id> <ip:port@bus> <flags> <primary> <ping> <pong> <epoch> <link> <slot>…`. Pure. */
export function parseClusterNodes(text: string): ClusterNodeLine[] {
  return text
    .split('\n')
    .map((line) => line.trim())
    .filter(Boolean)
    .map((line) => {
      const [id = '', address = '', flags = '', primaryId = '-', , , , link = '', ...slotFields] = line.split(' ');
      const ranges = slotFields
        .filter((field) => !field.startsWith('['))
        .map((field): [number, number] => {
          const [from, to] = field.split('-').map(Number);
          return [from ?? 0, to ?? from ?? 0];
        });
      return {
        id,
        port: Number(/:(\d+)@/.exec(address)?.[1]),
        flags: flags.split(','),
        primaryId,
        connected: link === 'connected',
        slots: ranges.reduce((sum, [from, to]) => sum + to - from + 1, 0),
        ranges,
      };
    });
}

/** A plain (non-cluster) connection to one node on loopback, closed afterwards; undefined when it does not answer. */
export async function withClient<T>(port: number, use: (client: Redis) => Promise<T>): Promise<T | undefined> {
  const client = new Redis({
    host: '127.0.0.1',
    port,
    lazyConnect: true,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
    connectTimeout: 2_000,
  });
  client.on('error', () => {});
  try {
    await client.connect();
    return await use(client);
  } catch {
    return undefined;
  } finally {
    client.disconnect();
  }
}

async function answersPing(port: number): Promise<boolean> {
  return (await withClient(port, (client) => client.ping())) === 'PONG';
}

/** `count` ports nothing listens on, all different (freePort may hand out the same one twice). */
export async function distinctFreePorts(count: number): Promise<number[]> {
  const ports = new Set<number>();
  while (ports.size < count) ports.add(await freePort());
  return [...ports];
}
