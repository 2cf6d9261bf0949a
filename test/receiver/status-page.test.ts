import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { Redis } from 'ioredis';
import { renderStatusPage } from '../../src/receiver/status-page.ts';
import { type ClusterStateStore, createClusterStateStore } from '../../src/status/cluster-state.ts';
import { testEnvironment } from '../helpers/environment.ts';
import { type ReceiverHarness, startReceiverHarness } from '../helpers/receiver-harness.ts';

const env = testEnvironment();
/** Everything a reader with the token sees (the public view is in status-page-modes.test.ts). */
const TOKEN = 'status-page-test-token-5b2e';

describe('the status page and /api/clusters', () => {
  let harness: ReceiverHarness;
  const get = (path: string) => fetch(`${harness.baseUrl}${path}`, { headers: { authorization: `Bearer ${TOKEN}` } });
  let redis: Redis;
  let store: ClusterStateStore;
  const base = {
    name: 'gcp-production',
    repo: 'acme/platform-gitops',
    branch: 'main',
    path: 'clusters/gcp/production',
    suspended: false,
    selfHeal: true,
    intervalMs: 300_000,
  };

  beforeAll(async () => {
    harness = await startReceiverHarness(env.redisUrl, {
      PLUMBLINE_STATUS_PAGE: 'token',
      PLUMBLINE_STATUS_PAGE_TOKEN: TOKEN,
    });
    redis = new Redis(env.redisUrl);
    store = createClusterStateStore(redis, harness.prefix);
    const now = Date.now();
    await store.update(base, {
      appliedRevision: 'a'.repeat(40),
      appliedAt: new Date(now - 120_000).toISOString(),
      lastSync: {
        sha: 'a'.repeat(40),
        status: 'applied',
        description: '3 created <b>in</b> 1.2 s',
        at: new Date(now - 120_000).toISOString(),
      },
      lastResyncAt: new Date(now - 30_000).toISOString(),
      nextResyncAt: new Date(now + 270_000).toISOString(),
      drift: {
        objects: [
          {
            object: 'ConfigMap/app/settings',
            kind: 'changed',
            fields: [{ path: 'data.mode', changedBy: ['kubectl-edit'] }],
          },
        ],
        detectedAt: new Date(now - 30_000).toISOString(),
        correctedAt: new Date(now - 29_000).toISOString(),
      },
      add: { driftDetected: 1, driftCorrected: 1 },
    });
    // Where workers used to relay their counters: each worker now serves its own /metrics.
    await redis.hincrby(
      `${harness.prefix}:metrics:counters`,
      JSON.stringify({ metric: 'plumbline_webhook_missed_total', labels: {} }),
      1,
    );
  });
  afterAll(async () => {
    await harness.close();
    redis.disconnect();
  });

  it('lists every cluster as JSON, and one by name', async () => {
    const all = (await (await get('/api/clusters')).json()) as { clusters: { name: string }[] };
    expect(all.clusters.map((c) => c.name)).toEqual(['gcp-production']);
    const one = await get('/api/clusters/gcp-production');
    expect(one.status).toBe(200);
    expect(await one.json()).toMatchObject({
      appliedRevision: 'a'.repeat(40),
      drift: { objects: [{ object: 'ConfigMap/app/settings' }] },
      totals: { driftDetected: 1, driftCorrected: 1, missedPushes: 0 },
    });
    expect((await get('/api/clusters/nope')).status).toBe(404);
    expect((await get('/api/clusters/..%2F..%2Fetc')).status).toBe(404);
  });

  it('serves the HTML page statuses link to, one anchor per cluster, with text escaped', async () => {
    const page = await get('/');
    expect(page.headers.get('content-type')).toMatch(/^text\/html/);
    const html = await page.text();
    expect(html).toContain('id="cluster-gcp-production"');
    expect(html).toContain('3 created &lt;b&gt;in&lt;/b&gt; 1.2 s');
    expect(html).toMatch(/corrected<\/span> <time[^>]*>29 s ago<\/time>/);
    expect(html).toContain('data.mode (by kubectl-edit)');
  });

  it('has a page per cluster with its recent reconciles; an unknown cluster is a 404', async () => {
    await store.update(base, {
      reconciled: {
        sha: 'b'.repeat(40),
        status: 'failed',
        description: '1 rejected (apps/x.yaml:3): bad',
        at: new Date().toISOString(),
      },
      repoUrl: 'https://github.com/acme/platform-gitops',
    });
    const html = await (await get('/clusters/gcp-production')).text();
    expect(html).toContain('<caption>Recent reconciles</caption>');
    expect(html).toContain(`href="https://github.com/acme/platform-gitops/commit/${'b'.repeat(40)}"`);
    expect(html).toContain('1 rejected (apps/x.yaml:3): bad');
    expect((await get('/clusters/nope')).status).toBe(404);
    // The page refreshes itself every 30 s, and the refresh can be paused (the page is otherwise the same).
    expect(await (await get('/')).text()).toContain('<meta http-equiv="refresh" content="30">');
    const paused = await get('/?refresh=off');
    expect(paused.status).toBe(200);
    const pausedHtml = await paused.text();
    expect(pausedHtml).toContain('id="cluster-gcp-production"');
    expect(pausedHtml).not.toContain('http-equiv="refresh"');
  });

  it('exports its own metrics only: no worker counters read from Redis (each worker serves its own)', async () => {
    const text = await (await fetch(`${harness.baseUrl}/metrics`)).text();
    expect(text).toContain('plumbline_webhook_deliveries_total');
    expect(text).not.toContain('plumbline_webhook_missed_total');
    expect(text).not.toContain('plumbline_resyncs_total');
    expect(text).not.toContain('plumbline_drift_objects');
  });

  it('says so when no cluster has reported yet', () => {
    expect(renderStatusPage([])).toContain('No cluster has reported yet');
  });
});
