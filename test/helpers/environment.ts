import { randomBytes } from 'node:crypto';

/** What global-setup provides to every test file. */
export interface TestEnvironment {
  readonly stack: 'local' | 'external';
  readonly redisUrl: string;
  readonly kubeconfig: string;
  readonly kubeconfigB: string;
  /** The pinned version when the stack is local; undefined for an external cluster. */
  readonly kubernetesVersion: string | undefined;
  /** A Redis Cluster (`REDIS_CLUSTER_NODES`): the local stack's, or none for an external stack that names none. */
  readonly redisCluster: { readonly REDIS_CLUSTER_NODES: string } | undefined;
  /** A Sentinel-managed primary (`REDIS_SENTINELS` + `REDIS_SENTINEL_NAME`), likewise. */
  readonly redisSentinel: { readonly REDIS_SENTINELS: string; readonly REDIS_SENTINEL_NAME: string } | undefined;
}

export function testEnvironment(env: NodeJS.ProcessEnv = process.env): TestEnvironment {
  const required = (name: string): string => {
    const value = env[name];
    if (!value) throw new Error(`${name} is not set: run the tests through jest's global setup (npm test)`);
    return value;
  };
  return {
    stack: env.PLUMBLINE_TEST_STACK === 'external' ? 'external' : 'local',
    redisUrl: required('PLUMBLINE_TEST_REDIS_URL'),
    kubeconfig: required('PLUMBLINE_TEST_KUBECONFIG'),
    kubeconfigB: required('PLUMBLINE_TEST_KUBECONFIG_B'),
    kubernetesVersion: env.PLUMBLINE_TEST_KUBERNETES_VERSION,
    redisCluster: env.PLUMBLINE_TEST_REDIS_CLUSTER_NODES
      ? { REDIS_CLUSTER_NODES: env.PLUMBLINE_TEST_REDIS_CLUSTER_NODES }
      : undefined,
    redisSentinel:
      env.PLUMBLINE_TEST_REDIS_SENTINELS && env.PLUMBLINE_TEST_REDIS_SENTINEL_NAME
        ? {
            REDIS_SENTINELS: env.PLUMBLINE_TEST_REDIS_SENTINELS,
            REDIS_SENTINEL_NAME: env.PLUMBLINE_TEST_REDIS_SENTINEL_NAME,
          }
        : undefined,
  };
}

/** A name no other test (or earlier run) uses: DNS-1123 safe, so it works for namespaces and queues alike. */
export function uniqueName(prefix: string): string {
  return `${prefix}-${randomBytes(4).toString('hex')}`;
}
