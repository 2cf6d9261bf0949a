import { createHmac, randomBytes, randomUUID } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KubeConfig, KubernetesObjectApi, PatchStrategy } from '@kubernetes/client-node';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { readEnvOptions } from '../../src/config/read-env-options.ts';
import { createClusterClient, loadKubeConfig } from '../../src/engine/cluster-client.ts';
import { customResourceDefinition } from '../../src/engine/custom-resource-definition.ts';
import type { Manifest } from '../../src/engine/manifest.ts';
import { createLogger } from '../../src/logging/create-logger.ts';
import { QUEUE_NAMES, type ResyncJob } from '../../src/queue/jobs.ts';
import { startReceiver } from '../../src/receiver/start-receiver.ts';
import { createClusterStateStore } from '../../src/status/cluster-state.ts';
import { packageRoot } from '../../src/support/package-root.ts';
import { startWorker } from '../../workers/start-worker.ts';
import { GitHubStandIn } from '../github-stand-in/github-stand-in.ts';
import { type ChartServices, pushChartToRegistry } from '../local-stack/charts.ts';
import { freePort } from '../local-stack/free-port.ts';
import { stopProcess } from '../local-stack/processes.ts';
import { startRedisServer } from '../local-stack/redis-server.ts';
import { type ChartServicesRecord, readState, stackDown, stackUp } from '../local-stack/stack.ts';
import { defaultCacheDir } from '../local-stack/toolchain.ts';
import { DemoRepository } from './demo-repository.ts';
import { pinChartDependency } from './pin-chart-dependency.ts';

export interface DemoOptions {
  /** An existing cluster to use instead of the local control plane (never implicit). */
  readonly kubeconfig: string | undefined;
  /** Stop after the story instead of waiting for Ctrl-C (for CI and tests). */
  readonly exitAfterStory: boolean;
  readonly out: (line: string) => void;
}

const INSTALLATION_ID = 1;
const REPOSITORY = 'acme/platform-gitops';
const STORY_TIMEOUT_MS = 180_000;

/** The umbrella chart of the sample repository, and the upstream chart it depends on (pushed at start-up). */
const UMBRELLA_CHART = 'charts/observability/alerts';
const UPSTREAM_CHART = { dir: ['dev', 'demo', 'upstream-charts', 'alerts'], ref: 'demo/charts' } as const;
/** The cluster of the Helm step: its folder is a plumbline.yaml of apps, one of them the umbrella chart. */
const HELM_CLUSTER = 'aws-staging';
/** The namespaces the sample repository creates: a new run starts by removing them. */
const DEMO_NAMESPACES = ['monitoring', 'podinfo', 'alerting'] as const;

/** The External Secrets Operator's `ExternalSecret` kind, as a cluster running ESO serves it. */
const EXTERNAL_SECRET_CRD = customResourceDefinition({
  group: 'external-secrets.io',
  kind: 'ExternalSecret',
  plural: 'externalsecrets',
});

/** Things to stop, last started first. */
type Cleanup = () => Promise<void>;

/**
 * `npx plumbline demo`: the whole system on this machine with nothing configured — Redis and two
 * Kubernetes API servers (or `--kubeconfig`), a GitHub stand-in holding a sample repository, the
 * receiver and worker — and a story told through real signed webhooks: a push turning green, a
 * commit that breaks one cluster, its fix, a Helm values change for one cluster, and a `kubectl edit`
 * found and corrected by the resync.
 */
export async function runDemo(options: DemoOptions): Promise<void> {
  const { out } = options;
  const cleanups: Cleanup[] = [];
  let stopping: Promise<void> | undefined;
  const stop = () => {
    stopping ??= (async () => {
      for (const cleanup of cleanups.reverse()) await cleanup().catch(() => undefined);
    })();
    return stopping;
  };
  const interrupted = new Promise<'signal'>((resolve) => {
    const onSignal = () => {
      out('\nstopping…');
      resolve('signal');
    };
    process.once('SIGINT', onSignal);
    process.once('SIGTERM', onSignal);
    cleanups.push(async () => {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    });
  });
  try {
    const outcome = await Promise.race([story(options, cleanups), interrupted]);
    if (outcome === 'told' && !options.exitAfterStory) {
      out('\nPlumbline keeps running (resyncs every minute). Press Ctrl-C to stop; nothing is left behind.');
      await interrupted;
    }
  } finally {
    await stop();
    out('demo stopped.');
  }
}

async function story(options: DemoOptions, cleanups: Cleanup[]): Promise<'told'> {
  const { out } = options;
  const root = packageRoot();
  const workDir = await mkdtemp(join(tmpdir(), 'plumbline-demo-'));
  cleanups.push(() => rm(workDir, { recursive: true, force: true }));

  // 1. Infrastructure: Redis and the clusters.
  let redisUrl: string;
  let clusters: { name: string; path: string; kubeconfig: string }[];
  /** The local stack's Helm and OCI registry; none with `--kubeconfig` (that cluster gets no Helm apps). */
  let charts: ChartServicesRecord | undefined;
  if (options.kubeconfig) {
    out(`● using the cluster in ${options.kubeconfig} (as cluster "demo-production"), and a Redis of its own`);
    const redis = await startRedisServer(workDir, await freePort(), { name: 'demo' });
    cleanups.push(() => stopProcess(redis.pid, redis.command));
    redisUrl = redis.url;
    clusters = [{ name: 'demo-production', path: 'clusters/gcp/production', kubeconfig: options.kubeconfig }];
  } else {
    const stackDir = join(root, '.local');
    const wasRunning = (await readState(stackDir)) !== undefined;
    out('● starting the local stack: Redis, etcd and two Kubernetes API servers (built from Go modules the first');
    out('  time, which takes several minutes; cached afterwards)');
    const state = await stackUp({
      stackDir,
      goDir: join(root, 'dev', 'local-stack', 'go'),
      cacheDir: defaultCacheDir(process.env),
      log: (line) => out(`  ${line}`),
    });
    if (!wasRunning) cleanups.push(() => stackDown({ stackDir, log: (line) => out(`  ${line}`) }));
    const [a, b] = state.clusters;
    if (!a || !b) throw new Error('the local stack has fewer than two clusters');
    redisUrl = state.redis.url;
    charts = state.charts;
    if (!charts) throw new Error('the local stack started without its chart services');
    clusters = [
      { name: 'gcp-production', path: 'clusters/gcp/production', kubeconfig: a.kubeconfig },
      { name: HELM_CLUSTER, path: 'clusters/aws/staging', kubeconfig: b.kubeconfig },
    ];
    // A demo run before this one left its objects: start from clean clusters (the local stack only).
    await Promise.all(clusters.map((c) => resetDemoObjects(c.kubeconfig, c.name)));
  }
  for (const cluster of clusters) {
    await createClusterClient(loadKubeConfig(cluster)).apply(EXTERNAL_SECRET_CRD, { dryRun: false, force: true });
  }

  // 2. GitHub: the stand-in, holding the sample repository.
  const github = await new GitHubStandIn({ rootDir: join(workDir, 'github') }).start();
  cleanups.push(() => github.stop());
  const repository = await github.createRepository(REPOSITORY, INSTALLATION_ID);
  const work = await DemoRepository.create(
    join(workDir, 'clone'),
    repository.bareDir,
    join(root, 'dev', 'demo', 'sample-repository'),
  );
  out(
    `● GitHub stand-in at ${github.apiUrl} with ${REPOSITORY} (the Portefaix layout: clusters/, stacks/, apps/, charts/)`,
  );
  // The upstream chart the umbrella chart depends on: in the local OCI registry, pinned before the first commit.
  const firstFiles: Record<string, string> = {};
  let chartPolicy = '';
  if (charts) {
    const services = chartServices(charts);
    const pushed = await pushChartToRegistry(join(root, ...UPSTREAM_CHART.dir), UPSTREAM_CHART.ref, services);
    const chartFile = `${UMBRELLA_CHART}/Chart.yaml`;
    firstFiles[chartFile] = pinChartDependency(await readFile(join(work.dir, chartFile), 'utf8'), pushed);
    out(
      `● pushed the upstream chart ${pushed.name} ${pushed.version} to ${pushed.repository} (${pushed.digest.slice(0, 19)}…);`,
    );
    out(`  ${chartFile} pins it there, at exactly that version`);
    const credentials = join(workDir, 'chart-credentials.json');
    const { username, password } = services.registry;
    await writeFile(credentials, JSON.stringify({ username, password }), { mode: 0o600 });
    chartPolicy = `charts:\n  repositories:\n    - {url: ${JSON.stringify(`oci://${services.registry.host}`)}, plainHttp: true, credentials: ${JSON.stringify(credentials)}}\n`;
  }

  // 3. Plumbline: receiver and worker, configured as an operator would.
  const registryFile = join(workDir, 'clusters.yaml');
  await writeFile(
    registryFile,
    `${chartPolicy}clusters:\n${clusters
      .map(
        (c) =>
          `  - {name: ${c.name}, repo: ${REPOSITORY}, path: ${c.path}, kubeconfig: ${JSON.stringify(c.kubeconfig)}, interval: 1m}`,
      )
      .join('\n')}\n`,
  );
  const port = await preferredPort(3000);
  const webhookSecret = randomBytes(24).toString('hex');
  const prefix = `plumbline-demo-${randomBytes(3).toString('hex')}`;
  const env = {
    PORT: String(port),
    REDIS_URL: redisUrl,
    PLUMBLINE_QUEUE_PREFIX: prefix,
    GITHUB_WEBHOOK_SECRET: webhookSecret,
    GITHUB_APP_ID: String(github.appId),
    GITHUB_PRIVATE_KEY: github.privateKeyPem,
    GITHUB_API_URL: github.apiUrl,
    PLUMBLINE_CLUSTERS: registryFile,
    PLUMBLINE_CACHE_DIR: join(workDir, 'cache'),
    PLUMBLINE_PUBLIC_URL: `http://127.0.0.1:${port}`,
    PLUMBLINE_PUSH_COALESCE_MS: '100',
    // The local control plane runs no workload controllers: Deployments never become available there.
    PLUMBLINE_HEALTH_TIMEOUT_MS: '2000',
    ...(charts ? { PLUMBLINE_HELM: charts.helm.path } : {}),
    LOG_LEVEL: 'info',
  };
  const logFile = join(root, '.local', 'demo.log');
  await mkdir(join(root, '.local'), { recursive: true });
  const logStream = createWriteStream(logFile);
  cleanups.push(() => new Promise<void>((resolve) => logStream.end(() => resolve())));
  const logger = createLogger('info', logStream);
  const config = readEnvOptions(env);
  const worker = await startWorker(config, logger);
  cleanups.push(() => worker.close());
  const receiver = await startReceiver(config, logger);
  cleanups.push(() => receiver.close());
  const base = `http://127.0.0.1:${receiver.port}`;
  out(`● Plumbline is running: webhooks at ${base}/api/github/webhooks, status page at ${base}/`);
  out(`  (logs: ${logFile})`);

  const push = async (title: string, files: Record<string, string | null>, before: string | undefined) => {
    const sha = await work.commit(title, files);
    await work.push();
    const status = await deliverPush(base, webhookSecret, repository, sha, before);
    out(`  git push → ${sha.slice(0, 7)} "${title}"; signed push webhook answered ${status}`);
    await watchStatuses(github, sha, out);
    return sha;
  };

  // 4. The story.
  out('\n1. A first push deploys the repository to both clusters');
  const first = await push('Deploy the platform', firstFiles, undefined);
  if (charts) printApps(github, first, HELM_CLUSTER, out);

  out('\n2. A commit that breaks one cluster: a ConfigMap the API server refuses, in the security stack');
  const broken = await push(
    'Add registry settings',
    {
      'stacks/security/registry-settings.yaml':
        'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: Registry_Settings\n  namespace: monitoring\ndata:\n  mirror: registry.internal\n',
      'stacks/security/kustomization.yaml':
        'apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - external-secret.yaml\n  - alerting-webhook.yaml\n  - registry-settings.yaml\n',
    },
    first,
  );
  for (const run of github.checkRuns(REPOSITORY, broken)) {
    for (const a of run.annotations) {
      out(`  annotation on ${a.path}:${a.start_line} — ${a.message.slice(0, 110)}…`);
    }
  }

  out('\n3. The fix: a valid name');
  const fixed = await push(
    'Fix the registry settings name',
    {
      'stacks/security/registry-settings.yaml':
        'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: registry-settings\n  namespace: monitoring\ndata:\n  mirror: registry.internal\n',
    },
    broken,
  );

  out(`\n4. A Helm values change for one cluster: ${HELM_CLUSTER}'s alerts repeat every hour during a load test`);
  let last = fixed;
  const helmCluster = clusters.find((c) => c.name === HELM_CLUSTER);
  if (!charts || !helmCluster) {
    out(
      `  (skipped: the chart app is on ${HELM_CLUSTER}, a cluster of the local stack; --kubeconfig gives one cluster)`,
    );
  } else {
    last = await push(
      'Page staging every hour',
      { [`${UMBRELLA_CHART}/values-aws-staging.yaml`]: 'alerts:\n  receiver: staging-oncall\n  repeatInterval: 1h\n' },
      fixed,
    );
    printApps(github, last, HELM_CLUSTER, out);
    const interval = (await readConfigMap(helmCluster.kubeconfig, 'alerting', 'alerts-routes'))?.['repeat-interval'];
    out(`  live on ${HELM_CLUSTER}: ConfigMap alerting/alerts-routes repeat-interval: ${interval ?? '(not there)'}`);
  }

  out('\n5. Someone edits a live object by hand; the next resync finds the drift and puts it back');
  const [target] = clusters;
  if (!target) throw new Error('no cluster');
  await kubectlEdit(target.kubeconfig);
  out(`  kubectl edit configmap grafana-settings -n monitoring  (theme: dark → light) on ${target.name}`);
  const redis = new Redis(redisUrl, { maxRetriesPerRequest: null });
  cleanups.push(async () => redis.disconnect());
  const resyncs = new Queue<ResyncJob>(QUEUE_NAMES.resync, { connection: redis, prefix });
  cleanups.push(() => resyncs.close());
  // The schedule would run it within the minute; the demo does not make you wait.
  await resyncs.add('resync', { type: 'resync', cluster: target.name });
  const state = createClusterStateStore(redis, prefix);
  const drift = await waitFor(async () => {
    const s = await state.get(target.name);
    return s?.drift?.correctedAt ? s.drift : undefined;
  }, 'the resync to correct the drift');
  for (const object of drift.objects) {
    for (const field of object.fields) {
      out(`  drift: ${object.object} ${field.path}, changed by ${field.changedBy.join(', ') || 'someone'} → corrected`);
    }
  }
  const theme = (await readConfigMap(target.kubeconfig, 'monitoring', 'grafana-settings'))?.theme;
  out(`  live value again: theme: ${theme}`);

  out(`\nAll statuses of ${last.slice(0, 7)} are final. See them on the status page: ${base}/`);
  out(`JSON: ${base}/api/clusters`);
  return 'told';
}

/** The chart services of the local stack as the chart helpers take them. */
function chartServices(charts: ChartServicesRecord): ChartServices {
  return {
    helm: charts.helm.path,
    registry: { host: charts.registry.host, ...charts.registry.credentials },
    repository: { url: charts.repository.url, dir: charts.repository.dir, ...charts.repository.credentials },
  };
}

/** The rows of the Apps table of a cluster's check run on `sha`: what each app changed, and its health. */
function printApps(github: GitHubStandIn, sha: string, cluster: string, out: (line: string) => void): void {
  const run = github.checkRuns(REPOSITORY, sha).find((r) => r.name === `plumbline/${cluster}`);
  const rows = (run?.output.summary ?? '').split('\n').filter((line) => line.startsWith('| `'));
  if (rows.length === 0) return;
  out(`  apps of ${cluster} (its check run):`);
  for (const row of rows) out(`    ${row}`);
}

/** Prints each status as it arrives, until the roll-up `plumbline` is final. */
async function watchStatuses(github: GitHubStandIn, sha: string, out: (line: string) => void): Promise<void> {
  let seen = 0;
  await waitFor(
    async () => {
      const statuses = github.statuses(REPOSITORY, sha);
      for (const s of statuses.slice(seen)) {
        out(`  ${s.context.padEnd(26)} ${s.state.padEnd(8)} ${s.description ?? ''}`);
      }
      seen = statuses.length;
      const rollUp = github.latestStatus(REPOSITORY, sha, 'plumbline');
      return rollUp && rollUp.state !== 'pending' ? true : undefined;
    },
    `the statuses of ${sha.slice(0, 7)}`,
  );
}

async function waitFor<T>(probe: () => Promise<T | undefined>, what: string): Promise<T> {
  const deadline = Date.now() + STORY_TIMEOUT_MS;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`the demo timed out waiting for ${what} (see .local/demo.log)`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

/** A push webhook as GitHub sends it: the payload fields Plumbline reads, signed with the App's secret. */
async function deliverPush(
  base: string,
  secret: string,
  repository: { id: number; fullName: string; cloneUrl: string; owner: string; name: string },
  after: string,
  before: string | undefined,
): Promise<number> {
  const body = JSON.stringify({
    ref: 'refs/heads/main',
    before: before ?? '0'.repeat(40),
    after,
    forced: false,
    deleted: false,
    created: before === undefined,
    repository: {
      id: repository.id,
      name: repository.name,
      full_name: repository.fullName,
      clone_url: repository.cloneUrl,
      owner: { login: repository.owner },
    },
    installation: { id: INSTALLATION_ID },
    pusher: { name: 'developer' },
  });
  const response = await fetch(`${base}/api/github/webhooks`, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      'user-agent': 'GitHub-Hookshot/plumbline-demo',
      'x-github-event': 'push',
      'x-github-delivery': randomUUID(),
      'x-github-hook-id': '1',
      'x-hub-signature-256': `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`,
    },
    body,
  });
  await response.arrayBuffer();
  return response.status;
}

function objectsApi(kubeconfig: string): KubernetesObjectApi {
  const config = new KubeConfig();
  config.loadFromFile(kubeconfig);
  return KubernetesObjectApi.makeApiClient(config);
}

/** What `kubectl edit` sends: a merge patch recorded for field manager `kubectl-edit`. */
async function kubectlEdit(kubeconfig: string): Promise<void> {
  await objectsApi(kubeconfig).patch(
    {
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: 'grafana-settings', namespace: 'monitoring' },
      data: { theme: 'light' },
    },
    undefined,
    undefined,
    'kubectl-edit',
    undefined,
    PatchStrategy.MergePatch,
  );
}

/** The data of a live ConfigMap; undefined when it is not there. */
async function readConfigMap(
  kubeconfig: string,
  namespace: string,
  name: string,
): Promise<Record<string, string> | undefined> {
  const live = (await objectsApi(kubeconfig)
    .read({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name, namespace } })
    .catch(() => undefined)) as { data?: Record<string, string> } | undefined;
  return live?.data;
}

/** Removes what an earlier demo run applied to a local cluster, so this run starts from nothing. */
async function resetDemoObjects(kubeconfig: string, clusterName: string): Promise<void> {
  const client = createClusterClient(loadKubeConfig({ kubeconfig }));
  const gone = async (manifest: Manifest) => {
    await client.delete(manifest).catch(() => undefined);
  };
  await gone({
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: { name: `plumbline-inventory-${clusterName}`, namespace: 'plumbline-system' },
  });
  for (let i = 0; i < 4; i += 1)
    await gone({
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: `plumbline-baseline-${clusterName}-${i}`, namespace: 'plumbline-system' },
    });
  for (const namespace of DEMO_NAMESPACES)
    await gone({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: namespace } });
  // The namespace controller empties and removes them; wait until they are gone.
  const deadline = Date.now() + 60_000;
  for (const namespace of DEMO_NAMESPACES) {
    while (
      (await client.get({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: namespace } })) &&
      Date.now() < deadline
    )
      await new Promise((resolve) => setTimeout(resolve, 250));
  }
}

/** The port users expect (3000) when it is free, else any free one. */
async function preferredPort(port: number): Promise<number> {
  const { createServer } = await import('node:net');
  const free = await new Promise<boolean>((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
  return free ? port : freePort();
}
