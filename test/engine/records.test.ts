import { randomBytes } from 'node:crypto';
import { describe, expect, it } from '@jest/globals';
import { baselinesDigest, readBaselines, writeBaselines } from '../../src/engine/baseline-store.ts';
import { type ClusterClient, KubeError, type LiveObject } from '../../src/engine/cluster-client.ts';
import type { Baseline } from '../../src/engine/field-set.ts';
import { readInventory, writeInventory } from '../../src/engine/inventory.ts';
import type { Manifest } from '../../src/engine/manifest.ts';

/** A cluster in memory that, like a fresh one, has no `plumbline-system` namespace until it is created. */
function freshCluster(): ClusterClient & { readonly stored: Map<string, LiveObject>; applies: number } {
  const stored = new Map<string, LiveObject>();
  const key = (m: Pick<Manifest, 'kind' | 'metadata'>) => `${m.kind}/${m.metadata.namespace ?? ''}/${m.metadata.name}`;
  const cluster = {
    stored,
    applies: 0,
    async apply(manifest: Manifest) {
      cluster.applies += 1;
      const namespace = manifest.metadata.namespace;
      if (namespace && !stored.has(`Namespace//${namespace}`))
        throw new KubeError('missing-namespace', `namespace ${namespace} does not exist`, 404);
      const object = structuredClone(manifest) as LiveObject;
      stored.set(key(manifest), object);
      return object;
    },
    async get(manifest: Pick<Manifest, 'kind' | 'metadata'>) {
      return stored.get(key(manifest));
    },
    async delete(manifest: Pick<Manifest, 'kind' | 'metadata'>) {
      stored.delete(key(manifest));
    },
    async list() {
      return [];
    },
  };
  return cluster;
}

const baseline = (value: string): Baseline => ({ fields: { 'f:data': { 'f:value': {} } }, values: [value] });

describe("Plumbline's records in the cluster", () => {
  it('baselines are written to a cluster that has never seen Plumbline (the namespace is created)', async () => {
    const cluster = freshCluster();
    const baselines = new Map([['|ConfigMap|app|settings', baseline('strict')]]);
    await writeBaselines(cluster, 'fresh', baselines);
    expect(cluster.stored.has('Namespace//plumbline-system')).toBe(true);
    expect(await readBaselines(cluster, 'fresh')).toEqual(baselines);
  });

  it('so is the inventory', async () => {
    const cluster = freshCluster();
    await writeInventory(cluster, 'fresh', { revision: 'a'.repeat(40), objects: [] });
    expect((await readInventory(cluster, 'fresh'))?.revision).toBe('a'.repeat(40));
  });

  it('baselines larger than one object are split into chunks and read back whole', async () => {
    const cluster = freshCluster();
    // Random values barely compress: about 1.7 MB of them need two chunks of at most 900 KB.
    const baselines = new Map(
      Array.from({ length: 2_500 }, (_, i) => [
        `|ConfigMap|app|cm-${i}`,
        baseline(randomBytes(500).toString('base64')),
      ]),
    );
    await writeBaselines(cluster, 'big', baselines);
    const chunks = [...cluster.stored.keys()].filter((k) => k.includes('plumbline-baseline-big-'));
    expect(chunks.length).toBeGreaterThanOrEqual(2);
    const read = await readBaselines(cluster, 'big');
    expect(baselinesDigest(read)).toBe(baselinesDigest(baselines));
  });

  it('a torn write (a chunk missing) reads as no baselines rather than wrong ones', async () => {
    const cluster = freshCluster();
    const baselines = new Map(
      Array.from({ length: 2_500 }, (_, i) => [
        `|ConfigMap|app|cm-${i}`,
        baseline(randomBytes(500).toString('base64')),
      ]),
    );
    await writeBaselines(cluster, 'torn', baselines);
    cluster.stored.delete('ConfigMap/plumbline-system/plumbline-baseline-torn-1');
    expect((await readBaselines(cluster, 'torn')).size).toBe(0);
  });
});
