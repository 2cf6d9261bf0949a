import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { type ChartRepositoryRecord, startChartRepository } from './chart-repository.ts';
import {
  type ClusterRecord,
  type EtcdRecord,
  startCluster,
  startEtcd,
  writeSharedCredentials,
} from './control-plane.ts';
import { freePort } from './free-port.ts';
import { type OciRegistryRecord, startOciRegistry } from './oci-registry.ts';
import { isRunning, stopProcess } from './processes.ts';
import {
  type RedisClusterRecord,
  redisClusterHealthy,
  redisClusterNodesList,
  startRedisCluster,
  stopRedisCluster,
} from './redis-cluster.ts';
import {
  type RedisSentinelRecord,
  redisSentinelHealthy,
  redisSentinelsList,
  startRedisSentinel,
  stopRedisSentinel,
} from './redis-sentinel.ts';
import { pingRedis, type RedisRecord, startRedisServer } from './redis-server.ts';
import { withProcessLock } from './stack-lock.ts';
import {
  type ControlPlaneBinaries,
  ensureControlPlaneBinaries,
  ensureHelm4,
  ensureRegistry,
  type PinnedBinary,
} from './toolchain.ts';

/** What `local:up` started, kept in `<stackDir>/state.json` so `local:down` and a second `local:up` find it. */
export interface StackState {
  readonly kubernetesVersion: string;
  readonly redis: RedisRecord;
  readonly etcd: EtcdRecord;
  readonly clusters: readonly ClusterRecord[];
  /** Started after the control plane, and restarted on their own when down (Redis and the apiservers stay up). */
  readonly charts?: ChartServicesRecord;
  /** The other two Redis topologies (ADR 15), restarted on their own when down, like the chart services. */
  readonly redisTopologies?: RedisTopologiesRecord;
}

/** A 3-primary + 3-replica Redis Cluster and a Sentinel-managed primary with two replicas, on loopback. */
export interface RedisTopologiesRecord {
  readonly cluster: RedisClusterRecord;
  readonly sentinel: RedisSentinelRecord;
}

/** What the Helm tests use: the pinned Helm 4, an OCI registry and a chart repository, both with credentials. */
export interface ChartServicesRecord {
  readonly helm: PinnedBinary;
  readonly registry: OciRegistryRecord;
  readonly repository: ChartRepositoryRecord;
}

export interface StackOptions {
  /** Runtime folder (`.local/`): state, logs, data, kubeconfigs and the `env` file. */
  readonly stackDir: string;
  readonly goDir: string;
  readonly cacheDir: string;
  readonly log: (line: string) => void;
}

/** The two clusters every stack has; the second makes multi-cluster behaviour testable. */
export const CLUSTER_NAMES = ['local-a', 'local-b'] as const;

/**
 * Starts Redis, etcd and two apiservers (each with a controller manager), then the chart services (OCI
 * registry, chart repository); reuses whatever part of a running stack is healthy.
 */
export async function stackUp(options: StackOptions): Promise<StackState> {
  await mkdir(options.stackDir, { recursive: true });
  // Several test runs may start at once (one per agent or terminal): one of them starts what is missing,
  // the others wait and then reuse it, instead of building twice and leaking a second set of servers.
  const lock = { timeoutMs: 45 * 60_000, onWait: () => options.log('another local:up is running; waiting for it') };
  return withProcessLock(join(options.stackDir, 'up.lock'), lock, async () => {
    const core = await controlPlaneUp(options);
    const state = await redisTopologiesUp(await chartServicesUp(core, options), options);
    if (state !== core) await writeStateFiles(options.stackDir, state);
    else await writeEnvFile(options.stackDir, state);
    return state;
  });
}

async function controlPlaneUp(options: StackOptions): Promise<StackState> {
  const existing = await readState(options.stackDir);
  if (existing && (await isHealthy(existing))) {
    options.log(`local stack already running (Kubernetes ${existing.kubernetesVersion})`);
    return existing;
  }
  if (existing) {
    options.log('local stack is partly down; restarting it');
    await stopAll(existing);
  }
  const binaries = await ensureControlPlaneBinaries(options);
  await rm(join(options.stackDir, 'run'), { recursive: true, force: true });
  const runDir = join(options.stackDir, 'run');
  await mkdir(runDir, { recursive: true });
  const started: StackPieces = {};
  try {
    return await startAll(binaries, runDir, options, started);
  } catch (error) {
    await stopAll(started);
    throw error;
  }
}

type StackPieces = { redis?: RedisRecord; etcd?: EtcdRecord; clusters?: ClusterRecord[] };

async function startAll(
  binaries: ControlPlaneBinaries,
  runDir: string,
  options: StackOptions,
  started: StackPieces,
): Promise<StackState> {
  options.log('starting redis-server');
  const redis = await startRedisServer(runDir, await freePort());
  started.redis = redis;
  options.log(`starting etcd ${binaries.etcdVersion}`);
  const etcd = await startEtcd(binaries, runDir, [await freePort(), await freePort()]);
  started.etcd = etcd;
  const credentials = await writeSharedCredentials(join(runDir, 'credentials'));
  options.log(`starting kube-apiserver ${binaries.kubernetesVersion} for ${CLUSTER_NAMES.join(' and ')}`);
  const starting = await Promise.allSettled(
    CLUSTER_NAMES.map(async (name) => {
      const dir = join(runDir, name);
      await mkdir(dir, { recursive: true });
      return startCluster(binaries, { name, dir, port: await freePort(), etcd, credentials });
    }),
  );
  const clusters = starting.flatMap((result) => (result.status === 'fulfilled' ? [result.value] : []));
  started.clusters = clusters;
  const failure = starting.find((result) => result.status === 'rejected');
  if (failure) throw failure.reason;
  const state: StackState = { kubernetesVersion: binaries.kubernetesVersion, redis, etcd, clusters };
  await writeStateFiles(options.stackDir, state);
  options.log(`local stack ready; load it with: . ${join(options.stackDir, 'env')}`);
  return state;
}

/** Keeps healthy chart services; otherwise builds what is missing and (re)starts both, in `run/charts/`. */
async function chartServicesUp(state: StackState, options: StackOptions): Promise<StackState> {
  if (state.charts && (await chartServicesHealthy(state.charts))) return state;
  if (state.charts) {
    options.log('chart services are down; restarting them');
    await stopChartServices(state.charts);
  }
  const helm = await ensureHelm4(options);
  const registryBinary = await ensureRegistry(options);
  const dir = join(options.stackDir, 'run', 'charts');
  await rm(dir, { recursive: true, force: true });
  await mkdir(join(dir, 'registry'), { recursive: true });
  await mkdir(join(dir, 'repository'), { recursive: true });
  options.log(`starting the OCI registry ${registryBinary.version} and the chart repository`);
  const [registry, repository] = await Promise.allSettled([
    freePort().then((port) => startOciRegistry(registryBinary, join(dir, 'registry'), port)),
    freePort().then((port) => startChartRepository(join(dir, 'repository'), port)),
  ]);
  if (registry.status === 'rejected' || repository.status === 'rejected') {
    await Promise.all(
      [registry, repository].flatMap((r) =>
        r.status === 'fulfilled' ? [stopProcess(r.value.pid, r.value.command)] : [],
      ),
    );
    throw registry.status === 'rejected' ? registry.reason : (repository as PromiseRejectedResult).reason;
  }
  options.log(`chart services ready: oci://${registry.value.host}, ${repository.value.url}, helm ${helm.version}`);
  return { ...state, charts: { helm, registry: registry.value, repository: repository.value } };
}

async function chartServicesHealthy(charts: ChartServicesRecord): Promise<boolean> {
  const alive = await Promise.all([charts.registry, charts.repository].map((p) => isRunning(p.pid, p.command)));
  return alive.every(Boolean);
}

async function stopChartServices(charts: ChartServicesRecord): Promise<void> {
  await Promise.all([charts.registry, charts.repository].map((p) => stopProcess(p.pid, p.command)));
}

/**
 * Keeps each topology when healthy; otherwise (re)starts it from scratch in its own folder under `run/`
 * (one a drill left with a dead node included: its data is test data).
 */
async function redisTopologiesUp(state: StackState, options: StackOptions): Promise<StackState> {
  const current = state.redisTopologies;
  const [clusterOk, sentinelOk] = current
    ? await Promise.all([redisClusterHealthy(current.cluster), redisSentinelHealthy(current.sentinel)])
    : [false, false];
  if (current && clusterOk && sentinelOk) return state;
  if (current && !clusterOk) {
    options.log('the Redis Cluster is down; restarting it');
    await stopRedisCluster(current.cluster);
  }
  if (current && !sentinelOk) {
    options.log('the Redis Sentinel trio is down; restarting it');
    await stopRedisSentinel(current.sentinel);
  }
  const run = join(options.stackDir, 'run');
  const log = options.log;
  const [cluster, sentinel] = await Promise.allSettled([
    current && clusterOk
      ? current.cluster
      : inFreshDir(join(run, 'redis-cluster'), (dir) => {
          log('starting a Redis Cluster: 3 primaries, 3 replicas');
          return startRedisCluster({ dir, log });
        }),
    current && sentinelOk
      ? current.sentinel
      : inFreshDir(join(run, 'redis-sentinel'), (dir) => {
          log('starting a Redis primary with 2 replicas and 3 sentinels');
          return startRedisSentinel({ dir, log });
        }),
  ]);
  if (cluster.status === 'rejected' || sentinel.status === 'rejected') {
    // The ones started here are stopped; a healthy one kept from before stays in the state file as it was.
    if (cluster.status === 'fulfilled' && cluster.value !== current?.cluster) await stopRedisCluster(cluster.value);
    if (sentinel.status === 'fulfilled' && sentinel.value !== current?.sentinel)
      await stopRedisSentinel(sentinel.value);
    throw cluster.status === 'rejected' ? cluster.reason : (sentinel as PromiseRejectedResult).reason;
  }
  const topologies = { cluster: cluster.value, sentinel: sentinel.value };
  log(
    `Redis topologies ready: cluster ${redisClusterNodesList(topologies.cluster)}; ` +
      `sentinels ${redisSentinelsList(topologies.sentinel)} (${topologies.sentinel.name})`,
  );
  return { ...state, redisTopologies: topologies };
}

async function inFreshDir<T>(dir: string, start: (dir: string) => Promise<T>): Promise<T> {
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true });
  return start(dir);
}

/** Stops every process the stack started and removes its runtime data. Safe to call when nothing runs. */
export async function stackDown(options: Pick<StackOptions, 'stackDir' | 'log'>): Promise<void> {
  const state = await readState(options.stackDir);
  if (state) await stopAll(state);
  await rm(join(options.stackDir, 'run'), { recursive: true, force: true });
  await rm(join(options.stackDir, 'state.json'), { force: true });
  await rm(join(options.stackDir, 'env'), { force: true });
  options.log(state ? 'local stack stopped' : 'local stack was not running');
}

export async function readState(stackDir: string): Promise<StackState | undefined> {
  try {
    return JSON.parse(await readFile(join(stackDir, 'state.json'), 'utf8')) as StackState;
  } catch {
    return undefined;
  }
}

async function isHealthy(state: StackState): Promise<boolean> {
  const processes = [state.redis, state.etcd, ...state.clusters.flatMap((c) => [c.apiserver, c.controllerManager])];
  const alive = await Promise.all(processes.map((p) => isRunning(p.pid, p.command)));
  return alive.every(Boolean) && (await pingRedis(state.redis.url));
}

/** Stops in reverse order of dependency: chart services, then controllers and apiservers before etcd. */
async function stopAll(pieces: StackPieces | StackState): Promise<void> {
  if ('charts' in pieces && pieces.charts) await stopChartServices(pieces.charts);
  if ('redisTopologies' in pieces && pieces.redisTopologies) {
    await Promise.all([
      stopRedisCluster(pieces.redisTopologies.cluster),
      stopRedisSentinel(pieces.redisTopologies.sentinel),
    ]);
  }
  await Promise.all(
    (pieces.clusters ?? []).flatMap((cluster) => [
      stopProcess(cluster.controllerManager.pid, cluster.controllerManager.command),
      stopProcess(cluster.apiserver.pid, cluster.apiserver.command),
    ]),
  );
  if (pieces.etcd) await stopProcess(pieces.etcd.pid, pieces.etcd.command);
  if (pieces.redis) await stopProcess(pieces.redis.pid, pieces.redis.command);
}

/** The variables tests and the demo read; `export` lines so a shell can source the file. */
export function renderEnvFile(state: StackState): string {
  const [a, b] = state.clusters;
  const lines = [`export REDIS_URL=${state.redis.url}`];
  if (a) lines.push(`export KUBECONFIG=${a.kubeconfig}`);
  if (b) lines.push(`export KUBECONFIG_B=${b.kubeconfig}`);
  if (state.charts) lines.push(...chartServicesEnv(state.charts).map(([name, value]) => `export ${name}=${value}`));
  if (state.redisTopologies) {
    lines.push(...redisTopologiesEnv(state.redisTopologies).map(([name, value]) => `export ${name}=${value}`));
  }
  return `${lines.join('\n')}\n`;
}

/**
 * The other topologies under names Plumbline does not read (REDIS_URL stays the default, and
 * `readEnvOptions` refuses two topologies at once): `PLUMBLINE_REDIS_CLUSTER_NODES`,
 * `PLUMBLINE_REDIS_SENTINELS`, `PLUMBLINE_REDIS_SENTINEL_NAME`. To run against one, drop the `PLUMBLINE_`
 * and unset REDIS_URL, e.g. `env -u REDIS_URL REDIS_CLUSTER_NODES=$PLUMBLINE_REDIS_CLUSTER_NODES …`.
 * global-setup passes them to the tests as `PLUMBLINE_TEST_REDIS_*`.
 */
export function redisTopologiesEnv(topologies: RedisTopologiesRecord): ReadonlyArray<readonly [string, string]> {
  return [
    ['PLUMBLINE_REDIS_CLUSTER_NODES', redisClusterNodesList(topologies.cluster)],
    ['PLUMBLINE_REDIS_SENTINELS', redisSentinelsList(topologies.sentinel)],
    ['PLUMBLINE_REDIS_SENTINEL_NAME', topologies.sentinel.name],
  ];
}

/**
 * The chart services as variables (names without `_TEST_`; global-setup passes the same values to the
 * tests as `PLUMBLINE_TEST_<name without PLUMBLINE_>`). Every value is hex, a path or a URL: no quoting needed.
 */
export function chartServicesEnv(charts: ChartServicesRecord): ReadonlyArray<readonly [string, string]> {
  return [
    ['PLUMBLINE_HELM', charts.helm.path],
    ['PLUMBLINE_OCI_REGISTRY', charts.registry.host],
    ['PLUMBLINE_OCI_USERNAME', charts.registry.credentials.username],
    ['PLUMBLINE_OCI_PASSWORD', charts.registry.credentials.password],
    ['PLUMBLINE_CHART_REPOSITORY_URL', charts.repository.url],
    ['PLUMBLINE_CHART_REPOSITORY_USERNAME', charts.repository.credentials.username],
    ['PLUMBLINE_CHART_REPOSITORY_PASSWORD', charts.repository.credentials.password],
    ['PLUMBLINE_CHART_REPOSITORY_DIR', charts.repository.dir],
  ];
}

async function writeStateFiles(stackDir: string, state: StackState): Promise<void> {
  // Mode 0600: the state names the test registries' passwords.
  await writeFile(join(stackDir, 'state.json'), `${JSON.stringify(state, null, 2)}\n`, { mode: 0o600 });
  await writeEnvFile(stackDir, state);
}

async function writeEnvFile(stackDir: string, state: StackState): Promise<void> {
  await writeFile(join(stackDir, 'env'), renderEnvFile(state), { mode: 0o600 });
}
