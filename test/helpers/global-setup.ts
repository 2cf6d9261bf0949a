import { join } from 'node:path';
import { chartServicesEnv, readState, redisTopologiesEnv, stackUp } from '../../dev/local-stack/stack.ts';
import { defaultCacheDir, ensureHelm4 } from '../../dev/local-stack/toolchain.ts';
import { packageRoot } from '../../src/support/package-root.ts';

/**
 * Gives every test file a real Redis and two real apiservers: the ones named by PLUMBLINE_TEST_* variables,
 * or the local stack, started here when it is not already running (and then stopped by global-teardown).
 * Values reach the test workers through the environment, which they inherit.
 */
export default async function globalSetup(): Promise<void> {
  const env = process.env;
  const root = packageRoot();
  // Charts render with the real Helm 4, built from its pinned Go module once per machine (an external
  // stack too: it is a local tool).
  env.PLUMBLINE_TEST_HELM ??= (
    await ensureHelm4({
      goDir: join(root, 'dev', 'local-stack', 'go'),
      cacheDir: defaultCacheDir(env),
      log: (line) => process.stderr.write(`\nlocal-stack: ${line}`),
    })
  ).path;
  if (env.PLUMBLINE_TEST_KUBECONFIG && env.PLUMBLINE_TEST_REDIS_URL) {
    if (!env.PLUMBLINE_TEST_KUBECONFIG_B) {
      throw new Error('PLUMBLINE_TEST_KUBECONFIG_B must name a second cluster for the multi-cluster tests');
    }
    env.PLUMBLINE_TEST_STACK = 'external';
    return;
  }
  const stackDir = join(root, '.local');
  const wasRunning = (await readState(stackDir)) !== undefined;
  const state = await stackUp({
    stackDir,
    goDir: join(root, 'dev', 'local-stack', 'go'),
    cacheDir: defaultCacheDir(env),
    log: (line) => process.stderr.write(`\nlocal-stack: ${line}`),
  });
  const [a, b] = state.clusters;
  if (!a || !b) throw new Error('the local stack has fewer than two clusters');
  env.PLUMBLINE_TEST_STACK = 'local';
  env.PLUMBLINE_TEST_KUBERNETES_VERSION = state.kubernetesVersion;
  env.PLUMBLINE_TEST_REDIS_URL ??= state.redis.url;
  env.PLUMBLINE_TEST_KUBECONFIG ??= a.kubeconfig;
  env.PLUMBLINE_TEST_KUBECONFIG_B ??= b.kubeconfig;
  env.PLUMBLINE_TEST_STACK_DIR = stackDir;
  // Helm 4, the OCI registry and the chart repository (with their credentials) as PLUMBLINE_TEST_HELM,
  // PLUMBLINE_TEST_OCI_*, PLUMBLINE_TEST_CHART_REPOSITORY_* (read by dev/local-stack/charts.ts).
  // The Redis Cluster and the Sentinel trio as PLUMBLINE_TEST_REDIS_CLUSTER_NODES, PLUMBLINE_TEST_REDIS_SENTINELS
  // and PLUMBLINE_TEST_REDIS_SENTINEL_NAME (testEnvironment's redisCluster and redisSentinel).
  const extra = [
    ...(state.charts ? chartServicesEnv(state.charts) : []),
    ...(state.redisTopologies ? redisTopologiesEnv(state.redisTopologies) : []),
  ];
  for (const [name, value] of extra) {
    env[name.replace(/^PLUMBLINE_/, 'PLUMBLINE_TEST_')] ??= value;
  }
  if (!wasRunning) env.PLUMBLINE_TEST_STOP_STACK = '1';
}
