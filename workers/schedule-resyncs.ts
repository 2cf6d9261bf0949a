import { createHash } from 'node:crypto';
import type { Queue } from 'bullmq';
import type { ClusterRegistry } from '../src/clusters/cluster-registry.ts';
import type { ResyncJob } from '../src/queue/jobs.ts';

const SCHEDULER_PREFIX = 'resync:';
/** The most a cluster's resyncs are shifted from the interval's start: spreads clusters, stays stable. */
const MAX_JITTER_MS = 30_000;

export function schedulerId(cluster: string): string {
  return `${SCHEDULER_PREFIX}${cluster}`;
}

/** A fixed offset per cluster within a tenth of its interval (at most 30 s), from its name. Pure. */
export function jitterOf(cluster: string, intervalMs: number): number {
  const span = Math.min(MAX_JITTER_MS, Math.floor(intervalMs / 10));
  if (span <= 0) return 0;
  return createHash('sha256').update(cluster).digest().readUInt32BE(0) % span;
}

/**
 * One BullMQ job scheduler per registered cluster. Every worker replica upserts the same schedulers,
 * and BullMQ produces each iteration's job once whatever the number of replicas; schedulers of clusters
 * no longer registered are removed.
 */
export async function scheduleResyncs(queue: Queue<ResyncJob>, registry: ClusterRegistry): Promise<void> {
  const wanted = new Set(registry.clusters.map((c) => schedulerId(c.name)));
  for (const cluster of registry.clusters) {
    await queue.upsertJobScheduler(
      schedulerId(cluster.name),
      { every: cluster.intervalMs, offset: jitterOf(cluster.name, cluster.intervalMs) },
      {
        name: 'resync',
        data: { type: 'resync', cluster: cluster.name },
        // A failed resync is not retried: the next one comes at the next interval.
        opts: { attempts: 1, removeOnComplete: { count: 100 }, removeOnFail: { count: 100 } },
      },
    );
  }
  for (const scheduler of await queue.getJobSchedulers()) {
    if (scheduler.key.startsWith(SCHEDULER_PREFIX) && !wanted.has(scheduler.key))
      await queue.removeJobScheduler(scheduler.key);
  }
}

/** When a cluster's next resync is due, as its scheduler says. */
export async function nextResyncAt(queue: Queue<ResyncJob>, cluster: string): Promise<string | undefined> {
  const scheduler = await queue.getJobScheduler(schedulerId(cluster));
  return scheduler?.next ? new Date(scheduler.next).toISOString() : undefined;
}
