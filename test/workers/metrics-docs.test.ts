import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { Redis } from 'ioredis';
import { parse } from 'yaml';
import { createJobProducer, type JobProducer } from '../../src/queue/job-producer.ts';
import { createReceiverMetrics } from '../../src/receiver/receiver-metrics.ts';
import { packageRoot } from '../../src/support/package-root.ts';
import { createWorkerMetrics } from '../../workers/worker-metrics.ts';
import { testEnvironment, uniqueName } from '../helpers/environment.ts';

const env = testEnvironment();
const docs = join(packageRoot(), 'docs');

/** The metric names a PromQL expression reads (`plumbline_…`, histogram suffixes dropped). Pure. */
function metricsRead(expr: string): string[] {
  return [...expr.matchAll(/\bplumbline_\w+/g)].map((m) => m[0].replace(/_(bucket|sum|count)$/, ''));
}

describe('the alert rules and the Grafana dashboard of docs/', () => {
  let redis: Redis;
  let producer: JobProducer;
  let exported: Set<string>;

  beforeAll(() => {
    redis = new Redis(env.redisUrl);
    producer = createJobProducer(redis, { prefix: uniqueName('docs'), coalesceMs: 0, onError: () => {} });
    // What the receiver and a worker (with its process metrics) serve, by name: the registries themselves.
    exported = new Set(
      [createReceiverMetrics(producer).registry, createWorkerMetrics({ processMetrics: true }).registry].flatMap(
        (registry) => registry.getMetricsAsArray().map((metric) => metric.name),
      ),
    );
  });
  afterAll(async () => {
    await producer.close();
    redis.disconnect();
  });

  it('alert only on metrics that Plumbline exports (the PrometheusRule of docs/operations.md)', async () => {
    const text = await readFile(join(docs, 'operations.md'), 'utf8');
    const section = text.slice(text.indexOf('## Metrics and suggested alerts'), text.indexOf('## Scaling'));
    const block = /```yaml\n([\s\S]*?)```/.exec(section)?.[1] ?? '';
    const rule = parse(block) as {
      kind: string;
      spec: { groups: { rules: { alert: string; expr: string }[] }[] };
    };
    expect(rule.kind).toBe('PrometheusRule');
    const rules = rule.spec.groups.flatMap((group) => group.rules);
    expect(rules.length).toBeGreaterThan(10);
    const unknown = rules.flatMap((r) => metricsRead(r.expr).filter((name) => !exported.has(name)));
    expect(unknown).toEqual([]);
    // No worker scraped, pushes slow, resyncs late or stopped, apiservers failing, GitHub's limit low.
    const alerted = new Set(rules.flatMap((r) => metricsRead(r.expr)));
    const required = [
      'plumbline_worker_process_start_time_seconds',
      'plumbline_worker_push_to_applied_seconds',
      'plumbline_worker_queue_wait_seconds',
      'plumbline_worker_apiserver_requests_total',
      'plumbline_worker_github_rate_limit_remaining',
      'plumbline_resyncs_total',
    ];
    expect(required.filter((name) => !alerted.has(name))).toEqual([]);
  });

  it('chart only metrics that Plumbline exports, and every worker metric (docs/grafana/plumbline.json)', async () => {
    const dashboard = JSON.parse(await readFile(join(docs, 'grafana', 'plumbline.json'), 'utf8')) as {
      panels: { title: string; targets?: { expr: string }[] }[];
    };
    const charted = dashboard.panels.flatMap((panel) => (panel.targets ?? []).flatMap((t) => metricsRead(t.expr)));
    expect(charted.filter((name) => !exported.has(name))).toEqual([]);
    const workerMetrics = [...exported].filter(
      (name) => name.startsWith('plumbline_worker_') && !name.includes('_process_') && !name.includes('_nodejs_'),
    );
    expect(workerMetrics.filter((name) => !charted.includes(name))).toEqual([]);
  });
});
