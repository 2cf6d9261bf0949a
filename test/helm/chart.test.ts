import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { parseAllDocuments } from 'yaml';
import { parseClusterRegistry } from '../../src/clusters/cluster-registry.ts';
import { createClusterClient, KubeError } from '../../src/engine/cluster-client.ts';
import { customResourceDefinition } from '../../src/engine/custom-resource-definition.ts';
import type { Manifest } from '../../src/engine/manifest.ts';
import { packageRoot } from '../../src/support/package-root.ts';
import { runCommand } from '../../src/support/run-command.ts';
import { testEnvironment } from '../support/environment.ts';
import { createTestNamespace, kubeClients } from '../support/kube.ts';

const env = testEnvironment();
const kube = kubeClients(env.kubeconfig);
const client = createClusterClient(kube.config);
const chart = join(packageRoot(), 'helm', 'plumbline');
const MINIMAL = [
  '--set',
  'github.appId=123',
  '--set',
  'credentials.existingSecret=plumbline-credentials',
  '--set',
  'clusters[0].name=in-cluster,clusters[0].repo=acme/platform-gitops,clusters[0].path=clusters/gcp/production,clusters[0].inCluster=true',
];

async function helm(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const helmPath = process.env.PLUMBLINE_TEST_HELM;
  if (!helmPath) throw new Error('PLUMBLINE_TEST_HELM is not set: run through jest global setup');
  const result = await runCommand(helmPath, args, {
    env: { HELM_CACHE_HOME: '/tmp/helm-cache', HELM_CONFIG_HOME: '/tmp/helm-config', HELM_DATA_HOME: '/tmp/helm-data' },
    timeoutMs: 60_000,
  });
  return { code: result.code ?? -1, stdout: result.stdout.toString(), stderr: result.stderr };
}

async function render(namespace: string, ...values: string[]): Promise<Manifest[]> {
  const result = await helm('template', 'plumbline', chart, '--namespace', namespace, ...values);
  if (result.code !== 0) throw new Error(`helm template failed: ${result.stderr}`);
  return parseAllDocuments(result.stdout)
    .map((d) => d.toJS() as Manifest | null)
    .filter((m): m is Manifest => m !== null);
}

/** Every rendered object through a server-side dry-run on the real apiserver; returns the refusals. */
async function dryRun(manifests: readonly Manifest[], namespace: string): Promise<string[]> {
  const refusals: string[] = [];
  for (const manifest of manifests) {
    const namespaced = manifest.metadata.namespace ?? (isClusterScoped(manifest.kind) ? undefined : namespace);
    const object = {
      ...manifest,
      metadata: { ...manifest.metadata, ...(namespaced ? { namespace: namespaced } : {}) },
    };
    try {
      await client.apply(object, { dryRun: true, force: true });
    } catch (error) {
      refusals.push(
        `${manifest.kind}/${manifest.metadata.name}: ${error instanceof KubeError ? error.message : String(error)}`,
      );
    }
  }
  return refusals;
}

const isClusterScoped = (kind: string) => ['ClusterRole', 'ClusterRoleBinding', 'Namespace'].includes(kind);
const byKind = (manifests: readonly Manifest[], kind: string) => manifests.filter((m) => m.kind === kind);
type Container = { name: string; env?: { name: string }[]; securityContext?: Record<string, unknown> };
const containersOf = (deployment: Manifest) =>
  (deployment.spec as { template: { spec: { containers: Container[] } } }).template.spec.containers;

describe('the Helm chart, rendered by the real helm and dry-run on a real apiserver', () => {
  let namespace: string;
  let cleanup: () => Promise<void>;

  beforeAll(async () => {
    [namespace, cleanup] = await createTestNamespace(kube.core, 'chart');
    // The CRDs the full values use, as a cluster with ESO and the Prometheus operator serves them.
    for (const crd of [
      customResourceDefinition({ group: 'external-secrets.io', kind: 'ExternalSecret', plural: 'externalsecrets' }),
      customResourceDefinition({ group: 'monitoring.coreos.com', kind: 'ServiceMonitor', plural: 'servicemonitors' }),
    ]) {
      await client.apply(crd, { dryRun: false, force: true });
    }
  });
  afterAll(async () => {
    await cleanup();
  });

  it('passes helm lint', async () => {
    const result = await helm('lint', chart, ...MINIMAL);
    expect(result.stderr + result.stdout).toMatch(/1 chart\(s\) linted, 0 chart\(s\) failed/);
  });

  it('with the required values only: a working install that the apiserver accepts', async () => {
    const manifests = await render(namespace, ...MINIMAL);
    expect(manifests.map((m) => m.kind).sort()).toEqual(
      [
        'ClusterRole',
        'ClusterRoleBinding',
        'ConfigMap',
        'Deployment',
        'Deployment',
        'PodDisruptionBudget',
        'PodDisruptionBudget',
        'Service',
        'ServiceAccount',
      ].sort(),
    );
    expect(await dryRun(manifests, namespace)).toEqual([]);
    // The registry it mounts is one the worker accepts.
    const [configMap] = byKind(manifests, 'ConfigMap');
    const registry = parseClusterRegistry(((configMap?.data ?? {}) as Record<string, string>)['clusters.yaml'] ?? '');
    expect(registry.clusters.map((c) => c.name)).toEqual(['in-cluster']);
  });

  it('runs non-root, read-only, without privileges; only the worker holds the App key and API rights', async () => {
    const manifests = await render(namespace, ...MINIMAL);
    const deployments = byKind(manifests, 'Deployment');
    for (const deployment of deployments) {
      for (const container of containersOf(deployment)) {
        expect(container.securityContext).toMatchObject({
          allowPrivilegeEscalation: false,
          readOnlyRootFilesystem: true,
          capabilities: { drop: ['ALL'] },
        });
      }
      const pod = (deployment.spec as { template: { spec: Record<string, unknown> } }).template.spec;
      expect(pod.securityContext).toMatchObject({ runAsNonRoot: true, seccompProfile: { type: 'RuntimeDefault' } });
    }
    const receiver = deployments.find((d) => d.metadata.name.endsWith('-receiver'))!;
    const worker = deployments.find((d) => d.metadata.name.endsWith('-worker'))!;
    const envNames = (d: Manifest) => containersOf(d).flatMap((c) => (c.env ?? []).map((e) => e.name));
    expect(envNames(receiver)).toContain('GITHUB_WEBHOOK_SECRET');
    expect(envNames(receiver)).not.toContain('GITHUB_PRIVATE_KEY');
    expect(envNames(worker)).toContain('GITHUB_PRIVATE_KEY');
    expect(envNames(worker)).not.toContain('GITHUB_WEBHOOK_SECRET');
    expect(
      (receiver.spec as { template: { spec: Record<string, unknown> } }).template.spec.automountServiceAccountToken,
    ).toBe(false);
    const [role] = byKind(manifests, 'ClusterRole');
    const rules = (role as unknown as { rules: { resources: string[]; verbs: string[] }[] }).rules;
    for (const rule of rules) {
      expect(rule.resources).not.toContain('*');
      expect(rule.verbs).not.toContain('*');
      expect(rule.verbs).not.toContain('update');
      expect(rule.verbs).not.toContain('watch');
    }
    expect(rules.flatMap((r) => r.resources)).not.toContain('secrets');
  });

  it('with every option set: ExternalSecrets for the credentials, Ingress, ServiceMonitor — all accepted', async () => {
    const manifests = await render(namespace, '-f', join(packageRoot(), 'test', 'helm', 'full-values.yaml'));
    expect(byKind(manifests, 'ExternalSecret').map((m) => m.metadata.name)).toEqual([
      'plumbline-credentials',
      'plumbline-kubeconfigs',
    ]);
    expect(byKind(manifests, 'Ingress')).toHaveLength(1);
    expect(byKind(manifests, 'ServiceMonitor')).toHaveLength(1);
    // No secret value anywhere in what the chart renders, only references.
    expect(byKind(manifests, 'Secret')).toEqual([]);
    expect(await dryRun(manifests, namespace)).toEqual([]);
  });

  it('refuses to render without the required values, or with a secret in the values, saying why', async () => {
    const empty = await helm('template', 'plumbline', chart);
    expect(empty.code).not.toBe(0);
    expect(empty.stderr).toMatch(/clusters|appId/);
    const secretInValues = await helm(
      'template',
      'plumbline',
      chart,
      ...MINIMAL,
      '--set',
      'credentials.privateKey=oops',
    );
    expect(secretInValues.code).not.toBe(0);
    expect(secretInValues.stderr).toMatch(/privateKey|additional properties/i);
    const noCredentials = await helm(
      'template',
      'plumbline',
      chart,
      '--set',
      'github.appId=1',
      '--set',
      'clusters[0].name=a,clusters[0].repo=o/r,clusters[0].path=c,clusters[0].inCluster=true',
    );
    expect(noCredentials.stderr).toMatch(
      /credentials\.existingSecret \(or credentials\.externalSecret\.enabled\) is required/,
    );
  });
});
