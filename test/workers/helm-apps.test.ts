import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { PatchStrategy } from '@kubernetes/client-node';
import { Redis } from 'ioredis';
import { stringify } from 'yaml';
import { chartServicesFromEnv, pushChartToRegistry } from '../../dev/local-stack/charts.ts';
import { parseClusterRegistry } from '../../src/clusters/cluster-registry.ts';
import { processPreviewJob } from '../../workers/process-preview-job.ts';
import { processResyncJob, type ResyncDependencies } from '../../workers/process-resync-job.ts';
import { processSyncJob, type SyncDependencies } from '../../workers/process-sync-job.ts';
import { credentialsFile, loopbackCertificate, scratch, startChartServer } from '../helpers/chart-test-server.ts';
import { testEnvironment, uniqueName } from '../helpers/environment.ts';
import { kubeClients } from '../helpers/kube.ts';
import {
  createSourceFixture,
  previewJob,
  pushJob,
  type SourceFixture,
  statusStates,
} from '../helpers/source-fixture.ts';
import { workerDependencies } from '../helpers/worker-deps.ts';

/**
 * A Portefaix-shaped repository — an umbrella chart per app whose dependency comes from an OCI registry,
 * per-cluster values files, a plumbline.yaml per cluster — pushed, applied, changed, previewed: the
 * worker as it runs, with the real Helm, the local stack's real OCI registry and apiserver.
 */
const env = testEnvironment();
const kube = kubeClients(env.kubeconfig);
const FOLDER = 'clusters/talos/homelab';

describe('a repository of Helm charts, end to end through the worker', () => {
  let f: SourceFixture;
  let redis: Redis;
  let deps: SyncDependencies;
  const prefix = uniqueName('helm-apps');
  const namespace = uniqueName('cache');
  const base = uniqueName('base');
  const cluster = uniqueName('talos-homelab');
  const context = `plumbline/${cluster}`;
  let dependency: { repository: string; version: string };

  const checkRun = (sha: string) => f.github.checkRuns(f.repository.fullName, sha).find((r) => r.name === context);
  const latest = (sha: string) => f.github.latestStatus(f.repository.fullName, sha, context);
  const appsFile = `apiVersion: plumbline.dev/v1alpha1
kind: Apps
apps:
  - name: base
    path: ../../../stacks/base
  - name: cache
    chart: ../../../charts/cache
    namespace: ${namespace}
    values: [../../../charts/cache/values-talos-homelab.yaml]
    dependsOn: [base]
`;
  const chartFiles = (size: string, extra: Record<string, string> = {}) => ({
    [`${FOLDER}/plumbline.yaml`]: appsFile,
    'stacks/base/base.yaml': `apiVersion: v1\nkind: Namespace\nmetadata:\n  name: ${base}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\n  namespace: ${base}\n`,
    'charts/cache/Chart.yaml': stringify({
      apiVersion: 'v2',
      name: 'cache',
      version: '0.1.0',
      dependencies: [{ name: 'redis', version: dependency.version, repository: dependency.repository }],
    }),
    'charts/cache/values.yaml': 'redis:\n  size: small\n',
    'charts/cache/values-talos-homelab.yaml': `redis:\n  size: ${size}\n`,
    ...extra,
  });

  beforeAll(async () => {
    const services = chartServicesFromEnv();
    const source = join(scratch('plumbline-helm-apps-src-'), 'redis');
    mkdirSync(join(source, 'templates'), { recursive: true });
    writeFileSync(join(source, 'Chart.yaml'), 'apiVersion: v2\nname: redis\nversion: 17.3.1\n');
    writeFileSync(join(source, 'values.yaml'), 'size: small\n');
    writeFileSync(
      join(source, 'templates', 'cm.yaml'),
      'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-redis\ndata:\n  size: {{ .Values.size | quote }}\n',
    );
    const pushed = await pushChartToRegistry(source, `tests/${uniqueName('helm-apps')}`, services);
    dependency = { repository: pushed.repository, version: pushed.version };
    f = await createSourceFixture();
    redis = new Redis(env.redisUrl, { maxRetriesPerRequest: null });
    const credentials = credentialsFile(services.registry.username, services.registry.password);
    const registry = parseClusterRegistry(`
charts:
  repositories:
    - {url: "oci://${services.registry.host}", plainHttp: true, credentials: ${credentials}}
clusters:
  - {name: ${cluster}, repo: ${f.repository.fullName}, path: ${FOLDER}, kubeconfig: ${env.kubeconfig}, prune: true}
`);
    const wired = workerDependencies(f, { registry, redis, prefix });
    deps = { ...wired, engine: { ...wired.engine, healthTimeoutMs: 10_000 } };
  });
  afterAll(async () => {
    redis.disconnect();
    await f.close();
    await Promise.all([namespace, base].map((name) => kube.core.deleteNamespace({ name }).catch(() => undefined)));
  });

  it('applies every app, the chart with its OCI dependency and the cluster values; the check run lists the apps', async () => {
    const sha = await f.work.commit('helm apps', chartFiles('large'));
    await f.work.push();
    const result = await processSyncJob(pushJob(f, sha), deps);

    expect(result.outcomes).toEqual([expect.objectContaining({ status: 'applied' })]);
    expect(statusStates(f, sha, context)).toEqual(['pending', 'success']);
    const description = latest(sha)?.description ?? '';
    expect(description).toMatch(/^4 created in [\d.]+ s$/);
    expect(description.length).toBeLessThanOrEqual(140);
    const live = await kube.core.readNamespacedConfigMap({ name: 'cache-redis', namespace });
    expect(live.data).toEqual({ size: 'large' });
    const summary = checkRun(sha)?.output.summary ?? '';
    expect(summary).toContain('| `base` | path | 1 | 2 created | ✓ healthy |');
    expect(summary).toContain('| `cache` | chart | 2 | 2 created | ✓ healthy |');
  });

  it('a values change of one app configures only its object', async () => {
    const sha = await f.work.commit('bigger cache', chartFiles('huge'));
    await f.work.push();
    const result = await processSyncJob(pushJob(f, sha), deps);

    expect(result.outcomes).toEqual([expect.objectContaining({ status: 'applied' })]);
    expect(latest(sha)?.description).toMatch(/^1 configured in [\d.]+ s$/);
    expect((await kube.core.readNamespacedConfigMap({ name: 'cache-redis', namespace })).data).toEqual({
      size: 'huge',
    });
    expect(checkRun(sha)?.output.summary).toContain('| `cache` | chart | 2 | 1 configured | ✓ healthy |');
  });

  it("a kubectl edit of a chart's object is found and put back by the resync, from the chart's own render", async () => {
    await kube.objects.patch(
      { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'cache-redis', namespace }, data: { size: 'edited' } },
      undefined,
      undefined,
      'kubectl-edit',
      undefined,
      PatchStrategy.MergePatch,
    );
    const resync: ResyncDependencies = {
      ...deps,
      enqueueSync: async () => {},
      nextResyncAt: async () => undefined,
      syncInFlight: async () => false,
    };
    const result = await processResyncJob({ type: 'resync', cluster }, resync);

    expect(result).toMatchObject({ drifted: 1, corrected: 1 });
    expect((await kube.core.readNamespacedConfigMap({ name: 'cache-redis', namespace })).data).toEqual({
      size: 'huge',
    });
  });

  it("a pull request's preview renders the chart and dry-runs it: would configure, nothing written", async () => {
    const sha = await f.work.commit('preview', chartFiles('tiny'));
    await f.work.push();
    await processPreviewJob(previewJob(f, sha), deps);

    expect(latest(sha)?.description).toBe('would configure 1');
    expect((await kube.core.readNamespacedConfigMap({ name: 'cache-redis', namespace })).data).toEqual({
      size: 'huge',
    });
  });

  it("a chart's object outside the cluster's tenancy limits fails the commit, naming the template, before anything is written", async () => {
    const limited = parseClusterRegistry(`
charts:
  repositories:
    - {url: "oci://${chartServicesFromEnv().registry.host}", plainHttp: true, credentials: ${credentialsFile(chartServicesFromEnv().registry.username, chartServicesFromEnv().registry.password)}}
clusters:
  - {name: ${cluster}, repo: ${f.repository.fullName}, path: ${FOLDER}, kubeconfig: ${env.kubeconfig}, prune: true, namespaces: [${base}]}
`);
    const sha = await f.work.commit('stray', chartFiles('enormous'));
    await f.work.push();
    const result = await processSyncJob(pushJob(f, sha), { ...deps, registry: limited });

    expect(result.outcomes).toEqual([expect.objectContaining({ status: 'failed' })]);
    expect(latest(sha)?.description).toMatch(/\(charts\/cache\/Chart.yaml\): namespace \S+ is outside the namespaces/);
    expect(checkRun(sha)?.annotations.map((a) => a.path)).toContain('charts/cache/Chart.yaml');
    expect((await kube.core.readNamespacedConfigMap({ name: 'cache-redis', namespace })).data).toEqual({
      size: 'huge',
    });
  });

  it('a chart that renders a Secret from values fails: the status points at existingSecret, the annotation at the template', async () => {
    const sha = await f.work.commit(
      'secret in values',
      chartFiles('huge', {
        'charts/cache/templates/secret.yaml':
          'apiVersion: v1\nkind: Secret\nmetadata:\n  name: cache-auth\nstringData:\n  password: {{ .Values.password | default "hunter2" | quote }}\n',
      }),
    );
    await f.work.push();
    const result = await processSyncJob(pushJob(f, sha), deps);

    expect(result.outcomes).toEqual([expect.objectContaining({ status: 'failed' })]);
    expect(statusStates(f, sha, context)).toEqual(['pending', 'failure']);
    expect(latest(sha)?.description).toMatch(/existingSecret/);
    expect(latest(sha)?.description).not.toMatch(/hunter2/);
    expect(checkRun(sha)?.annotations[0]).toMatchObject({ path: 'charts/cache/templates/secret.yaml' });
  });
});

describe('a chart source that is down is infrastructure, not the commit', () => {
  it('a 503 from the repository fails the attempt (retried) and ends in error, never failure', async () => {
    const tls = loopbackCertificate();
    const server = await startChartServer({ tls });
    server.route('/stable/index.yaml', { status: 503, body: 'maintenance' });
    const f = await createSourceFixture();
    const redis = new Redis(env.redisUrl, { maxRetriesPerRequest: null });
    try {
      const cluster = uniqueName('down');
      const registry = parseClusterRegistry(`
charts:
  repositories:
    - {url: "${server.url}/stable", caFile: ${tls.caFile}}
clusters:
  - {name: ${cluster}, repo: ${f.repository.fullName}, path: ${FOLDER}, kubeconfig: ${env.kubeconfig}}
`);
      const deps = workerDependencies(f, { registry, redis, prefix: uniqueName('down') });
      const sha = await f.work.commit('remote chart', {
        [`${FOLDER}/plumbline.yaml`]: `apiVersion: plumbline.dev/v1alpha1\nkind: Apps\napps:\n  - name: podinfo\n    chart: { repository: "${server.url}/stable", name: podinfo, version: 6.9.2 }\n`,
      });
      await f.work.push();

      await expect(processSyncJob(pushJob(f, sha), deps, { attempt: 1, maxAttempts: 2 })).rejects.toThrow(
        /could not be reached/,
      );
      expect(statusStates(f, sha, `plumbline/${cluster}`)).toEqual(['pending']);
      const last = await processSyncJob(pushJob(f, sha), deps, { attempt: 2, maxAttempts: 2 });
      expect(last.outcomes).toEqual([expect.objectContaining({ status: 'error' })]);
      const status = f.github.latestStatus(f.repository.fullName, sha, `plumbline/${cluster}`);
      expect(status?.state).toBe('error');
      expect(status?.description).toMatch(/the render could not finish/);
      expect(status?.description).not.toContain('127.0.0.1');
    } finally {
      redis.disconnect();
      await f.close();
      await server.close();
    }
  });
});
