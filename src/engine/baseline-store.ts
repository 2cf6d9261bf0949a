import { createHash } from 'node:crypto';
import { promisify } from 'node:util';
import { gunzip, gzip } from 'node:zlib';
import type { ClusterClient } from './cluster-client.ts';
import type { Baseline } from './field-set.ts';
import { applyRecord, INVENTORY_NAMESPACE, records } from './inventory.ts';
import type { Manifest } from './manifest.ts';

const gzipAsync = promisify(gzip);
const gunzipAsync = promisify(gunzip);

/** Below the apiserver's 1 MiB object limit, with room for metadata. */
const CHUNK_BYTES = 900_000;
const CHUNKS_ANNOTATION = 'plumbline.dev/chunks';

/** The baselines of a cluster's objects, by inventory key (`idKey`). */
export type Baselines = ReadonlyMap<string, Baseline>;

/** A digest of baselines, recorded in the inventory: when it has not changed, nothing is written. Pure. */
export function baselinesDigest(baselines: Baselines): string {
  const hash = createHash('sha256');
  for (const key of [...baselines.keys()].sort())
    hash
      .update(key)
      .update('\0')
      .update(JSON.stringify(baselines.get(key)));
  return hash.digest('hex').slice(0, 24);
}

function chunkName(clusterName: string, index: number): string {
  return `plumbline-baseline-${clusterName}-${index}`;
}

function chunkConfigMap(clusterName: string, index: number, data?: Buffer, chunks?: number): Manifest {
  return {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: {
      name: chunkName(clusterName, index),
      namespace: INVENTORY_NAMESPACE,
      labels: { 'app.kubernetes.io/managed-by': 'plumbline', 'plumbline.dev/cluster': clusterName },
      ...(chunks !== undefined ? { annotations: { [CHUNKS_ANNOTATION]: String(chunks) } } : {}),
    },
    ...(data ? { binaryData: { 'baselines.json.gz': data.toString('base64') } } : {}),
  };
}

/**
 * What Plumbline set on each object at its last apply, kept beside the inventory in gzip'd ConfigMaps
 * (split below the object size limit; chunk 0 says how many there are). Empty when none was recorded.
 */
export async function readBaselines(client: ClusterClient, clusterName: string): Promise<Map<string, Baseline>> {
  const own = records(client);
  const first = await own.get(chunkConfigMap(clusterName, 0));
  if (!first) return new Map();
  const count = Number((first.metadata as { annotations?: Record<string, string> }).annotations?.[CHUNKS_ANNOTATION]);
  const parts = [first];
  for (let i = 1; i < count; i += 1) {
    const part = await own.get(chunkConfigMap(clusterName, i));
    if (!part) return new Map(); // a write in progress or a torn one: no baseline rather than a wrong one
    parts.push(part);
  }
  const data = Buffer.concat(
    parts.map((p) =>
      Buffer.from((p.binaryData as Record<string, string> | undefined)?.['baselines.json.gz'] ?? '', 'base64'),
    ),
  );
  try {
    return new Map(JSON.parse((await gunzipAsync(data)).toString('utf8')) as [string, Baseline][]);
  } catch {
    return new Map();
  }
}

/**
 * Writes the baselines: the extra chunks first, chunk 0 (which names their count) last. `guard`: the
 * lock's fence, called right before each chunk leaves (see `WriteOptions.guard`).
 */
export async function writeBaselines(
  client: ClusterClient,
  clusterName: string,
  baselines: Baselines,
  guard?: () => void,
): Promise<void> {
  const entries = [...baselines].sort(([a], [b]) => a.localeCompare(b));
  const data = await gzipAsync(Buffer.from(JSON.stringify(entries)));
  const chunks: Buffer[] = [];
  for (let offset = 0; offset < data.length || chunks.length === 0; offset += CHUNK_BYTES)
    chunks.push(data.subarray(offset, offset + CHUNK_BYTES));
  for (let i = chunks.length - 1; i >= 0; i -= 1) {
    await applyRecord(client, chunkConfigMap(clusterName, i, chunks[i], i === 0 ? chunks.length : undefined), guard);
  }
}
