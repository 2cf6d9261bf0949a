import { randomBytes } from 'node:crypto';

/** What global-setup provides to every test file. */
export interface TestEnvironment {
  readonly stack: 'local' | 'external';
  readonly redisUrl: string;
  readonly kubeconfig: string;
  readonly kubeconfigB: string;
  /** The pinned version when the stack is local; undefined for an external cluster. */
  readonly kubernetesVersion: string | undefined;
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
  };
}

/** A name no other test (or earlier run) uses: DNS-1123 safe, so it works for namespaces and queues alike. */
export function uniqueName(prefix: string): string {
  return `${prefix}-${randomBytes(4).toString('hex')}`;
}
