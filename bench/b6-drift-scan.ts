/**
 * B6 and B12 (docs/performance.md) against the local apiserver: a drift scan of N managed ConfigMaps
 * with 1 % drifted (edited by another field manager) and 2N unmanaged neighbours of the same kind in
 * the same namespace — Plumbline's scan against `kubectl diff --server-side` of the same manifests —
 * and what one no-op resync costs (requests, CPU).
 */
import { writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { readBaselines } from '../src/engine/baseline-store.ts';
import { type ClusterClient, createClusterClient, loadKubeConfig } from '../src/engine/cluster-client.ts';
import { scanDrift } from '../src/engine/drift.ts';
import { readInventory } from '../src/engine/inventory.ts';
import type { RenderedObject } from '../src/engine/manifest.ts';
import { withOwnerLabel } from '../src/engine/ownership.ts';
import { reconcileCluster } from '../src/engine/reconcile-cluster.ts';
import { mapLimited } from '../src/support/limit-concurrency.ts';
import { runCommand } from '../src/support/run-command.ts';
import { median, spread } from './stats.ts';

export interface B6Result {
  readonly n: number;
  readonly drifted: number;
  readonly neighbours: number;
  readonly oursMs: number[];
  readonly kubectlMs: number[];
  readonly ratio: number | undefined;
  readonly foundExactly: boolean;
  /** B12: one no-op resync scan. */
  readonly requestsPerResync: number;
  readonly cpuMsPerResync: number;
}

const CONCURRENCY = 32;

const configMaps = (namespace: string, prefix: string, n: number): RenderedObject[] =>
  Array.from({ length: n }, (_, i) => ({
    manifest: {
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: `${prefix}-${i}`, namespace },
      data: { index: String(i), payload: 'x'.repeat(64) },
    },
    source: { file: 'bench/objects.yaml' },
  }));

/** Every request a scan sends, counted. */
function counting(client: ClusterClient, counter: { requests: number }): ClusterClient {
  return {
    apply: (m, o) => {
      counter.requests += 1;
      return client.apply(m, o);
    },
    get: (m) => {
      counter.requests += 1;
      return client.get(m);
    },
    list: (a, k, n, o) => {
      counter.requests += 1;
      return client.list(a, k, n, o);
    },
    delete: (m) => {
      counter.requests += 1;
      return client.delete(m);
    },
  };
}

export async function runB6(
  kubeconfig: string,
  sizes: readonly number[],
  reps: number,
  kubectlMax: number,
  log: (line: string) => void,
): Promise<B6Result[]> {
  const client = createClusterClient(loadKubeConfig({ kubeconfig }));
  const results: B6Result[] = [];
  for (const n of sizes) {
    const run = Date.now().toString(36);
    const namespace = `b6-${run}-${n}`;
    const cluster = `b6-${run}-${n}`;
    await client.apply(
      { apiVersion: 'v1', kind: 'Namespace', metadata: { name: namespace } },
      { dryRun: false, force: true },
    );
    const managed = configMaps(namespace, 'managed', n);
    const outcome = await reconcileCluster({
      client,
      clusterName: cluster,
      revision: 'b'.repeat(40),
      objects: managed,
      prune: true,
      pruneGuards: { maxShare: 0.5, override: false },
      apply: { concurrency: CONCURRENCY, conflicts: 'take-ownership', establishTimeoutMs: 30_000 },
    });
    if (outcome.status !== 'applied') throw new Error(`B6 setup failed: ${outcome.status}`);
    // 2N neighbours nobody manages through Plumbline.
    await mapLimited(configMaps(namespace, 'neighbour', 2 * n), CONCURRENCY, (o) =>
      client.apply(o.manifest, { dryRun: false, force: true }),
    );
    // 1 % drifted by another manager (as `kubectl edit` would).
    const drifted = managed.filter((_, i) => i % 100 === 7);
    const raw = loadKubeConfig({ kubeconfig });
    const { KubernetesObjectApi, PatchStrategy } = await import('@kubernetes/client-node');
    const objects = KubernetesObjectApi.makeApiClient(raw);
    await mapLimited(drifted, CONCURRENCY, (o) =>
      objects.patch(
        { ...o.manifest, data: { index: 'edited' } },
        undefined,
        undefined,
        'kubectl-edit',
        undefined,
        PatchStrategy.MergePatch,
      ),
    );

    const scanOnce = async (counter: { requests: number }) => {
      const c = counting(client, counter);
      const inventory = await readInventory(c, cluster);
      if (!inventory) throw new Error('no inventory');
      return scanDrift(c, cluster, inventory, await readBaselines(c, cluster), CONCURRENCY);
    };
    const file = join(tmpdir(), `b6-${run}-${n}.yaml`);
    await writeFile(
      file,
      withOwnerLabel(managed, cluster)
        .map((o) => stringify(o.manifest))
        .join('---\n'),
    );
    const kubectlDiff = async () => {
      const result = await runCommand(
        'kubectl',
        ['diff', '--server-side', '--field-manager=plumbline', '--force-conflicts', '-f', file],
        { env: { KUBECONFIG: kubeconfig, PATH: process.env.PATH ?? '/usr/bin:/bin' }, timeoutMs: 1_800_000 },
      );
      // kubectl diff exits 1 when it found differences; more than that is an error.
      if (result.code !== 0 && result.code !== 1)
        throw new Error(`kubectl diff failed: ${result.stderr.slice(0, 300)}`);
    };

    await scanOnce({ requests: 0 }); // warm-up (discovery, connections)
    const oursMs: number[] = [];
    const kubectlMs: number[] = [];
    let foundExactly = true;
    const runKubectl = n <= kubectlMax;
    for (let rep = 0; rep < reps; rep += 1) {
      const started = performance.now();
      const scan = await scanOnce({ requests: 0 });
      oursMs.push(performance.now() - started);
      const found = new Set(scan.drifted.map((d) => d.object));
      const expected = new Set(drifted.map((o) => `ConfigMap/${namespace}/${o.manifest.metadata.name}`));
      if (found.size !== expected.size || [...expected].some((e) => !found.has(e))) foundExactly = false;
      if (runKubectl && rep < Math.max(2, Math.ceil(reps / 3))) {
        const k = performance.now();
        await kubectlDiff();
        kubectlMs.push(performance.now() - k);
      }
    }
    // B12: a resync that finds nothing — put the drift back first, then measure one clean scan.
    await mapLimited(drifted, CONCURRENCY, (o) =>
      client.apply(withOwnerLabel([o], cluster)[0]!.manifest, { dryRun: false, force: true }),
    );
    await scanOnce({ requests: 0 });
    const counter = { requests: 0 };
    const cpu = process.cpuUsage();
    await scanOnce(counter);
    const used = process.cpuUsage(cpu);
    const ratio = kubectlMs.length > 0 ? median(oursMs) / median(kubectlMs) : undefined;
    results.push({
      n,
      drifted: drifted.length,
      neighbours: 2 * n,
      oursMs,
      kubectlMs,
      ratio,
      foundExactly,
      requestsPerResync: counter.requests,
      cpuMsPerResync: (used.user + used.system) / 1000,
    });
    await client.delete({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: namespace } });
  }
  log('B6 drift scan (1 % drifted, 2N unmanaged neighbours) and B12 no-op resync cost');
  log(
    '| N | ours (median ± spread) | kubectl diff --server-side | ratio (target ≤ 0.25) | all found, nothing else | B12 requests / CPU per no-op resync |',
  );
  log('|---|---|---|---|---|---|');
  for (const r of results) {
    log(
      `| ${r.n} | ${median(r.oursMs).toFixed(0)} ± ${spread(r.oursMs).toFixed(0)} ms | ${r.kubectlMs.length > 0 ? `${median(r.kubectlMs).toFixed(0)} ms` : '—'} | ${r.ratio === undefined ? '—' : r.ratio.toFixed(3)} | ${r.foundExactly ? 'yes' : 'NO'} | ${r.requestsPerResync} / ${r.cpuMsPerResync.toFixed(0)} ms |`,
    );
  }
  return results;
}
