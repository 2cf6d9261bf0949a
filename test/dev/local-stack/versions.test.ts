import { join } from 'node:path';
import { describe, expect, it } from '@jest/globals';
import { renderEnvFile, type StackState } from '../../../dev/local-stack/stack.ts';
import {
  kubernetesVersionLdflags,
  parseRequiredVersion,
  readControlPlanePins,
} from '../../../dev/local-stack/versions.ts';
import { packageRoot } from '../../../src/support/package-root.ts';

describe('control-plane version pins', () => {
  it('reads a single-line require', () => {
    expect(parseRequiredVersion('module x\n\nrequire k8s.io/kubernetes v1.36.3\n', 'k8s.io/kubernetes')).toBe(
      'v1.36.3',
    );
  });

  it('reads a require block and ignores replace lines of similar modules', () => {
    const goMod = 'require (\n\tgo.etcd.io/etcd/server/v3 v3.6.16\n)\nreplace go.etcd.io/etcd/server/v3x => ./x\n';
    expect(parseRequiredVersion(goMod, 'go.etcd.io/etcd/server/v3')).toBe('v3.6.16');
  });

  it('names the module when it is missing', () => {
    expect(() => parseRequiredVersion('module x\n', 'k8s.io/kubernetes')).toThrow(
      'go.mod does not require k8s.io/kubernetes',
    );
  });

  it('stamps the version the way Kubernetes release builds do', () => {
    expect(kubernetesVersionLdflags('v1.36.3')).toBe(
      '-X k8s.io/component-base/version.gitVersion=v1.36.3 -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=36',
    );
  });

  it('pins etcd at or above 3.5.13, which current apiservers need for watch progress requests', async () => {
    const pins = await readControlPlanePins(join(packageRoot(), 'dev', 'local-stack', 'go'));
    const [major, minor, patch] = pins.etcd.replace(/^v/, '').split('.').map(Number);
    expect([major, minor, patch]).toEqual([3, expect.any(Number), expect.any(Number)]);
    expect((minor ?? 0) * 1000 + (patch ?? 0)).toBeGreaterThanOrEqual(5013);
    expect(pins.kubernetes).toMatch(/^v1\.\d+\.\d+$/);
  });
});

describe('the env file', () => {
  it('exports REDIS_URL, KUBECONFIG and KUBECONFIG_B for a shell to source', () => {
    const record = { pid: 1, command: 'x', logFile: 'x' };
    const cluster = (name: string) => ({
      name,
      server: 'https://127.0.0.1:1',
      kubeconfig: `/s/${name}/kubeconfig`,
      apiserver: record,
      controllerManager: record,
    });
    const state: StackState = {
      kubernetesVersion: 'v1.36.3',
      redis: { ...record, url: 'redis://127.0.0.1:7000', port: 7000 },
      etcd: { ...record, url: 'http://127.0.0.1:2379' },
      clusters: [cluster('a'), cluster('b')],
    };
    expect(renderEnvFile(state)).toBe(
      'export REDIS_URL=redis://127.0.0.1:7000\nexport KUBECONFIG=/s/a/kubeconfig\nexport KUBECONFIG_B=/s/b/kubeconfig\n',
    );
  });
});
