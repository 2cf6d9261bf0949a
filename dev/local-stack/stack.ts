import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  type ClusterRecord,
  type EtcdRecord,
  startCluster,
  startEtcd,
  writeSharedCredentials,
} from './control-plane.ts';
import { freePort } from './free-port.ts';
import { isRunning, stopProcess } from './processes.ts';
import { pingRedis, type RedisRecord, startRedisServer } from './redis-server.ts';
import { type ControlPlaneBinaries, ensureControlPlaneBinaries } from './toolchain.ts';

/** What `local:up` started, kept in `<stackDir>/state.json` so `local:down` and a second `local:up` find it. */
export interface StackState {
  readonly kubernetesVersion: string;
  readonly redis: RedisRecord;
  readonly etcd: EtcdRecord;
  readonly clusters: readonly ClusterRecord[];
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

/** Starts Redis, etcd and two apiservers (each with a controller manager); reuses a healthy running stack. */
export async function stackUp(options: StackOptions): Promise<StackState> {
  const existing = await readState(options.stackDir);
  if (existing && (await isHealthy(existing))) {
    options.log(`local stack already running (Kubernetes ${existing.kubernetesVersion})`);
    await writeEnvFile(options.stackDir, existing);
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
  await writeFile(join(options.stackDir, 'state.json'), `${JSON.stringify(state, null, 2)}\n`);
  await writeEnvFile(options.stackDir, state);
  options.log(`local stack ready; load it with: . ${join(options.stackDir, 'env')}`);
  return state;
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

/** Stops in reverse order of dependency: controllers and apiservers before etcd. */
async function stopAll(pieces: StackPieces | StackState): Promise<void> {
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
  return `${lines.join('\n')}\n`;
}

async function writeEnvFile(stackDir: string, state: StackState): Promise<void> {
  await writeFile(join(stackDir, 'env'), renderEnvFile(state));
}
