import { join } from 'node:path';
import { Queue, Worker } from 'bullmq';
import { ChartCache } from '../src/charts/chart-cache.ts';
import { type ClusterEntry, loadClusterRegistry } from '../src/clusters/cluster-registry.ts';
import { ConfigError, type EnvOptions } from '../src/config/read-env-options.ts';
import { type ClusterClient, createClusterClient, loadKubeConfig } from '../src/engine/cluster-client.ts';
import { createRenderCache } from '../src/engine/render-cache.ts';
import { resolveKustomize } from '../src/engine/render-cluster.ts';
import { GitHubApp } from '../src/github/github-app.ts';
import { loadAppCredentials } from '../src/github/load-app-credentials.ts';
import { createRepositoryDirectory } from '../src/github/repository-directory.ts';
import { createRepositoryResolver } from '../src/github/repository-resolver.ts';
import type { Logger } from '../src/logging/create-logger.ts';
import { createJobProducer } from '../src/queue/job-producer.ts';
import { type PlumblineJob, QUEUE_NAMES, type ResyncJob } from '../src/queue/jobs.ts';
import { logConnectionChanges } from '../src/queue/log-connection-changes.ts';
import { connectRedis } from '../src/redis/redis-topology.ts';
import { createGitHubReporter } from '../src/reporting/github-reporter.ts';
import { createWriteBudget } from '../src/reporting/write-budget.ts';
import { GitMirror } from '../src/source/git-mirror.ts';
import { createClusterStateStore } from '../src/status/cluster-state.ts';
import {
  type Deadline,
  deadlineIn,
  drainDeadline,
  type ShutdownReport,
  shutdownSteps,
} from '../src/support/close-within.ts';
import { DEFAULT_ENGINE_SETTINGS } from './engine-settings.ts';
import { finalizeFailedJobs } from './finalize-failed-jobs.ts';
import { createJobConsumer } from './job-consumer.ts';
import { processPreviewJob } from './process-preview-job.ts';
import { processResyncJob, type ResyncDependencies, type ResyncResult } from './process-resync-job.ts';
import { processSyncJob, type SyncDependencies, type SyncResult } from './process-sync-job.ts';
import { nextResyncAt, scheduleResyncs } from './schedule-resyncs.ts';
import { serveWorkerHealth } from './serve-worker-health.ts';
import { createWorkerMetrics, queueWaitSeconds } from './worker-metrics.ts';

export interface RunningWorker {
  readonly workers: readonly Worker<PlumblineJob, SyncResult | undefined>[];
  /**
   * Finishes the jobs in progress, then closes Redis, all by `deadline`. What cannot finish by then is
   * given up on and reported: a job still running stays claimed by its BullMQ lock, which expires
   * (`jobLockMs`) so that another worker takes the job over.
   */
  shutdown(deadline: Deadline): Promise<ShutdownReport>;
  /** `shutdown` within the shutdown grace (`PLUMBLINE_SHUTDOWN_GRACE_MS`) from now. */
  close(): Promise<void>;
}

/** Burst of the shared GitHub write budget: a commit's pending statuses go out at once. */
const WRITE_BURST = 20;

/** `npx plumbline worker`: consumes sync and preview jobs with everything they need, built once at start. */
export async function startWorker(options: EnvOptions, logger: Logger): Promise<RunningWorker> {
  if (!options.clustersFile) throw new ConfigError('PLUMBLINE_CLUSTERS is required: the path of the cluster registry');
  const registry = await loadClusterRegistry(options.clustersFile);
  // This process's own metrics, served on its health port: every worker is scraped.
  const metrics = createWorkerMetrics({ processMetrics: true });
  const app = new GitHubApp({ ...(await loadAppCredentials(options)), logger, observe: metrics.githubRequest });
  const redis = connectRedis(options.redis, { maxRetriesPerRequest: null });
  logConnectionChanges(redis, logger);
  const clients = new Map<string, ClusterClient>();
  const clusterClient = (cluster: ClusterEntry) => {
    let client = clients.get(cluster.name);
    if (!client) {
      client = createClusterClient(loadKubeConfig(cluster), {
        serviceAccount: cluster.limits.serviceAccount,
        observe: (verb, code, seconds) => metrics.apiserverRequest(cluster.name, verb, code, seconds),
      });
      clients.set(cluster.name, client);
    }
    return client;
  };
  const reporter = createGitHubReporter({
    redis,
    prefix: options.queuePrefix,
    octokitFor: (installationId) => app.installationOctokit(installationId),
    budget: createWriteBudget(redis, {
      prefix: options.queuePrefix,
      perMinute: options.githubWritesPerMinute,
      burst: Math.min(WRITE_BURST, options.githubWritesPerMinute),
    }),
    logger,
  });
  const renderCache = createRenderCache({
    kustomize: await resolveKustomize(),
    timeoutMs: 60_000,
    maxOutputBytes: options.renderMaxBytes,
    // One cache of fetched charts per machine: every worker process on it shares the files.
    charts: {
      helm: options.helm,
      fetch: { sources: registry.charts, cache: new ChartCache(options.cacheDir) },
    },
  });
  metrics.watchRenderCache(renderCache.stats);
  const deps: SyncDependencies = {
    registry,
    mirror: new GitMirror({
      cacheDir: join(options.cacheDir, 'mirrors'),
      timeoutMs: 120_000,
      allowedOrigin: options.githubWebUrl,
    }),
    workDir: join(options.cacheDir, 'work'),
    tokenFor: async (installationId: number | undefined) =>
      installationId === undefined ? undefined : app.installationToken(installationId),
    clusterClient,
    redis,
    prefix: options.queuePrefix,
    logger,
    render: renderCache.render,
    engine: { ...DEFAULT_ENGINE_SETTINGS, healthTimeoutMs: options.healthTimeoutMs },
    reporter,
    // No link to a page that is not served.
    statusPageUrl: options.statusPage === 'off' ? undefined : options.publicUrl,
    state: createClusterStateStore(redis, options.queuePrefix, { logger }),
    directory: createRepositoryDirectory(redis, options.queuePrefix, app),
    repositories: createRepositoryResolver({ app, webUrl: options.githubWebUrl }),
    metrics,
  };
  const producer = createJobProducer(redis, {
    prefix: options.queuePrefix,
    coalesceMs: options.pushCoalesceMs,
    onError: (error) => logger.warn({ error: error.message }, 'queue error'),
  });
  const resyncQueue = new Queue<ResyncJob>(QUEUE_NAMES.resync, { connection: redis, prefix: options.queuePrefix });
  resyncQueue.on('error', (error) => logger.warn({ error: error.message }, 'resync queue error'));
  const resyncDeps: ResyncDependencies = {
    ...deps,
    enqueueSync: (job) => producer.add(job),
    syncInFlight: (job) => producer.inFlight(job),
    nextResyncAt: (cluster) => nextResyncAt(resyncQueue, cluster),
  };
  const consumer = (queue: 'sync' | 'preview') =>
    createJobConsumer<SyncResult | undefined>({
      connection: redis,
      prefix: options.queuePrefix,
      queue,
      concurrency: options.workerConcurrency,
      lockDurationMs: options.jobLockMs,
      logger,
      observeWait: (seconds) => metrics.jobWaited(queue, seconds),
      process: async (job, run) =>
        job.type === 'sync' ? processSyncJob(job, deps, run) : processPreviewJob(job, deps, run),
      onError: (error) => logger.warn({ error: error.message, queue }, 'worker error'),
    });
  const resyncWorker = new Worker<ResyncJob, ResyncResult | undefined>(
    QUEUE_NAMES.resync,
    async (job) => {
      // A resync's wait is its schedule lag: from when it was due to when it started.
      const waited = queueWaitSeconds(job, Date.now());
      if (waited !== undefined) metrics.jobWaited('resync', waited);
      return processResyncJob(job.data, resyncDeps);
    },
    {
      connection: redis,
      prefix: options.queuePrefix,
      concurrency: options.workerConcurrency,
      lockDuration: options.jobLockMs,
      stalledInterval: options.jobLockMs,
    },
  );
  resyncWorker.on('error', (error) => logger.warn({ error: error.message, queue: 'resync' }, 'worker error'));
  resyncWorker.on('failed', (job, error) =>
    logger.warn(
      { cluster: job?.data.cluster, error: error.message },
      'resync failed; the next one follows at its interval',
    ),
  );
  await scheduleResyncs(resyncQueue, registry);
  const workers = [consumer('sync'), consumer('preview')];
  const finalizer = finalizeFailedJobs({ connection: redis, prefix: options.queuePrefix, reporter, logger });
  const health =
    options.workerHealthPort === undefined
      ? undefined
      : await serveWorkerHealth(options.workerHealthPort, {
          ready: async () => {
            const running = [...workers, resyncWorker].every((w) => w.isRunning());
            return running && redis.status === 'ready' && (await redis.ping()) === 'PONG';
          },
          metrics: metrics.registry,
        });
  logger.info(
    { clusters: registry.clusters.map((c) => c.name), concurrency: options.workerConcurrency },
    'worker started',
  );
  const running: RunningWorker = {
    workers,
    async close() {
      await running.shutdown(deadlineIn(options.shutdownGraceMs));
    },
    async shutdown(deadline) {
      const steps = shutdownSteps('worker', deadline);
      const drainBy = drainDeadline(deadline);
      await steps.run(
        'health server',
        () => new Promise<void>((resolve) => (health ? health.close(() => resolve()) : resolve())),
        {
          by: drainBy,
          force: () => health?.closeAllConnections(),
        },
      );
      // BullMQ's close waits for the jobs in progress and for Redis (a job's last write is its result).
      const consumers = [...workers, resyncWorker];
      const drained = await Promise.all(
        consumers.map((worker) => steps.run(`${worker.name} jobs`, () => worker.close(), { by: drainBy })),
      );
      await steps.run('failed-job finalizer', () => finalizer.close());
      await Promise.all([
        steps.run('resync queue', () => resyncQueue.close()),
        steps.run('job producer', () => producer.close()),
      ]);
      // The end of this process's writes: the locks of the jobs given up on are no longer renewed.
      await steps.run('redis', () => redis.quit().catch(() => redis.disconnect()), { force: () => redis.disconnect() });
      consumers.forEach((worker, i) => {
        if (drained[i] !== 'closed') void worker.disconnect().catch(() => undefined);
      });
      const report = steps.report();
      if (report.gaveUp.length === 0 && report.failed.length === 0) logger.info('worker stopped');
      else
        logger.warn(
          { ...report, takenOverAfterMs: options.jobLockMs },
          'worker stopped without finishing everything; jobs still running are taken over once their lock expires',
        );
      return report;
    },
  };
  return running;
}
