import { setTimeout as sleep } from 'node:timers/promises';
import { mapLimited } from '../support/limit-concurrency.ts';
import type { ClusterClient, LiveObject } from './cluster-client.ts';
import { type Manifest, objectRef } from './manifest.ts';

export type Health =
  | { readonly state: 'healthy' }
  | { readonly state: 'progressing' | 'failed'; readonly message: string };

type Condition = { type?: string; status?: string; reason?: string; message?: string };
type Status = Record<string, unknown> & { observedGeneration?: number; conditions?: Condition[] };

const condition = (status: Status | undefined, type: string) => status?.conditions?.find((c) => c.type === type);
const num = (value: unknown, fallback = 0) => (typeof value === 'number' ? value : fallback);

/**
 * Health of one live object, from its status as its controller wrote it. Pure. Kinds without health
 * semantics are healthy once applied; a status that describes an older generation is still progressing.
 */
export function assessHealth(live: LiveObject): Health {
  const metadata = live.metadata as { generation?: number } | undefined;
  const spec = (live.spec ?? {}) as Record<string, unknown>;
  const status = live.status as Status | undefined;
  const current = status?.observedGeneration === undefined || status.observedGeneration >= num(metadata?.generation, 0);
  const stale: Health = { state: 'progressing', message: 'controller has not observed the latest generation' };
  switch (live.kind) {
    case 'Deployment': {
      if (!current) return stale;
      const progressing = condition(status, 'Progressing');
      if (progressing?.reason === 'ProgressDeadlineExceeded')
        return { state: 'failed', message: progressing.message ?? 'progress deadline exceeded' };
      const replicas = num(spec.replicas, 1);
      const updated = num(status?.updatedReplicas);
      const available = num(status?.availableReplicas);
      if (updated < replicas || available < replicas || condition(status, 'Available')?.status !== 'True') {
        return { state: 'progressing', message: `${available}/${replicas} replicas available, ${updated} updated` };
      }
      return { state: 'healthy' };
    }
    case 'StatefulSet': {
      if (!current) return stale;
      const replicas = num(spec.replicas, 1);
      const ready = num(status?.readyReplicas);
      if (ready < replicas) return { state: 'progressing', message: `${ready}/${replicas} replicas ready` };
      if (status?.updateRevision && status.currentRevision !== status.updateRevision)
        return { state: 'progressing', message: 'rolling update in progress' };
      return { state: 'healthy' };
    }
    case 'DaemonSet': {
      if (!current) return stale;
      const desired = num(status?.desiredNumberScheduled);
      const ready = num(status?.numberReady);
      const updated = num(status?.updatedNumberScheduled);
      if (ready < desired || updated < desired)
        return { state: 'progressing', message: `${ready}/${desired} pods ready, ${updated} updated` };
      return { state: 'healthy' };
    }
    case 'Job': {
      if (condition(status, 'Failed')?.status === 'True')
        return { state: 'failed', message: condition(status, 'Failed')?.message ?? 'job failed' };
      if (condition(status, 'Complete')?.status === 'True') return { state: 'healthy' };
      return { state: 'progressing', message: 'job has not completed' };
    }
    default: {
      const ready = condition(status, 'Ready');
      if (!ready) return { state: 'healthy' };
      if (ready.status === 'True' && current) return { state: 'healthy' };
      return { state: 'progressing', message: ready.message ?? ready.reason ?? 'not ready' };
    }
  }
}

export interface HealthReport {
  readonly object: string;
  readonly health: Health;
}

/**
 * Polls the objects until all are healthy, one has failed, or the deadline passes; then reports the
 * last health of every object that is not healthy (empty: all healthy).
 */
export async function waitForHealth(
  client: ClusterClient,
  manifests: readonly Manifest[],
  options: { readonly timeoutMs: number; readonly pollMs?: number; readonly concurrency: number },
): Promise<HealthReport[]> {
  const deadline = Date.now() + options.timeoutMs;
  let pending = [...manifests];
  let reports: HealthReport[] = [];
  for (;;) {
    const results = await mapLimited(pending, options.concurrency, async (manifest) => {
      const live = await client.get(manifest);
      const health: Health = live ? assessHealth(live) : { state: 'failed', message: 'object disappeared after apply' };
      return { manifest, report: { object: objectRef(manifest), health } };
    });
    reports = results.filter((r) => r.report.health.state !== 'healthy').map((r) => r.report);
    pending = results.filter((r) => r.report.health.state === 'progressing').map((r) => r.manifest);
    if (pending.length === 0 || Date.now() > deadline) return reports;
    await sleep(options.pollMs ?? 1_000);
  }
}
