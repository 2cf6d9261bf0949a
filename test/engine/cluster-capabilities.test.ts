import { describe, expect, it } from '@jest/globals';
import { capabilitiesOf, createClusterClient } from '../../src/engine/cluster-client.ts';
import { testEnvironment } from '../helpers/environment.ts';
import { kubeClients } from '../helpers/kube.ts';

const env = testEnvironment();
const kube = kubeClients(env.kubeconfig);

describe("a cluster's capabilities, as Helm's .Capabilities sees them", () => {
  it('reads the version and every served API and kind from the real apiserver, once per client', async () => {
    const client = createClusterClient(kube.config);
    const capabilities = await client.capabilities?.();
    expect(capabilities?.kubeVersion).toMatch(/^v1\.\d+\.\d+$/);
    expect(capabilities?.apiVersions).toEqual(
      expect.arrayContaining([
        'v1',
        'v1/ConfigMap',
        'v1/Namespace',
        'apps/v1',
        'apps/v1/Deployment',
        'apiextensions.k8s.io/v1/CustomResourceDefinition',
        'rbac.authorization.k8s.io/v1/ClusterRole',
      ]),
    );
    expect(capabilities?.apiVersions).not.toContain('v1/Pod/status');
    expect(await client.capabilities?.()).toBe(capabilities);
  });

  it('keeps the versions of a server without aggregated discovery, and refuses an answer without a version', () => {
    const legacy = { kind: 'APIGroupList', groups: [{ name: 'apps', versions: [{ groupVersion: 'apps/v1' }] }] };
    expect(capabilitiesOf('v1.29.4-gke.1', [{ version: 'v1', list: { resources: [] } }], legacy)).toEqual({
      kubeVersion: 'v1.29.4',
      apiVersions: ['apps/v1', 'v1'],
    });
    expect(() => capabilitiesOf(undefined, [], {})).toThrow(/did not report its version/);
  });
});
