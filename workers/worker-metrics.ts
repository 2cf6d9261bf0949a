import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import type { RenderCache } from '../src/engine/render-cache.ts';
import type { GitHubRequestObservation } from '../src/github/github-app.ts';

/**
 * One worker process's Prometheus metrics, served on its health port (`/metrics`). The engine, the
 * apiserver client and the GitHub client know nothing of Prometheus: they call the plain callbacks below.
 * Labels are bounded: phases, verbs, status codes, outcomes, queues and the registry's cluster names — never
 * anything a repository's content could grow.
 */
export interface WorkerMetrics {
  readonly registry: Registry;
  /** One phase of a sync's reconcile (render, observe, apply, wait, validate, hooks, prune, record, health). */
  phase(phase: string, seconds: number): void;
  /** A cluster's part of a sync job ended with `outcome` (applied, unchanged, failed, …, error) after `seconds`. */
  reconciled(cluster: string, outcome: string, seconds: number): void;
  /** A pushed commit was applied to a cluster `seconds` after the receiver took the push (`receivedAt`). */
  pushApplied(cluster: string, trigger: string, seconds: number): void;
  /** A job of `queue` started `seconds` after it became runnable. */
  jobWaited(queue: string, seconds: number): void;
  /** One request to a cluster's apiserver; `code` undefined when no answer came. */
  apiserverRequest(cluster: string, verb: string, code: number | undefined, seconds: number): void;
  /** One HTTP request to GitHub's API (each attempt, retries included). */
  githubRequest(request: GitHubRequestObservation): void;
  resynced(cluster: string): void;
  /** A push that a resync found and no webhook announced. */
  missedPush(): void;
  /** A drift episode: objects found drifted, and how many of them were put back. */
  drift(cluster: string, detected: number, corrected: number): void;
  /** Exports the hits and misses of this render cache (the last one watched). */
  watchRenderCache(stats: RenderCache['stats']): void;
}

export interface WorkerMetricsOptions {
  /** Node's process metrics (CPU, memory, event loop lag) as `plumbline_worker_process_…`: the worker only. */
  readonly processMetrics?: boolean;
}

/** Whole reconciles take from a fraction of a second (nothing to do) to minutes (health waits). */
export const RECONCILE_BUCKETS = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300];
/** A phase can take a few milliseconds (the records of a small cluster). */
export const PHASE_BUCKETS = [0.005, 0.01, 0.025, ...RECONCILE_BUCKETS];
/** Push → applied includes the push coalescing delay, the queue and the reconcile. */
export const PUSH_TO_APPLIED_BUCKETS = [0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600];
export const QUEUE_WAIT_BUCKETS = [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600];
export const APISERVER_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

/** The `code` label: the HTTP status, or `error` when no answer came (refused, reset, timed out). Pure. */
export function codeLabel(code: number | undefined): string {
  return code === undefined || code === 0 ? 'error' : String(code);
}

export function createWorkerMetrics(options: WorkerMetricsOptions = {}): WorkerMetrics {
  const registry = new Registry();
  if (options.processMetrics) collectDefaultMetrics({ register: registry, prefix: 'plumbline_worker_' });
  const registers = [registry];
  const reconcile = new Histogram({
    name: 'plumbline_worker_reconcile_seconds',
    help: "A cluster's part of a sync job, under its lock, by outcome (applied, unchanged, failed, superseded, suspended, error)",
    labelNames: ['cluster', 'outcome'] as const,
    buckets: RECONCILE_BUCKETS,
    registers,
  });
  const phases = new Histogram({
    name: 'plumbline_worker_reconcile_phase_seconds',
    help: 'One phase of a sync: render, observe (discovery, reads, dry-runs), apply, wait, validate, hooks, prune, record (inventory and baselines), health',
    labelNames: ['phase'] as const,
    buckets: PHASE_BUCKETS,
    registers,
  });
  const pushToApplied = new Histogram({
    name: 'plumbline_worker_push_to_applied_seconds',
    help: 'From the receiver taking a push (or a resync finding it, or a rerun) to its commit applied on a cluster',
    labelNames: ['cluster', 'trigger'] as const,
    buckets: PUSH_TO_APPLIED_BUCKETS,
    registers,
  });
  const queueWait = new Histogram({
    name: 'plumbline_worker_queue_wait_seconds',
    help: 'From a job becoming runnable (after its coalescing delay or its schedule) to a worker starting it; first attempts only',
    labelNames: ['queue'] as const,
    buckets: QUEUE_WAIT_BUCKETS,
    registers,
  });
  const apiserverRequests = new Counter({
    name: 'plumbline_worker_apiserver_requests_total',
    help: "Requests to the clusters' apiservers (discovery excluded) by HTTP verb and status code (`error`: no answer)",
    labelNames: ['cluster', 'verb', 'code'] as const,
    registers,
  });
  const apiserverSeconds = new Histogram({
    name: 'plumbline_worker_apiserver_request_seconds',
    help: "Latency of requests to the clusters' apiservers, by HTTP verb",
    labelNames: ['cluster', 'verb'] as const,
    buckets: APISERVER_BUCKETS,
    registers,
  });
  const githubRequests = new Counter({
    name: 'plumbline_worker_github_requests_total',
    help: "HTTP requests to GitHub's API (every attempt) by method and status code (`error`: no answer)",
    labelNames: ['method', 'code'] as const,
    registers,
  });
  const githubRemaining = new Gauge({
    name: 'plumbline_worker_github_rate_limit_remaining',
    help: "GitHub's x-ratelimit-remaining on its last answer, per installation (`app`: the App's own JWT requests)",
    labelNames: ['installation'] as const,
    registers,
  });
  const resyncs = new Counter({
    name: 'plumbline_resyncs_total',
    help: 'Resyncs completed, per cluster (sum over the workers)',
    labelNames: ['cluster'] as const,
    registers,
  });
  const missed = new Counter({
    name: 'plumbline_webhook_missed_total',
    help: 'Pushes found by a resync that no webhook announced (sum over the workers)',
    registers,
  });
  const driftDetected = new Counter({
    name: 'plumbline_drift_objects_detected_total',
    help: 'Drifted objects found by resyncs, per cluster (sum over the workers)',
    labelNames: ['cluster'] as const,
    registers,
  });
  const driftCorrected = new Counter({
    name: 'plumbline_drift_objects_corrected_total',
    help: 'Drifted objects put back by resyncs, per cluster (sum over the workers)',
    labelNames: ['cluster'] as const,
    registers,
  });
  let renderStats: RenderCache['stats'] | undefined;
  new Counter({
    name: 'plumbline_worker_render_cache_lookups_total',
    help: 'Render cache lookups: `cluster` (a whole cluster folder) and `app` (one app of plumbline.yaml), hit or miss',
    labelNames: ['level', 'result'] as const,
    registers,
    collect() {
      this.reset();
      if (!renderStats) return;
      this.inc({ level: 'cluster', result: 'hit' }, renderStats.hits);
      this.inc({ level: 'cluster', result: 'miss' }, renderStats.misses);
      this.inc({ level: 'app', result: 'hit' }, renderStats.appHits);
      this.inc({ level: 'app', result: 'miss' }, renderStats.appMisses);
    },
  });
  return {
    registry,
    phase: (phase, seconds) => phases.observe({ phase }, seconds),
    reconciled: (cluster, outcome, seconds) => reconcile.observe({ cluster, outcome }, seconds),
    pushApplied: (cluster, trigger, seconds) => pushToApplied.observe({ cluster, trigger }, Math.max(0, seconds)),
    jobWaited: (queue, seconds) => queueWait.observe({ queue }, Math.max(0, seconds)),
    apiserverRequest: (cluster, verb, code, seconds) => {
      apiserverRequests.inc({ cluster, verb, code: codeLabel(code) });
      apiserverSeconds.observe({ cluster, verb }, seconds);
    },
    githubRequest: (request) => {
      githubRequests.inc({ method: request.method, code: codeLabel(request.status) });
      if (request.rateLimitRemaining !== undefined)
        githubRemaining.set({ installation: request.identity }, request.rateLimitRemaining);
    },
    resynced: (cluster) => resyncs.inc({ cluster }),
    missedPush: () => missed.inc(),
    drift: (cluster, detected, corrected) => {
      driftDetected.inc({ cluster }, detected);
      if (corrected > 0) driftCorrected.inc({ cluster }, corrected);
    },
    watchRenderCache: (stats) => {
      renderStats = stats;
    },
  };
}

/** What a BullMQ job says of its timing: created (`timestamp`), held back (`delay`), started (`processedOn`). */
export interface JobTiming {
  readonly timestamp: number;
  readonly delay?: number | undefined;
  readonly processedOn?: number | undefined;
  readonly attemptsMade: number;
}

/**
 * How long a job waited for a worker once it could run: from its creation plus its delay (the push
 * coalescing window, a resync's schedule) to its start. Undefined for a retry, whose wait includes the
 * earlier attempts and their backoff. Pure.
 */
export function queueWaitSeconds(job: JobTiming, now: number): number | undefined {
  if (job.attemptsMade > 0) return undefined;
  const runnable = job.timestamp + (job.delay ?? 0);
  return Math.max(0, (job.processedOn ?? now) - runnable) / 1000;
}
