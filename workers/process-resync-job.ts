import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { type ClusterEntry, matchesRepository } from '../src/clusters/cluster-registry.ts';
import { readBaselines } from '../src/engine/baseline-store.ts';
import type { ClusterClient } from '../src/engine/cluster-client.ts';
import { type Fence, withClusterLock } from '../src/engine/cluster-lock.ts';
import { correctDrift } from '../src/engine/correct-drift.ts';
import { type DriftedObject, describeDrift, scanDrift } from '../src/engine/drift.ts';
import { type Inventory, readInventory } from '../src/engine/inventory.ts';
import type { KnownRepository } from '../src/github/repository-directory.ts';
import { RepositoryNotFoundError, type ResolvedRepository } from '../src/github/repository-resolver.ts';
import type { Logger } from '../src/logging/create-logger.ts';
import { latestJobKey } from '../src/queue/job-producer.ts';
import type { PlumblineJob, ResyncJob, SyncJob } from '../src/queue/jobs.ts';
import { clusterContext, fitDescription } from '../src/reporting/status-text.ts';
import type { Remote } from '../src/source/git-mirror.ts';
import { type ClusterBase, clusterBase, type DriftSummary } from '../src/status/cluster-state.ts';
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

/**
 * The periodic full resync of one cluster, under its lock: (1) the deploy branch's head, from
 * `git ls-remote` — a commit that moved without a webhook is queued as a sync and counted; (2) drift of
 * the applied commit, one LIST per kind, compared with what Plumbline set; (3) with `selfHeal`, only the
 * drifted objects re-applied. A drift episode is reported once (log, metric, status page, and a status
 * on the applied commit when it changes whether the cluster matches it); a clean resync writes nothing.
 */
export async function processResyncJob(job: ResyncJob, deps: ResyncDependencies): Promise<ResyncResult | undefined> {
  const cluster = deps.registry.clusters.find((c) => c.name === job.cluster);
  if (!cluster) return undefined;
  const log = deps.logger.child({ cluster: cluster.name, resync: true });
  const base = clusterBase(cluster);
  return withClusterLock(
    deps.redis,
    { prefix: deps.prefix, cluster: cluster.name, leaseMs: deps.engine.lockLeaseMs, waitMs: deps.engine.lockWaitMs },
    async (lock) => {
      const client = deps.clusterClient(cluster);
      const inventory = await readInventory(client, cluster.name);
      const known = await resolveRegistered(cluster, deps, log);
      const missedPush = known ? await findMissedPush(cluster, inventory, known, deps, log) : undefined;

      let drift: readonly DriftedObject[] = [];
      let corrected = 0;
      let requests = 0;
      if (inventory?.revision) {
        const baselines = await readBaselines(client, cluster.name);
        const scan = await scanDrift(client, cluster.name, inventory, baselines, deps.engine.applyConcurrency);
        drift = scan.drifted;
        requests = scan.requests;
        if (drift.length > 0 && cluster.selfHeal && !cluster.suspend && known) {
          const changes = await correct(cluster, client, inventory, baselines, drift, known, deps, lock);
          corrected = changes.filter((c) => c.action === 'created' || c.action === 'configured').length;
        }
      }
      await reportDrift(cluster, base, inventory, drift, corrected, known, deps, log);
      await deps.state.update(base, {
        lastResyncAt: new Date().toISOString(),
        lastResyncResult:
          drift.length === 0
            ? 'in sync'
            : corrected === drift.length
              ? `corrected ${corrected}`
              : `${drift.length} drifted`,
        ...(inventory?.revision ? { appliedRevision: inventory.revision } : {}),
        ...(await deps.nextResyncAt(cluster.name).then((at) => (at ? { nextResyncAt: at } : {}))),
      });
      await deps.state.count('plumbline_resyncs_total', { cluster: cluster.name });
      return {
        cluster: cluster.name,
        ...(missedPush ? { missedPush } : {}),
        drifted: drift.length,
        corrected,
        requests,
      };
    },
  );
}

/** The registered repository as GitHub reports it for its id (clone URL included), if the App reaches it. */
interface RegisteredRepository extends KnownRepository {
  readonly cloneUrl: string;
}

async function resolveRegistered(
  cluster: ClusterEntry,
  deps: ResyncDependencies,
  log: Logger,
): Promise<RegisteredRepository | undefined> {
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

/** The branch head when it moved and no webhook announced it; the sync is queued (once) and counted (once). */
async function findMissedPush(
  cluster: ClusterEntry,
  inventory: Inventory | undefined,
  known: RegisteredRepository,
  deps: ResyncDependencies,
  log: Logger,
): Promise<string | undefined> {
  const token = await deps.tokenFor(known.installationId);
  const head = await deps.mirror.headOf({ cloneUrl: known.cloneUrl, token }, cluster.branch);
  if (!head || head === inventory?.revision) return undefined;
  // `before` records what was applied, for logs; the worker proves ancestry from Git for a resync's job.
  const job: SyncJob = {
    type: 'sync',
    trigger: 'resync',
    // Unique per resync: a head re-queued later (its earlier job gave up) must get a job of its own.
    deliveryId: `resync-${cluster.name}-${head.slice(0, 12)}-${Date.now().toString(36)}`,
    repository: known.repository,
    installationId: known.installationId,
    branch: cluster.branch,
    before: inventory?.revision || undefined,
    after: head,
    forced: false,
    receivedAt: new Date().toISOString(),
  };
  // A job for the branch still waiting or running will handle it: nothing to do yet.
  if (await deps.syncInFlight(job)) return undefined;
  const recorded = await deps.redis.get(latestJobKey(deps.prefix, job));
  const latest = recorded ? (JSON.parse(recorded) as PlumblineJob) : undefined;
  const announced = latest?.type === 'sync' && latest.after === head;
  const base = clusterBase(cluster);
  if (!announced) {
    const first = await deps.redis.set(
      `${deps.prefix}:missed:${known.repository.id}:${cluster.branch}:${head}`,
      '1',
      'EX',
      86_400,
      'NX',
    );
    if (first === 'OK') {
      log.warn({ head, applied: inventory?.revision }, 'the branch moved without a webhook: syncing it now');
      await deps.state.count('plumbline_webhook_missed_total', {});
      await deps.state.update(base, { add: { missedPushes: 1 } });
    }
  }
  // Announced but not applied, and no job left for it: its job gave up (a cluster unreachable for longer
  // than the retries). Try again — at most once per three intervals, so a commit the history guard
  // refuses is not re-run on every resync.
  const again = await deps.redis.set(
    `${deps.prefix}:requeued:${cluster.name}:${head}`,
    '1',
    'PX',
    3 * cluster.intervalMs,
    'NX',
  );
  if (again !== 'OK') return head;
  if (announced)
    log.info(
      { head, applied: inventory?.revision },
      'the branch head is not applied and no job is left for it: syncing it again',
    );
  await deps.redis.set(latestJobKey(deps.prefix, job), JSON.stringify(job), 'EX', 7 * 86_400);
  await deps.enqueueSync(job);
  return head;
}

async function correct(
  cluster: ClusterEntry,
  client: ClusterClient,
  inventory: Inventory,
  baselines: Awaited<ReturnType<typeof readBaselines>>,
  drifted: readonly DriftedObject[],
  known: RegisteredRepository,
  deps: ResyncDependencies,
  fence: Fence,
) {
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
    const rendered = await deps.render(treeDir, cluster.path);
    if (!rendered.ok) return [];
    const changeSet = await correctDrift({
      client,
      clusterName: cluster.name,
      inventory,
      baselines,
      drifted,
      desired: rendered.objects,
      concurrency: deps.engine.applyConcurrency,
      fence,
      limits: cluster.limits,
    });
    return changeSet.changes;
  } finally {
    await rm(treeDir, { recursive: true, force: true });
  }
}

/**
 * Reports a drift episode once: when the set of drifted fields differs from the last one seen. A status
 * on the applied commit is written only when whether the cluster matches it changes (selfHeal off).
 */
async function reportDrift(
  cluster: ClusterEntry,
  base: ClusterBase,
  inventory: Inventory | undefined,
  drifted: readonly DriftedObject[],
  corrected: number,
  known: KnownRepository | undefined,
  deps: ResyncDependencies,
  log: Logger,
): Promise<void> {
  const episodeKey = `${deps.prefix}:drift:${cluster.name}`;
  const signature = JSON.stringify(drifted.map((d) => [d.object, d.kind, d.fields.map((f) => f.path)]));
  const previous = await deps.redis.get(episodeKey);
  const settled = drifted.length === 0 || corrected === drifted.length;
  const now = new Date().toISOString();
  if (drifted.length > 0 && signature !== previous) {
    const summary: DriftSummary[] = drifted.map((d) => ({
      object: d.object,
      kind: d.kind,
      fields: d.fields.map((f) => ({ path: f.path, changedBy: f.changedBy })),
    }));
    log.warn(
      { drifted: drifted.map((d) => ({ object: d.object, kind: d.kind, fields: d.fields })), corrected },
      corrected === drifted.length ? 'drift detected and corrected' : 'drift detected',
    );
    await deps.state.count('plumbline_drift_objects_detected_total', { cluster: cluster.name }, drifted.length);
    if (corrected > 0)
      await deps.state.count('plumbline_drift_objects_corrected_total', { cluster: cluster.name }, corrected);
    await deps.state.update(base, {
      drift: { objects: summary, detectedAt: now, ...(settled ? { correctedAt: now } : {}) },
      add: { driftDetected: drifted.length, driftCorrected: corrected },
    });
  }
  // Corrected drift ends the episode: the same drift again later is a new one.
  await deps.redis.set(episodeKey, settled ? '' : signature);

  // A commit status changes only with whether the cluster matches the applied commit.
  const matching = settled;
  const stateKey = `${deps.prefix}:drift-status:${cluster.name}`;
  const wasMatching = (await deps.redis.get(stateKey)) !== 'drifted';
  if (matching === wasMatching || !inventory?.revision || !known) return;
  await deps.redis.set(stateKey, matching ? 'matching' : 'drifted');
  const report = deps.reporter.forCommit({
    repository: known.repository,
    installationId: known.installationId,
    sha: inventory.revision,
  });
  report.status({
    context: clusterContext(cluster.name),
    state: matching ? 'success' : 'error',
    description: fitDescription(
      matching
        ? 'applied; the cluster matches this commit again'
        : // Who changed it is read from the cluster: the status page says, GitHub does not (invariant 9's spirit).
          `not what this commit says: ${describeDrift(drifted, { managers: false })}${cluster.selfHeal ? '' : ' (selfHeal off)'}`,
    ),
    targetUrl: statusPageLink(deps.statusPageUrl, cluster.name),
  });
  const failed = await report.flush();
  if (failed.length > 0) log.warn({ failed }, 'could not report drift to GitHub');
}
