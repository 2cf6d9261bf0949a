import { join } from 'node:path';
import type { Worker } from 'bullmq';
import { ChartCache } from '../../src/charts/chart-cache.ts';
import type { ClusterRegistry } from '../../src/clusters/cluster-registry.ts';
import { createClusterClient, loadKubeConfig } from '../../src/engine/cluster-client.ts';
import { createRenderCache } from '../../src/engine/render-cache.ts';
import { KUBECTL_KUSTOMIZE, type RenderOptions, renderCluster } from '../../src/engine/render-cluster.ts';
import { GitHubApp } from '../../src/github/github-app.ts';
import { createRepositoryDirectory } from '../../src/github/repository-directory.ts';
import { createRepositoryResolver } from '../../src/github/repository-resolver.ts';
import { createLogger, type Logger } from '../../src/logging/create-logger.ts';
import type { PlumblineJob } from '../../src/queue/jobs.ts';
import type { RedisConnection } from '../../src/redis/redis-topology.ts';
import { createGitHubReporter } from '../../src/reporting/github-reporter.ts';
import { createWriteBudget } from '../../src/reporting/write-budget.ts';
import { createClusterStateStore } from '../../src/status/cluster-state.ts';
import { DEFAULT_ENGINE_SETTINGS } from '../../workers/engine-settings.ts';
import { createJobConsumer } from '../../workers/job-consumer.ts';
import { processSyncJob, type SyncDependencies, type SyncResult } from '../../workers/process-sync-job.ts';
import type { WorkerMetrics } from '../../workers/worker-metrics.ts';
import type { SourceFixture } from './source-fixture.ts';

export const STATUS_PAGE_URL = 'https://plumbline.example.test';

/**
 * Everything a sync or preview job needs, wired to a source fixture's GitHub stand-in and real clusters.
 * With `metrics`, wired as the worker wires them: the App's requests, every cluster client's requests and a
 * render cache (whose hits and misses the metrics export) all report to them.
 */
export function workerDependencies(
  f: SourceFixture,
  options: {
    readonly registry: ClusterRegistry;
    readonly redis: RedisConnection;
    readonly prefix: string;
    readonly logger?: Logger;
    readonly writesPerMinute?: number;
    readonly metrics?: WorkerMetrics;
  },
): SyncDependencies {
  const logger = options.logger ?? createLogger('silent');
  const { metrics } = options;
  const app = metrics
    ? new GitHubApp({
        appId: String(f.github.appId),
        privateKey: f.github.privateKeyPem,
        baseUrl: f.github.apiUrl,
        logger,
        observe: metrics.githubRequest,
      })
    : f.app;
  // As the worker renders: Helm and the machine's chart cache under the registry's chart sources.
  const renderOptions: RenderOptions = {
    kustomize: KUBECTL_KUSTOMIZE,
    timeoutMs: 60_000,
    charts: {
      helm: process.env.PLUMBLINE_TEST_HELM ?? 'helm',
      fetch: { sources: options.registry.charts, cache: new ChartCache(join(f.dir, 'cache')) },
    },
  };
  const cache = metrics ? createRenderCache(renderOptions) : undefined;
  if (cache) metrics?.watchRenderCache(cache.stats);
  return {
    registry: options.registry,
    mirror: f.mirror,
    workDir: join(f.dir, 'work'),
    tokenFor: async (id: number | undefined) => (id === undefined ? undefined : app.installationToken(id)),
    clusterClient: (cluster) =>
      createClusterClient(loadKubeConfig({ kubeconfig: cluster.kubeconfig }), {
        observe: metrics && ((verb, code, seconds) => metrics.apiserverRequest(cluster.name, verb, code, seconds)),
      }),
    redis: options.redis,
    prefix: options.prefix,
    logger,
    render: cache ? cache.render : (treeDir, path, target) => renderCluster(treeDir, path, renderOptions, target),
    engine: { ...DEFAULT_ENGINE_SETTINGS, healthTimeoutMs: 1_000 },
    reporter: createGitHubReporter({
      redis: options.redis,
      prefix: options.prefix,
      octokitFor: (id) => app.installationOctokit(id),
      budget: createWriteBudget(options.redis, {
        prefix: options.prefix,
        perMinute: options.writesPerMinute ?? 6_000,
        burst: 100,
      }),
      logger,
    }),
    statusPageUrl: STATUS_PAGE_URL,
    state: createClusterStateStore(options.redis, options.prefix),
    directory: createRepositoryDirectory(options.redis, options.prefix, app),
    repositories: createRepositoryResolver({ app, webUrl: f.github.webUrl }),
    ...(metrics ? { metrics } : {}),
  };
}

/**
 * A sync consumer in this process — the worker that takes over in the drills — with a short job lock; the
 * results of the jobs it completes are collected in `results`.
 */
export function startSyncConsumer(
  redis: RedisConnection,
  prefix: string,
  deps: SyncDependencies,
): { readonly worker: Worker<PlumblineJob, SyncResult | undefined>; readonly results: SyncResult[] } {
  const results: SyncResult[] = [];
  const worker = createJobConsumer<SyncResult | undefined>({
    connection: redis,
    prefix,
    queue: 'sync',
    concurrency: 1,
    lockDurationMs: 2_000,
    process: async (job, run) => (job.type === 'sync' ? processSyncJob(job, deps, run) : undefined),
    onError: () => {},
  });
  worker.on('completed', (done) => {
    if (done.returnvalue) results.push(done.returnvalue);
  });
  return { worker, results };
}

/** One Namespace and `count` ConfigMaps `cm-<i>` in it, as one multi-document file; `data(i)` is each one's data. */
export function manyConfigMaps(namespace: string, count: number, data: (i: number) => string): string {
  const docs = [`apiVersion: v1\nkind: Namespace\nmetadata:\n  name: ${namespace}\n`];
  for (let i = 0; i < count; i += 1)
    docs.push(
      `apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm-${i}\n  namespace: ${namespace}\ndata:\n  ${data(i)}\n`,
    );
  return docs.join('---\n');
}
