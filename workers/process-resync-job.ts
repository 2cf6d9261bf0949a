import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { type ClusterEntry, matchesRepository } from '../src/clusters/cluster-registry.ts';
import { type Baselines, readBaselines } from '../src/engine/baseline-store.ts';
import type { ChangeSet } from '../src/engine/change-set.ts';
import type { ClusterClient } from '../src/engine/cluster-client.ts';
import { type ClusterLock, withClusterLock } from '../src/engine/cluster-lock.ts';
import { correctDrift } from '../src/engine/correct-drift.ts';
import { type DriftedObject, scanDrift } from '../src/engine/drift.ts';
import { type Inventory, readInventory } from '../src/engine/inventory.ts';
import { targetOf } from '../src/engine/render-apps.ts';
import type { KnownRepository } from '../src/github/repository-directory.ts';
import { RepositoryNotFoundError, type ResolvedRepository } from '../src/github/repository-resolver.ts';
import type { Logger } from '../src/logging/create-logger.ts';
import type { ResyncJob, SyncJob } from '../src/queue/jobs.ts';
import { readLatestJob, recordLatestJob } from '../src/queue/latest-jobs.ts';
import { planMissedPush, resyncSyncJob, unappliedHead } from '../src/queue/missed-push.ts';
import { type RedisKeys, redisKeys } from '../src/redis/redis-keys.ts';
import { clusterContext } from '../src/reporting/status-text.ts';
import type { Remote } from '../src/source/git-mirror.ts';
import { type ClusterBase, clusterBase } from '../src/status/cluster-state.ts';
import { decideDriftEpisode, resyncResultText } from '../src/status/drift-episode.ts';
import type { SyncDependencies } from './process-sync-job.ts';
import { statusPageLink } from './report-outcome.ts';

export interface ResyncDependencies extends SyncDependencies {
  /** Queues a sync job for a push that arrived without a webhook (through the normal job protocol). */
  readonly enqueueSync: (job: SyncJob) => Promise<void>;
  /** Whether a job for the job's branch is still waiting or running. */
  readonly syncInFlight: (job: SyncJob) => Promise<boolean>;
  /** When the cluster's next resync is due, if known. */
  readonly nextResyncAt: (cluster: string) => Promise<string | undefined>;
}

export interface ResyncResult {
  readonly cluster: string;
  readonly missedPush?: string;
  readonly drifted: number;
  readonly corrected: number;
  readonly requests: number;
}

/** What every step of one cluster's resync works with. */
interface ResyncContext {
  readonly cluster: ClusterEntry;
  readonly base: ClusterBase;
  readonly deps: ResyncDependencies;
  readonly keys: RedisKeys;
  readonly log: Logger;
  /** The cluster's lock: the fence of the cluster writes and of the status-page state. */
  readonly lock: ClusterLock;
}

/**
 * The periodic full resync of one cluster, under its lock: (1) the deploy branch's head, from
 * `git ls-remote` — a commit that moved without a webhook is queued as a sync and counted; (2) drift of
 * the applied commit, one LIST per kind, compared with what Plumbline set; (3) with `selfHeal`, only the
 * drifted objects re-applied. A drift episode is reported once (log, metric, status page, and a status
 * on the applied commit when it changes whether the cluster matches it); a clean resync writes nothing.
 * The decisions are pure (`planMissedPush`, `decideDriftEpisode`); this file carries them out.
 */
export async function processResyncJob(job: ResyncJob, deps: ResyncDependencies): Promise<ResyncResult | undefined> {
  const cluster = deps.registry.clusters.find((c) => c.name === job.cluster);
  if (!cluster) return undefined;
  const log = deps.logger.child({ cluster: cluster.name, resync: true });
  return withClusterLock(
    deps.redis,
    { prefix: deps.prefix, cluster: cluster.name, leaseMs: deps.engine.lockLeaseMs, waitMs: deps.engine.lockWaitMs },
    async (lock) => {
      const context: ResyncContext = {
        cluster,
        base: clusterBase(cluster),
        deps,
        keys: redisKeys(deps.prefix),
        log,
        lock,
      };
      const client = deps.clusterClient(cluster);
      const inventory = await readInventory(client, cluster.name);
      const known = await resolveRegistered(context);
      const missedPush = known ? await syncMissedPush(context, { inventory, known }) : undefined;
      const scan = inventory?.revision
        ? await scanAndCorrect(context, { client, inventory, known })
        : { drifted: [], corrected: 0, requests: 0 };
      await reportDrift(context, { inventory, known, drifted: scan.drifted, corrected: scan.corrected });
      const nextResyncAt = await deps.nextResyncAt(cluster.name);
      await deps.state.update(
        context.base,
        {
          lastResyncAt: new Date().toISOString(),
          lastResyncResult: resyncResultText({ drifted: scan.drifted.length, corrected: scan.corrected }),
          ...(inventory?.revision ? { appliedRevision: inventory.revision } : {}),
          ...(nextResyncAt ? { nextResyncAt } : {}),
        },
        { fence: lock },
      );
      deps.metrics?.resynced(cluster.name);
      return {
        cluster: cluster.name,
        ...(missedPush ? { missedPush } : {}),
        drifted: scan.drifted.length,
        corrected: scan.corrected,
        requests: scan.requests,
      };
    },
  );
}

/** The registered repository as GitHub reports it for its id (clone URL included), if the App reaches it. */
interface RegisteredRepository extends KnownRepository {
  readonly cloneUrl: string;
}

async function resolveRegistered({ cluster, deps, log }: ResyncContext): Promise<RegisteredRepository | undefined> {
  const known = await deps.directory.lookup(cluster.repo);
  if (!known) return undefined;
  let resolved: ResolvedRepository;
  try {
    resolved = await deps.repositories.resolve(known.repository.id, known.installationId);
  } catch (error) {
    // The installation no longer reaches it: drift is still scanned and reported on the status page.
    if (!(error instanceof RepositoryNotFoundError)) throw error;
    log.warn({ repositoryId: known.repository.id }, 'the registered repository is not reachable by the App');
    return undefined;
  }
  if (!matchesRepository(cluster, resolved)) {
    log.error({ repositoryId: resolved.id }, 'the registered repository name now belongs to another repository id');
    return undefined;
  }
  return {
    repository: { id: resolved.id, fullName: resolved.fullName },
    installationId: known.installationId,
    cloneUrl: resolved.cloneUrl,
  };
}

/**
 * The branch head when it moved and no job is left for it: a sync is queued (at most once per three
 * intervals) and, when no webhook announced the head, the missed push is counted (once).
 */
async function syncMissedPush(
  context: ResyncContext,
  { inventory, known }: { readonly inventory: Inventory | undefined; readonly known: RegisteredRepository },
): Promise<string | undefined> {
  const { cluster, deps, keys, log } = context;
  const applied = inventory?.revision;
  const token = await deps.tokenFor(known.installationId);
  const head = unappliedHead({
    head: await deps.mirror.headOf({ cloneUrl: known.cloneUrl, token }, cluster.branch),
    applied,
  });
  if (!head) return undefined;
  const job = resyncSyncJob({
    cluster,
    repository: known.repository,
    installationId: known.installationId,
    head,
    applied,
    now: new Date(),
  });
  const latestJobs = { redis: deps.redis, keys, logger: log };
  // The in-flight check first: while a job for the branch waits or runs, the record is not needed.
  const inFlight = await deps.syncInFlight(job);
  const plan = planMissedPush({ head, inFlight, latest: inFlight ? undefined : await readLatestJob(latestJobs, job) });
  if (plan.action === 'wait') return undefined;
  if (!plan.announced) {
    const first = await deps.redis.set(
      keys.missedPush(known.repository.id, cluster.branch, head),
      '1',
      'EX',
      86_400,
      'NX',
    );
    if (first === 'OK') {
      log.warn({ head, applied }, 'the branch moved without a webhook: syncing it now');
      deps.metrics?.missedPush();
      await deps.state.update(context.base, { add: { missedPushes: 1 } }, { fence: context.lock });
    }
  }
  // Its job gave up, or none was ever queued: try again — at most once per three intervals, so a commit the
  // history guard refuses is not re-run on every resync.
  const again = await deps.redis.set(keys.requeuedHead(cluster.name, head), '1', 'PX', 3 * cluster.intervalMs, 'NX');
  if (again !== 'OK') return head;
  if (plan.announced)
    log.info({ head, applied }, 'the branch head is not applied and no job is left for it: syncing it again');
  await recordLatestJob(latestJobs, job);
  await deps.enqueueSync(job);
  return head;
}

/** Drift of the applied commit and, with selfHeal, the drifted objects put back. */
async function scanAndCorrect(
  context: ResyncContext,
  input: {
    readonly client: ClusterClient;
    readonly inventory: Inventory;
    readonly known: RegisteredRepository | undefined;
  },
): Promise<{ readonly drifted: readonly DriftedObject[]; readonly corrected: number; readonly requests: number }> {
  const { cluster, deps } = context;
  const baselines = await readBaselines(input.client, cluster.name);
  const scan = await scanDrift(input.client, cluster.name, input.inventory, baselines, deps.engine.applyConcurrency);
  if (scan.drifted.length === 0 || !cluster.selfHeal || cluster.suspend || !input.known)
    return { drifted: scan.drifted, corrected: 0, requests: scan.requests };
  const changes = await correct(context, { ...input, known: input.known, baselines, drifted: scan.drifted });
  const corrected = changes.filter((c) => c.action === 'created' || c.action === 'configured').length;
  return { drifted: scan.drifted, corrected, requests: scan.requests };
}

/** The drifted objects re-applied from the applied commit's render. */
async function correct(
  { cluster, deps, lock }: ResyncContext,
  input: {
    readonly client: ClusterClient;
    readonly inventory: Inventory;
    readonly baselines: Baselines;
    readonly drifted: readonly DriftedObject[];
    readonly known: RegisteredRepository;
  },
): Promise<ChangeSet['changes']> {
  const { inventory, known } = input;
  const remote: Remote = {
    repositoryId: known.repository.id,
    cloneUrl: known.cloneUrl,
    token: await deps.tokenFor(known.installationId),
  };
  await deps.mirror.fetch(remote, inventory.revision);
  await mkdir(deps.workDir, { recursive: true });
  const treeDir = await mkdtemp(join(deps.workDir, `resync-${inventory.revision.slice(0, 12)}-`));
  try {
    await deps.mirror.exportTree(known.repository.id, inventory.revision, treeDir);
    const rendered = await deps.render(treeDir, cluster.path, targetOf(input.client));
    if (!rendered.ok) return [];
    const changeSet = await correctDrift({
      client: input.client,
      clusterName: cluster.name,
      inventory,
      baselines: input.baselines,
      drifted: input.drifted,
      desired: rendered.objects,
      concurrency: deps.engine.applyConcurrency,
      fence: lock,
      limits: cluster.limits,
    });
    return changeSet.changes;
  } finally {
    await rm(treeDir, { recursive: true, force: true });
  }
}

/** Carries out `decideDriftEpisode`: the episode to the log, metrics and status page; the commit status. */
async function reportDrift(
  context: ResyncContext,
  input: {
    readonly inventory: Inventory | undefined;
    readonly known: KnownRepository | undefined;
    readonly drifted: readonly DriftedObject[];
    readonly corrected: number;
  },
): Promise<void> {
  const { cluster, deps, keys, log } = context;
  const revision = input.inventory?.revision;
  const decision = decideDriftEpisode({
    drifted: input.drifted,
    corrected: input.corrected,
    previousSignature: (await deps.redis.get(keys.driftEpisode(cluster.name))) ?? undefined,
    wasMatching: (await deps.redis.get(keys.driftStatus(cluster.name))) !== 'drifted',
    selfHeal: cluster.selfHeal,
    commitKnown: Boolean(revision && input.known),
  });
  const { episode, commitStatus } = decision;
  if (episode) {
    log.warn(
      {
        drifted: input.drifted.map((d) => ({ object: d.object, kind: d.kind, fields: d.fields })),
        corrected: input.corrected,
      },
      episode.settled ? 'drift detected and corrected' : 'drift detected',
    );
    deps.metrics?.drift(cluster.name, episode.detected, episode.corrected);
    const now = new Date().toISOString();
    await deps.state.update(
      context.base,
      {
        drift: { objects: episode.objects, detectedAt: now, ...(episode.settled ? { correctedAt: now } : {}) },
        add: { driftDetected: episode.detected, driftCorrected: episode.corrected },
      },
      { fence: context.lock },
    );
  }
  await deps.redis.set(keys.driftEpisode(cluster.name), decision.signature);
  if (!commitStatus || !revision || !input.known) return;
  await deps.redis.set(keys.driftStatus(cluster.name), commitStatus.matching ? 'matching' : 'drifted');
  const report = deps.reporter.forCommit({
    repository: input.known.repository,
    installationId: input.known.installationId,
    sha: revision,
  });
  report.status({
    context: clusterContext(cluster.name),
    state: commitStatus.state,
    description: commitStatus.description,
    targetUrl: statusPageLink(deps.statusPageUrl, cluster.name),
  });
  const failed = await report.flush();
  if (failed.length > 0) log.warn({ failed }, 'could not report drift to GitHub');
}
