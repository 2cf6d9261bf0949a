import type { Redis } from 'ioredis';
import type { ClusterEntry } from '../clusters/cluster-registry.ts';

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

export interface ClusterStateStore {
  /** Merges a patch into a cluster's state (a cluster is only ever written under its lock). */
  update(base: ClusterBase, patch: ClusterStatePatch): Promise<void>;
  get(name: string): Promise<ClusterState | undefined>;
  list(): Promise<ClusterState[]>;
  /** Counters shared by every process, exported by the receiver's /metrics. */
  count(metric: string, labels: Record<string, string>, by?: number): Promise<void>;
  counters(): Promise<{ metric: string; labels: Record<string, string>; value: number }[]>;
}

const EMPTY_TOTALS = { driftDetected: 0, driftCorrected: 0, missedPushes: 0 };

export function createClusterStateStore(redis: Redis, prefix: string): ClusterStateStore {
  const key = `${prefix}:clusters:state`;
  const countersKey = `${prefix}:metrics:counters`;
  return {
    async update(base, patch) {
      const raw = await redis.hget(key, base.name);
      const current = raw ? (JSON.parse(raw) as ClusterState) : undefined;
      const { add, reconciled, ...fields } = patch;
      const totals = { ...EMPTY_TOTALS, ...current?.totals };
      for (const [name, value] of Object.entries(add ?? {})) totals[name as keyof typeof totals] += value ?? 0;
      const recent = reconciled
        ? [reconciled, ...(current?.recent ?? [])].slice(0, RECENT_RECONCILES)
        : current?.recent;
      const next: ClusterState = { ...current, ...base, ...fields, ...(recent ? { recent } : {}), totals };
      await redis.hset(key, base.name, JSON.stringify(next));
    },
    async get(name) {
      const raw = await redis.hget(key, name);
      return raw ? (JSON.parse(raw) as ClusterState) : undefined;
    },
    async list() {
      const all = await redis.hgetall(key);
      return Object.values(all)
        .map((raw) => JSON.parse(raw) as ClusterState)
        .sort((a, b) => a.name.localeCompare(b.name));
    },
    async count(metric, labels, by = 1) {
      // Sorted label keys: the same labels in another order are the same series.
      const sorted = Object.fromEntries(Object.entries(labels).sort(([a], [b]) => a.localeCompare(b)));
      await redis.hincrby(countersKey, JSON.stringify({ metric, labels: sorted }), by);
    },
    async counters() {
      const all = await redis.hgetall(countersKey);
      return Object.entries(all).map(([field, value]) => ({
        ...(JSON.parse(field) as { metric: string; labels: Record<string, string> }),
        value: Number(value),
      }));
    },
  };
}
