import { setTimeout as sleep } from 'node:timers/promises';
import { z } from 'zod';
import type { ClusterEntry } from '../clusters/cluster-registry.ts';
import { type ClusterLock, LockLostError } from '../engine/cluster-lock.ts';
import type { Logger } from '../logging/create-logger.ts';
import { defineCommands } from '../redis/define-commands.ts';
import { parseStored, storedValue } from '../redis/parse-stored.ts';
import { redisKeys } from '../redis/redis-keys.ts';
import type { RedisConnection } from '../redis/redis-topology.ts';

/** One drifted object as the status page shows it (values already masked). */
export interface DriftSummary {
  readonly object: string;
  readonly kind: 'changed' | 'deleted';
  readonly fields: readonly { readonly path: string; readonly changedBy: readonly string[] }[];
}

/** One reconcile of a cluster, for the per-cluster page. */
export interface ReconcileRecord {
  readonly sha: string;
  readonly status: string;
  readonly description: string;
  readonly at: string;
}

/** How many reconciles a cluster's page lists. */
export const RECENT_RECONCILES = 20;

/** What the status page and `/api/clusters` show per cluster; written by workers, read by the receiver. */
export interface ClusterState {
  readonly name: string;
  readonly repo: string;
  readonly branch: string;
  readonly path: string;
  readonly suspended: boolean;
  readonly selfHeal: boolean;
  readonly intervalMs: number;
  /** The repository's web address (commits link there), when known. */
  readonly repoUrl?: string;
  /** The commit the cluster runs (from its inventory) and when Plumbline applied it. */
  readonly appliedRevision?: string;
  readonly appliedAt?: string;
  /** The last commit a job worked on for this cluster, and how that ended. */
  readonly lastSync?: {
    readonly sha: string;
    readonly status: string;
    readonly description: string;
    readonly at: string;
  };
  /** Newest first, at most RECENT_RECONCILES. */
  readonly recent?: readonly ReconcileRecord[];
  readonly lastResyncAt?: string;
  readonly lastResyncResult?: string;
  readonly nextResyncAt?: string;
  readonly drift?: {
    readonly objects: readonly DriftSummary[];
    readonly detectedAt: string;
    /** When it was put back (selfHeal); absent while it persists. */
    readonly correctedAt?: string;
  };
  readonly totals: {
    readonly driftDetected: number;
    readonly driftCorrected: number;
    readonly missedPushes: number;
  };
}

/** The part of a cluster's state that comes from the registry, written with every update. */
export type ClusterBase = Pick<
  ClusterState,
  'name' | 'repo' | 'branch' | 'path' | 'suspended' | 'selfHeal' | 'intervalMs'
>;

export function clusterBase(cluster: ClusterEntry): ClusterBase {
  return {
    name: cluster.name,
    repo: cluster.repo,
    branch: cluster.branch,
    path: cluster.path,
    suspended: cluster.suspend,
    selfHeal: cluster.selfHeal,
    intervalMs: cluster.intervalMs,
  };
}

export type ClusterStatePatch = Partial<Omit<ClusterState, 'name' | 'totals' | 'recent'>> & {
  readonly add?: Partial<ClusterState['totals']>;
  /** Prepended to `recent`. */
  readonly reconciled?: ReconcileRecord;
};

export interface ClusterStateUpdateOptions {
  /**
   * The cluster lock the writer holds: the state is written only while that lease is still its holder's, in
   * the same atomic step (a worker that lost its lock writes nothing and gets a LockLostError).
   */
  readonly fence?: Pick<ClusterLock, 'lease'>;
}

export interface ClusterStateStore {
  /**
   * Merges a patch into a cluster's state, atomically: concurrent updates of one cluster all land (a
   * compare-and-set, retried when another write came in between).
   */
  update(base: ClusterBase, patch: ClusterStatePatch, options?: ClusterStateUpdateOptions): Promise<void>;
  get(name: string): Promise<ClusterState | undefined>;
  list(): Promise<ClusterState[]>;
}

const EMPTY_TOTALS = { driftDetected: 0, driftCorrected: 0, missedPushes: 0 };

/** The state after a patch: the registry base and the patch over what was stored (totals added, `recent` prepended). Pure. */
export function mergeClusterState(
  current: ClusterState | undefined,
  base: ClusterBase,
  patch: ClusterStatePatch,
): ClusterState {
  const { add, reconciled, ...fields } = patch;
  const totals = { ...EMPTY_TOTALS, ...current?.totals };
  for (const [name, value] of Object.entries(add ?? {})) totals[name as keyof typeof totals] += value ?? 0;
  const recent = reconciled ? [reconciled, ...(current?.recent ?? [])].slice(0, RECENT_RECONCILES) : current?.recent;
  return { ...current, ...base, ...fields, ...(recent ? { recent } : {}), totals };
}

const text = z.string();
const reconcileSchema = z.looseObject({ sha: text, status: text, description: text, at: text });
const driftSummarySchema = z.looseObject({
  object: text,
  kind: z.enum(['changed', 'deleted']),
  fields: z.array(z.looseObject({ path: text, changedBy: z.array(text) })),
});
const count = z.number().default(0);

/** The stored state, permissively: the fields the status page reads are checked, the rest kept. */
const clusterStateSchema = z.looseObject({
  name: text,
  repo: text,
  branch: text,
  path: text,
  suspended: z.boolean(),
  selfHeal: z.boolean(),
  intervalMs: z.number(),
  repoUrl: text.exactOptional(),
  appliedRevision: text.exactOptional(),
  appliedAt: text.exactOptional(),
  lastSync: reconcileSchema.exactOptional(),
  recent: z.array(reconcileSchema).exactOptional(),
  lastResyncAt: text.exactOptional(),
  lastResyncResult: text.exactOptional(),
  nextResyncAt: text.exactOptional(),
  drift: z
    .looseObject({ objects: z.array(driftSummarySchema), detectedAt: text, correctedAt: text.exactOptional() })
    .exactOptional(),
  totals: z.looseObject({ driftDetected: count, driftCorrected: count, missedPushes: count }).default(EMPTY_TOTALS),
}) satisfies z.ZodType<ClusterState>;

/** How often an update reads again when other writes of the same cluster keep coming in between. */
const MAX_UPDATE_ATTEMPTS = 50;

export function createClusterStateStore(
  redis: RedisConnection,
  prefix: string,
  options: { readonly logger?: Pick<Logger, 'warn'> } = {},
): ClusterStateStore {
  const keys = redisKeys(prefix);
  const scripts = defineCommands(redis);
  /** An invalid record is treated as absent (the next update replaces it), and logged. */
  const read = (name: string, raw: string | null | undefined): ClusterState | undefined => {
    const stored = parseStored(clusterStateSchema, raw);
    if (stored.state === 'invalid')
      options.logger?.warn({ cluster: name, issue: stored.issue }, 'a stored cluster state does not parse: ignored');
    return storedValue(stored);
  };
  return {
    async update(base, patch, { fence } = {}) {
      for (let attempt = 1; ; attempt++) {
        const raw = await redis.hget(keys.clusterStates, base.name);
        const next = JSON.stringify(mergeClusterState(read(base.name, raw), base, patch));
        const written = fence
          ? await scripts.plumblineSetFieldIfUnchanged(
              2,
              keys.clusterStates,
              fence.lease.key,
              base.name,
              raw ?? '',
              next,
              fence.lease.holder,
            )
          : await scripts.plumblineSetFieldIfUnchanged(1, keys.clusterStates, base.name, raw ?? '', next);
        if (written === 1) return;
        if (written === -1) throw new LockLostError(`lost the lock of cluster ${base.name}: its state was not written`);
        if (attempt >= MAX_UPDATE_ATTEMPTS)
          throw new Error(`the state of cluster ${base.name} kept changing under ${attempt} attempts to update it`);
        // Many writers at once: spread the next attempts out a little.
        if (attempt > 2) await sleep(Math.random() * attempt);
      }
    },
    async get(name) {
      return read(name, await redis.hget(keys.clusterStates, name));
    },
    async list() {
      const all = await redis.hgetall(keys.clusterStates);
      return Object.entries(all)
        .flatMap(([name, raw]) => read(name, raw) ?? [])
        .sort((a, b) => a.name.localeCompare(b.name));
    },
  };
}
