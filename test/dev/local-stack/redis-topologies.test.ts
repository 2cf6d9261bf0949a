import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { Redis } from 'ioredis';
import { isRunning } from '../../../dev/local-stack/processes.ts';
import {
  type ClusterNodeLine,
  parseClusterNodes,
  redisClusterHealthy,
  startRedisCluster,
  stopRedisCluster,
  withClient,
} from '../../../dev/local-stack/redis-cluster.ts';
import {
  primaryPortOf,
  redisSentinelHealthy,
  SENTINEL_NAME,
  startRedisSentinel,
  stopRedisSentinel,
} from '../../../dev/local-stack/redis-sentinel.ts';
import { readState, redisTopologiesEnv, renderEnvFile, stackDown } from '../../../dev/local-stack/stack.ts';
import { readEnvOptions } from '../../../src/config/read-env-options.ts';
import {
  connectRedis,
  keyPrefixFor,
  parseRedisTopology,
  type RedisConnection,
  type RedisTopology,
  type RedisTopologyEnv,
} from '../../../src/redis/redis-topology.ts';
import { testEnvironment, uniqueName } from '../../helpers/environment.ts';

const env = testEnvironment();
const local = env.stack === 'local';

function topology(variables: RedisTopologyEnv): RedisTopology {
  const parsed = parseRedisTopology(variables);
  if (!parsed.ok) throw new Error(parsed.problem);
  return parsed.topology;
}

/** The slot owner of a key: the primary whose ranges hold the key's slot. */
function ownerOf(nodes: readonly ClusterNodeLine[], slot: number): ClusterNodeLine | undefined {
  return nodes.find((n) => n.flags.includes('master') && n.ranges.some(([from, to]) => slot >= from && slot <= to));
}

const onLocalStack = local ? describe : describe.skip;

onLocalStack('the local stack’s Redis topologies', () => {
  it('are in the state file and in .local/env under names Plumbline itself does not read', async () => {
    const state = await readState(process.env.PLUMBLINE_TEST_STACK_DIR ?? '');
    expect(state?.redisTopologies?.cluster.nodes).toHaveLength(6);
    expect(state?.redisTopologies?.sentinel).toMatchObject({ name: SENTINEL_NAME });
    expect(state?.redisTopologies?.sentinel.servers).toHaveLength(3);
    expect(state?.redisTopologies?.sentinel.sentinels).toHaveLength(3);
    if (!state?.redisTopologies) return;
    const file = renderEnvFile(state);
    for (const [name, value] of redisTopologiesEnv(state.redisTopologies)) {
      expect(name).toMatch(/^PLUMBLINE_REDIS_/);
      expect(file).toContain(`export ${name}=${value}\n`);
      // What global-setup hands the tests is what the file names.
      expect(process.env[name.replace(/^PLUMBLINE_/, 'PLUMBLINE_TEST_')]).toBe(value);
    }
    // Sourcing the file and starting Plumbline still means the single Redis: the file is never refused.
    const fromFile = Object.fromEntries(
      file
        .trim()
        .split('\n')
        .map((line) => line.replace(/^export /, '').split(/=(.*)/s, 2) as [string, string]),
    );
    expect(readEnvOptions(fromFile).redis).toEqual({ kind: 'single', url: state.redis.url });
  });
});

describe('the Redis Cluster of the tests', () => {
  const variables = env.redisCluster;
  const maybe = variables ? it : it.skip;
  let cluster: RedisConnection;
  let nodes: ClusterNodeLine[];

  beforeAll(async () => {
    if (!variables) return;
    cluster = connectRedis(topology(variables), { maxRetriesPerRequest: 3 });
    cluster.on('error', () => {});
    const first = Number(variables.REDIS_CLUSTER_NODES.split(',')[0]?.split(':')[1]);
    nodes = parseClusterNodes(String(await withClient(first, (c) => c.call('CLUSTER', 'NODES'))));
  });
  afterAll(() => cluster?.disconnect());

  maybe('has three primaries owning all 16384 slots, each with one replica', () => {
    const primaries = nodes.filter((n) => n.flags.includes('master'));
    const replicas = nodes.filter((n) => n.flags.includes('slave'));
    expect(primaries).toHaveLength(3);
    expect(primaries.reduce((sum, n) => sum + n.slots, 0)).toBe(16_384);
    expect(replicas.map((r) => r.primaryId).sort()).toEqual(primaries.map((p) => p.id).sort());
  });

  maybe('stores a write on the primary that owns its slot, and replicates it to that primary’s replica', async () => {
    const key = `${uniqueName('slot')}:k`;
    await cluster.set(key, 'here', 'EX', 300);
    const slot = Number(await cluster.call('CLUSTER', 'KEYSLOT', key));
    const owner = ownerOf(nodes, slot);
    expect(owner).toBeDefined();
    if (!owner) return;
    // The owner has it; another primary answers MOVED to the owner instead of the value.
    expect(await withClient(owner.port, (c) => c.get(key))).toBe('here');
    const other = nodes.find((n) => n.flags.includes('master') && n.id !== owner.id);
    const moved = await withClient(other?.port ?? 0, (c) => c.get(key).catch((e: Error) => e.message));
    expect(moved).toBe(`MOVED ${slot} 127.0.0.1:${owner.port}`);
    // WAIT: the write reached the owner's replica before the answer.
    const replica = nodes.find((n) => n.primaryId === owner.id);
    expect(await withClient(owner.port, (c) => c.call('WAIT', '1', '5000'))).toBe(1);
    const onReplica = await withClient(replica?.port ?? 0, async (c: Redis) => {
      await c.call('READONLY');
      return c.get(key);
    });
    expect(onReplica).toBe('here');
  });

  maybe('refuses a script over keys of two slots (CROSSSLOT), and runs it over keys of the tagged prefix', async () => {
    const script = "redis.call('SET', KEYS[1], 'a', 'EX', 60); redis.call('SET', KEYS[2], 'b', 'EX', 60); return 1";
    const plain = uniqueName('plain');
    const a = `${plain}:lease:x`;
    const b = `${plain}:fence:x`;
    expect(await cluster.call('CLUSTER', 'KEYSLOT', a)).not.toBe(await cluster.call('CLUSTER', 'KEYSLOT', b));
    await expect(cluster.eval(script, 2, a, b)).rejects.toThrow(/CROSSSLOT/);
    const tagged = keyPrefixFor(plain, topology(variables ?? {}));
    expect(tagged).toBe(`{${plain}}`);
    await expect(cluster.eval(script, 2, `${tagged}:lease:x`, `${tagged}:fence:x`)).resolves.toBe(1);
  });

  maybe(
    'puts every key of a prefix on one slot by Redis’ own hash-tag rule, whatever braces the prefix holds',
    async () => {
      const slot = async (key: string) => Number(await cluster.call('CLUSTER', 'KEYSLOT', key));
      // Redis hashes the text between the first `{` and the first `}` after it, unless that is empty.
      for (const given of ['plumbline', '{team-a}', 'x{team-b}', 'a{}{b}', '{}c', 'open{brace', 'a}b', '{{d}}']) {
        const prefix = keyPrefixFor(given, topology(variables ?? {}));
        expect(prefix.startsWith(given) || prefix === `{${given}}`).toBe(true);
        // Keys whose suffixes hold braces of their own (a branch `feat}x`, a name with `{`).
        const keys = [`${prefix}:lock:c`, `${prefix}:latest:push:1:feat}x`, `${prefix}:fence:{y}`, `${prefix}:sync:id`];
        const slots = await Promise.all(keys.map(slot));
        expect({ given, slots: new Set(slots).size }).toEqual({ given, slots: 1 });
      }
    },
  );
});

describe('the Sentinel trio of the tests', () => {
  const variables = env.redisSentinel;
  const maybe = variables ? it : it.skip;
  const sentinelPorts = (variables?.REDIS_SENTINELS ?? '').split(',').map((entry) => Number(entry.split(':')[1]));

  maybe(
    'names one primary from every sentinel (SENTINEL get-master-addr-by-name), with two replicas in sync',
    async () => {
      const answers = await Promise.all(
        sentinelPorts.map((port) =>
          withClient(port, (c) => c.call('SENTINEL', 'GET-MASTER-ADDR-BY-NAME', variables?.REDIS_SENTINEL_NAME ?? '')),
        ),
      );
      const [first] = answers;
      expect(first).toEqual(['127.0.0.1', expect.stringMatching(/^\d+$/)]);
      expect(answers).toEqual([first, first, first]);
      const replication = await withClient(Number((first as string[])[1]), (c) => c.call('INFO', 'replication'));
      expect(String(replication)).toMatch(/^role:master\r?$/m);
      expect(String(replication)).toMatch(/^connected_slaves:2\r?$/m);
    },
  );

  maybe('carries a connection through the sentinels to that primary', async () => {
    const redis = connectRedis(topology(variables ?? {}), { maxRetriesPerRequest: 3 });
    redis.on('error', () => {});
    try {
      const key = `${uniqueName('sentinel')}:k`;
      await redis.set(key, 'through', 'EX', 300);
      const primary = await withClient(sentinelPorts[0] ?? 0, (c) =>
        c.call('SENTINEL', 'GET-MASTER-ADDR-BY-NAME', variables?.REDIS_SENTINEL_NAME ?? ''),
      );
      expect(await withClient(Number((primary as string[])[1]), (c) => c.get(key))).toBe('through');
    } finally {
      redis.disconnect();
    }
  });
});

describe('a private topology, as a drill would start one', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'redis-topologies-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('starts a Redis Cluster and a Sentinel trio, and local:down (stackDown) leaves none of their processes', async () => {
    const [cluster, sentinel] = await Promise.all([
      startRedisCluster({ dir: join(dir, 'cluster') }),
      startRedisSentinel({ dir: join(dir, 'sentinel') }),
    ]);
    const all = [...cluster.nodes, ...sentinel.servers, ...sentinel.sentinels];
    // A stack folder whose state names only these two (no apiservers, no Redis of its own).
    const stackDir = join(dir, 'stack');
    await mkdir(stackDir, { recursive: true });
    const state = { kubernetesVersion: 'none', clusters: [], redisTopologies: { cluster, sentinel } };
    await writeFile(join(stackDir, 'state.json'), JSON.stringify(state));
    try {
      expect(all).toHaveLength(12);
      expect(await primaryPortOf(sentinel)).toBe(sentinel.servers[0]?.port);
      await expect(redisClusterHealthy(cluster)).resolves.toBe(true);
      await expect(redisSentinelHealthy(sentinel)).resolves.toBe(true);
      await stackDown({ stackDir, log: () => {} });
      const alive = await Promise.all(all.map((p) => isRunning(p.pid, p.command)));
      expect(alive.filter(Boolean)).toEqual([]);
      await expect(redisClusterHealthy(cluster)).resolves.toBe(false);
    } finally {
      await Promise.all([stopRedisCluster(cluster), stopRedisSentinel(sentinel)]);
    }
  }, 120_000);
});
