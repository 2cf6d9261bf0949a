import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { isRunning, type ProcessRecord, startDaemon, stopProcess, waitUntilReady } from './processes.ts';
import { distinctFreePorts, infoField, loopbackServerArgs, withClient } from './redis-cluster.ts';
import { findRedisServer } from './redis-server.ts';

/** The name the sentinels monitor the primary by: the value of `REDIS_SENTINEL_NAME`. */
export const SENTINEL_NAME = 'plumbline-main';
/** A primary silent this long is down for a sentinel; two agreeing (the quorum) start a failover. */
export const SENTINEL_DOWN_AFTER_MS = 2_000;
export const SENTINEL_FAILOVER_TIMEOUT_MS = 10_000;
export const SENTINEL_QUORUM = 2;

/** A redis-server (data) or a sentinel on loopback; its files live in `dir`. */
export interface SentinelNodeRecord extends ProcessRecord {
  readonly port: number;
  readonly dir: string;
}

/**
 * One primary, two replicas and three sentinels. `servers[0]` was the primary at start-up; after a failover
 * the sentinels name another one (`SENTINEL get-master-addr-by-name`), so ask them, not this record.
 */
export interface RedisSentinelRecord {
  readonly name: string;
  readonly servers: readonly SentinelNodeRecord[];
  readonly sentinels: readonly SentinelNodeRecord[];
}

/**
 * Starts (or restarts, after a drill killed it) one data server in `dir`, a replica of `replicaOf` when given.
 * An old primary restarted without it comes back as a primary; the sentinels turn it into a replica.
 */
export async function startSentinelDataServer(
  dir: string,
  port: number,
  replicaOf?: number,
): Promise<SentinelNodeRecord> {
  await mkdir(dir, { recursive: true });
  const command = await findRedisServer();
  const daemon = await startDaemon({
    what: `redis-server on port ${port}`,
    timeoutMs: 15_000,
    ready: async () => (await withClient(port, (client) => client.ping())) === 'PONG',
    logFile: join(dir, 'redis.log'),
    command,
    args: [...loopbackServerArgs(port, dir), ...(replicaOf ? ['--replicaof', '127.0.0.1', String(replicaOf)] : [])],
  });
  return { ...daemon, port, dir };
}

/**
 * Starts one sentinel from `<dir>/sentinel.conf`, written here on first start only: the sentinel rewrites
 * it with what it learns (its id, the other sentinels, the replicas, a failover's new primary), and a
 * restarted sentinel carries on from that.
 */
export async function startSentinel(dir: string, port: number, primaryPort: number): Promise<SentinelNodeRecord> {
  await mkdir(dir, { recursive: true });
  const conf = join(dir, 'sentinel.conf');
  const text = [
    `port ${port}`,
    'bind 127.0.0.1',
    `dir ${dir}`,
    `sentinel monitor ${SENTINEL_NAME} 127.0.0.1 ${primaryPort} ${SENTINEL_QUORUM}`,
    `sentinel down-after-milliseconds ${SENTINEL_NAME} ${SENTINEL_DOWN_AFTER_MS}`,
    `sentinel failover-timeout ${SENTINEL_NAME} ${SENTINEL_FAILOVER_TIMEOUT_MS}`,
    `sentinel parallel-syncs ${SENTINEL_NAME} 1`,
    '',
  ].join('\n');
  // `wx`: never overwrite what a sentinel wrote back (a restart keeps its view of the failover).
  await writeFile(conf, text, { flag: 'wx', mode: 0o600 }).catch((error: NodeJS.ErrnoException) => {
    if (error.code !== 'EEXIST') throw error;
  });
  const command = await findRedisServer();
  const daemon = await startDaemon({
    what: `redis-sentinel on port ${port}`,
    timeoutMs: 15_000,
    ready: async () => (await withClient(port, (client) => client.ping())) === 'PONG',
    logFile: join(dir, 'sentinel.log'),
    command,
    // Debian's redis-sentinel is redis-server under another name: `--sentinel` needs only redis-server.
    args: [conf, '--sentinel'],
  });
  return { ...daemon, port, dir };
}

export interface StartRedisSentinelOptions {
  /** Servers get `<dir>/server-<port>/`, sentinels `<dir>/sentinel-<port>/`. */
  readonly dir: string;
  readonly log?: (line: string) => void;
}

/**
 * The primary, then its two replicas (in sync), then three sentinels, ready once every sentinel knows both
 * replicas and the other two sentinels (`SENTINEL CKQUORUM`: a failover can be authorised). Nothing leaks on failure.
 */
export async function startRedisSentinel(options: StartRedisSentinelOptions): Promise<RedisSentinelRecord> {
  const [primaryPort, ...rest] = await distinctFreePorts(6);
  const servers: SentinelNodeRecord[] = [];
  const sentinels: SentinelNodeRecord[] = [];
  const record: RedisSentinelRecord = { name: SENTINEL_NAME, servers, sentinels };
  const serverDir = (port: number) => join(options.dir, `server-${port}`);
  try {
    const primary = primaryPort as number;
    servers.push(await startSentinelDataServer(serverDir(primary), primary));
    await startAllInto(
      servers,
      rest.slice(0, 2).map((port) => () => startSentinelDataServer(serverDir(port), port, primary)),
    );
    await waitUntilReady(() => replicasInSync(primary, 2), {
      what: `the replicas of redis-server on port ${primary}`,
      timeoutMs: 30_000,
      logFile: join(serverDir(rest[0] as number), 'redis.log'),
    });
    options.log?.(`starting 3 sentinels for ${SENTINEL_NAME} (primary on port ${primary})`);
    await startAllInto(
      sentinels,
      rest.slice(2).map((port) => () => startSentinel(join(options.dir, `sentinel-${port}`), port, primary)),
    );
    await waitUntilReady(() => sentinelsReady(record), {
      what: `the sentinels of ${SENTINEL_NAME}`,
      timeoutMs: 30_000,
      logFile: join(options.dir, `sentinel-${rest[2]}`, 'sentinel.log'),
    });
    return record;
  } catch (error) {
    await stopRedisSentinel(record);
    throw error;
  }
}

/** Starts all at once; what started is in `into` even when another one failed (then rethrown). */
async function startAllInto(
  into: SentinelNodeRecord[],
  starts: ReadonlyArray<() => Promise<SentinelNodeRecord>>,
): Promise<void> {
  const results = await Promise.allSettled(starts.map((start) => start()));
  for (const result of results) if (result.status === 'fulfilled') into.push(result.value);
  const failure = results.find((result) => result.status === 'rejected');
  if (failure) throw failure.reason;
}

/** Every process runs, and the sentinels name a primary that answers. */
export async function redisSentinelHealthy(record: RedisSentinelRecord): Promise<boolean> {
  const all = [...record.servers, ...record.sentinels];
  const alive = await Promise.all(all.map((node) => isRunning(node.pid, node.command)));
  if (!alive.every(Boolean) || all.length !== 6) return false;
  const primary = await primaryPortOf(record);
  return primary !== undefined && (await withClient(primary, (client) => client.ping())) === 'PONG';
}

/** Sentinels first, so that none of them fails over a primary that is only being shut down. */
export async function stopRedisSentinel(record: RedisSentinelRecord): Promise<void> {
  await Promise.all(record.sentinels.map((node) => stopProcess(node.pid, node.command)));
  await Promise.all(record.servers.map((node) => stopProcess(node.pid, node.command)));
}

/** `127.0.0.1:s1,…` — the value of `REDIS_SENTINELS`. */
export function redisSentinelsList(record: RedisSentinelRecord): string {
  return record.sentinels.map((node) => `127.0.0.1:${node.port}`).join(',');
}

/** The port of the primary the first sentinel that answers names now. */
export async function primaryPortOf(record: RedisSentinelRecord): Promise<number | undefined> {
  for (const sentinel of record.sentinels) {
    const address = await withClient(sentinel.port, (client) =>
      client.call('SENTINEL', 'GET-MASTER-ADDR-BY-NAME', record.name),
    );
    if (Array.isArray(address) && address.length === 2) return Number(address[1]);
  }
  return undefined;
}

async function replicasInSync(primaryPort: number, count: number): Promise<boolean> {
  const info = await withClient(primaryPort, async (client) => String(await client.call('INFO', 'replication')));
  if (!info || Number(infoField(info, 'connected_slaves')) !== count) return false;
  return Array.from({ length: count }, (_, i) => infoField(info, `slave${i}`)).every((line) =>
    line?.includes('state=online'),
  );
}

async function sentinelsReady(record: RedisSentinelRecord): Promise<boolean> {
  const ready = await Promise.all(
    record.sentinels.map((sentinel) =>
      withClient(sentinel.port, async (client) => {
        const quorum = String(await client.call('SENTINEL', 'CKQUORUM', record.name));
        const replicas = await client.call('SENTINEL', 'REPLICAS', record.name);
        return (
          quorum.startsWith(`OK ${record.sentinels.length} usable`) && Array.isArray(replicas) && replicas.length === 2
        );
      }),
    ),
  );
  return record.sentinels.length === 3 && ready.every((ok) => ok === true);
}
