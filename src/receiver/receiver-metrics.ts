import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import type { JobProducer } from '../queue/job-producer.ts';
import type { BodyBudget } from './body-budget.ts';

export interface ReceiverMetrics {
  readonly registry: Registry;
  readonly deliveries: Counter<'event' | 'outcome'>;
  readonly ignored: Counter<'event' | 'reason'>;
  readonly enqueueSeconds: Histogram<'event'>;
  /** Verified deliveries by the secret that signed them (`previous` only while a rotation is under way). */
  readonly signatures: Counter<'secret'>;
}

/** Events we route; any other name is counted as `other`, so a sender cannot grow label cardinality. */
const KNOWN_EVENTS = new Set([
  'push',
  'pull_request',
  'installation',
  'installation_repositories',
  'check_run',
  'check_suite',
  'ping',
]);

export function eventLabel(event: string | undefined): string {
  return event && KNOWN_EVENTS.has(event) ? event : 'other';
}

/** The receiver's own metrics; each worker serves its own on its health port (workers/worker-metrics.ts). */
export function createReceiverMetrics(producer: JobProducer, bodies?: Pick<BodyBudget, 'used'>): ReceiverMetrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'plumbline_receiver_' });
  const deliveries = new Counter({
    name: 'plumbline_webhook_deliveries_total',
    help: 'Webhook deliveries by event and outcome (queued, duplicate, ignored, rejected, too-large, busy, conflict, unavailable, unreplicated)',
    labelNames: ['event', 'outcome'] as const,
    registers: [registry],
  });
  const ignored = new Counter({
    name: 'plumbline_webhook_ignored_total',
    help: 'Verified deliveries acknowledged without work, by reason (tag-push, branch-deleted, …)',
    labelNames: ['event', 'reason'] as const,
    registers: [registry],
  });
  const enqueueSeconds = new Histogram({
    name: 'plumbline_webhook_enqueue_seconds',
    help: 'Time from a verified delivery to its job being in Redis',
    labelNames: ['event'] as const,
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers: [registry],
  });
  const signatures = new Counter({
    name: 'plumbline_webhook_signatures_total',
    help: 'Verified deliveries by the webhook secret that signed them (current, or previous during a rotation)',
    labelNames: ['secret'] as const,
    registers: [registry],
  });
  new Gauge({
    name: 'plumbline_webhook_body_bytes_in_flight',
    help: 'Bytes of webhook bodies being read or handled now (refused with 503 beyond PLUMBLINE_MAX_INFLIGHT_BODIES × 25 MB)',
    registers: [registry],
    collect() {
      this.set(bodies?.used() ?? 0);
    },
  });
  new Gauge({
    name: 'plumbline_queue_depth',
    help: 'Jobs per queue and state, read from Redis at scrape time',
    labelNames: ['queue', 'state'] as const,
    registers: [registry],
    async collect() {
      // A scrape during a Redis outage still answers, without this gauge; /readyz reports the outage.
      const depths = await producer.depths().catch(() => undefined);
      this.reset();
      for (const [queue, counts] of Object.entries(depths ?? {})) {
        for (const [state, count] of Object.entries(counts)) this.set({ queue, state }, count);
      }
    },
  });
  return { registry, deliveries, ignored, enqueueSeconds, signatures };
}
