import { join } from 'node:path';
import { describe, expect, it } from '@jest/globals';
import { renderEnvFile, type StackState } from '../../../dev/local-stack/stack.ts';
import {
  helm4VersionLdflags,
  kubernetesVersionLdflags,
  parseRequiredVersion,
  readControlPlanePins,
  readHelm4Pin,
  readRegistryPin,
  registryVersionLdflags,
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

describe('chart-service pins', () => {
  const goDir = join(packageRoot(), 'dev', 'local-stack', 'go');

  it('pins Helm 4.3.1 and Distribution 3.1.2', async () => {
    await expect(readHelm4Pin(goDir)).resolves.toBe('v4.3.1');
    await expect(readRegistryPin(goDir)).resolves.toBe('v3.1.2');
  });

  it('stamps the versions at the variables Helm 4 and Distribution read', () => {
    expect(helm4VersionLdflags('v4.3.1')).toBe('-X helm.sh/helm/v4/internal/version.version=v4.3.1');
    expect(registryVersionLdflags('v3.1.2')).toBe(
      '-X github.com/distribution/distribution/v3/version.version=v3.1.2 -X github.com/distribution/distribution/v3/version.mainpkg=github.com/distribution/distribution/v3',
    );
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
    const charts = {
      helm: { version: 'v4.3.1', path: '/cache/helm-v4.3.1/helm' },
      registry: {
        ...record,
        version: 'v3.1.2',
        host: '127.0.0.1:5000',
        credentials: { username: 'u', password: 'p1' },
      },
      repository: {
        ...record,
        url: 'http://127.0.0.1:8080',
        credentials: { username: 'v', password: 'p2' },
        dir: '/r',
      },
    };
    expect(
      renderEnvFile({ ...state, charts })
        .split('\n')
        .slice(3),
    ).toEqual([
      'export PLUMBLINE_HELM=/cache/helm-v4.3.1/helm',
      'export PLUMBLINE_OCI_REGISTRY=127.0.0.1:5000',
      'export PLUMBLINE_OCI_USERNAME=u',
      'export PLUMBLINE_OCI_PASSWORD=p1',
      'export PLUMBLINE_CHART_REPOSITORY_URL=http://127.0.0.1:8080',
      'export PLUMBLINE_CHART_REPOSITORY_USERNAME=v',
      'export PLUMBLINE_CHART_REPOSITORY_PASSWORD=p2',
      'export PLUMBLINE_CHART_REPOSITORY_DIR=/r',
      '',
    ]);
  });
});
