import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { AuthorizationV1Api } from '@kubernetes/client-node';
import { parseAllDocuments } from 'yaml';
import { readChartCredentials } from '../../src/charts/chart-credentials.ts';
import { parseClusterRegistry } from '../../src/clusters/cluster-registry.ts';
import { createClusterClient, KubeError } from '../../src/engine/cluster-client.ts';
import { customResourceDefinition } from '../../src/engine/custom-resource-definition.ts';
import type { Manifest } from '../../src/engine/manifest.ts';
import { packageRoot } from '../../src/support/package-root.ts';
import { runCommand } from '../../src/support/run-command.ts';
import { scratch } from '../helpers/chart-test-server.ts';
import { testEnvironment, uniqueName } from '../helpers/environment.ts';
import { createTestNamespace, kubeClients } from '../helpers/kube.ts';

const env = testEnvironment();
const kube = kubeClients(env.kubeconfig);
const client = createClusterClient(kube.config);
const chart = join(packageRoot(), 'helm', 'plumbline');
const REQUIRED = ['--set', 'github.appId=123', '--set', 'credentials.existingSecret=plumbline-credentials'];
const IN_CLUSTER =
  'clusters[0].name=in-cluster,clusters[0].repo=acme/platform-gitops,clusters[0].path=clusters/gcp/production,clusters[0].inCluster=true';
/** The smallest install: one in-cluster entry that may write one namespace (rbac.mode=narrow needs one). */
const minimal = (namespace: string) => [...REQUIRED, '--set', `${IN_CLUSTER},clusters[0].namespaces[0]=${namespace}`];
const RECORDS_NAMESPACE = 'plumbline-system';

async function helm(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const helmPath = process.env.PLUMBLINE_TEST_HELM;
  if (!helmPath) throw new Error('PLUMBLINE_TEST_HELM is not set: run through jest global setup');
  const result = await runCommand(helmPath, args, {
    env: { HELM_CACHE_HOME: '/tmp/helm-cache', HELM_CONFIG_HOME: '/tmp/helm-config', HELM_DATA_HOME: '/tmp/helm-data' },
    timeoutMs: 60_000,
  });
  return { code: result.code ?? -1, stdout: result.stdout.toString(), stderr: result.stderr };
}

/** A CA bundle as a store would hold it (its bytes only matter: the template must pass them through). */
const PEM =
  '-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIUQ2hhcnQgc291cmNlIENBIGZpeHR1cmU=\n-----END CERTIFICATE-----\n';

/**
 * What ESO's template engine v2 writes into the Secret: each `target.template.data` value run as a Go
 * text/template with sprig v3 over the fetched values (a string map). Helm runs the same engine, so the
 * templates run here through the real helm, inside a throwaway chart, with the fetched values as `.`.
 */
async function runExternalSecretTemplates(
  templates: Record<string, string>,
  fetched: Record<string, string>,
): Promise<Record<string, string>> {
  const dir = scratch('plumbline-eso-template-');
  try {
    return await runInChart(dir, templates, fetched);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

async function runInChart(
  dir: string,
  templates: Record<string, string>,
  fetched: Record<string, string>,
): Promise<Record<string, string>> {
  mkdirSync(join(dir, 'templates'));
  writeFileSync(join(dir, 'Chart.yaml'), 'apiVersion: v2\nname: eso-template\nversion: 0.1.0\n');
  const keys = Object.keys(templates);
  writeFileSync(
    join(dir, 'templates', '_eso.tpl'),
    keys.map((key, i) => `{{- define "t${i}" }}{{ with .Values }}${templates[key]}{{ end }}{{ end }}`).join('\n'),
  );
  writeFileSync(
    join(dir, 'templates', 'out.yaml'),
    `apiVersion: v1\nkind: ConfigMap\nmetadata: { name: out }\ndata:\n${keys
      .map((key, i) => `  ${JSON.stringify(key)}: {{ include "t${i}" . | toJson }}`)
      .join('\n')}\n`,
  );
  writeFileSync(join(dir, 'fetched.json'), JSON.stringify(fetched));
  const result = await helm('template', 'eso', dir, '-f', join(dir, 'fetched.json'));
  if (result.code !== 0) throw new Error(`the ExternalSecret templates did not run: ${result.stderr}`);
  const [configMap] = parseAllDocuments(result.stdout).map((d) => d.toJS() as Manifest);
  return (configMap?.data ?? {}) as Record<string, string>;
}

async function render(namespace: string, ...values: string[]): Promise<Manifest[]> {
  return renderAs('plumbline', namespace, ...values);
}

async function renderAs(release: string, namespace: string, ...values: string[]): Promise<Manifest[]> {
  const result = await helm('template', release, chart, '--namespace', namespace, ...values);
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
type EnvVar = {
  name: string;
  value?: string;
  valueFrom?: { secretKeyRef?: { name: string; key: string; optional?: boolean } };
};
type Container = { name: string; env?: EnvVar[]; securityContext?: Record<string, unknown> };
type Rule = { apiGroups: string[]; resources: string[]; verbs: string[]; resourceNames?: string[] };
type IngressPath = { path: string; pathType: string };
type PolicyRule = { ports: { port: number | string; protocol: string }[]; to?: unknown[]; from?: unknown[] };
type PolicySpec = { policyTypes: string[]; ingress: PolicyRule[]; egress: PolicyRule[] };
const named = (manifests: readonly Manifest[], kind: string, suffix: string) =>
  manifests.find((m) => m.kind === kind && m.metadata.name.endsWith(suffix));
const envOf = (deployment: Manifest | undefined) =>
  deployment ? containersOf(deployment).flatMap((c) => c.env ?? []) : [];
const ingressPaths = (manifests: readonly Manifest[]) =>
  (
    (byKind(manifests, 'Ingress')[0]?.spec as { rules: { http: { paths: IngressPath[] } }[] } | undefined)?.rules[0]
      ?.http.paths ?? []
  ).map((p) => `${p.pathType} ${p.path}`);
const rulesOf = (role: Manifest | undefined) => (role as unknown as { rules?: Rule[] } | undefined)?.rules ?? [];
const policy = (manifests: readonly Manifest[], suffix: string) =>
  named(manifests, 'NetworkPolicy', suffix)?.spec as PolicySpec | undefined;
const ports = (rules: readonly PolicyRule[]) =>
  [...new Set(rules.flatMap((r) => r.ports.map((p) => `${p.port}/${p.protocol}`)))].sort();
const containersOf = (deployment: Manifest) =>
  (deployment.spec as { template: { spec: { containers: Container[] } } }).template.spec.containers;
type KeyToPath = { key: string; path: string };
type Projection = {
  secret?: { name: string; items: KeyToPath[] };
  configMap?: { name: string; items: KeyToPath[] };
};
type Volume = { name: string; projected?: { sources: Projection[]; defaultMode?: number } };
type VolumeMount = { name: string; mountPath: string; readOnly?: boolean };
const podSpecOf = (deployment: Manifest) =>
  (deployment.spec as { template: { spec: { volumes?: Volume[]; containers: { volumeMounts?: VolumeMount[] }[] } } })
    .template.spec;
/** The registry file the chart mounts into the worker, as the worker parses it. */
const registryOf = (manifests: readonly Manifest[]) =>
  parseClusterRegistry(
    ((named(manifests, 'ConfigMap', '-clusters')?.data ?? {}) as Record<string, string>)['clusters.yaml'] ?? '',
  );
const FULL_VALUES = join(packageRoot(), 'test', 'helm', 'full-values.yaml');

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
    // Where Plumbline keeps its records in every cluster: the chart's Role and RoleBinding go there.
    await client.apply(
      { apiVersion: 'v1', kind: 'Namespace', metadata: { name: RECORDS_NAMESPACE } },
      { dryRun: false, force: true },
    );
  });
  afterAll(async () => {
    await cleanup();
  });

  it('passes helm lint', async () => {
    const result = await helm('lint', chart, ...minimal('apps'));
    expect(result.stderr + result.stdout).toMatch(/1 chart\(s\) linted, 0 chart\(s\) failed/);
  });

  it('with the required values only: a working install that the apiserver accepts', async () => {
    const manifests = await render(namespace, ...minimal(namespace));
    expect(manifests.map((m) => m.kind).sort()).toEqual(
      [
        'ClusterRole',
        'ConfigMap',
        'Deployment',
        'Deployment',
        'Namespace',
        'NetworkPolicy',
        'NetworkPolicy',
        'PodDisruptionBudget',
        'PodDisruptionBudget',
        'Role',
        'RoleBinding',
        'RoleBinding',
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
    const manifests = await render(namespace, ...minimal(namespace));
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
    const manifests = await render(
      namespace,
      '-f',
      join(packageRoot(), 'test', 'helm', 'full-values.yaml'),
      '--set',
      `rbac.namespaces[0]=${namespace}`,
    );
    expect(byKind(manifests, 'ExternalSecret').map((m) => m.metadata.name)).toEqual([
      'plumbline-credentials',
      'plumbline-kubeconfigs',
      'plumbline-chart-sources',
    ]);
    expect(byKind(manifests, 'Ingress')).toHaveLength(1);
    expect(byKind(manifests, 'ServiceMonitor')).toHaveLength(1);
    // No secret value anywhere in what the chart renders, only references.
    expect(byKind(manifests, 'Secret')).toEqual([]);
    expect(await dryRun(manifests, namespace)).toEqual([]);
  });

  it("the ServiceMonitor scrapes the receiver's /metrics and every worker's, on its health port", async () => {
    const manifests = await render(namespace, '-f', FULL_VALUES, '--set', `rbac.namespaces[0]=${namespace}`);
    type Selector = {
      matchLabels?: Record<string, string>;
      matchExpressions?: { key: string; operator: string; values: string[] }[];
    };
    type ServicePort = { name: string; port: number; targetPort: number | string };
    const monitor = byKind(manifests, 'ServiceMonitor')[0]?.spec as
      | { selector: Selector; endpoints: { port: string; path: string; interval: string }[] }
      | undefined;
    expect(monitor?.endpoints).toEqual([
      { port: 'http', path: '/metrics', interval: '15s' },
      { port: 'health', path: '/metrics', interval: '15s' },
    ]);
    const services = byKind(manifests, 'Service');
    /** The label selector as the Prometheus operator applies it to Services. */
    const selects = (labels: Record<string, string>, selector: Selector) =>
      Object.entries(selector.matchLabels ?? {}).every(([key, value]) => labels[key] === value) &&
      (selector.matchExpressions ?? []).every((e) => e.operator === 'In' && e.values.includes(labels[e.key] ?? ''));
    const labelsOf = (m: Manifest) => (m.metadata.labels ?? {}) as Record<string, string>;
    const scraped = services.filter((s) => monitor && selects(labelsOf(s), monitor.selector));
    const portsOf = (service: Manifest | undefined) => (service?.spec as { ports: ServicePort[] } | undefined)?.ports;
    expect(scraped.map((s) => [s.metadata.name, portsOf(s)?.map((p) => p.name)])).toEqual([
      ['plumbline', ['http']],
      ['plumbline-worker', ['health']],
    ]);
    // The worker Service reaches every worker pod on its named health port (each pod is a target of its own).
    const workerService = scraped[1];
    const spec = workerService?.spec as { clusterIP?: string; selector: Record<string, string> };
    expect(spec.clusterIP).toBe('None');
    expect(portsOf(workerService)).toEqual([{ name: 'health', port: 8081, targetPort: 'health', protocol: 'TCP' }]);
    const worker = named(manifests, 'Deployment', '-worker')!;
    const podLabels = (worker.spec as { template: { metadata: { labels: Record<string, string> } } }).template.metadata
      .labels;
    expect(Object.entries(spec.selector).every(([key, value]) => podLabels[key] === value)).toBe(true);
    const workerPorts = (containersOf(worker)[0] as { ports?: { name: string; containerPort: number }[] }).ports;
    expect(workerPorts).toContainEqual(expect.objectContaining({ name: 'health', containerPort: 8081 }));
    // The worker's NetworkPolicy admits the scrape on that port.
    expect(ports(policy(manifests, '-worker')?.ingress ?? [])).toEqual(['8081/TCP']);
    // Without a ServiceMonitor, no worker Service either.
    expect(byKind(await render(namespace, ...minimal(namespace)), 'Service').map((s) => s.metadata.name)).toEqual([
      'plumbline',
    ]);
  });

  it('refuses to render without the required values, or with a secret in the values, saying why', async () => {
    const empty = await helm('template', 'plumbline', chart);
    expect(empty.code).not.toBe(0);
    expect(empty.stderr).toMatch(/clusters|appId/);
    const secretInValues = await helm(
      'template',
      'plumbline',
      chart,
      ...minimal(namespace),
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
      'clusters[0].name=a,clusters[0].repo=o/r,clusters[0].path=c,clusters[0].inCluster=true,clusters[0].namespaces[0]=a',
    );
    expect(noCredentials.stderr).toMatch(
      /credentials\.existingSecret \(or credentials\.externalSecret\.enabled\) is required/,
    );
  });

  describe('the status page', () => {
    const withIngress = ['--set', 'ingress.enabled=true,ingress.host=plumbline.example.com'];

    it('routes only the webhook path when the page is off; its paths otherwise; /metrics never', async () => {
      const paths = async (mode: string) =>
        ingressPaths(
          await render(namespace, ...minimal(namespace), ...withIngress, '--set', `statusPage.mode=${mode}`),
        );
      expect(await paths('off')).toEqual(['Exact /api/github/webhooks']);
      const page = ['Exact /api/github/webhooks', 'Exact /', 'Prefix /clusters', 'Prefix /api/clusters'];
      expect(await paths('public')).toEqual(page);
      expect(await paths('token')).toEqual([...page, 'Exact /signin']);
    });

    it('passes the mode to the receiver, with the token from the credentials Secret; statuses link only to a page that exists', async () => {
      const publicUrl = ['--set', 'publicUrl=https://plumbline.example.com'];
      const token = await render(namespace, ...minimal(namespace), ...publicUrl, '--set', 'statusPage.mode=token');
      const receiverEnv = envOf(named(token, 'Deployment', '-receiver'));
      expect(receiverEnv).toEqual(
        expect.arrayContaining([
          { name: 'PLUMBLINE_STATUS_PAGE', value: 'token' },
          {
            name: 'PLUMBLINE_STATUS_PAGE_TOKEN',
            valueFrom: { secretKeyRef: { name: 'plumbline-credentials', key: 'status-page-token' } },
          },
          { name: 'PLUMBLINE_PUBLIC_URL', value: 'https://plumbline.example.com' },
          { name: 'PLUMBLINE_MAX_INFLIGHT_BODIES', value: '4' },
        ]),
      );
      expect(envOf(named(token, 'Deployment', '-worker')).map((e) => e.name)).toContain('PLUMBLINE_PUBLIC_URL');
      expect(await dryRun(token, namespace)).toEqual([]);

      const off = await render(namespace, ...minimal(namespace), ...publicUrl, '--set', 'statusPage.mode=off');
      expect(envOf(named(off, 'Deployment', '-receiver'))).toContainEqual({
        name: 'PLUMBLINE_STATUS_PAGE',
        value: 'off',
      });
      expect(envOf(named(off, 'Deployment', '-worker')).map((e) => e.name)).not.toContain('PLUMBLINE_PUBLIC_URL');
      const bad = await helm(
        'template',
        'plumbline',
        chart,
        ...minimal(namespace),
        '--set',
        'statusPage.mode=sometimes',
      );
      expect(bad.code).not.toBe(0);
    });

    it('reads the webhook secret being rotated out from the same Secret, when it holds one', async () => {
      const manifests = await render(namespace, ...minimal(namespace));
      expect(envOf(named(manifests, 'Deployment', '-receiver'))).toContainEqual({
        name: 'GITHUB_WEBHOOK_SECRET_PREVIOUS',
        valueFrom: { secretKeyRef: { name: 'plumbline-credentials', key: 'webhook-secret-previous', optional: true } },
      });
      const external = await render(
        namespace,
        '-f',
        join(packageRoot(), 'test', 'helm', 'full-values.yaml'),
        '--set',
        `rbac.namespaces[0]=${namespace}`,
      );
      const data = (named(external, 'ExternalSecret', '-credentials')!.spec as { data: { secretKey: string }[] }).data;
      expect(data.map((d) => d.secretKey)).toEqual([
        'github-private-key',
        'webhook-secret',
        'redis-url',
        'status-page-token',
        'webhook-secret-previous',
      ]);
    });
  });

  describe('RBAC', () => {
    it('narrow by default: what the apiserver lets the worker do is its records, the listed namespaces and impersonating the registry’s serviceAccounts — nothing else', async () => {
      // A real install of the rendered RBAC, then requests as the worker's ServiceAccount.
      const release = uniqueName('plumbline-rbac');
      const tenant = `${namespace}/tenant`;
      const manifests = await renderAs(
        release,
        namespace,
        ...minimal(namespace),
        '--set',
        `clusters[1].name=tenanted,clusters[1].repo=acme/apps,clusters[1].path=apps,clusters[1].inCluster=true,clusters[1].serviceAccount=${tenant}`,
      );
      const rbac = manifests.filter((m) =>
        ['ServiceAccount', 'ClusterRole', 'ClusterRoleBinding', 'Role', 'RoleBinding'].includes(m.kind),
      );
      expect(rbac.map((m) => `${m.kind} ${m.metadata.namespace ?? ''}`).sort()).toEqual(
        [
          'ClusterRole ',
          `Role ${RECORDS_NAMESPACE}`,
          `Role ${namespace}`,
          `RoleBinding ${RECORDS_NAMESPACE}`,
          `RoleBinding ${namespace}`,
          `RoleBinding ${namespace}`,
          'ServiceAccount ',
        ].sort(),
      );
      const account = byKind(rbac, 'ServiceAccount')[0]!.metadata.name;
      const installed: Manifest[] = [];
      try {
        for (const manifest of rbac) {
          const scoped = isClusterScoped(manifest.kind) ? {} : { namespace: manifest.metadata.namespace ?? namespace };
          const object: Manifest = { ...manifest, metadata: { ...manifest.metadata, ...scoped } };
          await client.apply(object, { dryRun: false, force: true });
          installed.push(object);
        }
        const worker = createClusterClient(kube.config, { serviceAccount: `${namespace}/${account}` });
        const attempt = async (manifest: Manifest) => {
          try {
            await worker.apply(manifest, { dryRun: true, force: true });
            return 'allowed';
          } catch (error) {
            return error instanceof KubeError && error.status === 403 ? 'forbidden' : String(error);
          }
        };
        const configMap = (where: string) => ({
          apiVersion: 'v1',
          kind: 'ConfigMap',
          metadata: { name: 'plumbline-rbac-probe', namespace: where },
          data: { a: 'b' },
        });
        const deployment = (where: string) => ({
          apiVersion: 'apps/v1',
          kind: 'Deployment',
          metadata: { name: 'probe', namespace: where },
          spec: {
            selector: { matchLabels: { app: 'probe' } },
            template: {
              metadata: { labels: { app: 'probe' } },
              spec: { containers: [{ name: 'c', image: 'busybox' }] },
            },
          },
        });
        expect({
          recordsInPlumblineSystem: await attempt(configMap(RECORDS_NAMESPACE)),
          configMapInListedNamespace: await attempt(configMap(namespace)),
          deploymentInListedNamespace: await attempt(deployment(namespace)),
          deploymentInKubeSystem: await attempt(deployment('kube-system')),
          configMapInDefault: await attempt(configMap('default')),
          secretInListedNamespace: await attempt({
            apiVersion: 'v1',
            kind: 'Secret',
            metadata: { name: 'probe', namespace },
          }),
          clusterRole: await attempt({
            apiVersion: 'rbac.authorization.k8s.io/v1',
            kind: 'ClusterRole',
            metadata: { name: release },
          }),
          namespace: await attempt({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: release } }),
        }).toEqual({
          recordsInPlumblineSystem: 'allowed',
          configMapInListedNamespace: 'allowed',
          deploymentInListedNamespace: 'allowed',
          deploymentInKubeSystem: 'forbidden',
          configMapInDefault: 'forbidden',
          secretInListedNamespace: 'forbidden',
          clusterRole: 'forbidden',
          namespace: 'forbidden',
        });
        const authorization = kube.config.makeApiClient(AuthorizationV1Api);
        const mayImpersonate = async (name: string) =>
          (
            await authorization.createSubjectAccessReview({
              body: {
                spec: {
                  user: `system:serviceaccount:${namespace}:${account}`,
                  groups: ['system:serviceaccounts', `system:serviceaccounts:${namespace}`, 'system:authenticated'],
                  resourceAttributes: { namespace, verb: 'impersonate', resource: 'serviceaccounts', name },
                },
              },
            })
          ).status?.allowed === true;
        expect({ tenant: await mayImpersonate('tenant'), other: await mayImpersonate('default') }).toEqual({
          tenant: true,
          other: false,
        });
      } finally {
        for (const object of installed.reverse()) await client.delete(object).catch(() => undefined);
      }
    }, 60_000);

    it('installs beside a plumbline-system namespace it does not own, leaving that namespace alone (helm install --dry-run=server)', async () => {
      const release = uniqueName('plumbline-ns');
      const result = await helm(
        'install',
        release,
        chart,
        '--kubeconfig',
        env.kubeconfig,
        '--namespace',
        namespace,
        '--dry-run=server',
        ...minimal(namespace),
      );
      expect(result.stderr).toBe('');
      const manifest = result.stdout.slice(result.stdout.indexOf('\n---\n'), result.stdout.indexOf('\nNOTES:'));
      const installed = parseAllDocuments(manifest)
        .map((d) => d.toJS() as Manifest | null)
        .filter((m): m is Manifest => m !== null);
      expect(installed.length).toBeGreaterThan(10);
      expect(byKind(installed, 'Namespace')).toEqual([]);
      expect(byKind(installed, 'Role').map((m) => m.metadata.namespace)).toEqual([RECORDS_NAMESPACE]);
    });

    it('refuses a narrow install that would let Plumbline write nowhere, saying what to set', async () => {
      const result = await helm('template', 'plumbline', chart, ...REQUIRED, '--set', IN_CLUSTER);
      expect(result.code).not.toBe(0);
      expect(result.stderr).toMatch(/rbac\.mode=narrow lets Plumbline write only where it is told/);
      const impersonating = await render(
        namespace,
        ...REQUIRED,
        '--set',
        `${IN_CLUSTER},clusters[0].serviceAccount=${namespace}/tenant`,
      );
      expect(byKind(impersonating, 'ClusterRole')).toEqual([]);
      expect(await dryRun(impersonating, namespace)).toEqual([]);
    });

    it('broad only when asked: any kind anywhere, labelled as equivalent to cluster-admin', async () => {
      const manifests = await render(namespace, ...REQUIRED, '--set', IN_CLUSTER, '--set', 'rbac.mode=broad');
      const [role] = byKind(manifests, 'ClusterRole');
      expect(rulesOf(role)).toEqual([
        { apiGroups: ['*'], resources: ['*'], verbs: ['get', 'list', 'create', 'patch', 'delete'] },
      ]);
      const annotations = role?.metadata.annotations as Record<string, string> | undefined;
      expect(annotations?.['plumbline.dev/rbac']).toMatch(/cluster-admin/);
      expect(byKind(manifests, 'ClusterRoleBinding')).toHaveLength(1);
      expect(byKind(manifests, 'RoleBinding')).toEqual([]);
      expect(await dryRun(manifests, namespace)).toEqual([]);
      const unknown = await helm('template', 'plumbline', chart, ...minimal(namespace), '--set', 'rbac.mode=admin');
      expect(unknown.code).not.toBe(0);
    });
  });

  describe('NetworkPolicies', () => {
    it('receiver: connections only to its port, out only to DNS and Redis; worker: out only to DNS, Redis, GitHub and the apiservers', async () => {
      const manifests = await render(namespace, ...minimal(namespace));
      const receiver = policy(manifests, '-receiver')!;
      const worker = policy(manifests, '-worker')!;
      expect(receiver.policyTypes).toEqual(['Ingress', 'Egress']);
      expect(ports(receiver.ingress)).toEqual(['3000/TCP']);
      expect(ports(receiver.egress)).toEqual(['26379/TCP', '53/TCP', '53/UDP', '6379/TCP']);
      expect(worker.policyTypes).toEqual(['Ingress', 'Egress']);
      expect(ports(worker.ingress)).toEqual(['8081/TCP']);
      expect(ports(worker.egress)).toEqual(['26379/TCP', '443/TCP', '53/TCP', '53/UDP', '6379/TCP', '6443/TCP']);
      // The pods they select are the chart's pods.
      const labels = (kind: string, suffix: string) =>
        (named(manifests, kind, suffix)!.spec as { template: { metadata: { labels: Record<string, string> } } })
          .template.metadata.labels;
      const selector = (suffix: string) =>
        (named(manifests, 'NetworkPolicy', suffix)!.spec as { podSelector: { matchLabels: Record<string, string> } })
          .podSelector.matchLabels;
      expect(labels('Deployment', '-receiver')).toMatchObject(selector('-receiver'));
      expect(labels('Deployment', '-worker')).toMatchObject(selector('-worker'));
      expect(await dryRun(manifests, namespace)).toEqual([]);
      const none = await render(namespace, ...minimal(namespace), '--set', 'networkPolicy.enabled=false');
      expect(byKind(none, 'NetworkPolicy')).toEqual([]);
    });

    it('narrows each destination to the peers an operator lists (full values), accepted by the apiserver', async () => {
      const manifests = await render(
        namespace,
        '-f',
        join(packageRoot(), 'test', 'helm', 'full-values.yaml'),
        '--set',
        `rbac.namespaces[0]=${namespace}`,
      );
      const worker = policy(manifests, '-worker')!;
      const to = (port: string) => worker.egress.find((rule) => ports([rule]).includes(port))?.to;
      expect(to('6379/TCP')).toEqual([{ ipBlock: { cidr: '10.40.0.10/32' } }]);
      expect(to('5000/TCP')).toEqual([{ ipBlock: { cidr: '10.50.0.0/16' } }]);
      expect(policy(manifests, '-receiver')!.ingress[0]!.from).toEqual([
        { namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'ingress-nginx' } } },
        { namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'monitoring' } } },
      ]);
      expect(await dryRun(manifests, namespace)).toEqual([]);
    });
  });
  describe('chart sources', () => {
    const full = () => render(namespace, '-f', FULL_VALUES, '--set', `rbac.namespaces[0]=${namespace}`);
    const withSources = (repositories: unknown[]) => [
      ...minimal(namespace),
      '--set-json',
      `charts.repositories=${JSON.stringify(repositories)}`,
    ];

    it('renders `charts:` into the registry the worker reads, pointing at the files it mounts', async () => {
      const manifests = await full();
      expect(registryOf(manifests).charts).toEqual({
        repositories: [
          {
            url: 'oci://ghcr.io/acme/charts',
            mirror: 'oci://registry.internal:5000/ghcr/acme/charts',
            credentials: '/etc/plumbline/charts/ghcr/credentials.json',
            caFile: '/etc/plumbline/charts/ghcr/ca.pem',
            plainHttp: true,
          },
          {
            url: 'https://charts.vendor.example.com/stable',
            mirror: undefined,
            credentials: '/etc/plumbline/charts/vendor/credentials.json',
            caFile: '/etc/plumbline/charts/vendor/ca.pem',
            plainHttp: false,
          },
          {
            url: 'https://charts.bitnami.com/bitnami',
            mirror: 'https://nexus.internal/repository/bitnami',
            credentials: undefined,
            caFile: undefined,
            plainHttp: false,
          },
        ],
        allowPrivateAddresses: false,
      });
      expect(await dryRun(manifests, namespace)).toEqual([]);
      // Without `charts` values the registry has no policy, and the worker mounts nothing for it.
      const none = await render(namespace, ...minimal(namespace));
      expect(registryOf(none).charts).toEqual({ repositories: [], allowPrivateAddresses: false });
      expect(JSON.stringify(named(none, 'Deployment', '-worker'))).not.toContain('/etc/plumbline/charts');
      const open = await render(namespace, ...minimal(namespace), '--set', 'charts.allowPrivateAddresses=true');
      expect(registryOf(open).charts).toEqual({ repositories: [], allowPrivateAddresses: true });
    });

    it('mounts the credentials and CAs read-only into the worker only, each key at its entry’s path', async () => {
      const manifests = await full();
      const worker = podSpecOf(named(manifests, 'Deployment', '-worker')!);
      const volume = worker.volumes?.find((v) => v.name === 'chart-sources');
      expect(volume?.projected?.defaultMode).toBe(0o400);
      expect(volume?.projected?.sources).toEqual([
        { configMap: { name: 'internal-ca', items: [{ key: 'ca.crt', path: 'ghcr/ca.pem' }] } },
        { secret: { name: 'ghcr-pull', items: [{ key: 'helm.json', path: 'ghcr/credentials.json' }] } },
        {
          secret: {
            name: 'plumbline-chart-sources',
            items: [
              { key: 'vendor-credentials.json', path: 'vendor/credentials.json' },
              { key: 'vendor-ca.pem', path: 'vendor/ca.pem' },
            ],
          },
        },
      ]);
      expect(worker.containers[0]?.volumeMounts).toContainEqual({
        name: 'chart-sources',
        mountPath: '/etc/plumbline/charts',
        readOnly: true,
      });
      // The receiver never sees them: no volume, no mount, no name of their Secrets.
      const receiver = JSON.stringify(named(manifests, 'Deployment', '-receiver'));
      for (const text of ['chart-sources', '/etc/plumbline/charts', 'ghcr-pull', 'internal-ca']) {
        expect(receiver).not.toContain(text);
      }
      // The default key of an existing Secret is credentials.json.
      const byDefault = await render(
        namespace,
        ...withSources([{ name: 'ghcr', url: 'oci://ghcr.io/acme', credentials: { existingSecret: 'ghcr-pull' } }]),
      );
      expect(
        podSpecOf(named(byDefault, 'Deployment', '-worker')!).volumes?.find((v) => v.name === 'chart-sources')
          ?.projected?.sources,
      ).toEqual([
        { secret: { name: 'ghcr-pull', items: [{ key: 'credentials.json', path: 'ghcr/credentials.json' }] } },
      ]);
      expect(byKind(byDefault, 'ExternalSecret')).toEqual([]);
    });

    it('renders an ExternalSecret whose Secret holds the credentials file Plumbline reads', async () => {
      const manifests = await full();
      const external = named(manifests, 'ExternalSecret', '-chart-sources');
      const spec = external?.spec as {
        refreshInterval: string;
        secretStoreRef: { name: string; kind: string };
        target: { name: string; template: { engineVersion: string; data: Record<string, string> } };
        data: { secretKey: string; remoteRef: { key: string; property?: string } }[];
      };
      expect(spec.refreshInterval).toBe('15m');
      expect(spec.secretStoreRef).toEqual({ name: 'vault', kind: 'ClusterSecretStore' });
      expect(spec.target.name).toBe('plumbline-chart-sources');
      expect(spec.data).toEqual([
        { secretKey: 'vendor-username', remoteRef: { key: 'platform/vendor-charts', property: 'username' } },
        { secretKey: 'vendor-password', remoteRef: { key: 'platform/vendor-charts', property: 'token' } },
        { secretKey: 'vendor-ca', remoteRef: { key: 'platform/vendor-charts', property: 'ca' } },
      ]);
      expect(Object.keys(spec.target.template.data).sort()).toEqual(['vendor-ca.pem', 'vendor-credentials.json']);
      expect(spec.target.template.engineVersion).toBe('v2');

      // ESO runs each template with Go's text/template and sprig v3 over the fetched values, as helm does:
      // run them through the real helm on awkward values and read the result as the worker will.
      const fetched = { 'vendor-username': 'robot$acme', 'vendor-password': 'p"a\\ss\nwörd', 'vendor-ca': PEM };
      const produced = await runExternalSecretTemplates(spec.target.template.data, fetched);
      const dir = scratch('plumbline-chart-es-');
      try {
        writeFileSync(join(dir, 'credentials.json'), produced['vendor-credentials.json'] ?? '');
        expect(await readChartCredentials(join(dir, 'credentials.json'))).toEqual({
          username: 'robot$acme',
          password: 'p"a\\ss\nwörd',
        });
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
      expect(produced['vendor-ca.pem']).toBe(PEM);
    });

    it('refuses an entry whose credentials name both an existing Secret and an ExternalSecret, saying which', async () => {
      const both = await helm(
        'template',
        'plumbline',
        chart,
        ...withSources([
          {
            name: 'ghcr',
            url: 'oci://ghcr.io/acme',
            credentials: {
              existingSecret: 'ghcr-pull',
              externalSecret: { username: { key: 'a' }, password: { key: 'b' } },
            },
          },
        ]),
        '--set',
        'charts.externalSecret.secretStoreRef.name=vault',
      );
      expect(both.code).not.toBe(0);
      expect(both.stderr).toMatch(
        /charts\.repositories\[0\] \(ghcr\): credentials: set existingSecret or externalSecret, not both/,
      );
      const neither = await helm(
        'template',
        'plumbline',
        chart,
        ...withSources([{ name: 'ghcr', url: 'oci://ghcr.io/acme', ca: { key: 'ca.crt' } }]),
      );
      expect(neither.stderr).toMatch(
        /charts\.repositories\[0\] \(ghcr\): ca: set configMap, existingSecret or externalSecret/,
      );
      const twice = await helm(
        'template',
        'plumbline',
        chart,
        ...withSources([
          { name: 'ghcr', url: 'oci://ghcr.io/a' },
          { name: 'ghcr', url: 'oci://ghcr.io/b' },
        ]),
      );
      expect(twice.stderr).toMatch(/charts\.repositories\[1\] \(ghcr\): another entry has this name/);
      const noStore = await helm(
        'template',
        'plumbline',
        chart,
        ...withSources([
          {
            name: 'vendor',
            url: 'https://charts.example.com',
            credentials: { externalSecret: { username: { key: 'a' }, password: { key: 'b' } } },
          },
        ]),
      );
      expect(noStore.stderr).toMatch(/charts\.externalSecret\.secretStoreRef\.name is required/);
    });

    it('keeps every credential out of the values and the ConfigMaps: only file paths reach the registry', async () => {
      // A password in the values, or in a URL, is refused before anything renders, without repeating it.
      for (const entry of [
        { name: 'ghcr', url: 'oci://ghcr.io/acme', credentials: { username: 'robot', password: 'hunter2' } },
        { name: 'ghcr', url: 'oci://ghcr.io/acme', credentials: '/etc/somewhere/else.json' },
        { name: 'ghcr', url: 'https://robot:hunter2@charts.example.com' },
        { name: 'ghcr', url: 'oci://ghcr.io/acme', mirror: 'oci://robot:hunter2@registry.internal' },
      ]) {
        const refused = await helm('template', 'plumbline', chart, ...withSources([entry]));
        const leaked = `${refused.stdout}${refused.stderr}`.includes('hunter2');
        const namesTheEntry = /charts\.repositories\[0\] \(ghcr\)|\/charts\/repositories\/0/.test(refused.stderr);
        expect({ entry, code: refused.code, leaked, namesTheEntry }).toEqual({
          entry,
          code: 1,
          leaked: false,
          namesTheEntry: true,
        });
      }
      // What renders names files and store keys, never values: no ConfigMap holds a store key or a Secret's.
      const manifests = await full();
      const configMaps = JSON.stringify(byKind(manifests, 'ConfigMap'));
      for (const reference of ['platform/vendor-charts', 'helm.json', 'ghcr-pull', 'token']) {
        expect(configMaps).not.toContain(reference);
      }
      expect(byKind(manifests, 'Secret')).toEqual([]);
    });
  });
});
