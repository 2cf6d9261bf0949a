/**
 * B4, B5, B7 (docs/performance.md) against the local apiserver: applying, re-applying (no-op) and pruning
 * N ConfigMaps with Plumbline's engine, against (a) a minimal script that sends the same server-side-apply
 * PATCHes (or DELETEs) at the same concurrency and (b) `kubectl apply --server-side`.
 */
import { writeFile } from 'node:fs/promises';
import { Agent, request as httpsRequest, type RequestOptions } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { KubeConfig } from '@kubernetes/client-node';
import { stringify } from 'yaml';
import { type ClusterClient, createClusterClient, loadKubeConfig } from '../src/engine/cluster-client.ts';
import type { RenderedObject } from '../src/engine/manifest.ts';
import { reconcileCluster } from '../src/engine/reconcile-cluster.ts';
import { mapLimited } from '../src/support/limit-concurrency.ts';
import { runCommand } from '../src/support/run-command.ts';
import { median } from './stats.ts';

const CONCURRENCY = 32;

interface Counting extends ClusterClient {
  mutating: number;
}

function counting(client: ClusterClient): Counting {
  const wrapped: Counting = {
    mutating: 0,
    apply: async (manifest, options) => {
      if (!options.dryRun) wrapped.mutating += 1;
      return client.apply(manifest, options);
    },
    get: (manifest) => client.get(manifest),
    list: (apiVersion, kind, namespace) => client.list(apiVersion, kind, namespace),
    delete: async (manifest) => {
      wrapped.mutating += 1;
      return client.delete(manifest);
    },
  };
  return wrapped;
}

/** The floor: one raw request per object, nothing else. */
async function rawRequests(
  config: KubeConfig,
  method: 'PATCH' | 'DELETE',
  objects: readonly RenderedObject[],
): Promise<void> {
  const server = config.getCurrentCluster()?.server ?? '';
  const agent = new Agent({ keepAlive: true, maxSockets: CONCURRENCY });
  const base: RequestOptions = {};
  await config.applyToHTTPSOptions(base);
  await mapLimited(objects, CONCURRENCY, async ({ manifest }) => {
    const path = `/api/v1/namespaces/${manifest.metadata.namespace}/configmaps/${manifest.metadata.name}`;
    const query = method === 'PATCH' ? '?fieldManager=floor&force=true' : '';
    await new Promise<void>((resolve, reject) => {
      const req = httpsRequest(
        `${server}${path}${query}`,
        { ...base, agent, method, headers: { ...base.headers, 'content-type': 'application/apply-patch+yaml' } },
        (res) => {
          res.resume();
          res.on('end', () =>
            res.statusCode && res.statusCode < 300 ? resolve() : reject(new Error(`HTTP ${res.statusCode}`)),
          );
        },
      );
      req.on('error', reject);
      req.end(method === 'PATCH' ? JSON.stringify(manifest) : undefined);
    });
  });
  agent.destroy();
}

const configMaps = (namespace: string, n: number, version = 'v1'): RenderedObject[] =>
  Array.from({ length: n }, (_, i) => ({
    manifest: {
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: `cm-${i}`, namespace, labels: { bench: 'b4' } },
      data: { version: i % 10 === 0 ? version : 'v1', index: String(i) },
    },
    source: undefined,
  }));

async function timed(fn: () => Promise<unknown>): Promise<number> {
  const started = performance.now();
  await fn();
  return performance.now() - started;
}

export interface B4Row {
  readonly n: number;
  readonly oursColdMs: number;
  readonly floorColdMs: number;
  readonly kubectlColdMs: number | undefined;
  readonly oursNoopMs: number;
  readonly oursNoopMutating: number;
  readonly floorNoopMs: number;
  readonly oursTenPercentMs: number;
  readonly floorTenPercentMs: number;
  readonly oursPruneTenPercentMs: number;
  readonly floorPruneTenPercentMs: number;
}

export async function runB4(
  kubeconfig: string,
  sizes: readonly number[],
  reps: number,
  log: (line: string) => void,
): Promise<B4Row[]> {
  const config = loadKubeConfig({ kubeconfig });
  const client = counting(createClusterClient(config));
  const options = { concurrency: CONCURRENCY, conflicts: 'take-ownership' as const, establishTimeoutMs: 30_000 };
  const rows: B4Row[] = [];
  let namespaceCounter = 0;
  const freshNamespace = async () => {
    const name = `bench-${process.pid}-${namespaceCounter++}`;
    await client.apply({ apiVersion: 'v1', kind: 'Namespace', metadata: { name } }, { dryRun: false, force: true });
    return name;
  };
  const dropNamespace = (name: string) =>
    client.delete({ apiVersion: 'v1', kind: 'Namespace', metadata: { name } }).catch(() => undefined);

  for (const n of sizes) {
    const samples: Record<string, number[]> = {};
    const add = (key: string, ms: number) => {
      samples[key] = [...(samples[key] ?? []), ms];
    };
    let noopMutating = 0;
    const withKubectl = n <= 1_000;
    for (let rep = 0; rep < reps; rep += 1) {
      // ours, then the floor, then kubectl, each in its own namespace; order alternates between reps.
      const sides = rep % 2 === 0 ? ['ours', 'floor', 'kubectl'] : ['kubectl', 'floor', 'ours'];
      for (const side of sides) {
        if (side === 'kubectl' && !withKubectl) continue;
        const ns = await freshNamespace();
        const objects = configMaps(ns, n);
        const changed = configMaps(ns, n, 'v2');
        const stale = objects.slice(0, Math.max(1, Math.floor(n / 10)));
        if (side === 'ours') {
          // The engine as the worker runs it: reconcile with the inventory (no prune here; B7 measures it).
          const clusterName = `bench-${ns}`;
          const reconcile = (revision: string, desired: RenderedObject[]) =>
            reconcileCluster({
              client,
              clusterName,
              revision,
              objects: desired,
              prune: false,
              pruneGuards: { maxShare: 1, override: true },
              apply: options,
            });
          add('oursCold', await timed(() => reconcile('a'.repeat(40), objects)));
          const before = client.mutating;
          add('oursNoop', await timed(() => reconcile('b'.repeat(40), objects)));
          noopMutating = client.mutating - before - 1; // minus the inventory's new revision
          add('oursTen', await timed(() => reconcile('c'.repeat(40), changed)));
          // A commit that drops a tenth of the objects, with prune on: the whole reconcile (the rest unchanged).
          add(
            'oursPrune',
            await timed(() =>
              reconcileCluster({
                client,
                clusterName,
                revision: 'd'.repeat(40),
                objects: changed.slice(stale.length),
                prune: true,
                pruneGuards: { maxShare: 1, override: true },
                apply: options,
              }),
            ),
          );
          await client.delete({
            apiVersion: 'v1',
            kind: 'ConfigMap',
            metadata: { name: `plumbline-inventory-${clusterName}`, namespace: 'plumbline-system' },
          });
        } else if (side === 'floor') {
          add('floorCold', await timed(() => rawRequests(config, 'PATCH', objects)));
          add('floorNoop', await timed(() => rawRequests(config, 'PATCH', objects)));
          // A script without diffing sends every object again; the server finds the 10 % that changed.
          add('floorTen', await timed(() => rawRequests(config, 'PATCH', changed)));
          add('floorPrune', await timed(() => rawRequests(config, 'DELETE', stale)));
        } else {
          const file = join(tmpdir(), `bench-${ns}.yaml`);
          await writeFile(file, objects.map((o) => stringify(o.manifest)).join('---\n'));
          add(
            'kubectlCold',
            await timed(async () => {
              const result = await runCommand(
                'kubectl',
                ['apply', '--server-side', '--field-manager=kubectl-bench', '-f', file],
                {
                  env: { KUBECONFIG: kubeconfig },
                  timeoutMs: 600_000,
                },
              );
              if (result.code !== 0) throw new Error(`kubectl failed: ${result.stderr.slice(0, 300)}`);
            }),
          );
        }
        await dropNamespace(ns);
      }
    }
    const m = (key: string) => median(samples[key] ?? []);
    const row: B4Row = {
      n,
      oursColdMs: m('oursCold'),
      floorColdMs: m('floorCold'),
      kubectlColdMs: withKubectl ? m('kubectlCold') : undefined,
      oursNoopMs: m('oursNoop'),
      oursNoopMutating: noopMutating,
      floorNoopMs: m('floorNoop'),
      oursTenPercentMs: m('oursTen'),
      floorTenPercentMs: m('floorTen'),
      oursPruneTenPercentMs: m('oursPrune'),
      floorPruneTenPercentMs: m('floorPrune'),
    };
    rows.push(row);
    log(
      `B4 N=${n}: cold ours ${row.oursColdMs.toFixed(0)} ms, floor ${row.floorColdMs.toFixed(0)} ms (×${(row.oursColdMs / row.floorColdMs).toFixed(2)})` +
        (row.kubectlColdMs
          ? `, kubectl ${row.kubectlColdMs.toFixed(0)} ms (×${(row.oursColdMs / row.kubectlColdMs).toFixed(2)})`
          : '') +
        `; 10% changed ours ${row.oursTenPercentMs.toFixed(0)} ms, floor ${row.floorTenPercentMs.toFixed(0)} ms` +
        `; B5 no-op ours ${row.oursNoopMs.toFixed(0)} ms (×${(row.oursNoopMs / row.oursColdMs).toFixed(2)} of cold, ${row.oursNoopMutating} mutating besides the inventory)` +
        `; B7 prune 10% ours ${row.oursPruneTenPercentMs.toFixed(0)} ms, floor ${row.floorPruneTenPercentMs.toFixed(0)} ms`,
    );
  }
  return rows;
}
