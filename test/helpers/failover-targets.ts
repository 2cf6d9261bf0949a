import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { stopProcess } from '../../dev/local-stack/processes.ts';
import {
  infoField,
  parseClusterNodes,
  type RedisClusterNodeRecord,
  redisClusterNodesList,
  startRedisCluster,
  startRedisClusterNode,
  withClient,
} from '../../dev/local-stack/redis-cluster.ts';
import {
  primaryPortOf,
  redisSentinelsList,
  type SentinelNodeRecord,
  startRedisSentinel,
  startSentinelDataServer,
  stopRedisSentinel,
} from '../../dev/local-stack/redis-sentinel.ts';
import type { RedisTopologyEnv } from '../../src/redis/redis-topology.ts';

/**
 * A private replicated Redis a drill may crash: never the shared stack's. Which server is the primary is
 * asked of the topology itself (the cluster's own view, the sentinels), never assumed from start-up.
 */
export interface FailoverTarget {
  readonly kind: 'cluster' | 'sentinel';
  /** The variables that connect Plumbline to it (`REDIS_CLUSTER_NODES`, or `REDIS_SENTINELS` + name). */
  readonly env: RedisTopologyEnv;
  /** The port of the primary that serves `key` now; undefined while none does (mid-failover). */
  primaryOf(key: string): Promise<number | undefined>;
  /** SIGKILL of the data server on `port`: a crash, nothing flushed, no goodbye to its replicas. */
  kill(port: number): void;
  /** Starts the killed server again on its own data directory, to rejoin as a replica of the new primary. */
  restart(port: number, key: string): Promise<void>;
  /** Whether the server on `port` is a replica whose link to its primary is up. */
  isSyncedReplica(port: number): Promise<boolean>;
  /** The ports of the replicas of the primary that serves `key`. */
  replicasOf(key: string): Promise<number[]>;
  /** SIGSTOP / SIGCONT of the server on `port`: a replica that stops acknowledging, then catches up. */
  pause(port: number): void;
  resume(port: number): void;
  stop(): Promise<void>;
}

/** A 3-primary + 3-replica Redis Cluster (node timeout 3 s) in `dir`. */
export async function startClusterTarget(dir: string): Promise<FailoverTarget> {
  const record = await startRedisCluster({ dir: join(dir, 'cluster') });
  const nodes: RedisClusterNodeRecord[] = [...record.nodes];
  const killed = new Set<number>();
  const live = () => nodes.filter((node) => !killed.has(node.port));
  return {
    kind: 'cluster',
    env: { REDIS_CLUSTER_NODES: redisClusterNodesList(record) },
    async primaryOf(key) {
      // The first live node's view: the primary that owns the key's slot, unless it is flagged failing.
      for (const node of live()) {
        const owner = await withClient(node.port, async (client) => {
          const slot = Number(await client.call('CLUSTER', 'KEYSLOT', key));
          const view = parseClusterNodes(String(await client.call('CLUSTER', 'NODES')));
          const primary = view.find(
            (n) => n.flags.includes('master') && n.ranges.some(([from, to]) => slot >= from && slot <= to),
          );
          return primary && !primary.flags.some((flag) => flag.includes('fail')) ? primary.port : 0;
        });
        if (owner !== undefined) return owner === 0 || killed.has(owner) ? undefined : owner;
      }
      return undefined;
    },
    kill(port) {
      const node = nodes.find((n) => n.port === port);
      if (!node) throw new Error(`no cluster node on port ${port}`);
      killed.add(port);
      process.kill(node.pid, 'SIGKILL');
    },
    async restart(port) {
      const index = nodes.findIndex((n) => n.port === port);
      const node = nodes[index];
      if (!node) throw new Error(`no cluster node on port ${port}`);
      // Its nodes.conf names the cluster: it rejoins, learns its slots moved, and follows the new owner.
      nodes[index] = await startRedisClusterNode(node.dir, node.port, node.busPort);
      killed.delete(port);
    },
    isSyncedReplica: (port) => syncedReplica(port),
    async replicasOf(key) {
      for (const node of live()) {
        const replicas = await withClient(node.port, async (client) => {
          const slot = Number(await client.call('CLUSTER', 'KEYSLOT', key));
          const view = parseClusterNodes(String(await client.call('CLUSTER', 'NODES')));
          const primary = view.find(
            (n) => n.flags.includes('master') && n.ranges.some(([from, to]) => slot >= from && slot <= to),
          );
          return view.filter((n) => primary && n.primaryId === primary.id).map((n) => n.port);
        });
        if (replicas) return replicas;
      }
      return [];
    },
    pause: (port) => signal(nodes, port, 'SIGSTOP'),
    resume: (port) => signal(nodes, port, 'SIGCONT'),
    async stop() {
      for (const node of nodes) signal(nodes, node.port, 'SIGCONT');
      await Promise.all(nodes.map((node) => stopProcess(node.pid, node.command)));
    },
  };
}

/** One primary, two replicas and three sentinels (down after 2 s, quorum 2) in `dir`. */
export async function startSentinelTarget(dir: string): Promise<FailoverTarget> {
  const record = await startRedisSentinel({ dir: join(dir, 'sentinel') });
  const servers: SentinelNodeRecord[] = [...record.servers];
  const killed = new Set<number>();
  const target: FailoverTarget = {
    kind: 'sentinel',
    env: { REDIS_SENTINELS: redisSentinelsList(record), REDIS_SENTINEL_NAME: record.name },
    async primaryOf() {
      // The sentinels go on naming a dead primary until they have failed it over: ask it too.
      const port = await primaryPortOf(record);
      if (port === undefined || killed.has(port)) return undefined;
      const role = await withClient(port, async (client) =>
        infoField(String(await client.call('INFO', 'replication')), 'role'),
      );
      return role === 'master' ? port : undefined;
    },
    kill(port) {
      const server = servers.find((s) => s.port === port);
      if (!server) throw new Error(`no data server on port ${port}`);
      killed.add(port);
      process.kill(server.pid, 'SIGKILL');
    },
    async restart(port, key) {
      const index = servers.findIndex((s) => s.port === port);
      const server = servers[index];
      if (!server) throw new Error(`no data server on port ${port}`);
      const primary = await target.primaryOf(key);
      // As a replica of the new primary at once: restarted bare, it would be a stale primary until the
      // sentinels noticed it and turned it into a replica.
      servers[index] = await startSentinelDataServer(server.dir, server.port, primary);
      killed.delete(port);
    },
    isSyncedReplica: (port) => syncedReplica(port),
    async replicasOf(key) {
      const primary = await target.primaryOf(key);
      return servers.filter((s) => s.port !== primary && !killed.has(s.port)).map((s) => s.port);
    },
    pause: (port) => signal(servers, port, 'SIGSTOP'),
    resume: (port) => signal(servers, port, 'SIGCONT'),
    async stop() {
      for (const server of servers) signal(servers, server.port, 'SIGCONT');
      await stopRedisSentinel({ ...record, servers });
    },
  };
  return target;
}

function signal(
  processes: ReadonlyArray<{ readonly port: number; readonly pid: number }>,
  port: number,
  name: NodeJS.Signals,
): void {
  const found = processes.find((p) => p.port === port);
  if (!found) throw new Error(`no server on port ${port}`);
  try {
    process.kill(found.pid, name);
  } catch {
    // Already gone (killed by the drill): nothing to pause or resume.
  }
}

async function syncedReplica(port: number): Promise<boolean> {
  const info = await withClient(port, async (client) => String(await client.call('INFO', 'replication')));
  return info !== undefined && infoField(info, 'role') === 'slave' && infoField(info, 'master_link_status') === 'up';
}

/** Polls `probe` every 100 ms until it yields a value, or `timeoutMs` passed (then undefined). */
export async function pollFor<T>(probe: () => Promise<T | undefined>, timeoutMs: number): Promise<T | undefined> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe().catch(() => undefined);
    if (value !== undefined) return value;
    if (Date.now() > deadline) return undefined;
    await sleep(100);
  }
}
