import { join } from 'node:path';
import type { Worker } from 'bullmq';
import { Redis } from 'ioredis';
import { type ClusterEntry, loadClusterRegistry } from '../src/clusters/cluster-registry.ts';
import { ConfigError, type EnvOptions } from '../src/config/read-env-options.ts';
import { type ClusterClient, createClusterClient, loadKubeConfig } from '../src/engine/cluster-client.ts';
import { createRenderCache } from '../src/engine/render-cache.ts';
import { resolveKustomize } from '../src/engine/render-cluster.ts';
import { GitHubApp } from '../src/github/github-app.ts';
import { loadAppCredentials } from '../src/github/load-app-credentials.ts';
import type { Logger } from '../src/logging/create-logger.ts';
import type { PlumblineJob } from '../src/queue/jobs.ts';
import { logConnectionChanges } from '../src/queue/log-connection-changes.ts';
import { GitMirror } from '../src/source/git-mirror.ts';
import { createJobConsumer } from './job-consumer.ts';
import { DEFAULT_ENGINE_SETTINGS, processSyncJob, type SyncResult } from './process-sync-job.ts';

export interface RunningWorker {
  readonly worker: Worker<PlumblineJob, SyncResult | undefined>;
  /** Finishes the jobs in progress, then closes Redis. */
  close(): Promise<void>;
}

/** `npx plumbline worker`: consumes sync jobs with everything they need, built once at start. */
export async function startWorker(options: EnvOptions, logger: Logger): Promise<RunningWorker> {
  if (!options.clustersFile) throw new ConfigError('PLUMBLINE_CLUSTERS is required: the path of the cluster registry');
  const registry = await loadClusterRegistry(options.clustersFile);
  const app = new GitHubApp({ ...(await loadAppCredentials(options)), logger });
  const redis = new Redis(options.redisUrl, { maxRetriesPerRequest: null });
  logConnectionChanges(redis, logger);
  const clients = new Map<string, ClusterClient>();
  const clusterClient = (cluster: ClusterEntry) => {
    let client = clients.get(cluster.name);
    if (!client) {
      client = createClusterClient(loadKubeConfig(cluster));
      clients.set(cluster.name, client);
    }
    return client;
  };
  const deps = {
    registry,
    mirror: new GitMirror({ cacheDir: join(options.cacheDir, 'mirrors'), timeoutMs: 120_000 }),
    workDir: join(options.cacheDir, 'work'),
    tokenFor: async (installationId: number | undefined) =>
      installationId === undefined ? undefined : app.installationToken(installationId),
    clusterClient,
    redis,
    prefix: options.queuePrefix,
    logger,
    render: createRenderCache({ kustomize: await resolveKustomize(), timeoutMs: 60_000 }).render,
    engine: DEFAULT_ENGINE_SETTINGS,
  };
  const worker = createJobConsumer<SyncResult | undefined>({
    connection: redis,
    prefix: options.queuePrefix,
    queue: 'sync',
    concurrency: options.workerConcurrency,
    process: async (job) => (job.type === 'sync' ? processSyncJob(job, deps) : undefined),
    onError: (error) => logger.warn({ error: error.message }, 'worker error'),
  });
  logger.info(
    { clusters: registry.clusters.map((c) => c.name), concurrency: options.workerConcurrency },
    'worker started',
  );
  return {
    worker,
    async close() {
      await worker.close();
      await redis.quit().catch(() => redis.disconnect());
      logger.info('worker stopped');
    },
  };
}
