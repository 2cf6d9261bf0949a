import { mapLimited } from '../support/limit-concurrency.ts';
import { type ClusterClient, KubeError, type LiveObject } from './cluster-client.ts';
import { type Manifest, objectKey } from './manifest.ts';

/** Groups of at least this many objects of one kind and namespace are read with one LIST instead of GETs. */
const LIST_THRESHOLD = 8;

type Identified = Pick<Manifest, 'apiVersion' | 'kind' | 'metadata'>;

/**
 * Live copies of objects, keyed by `objectKey`, read with one LIST per kind and namespace for large
 * groups. A key that is absent means "not read: use GET"; a key mapped to undefined means "does not exist".
 */
export async function readLiveObjects(
  client: ClusterClient,
  manifests: readonly Identified[],
  concurrency: number,
): Promise<Map<string, LiveObject | undefined>> {
  const groups = new Map<string, Identified[]>();
  for (const manifest of manifests) {
    const group = `${manifest.apiVersion}|${manifest.kind}|${manifest.metadata.namespace ?? ''}`;
    groups.set(group, [...(groups.get(group) ?? []), manifest]);
  }
  const live = new Map<string, LiveObject | undefined>();
  const large = [...groups.values()].filter((members) => members.length >= LIST_THRESHOLD);
  await mapLimited(large, concurrency, async (members) => {
    const { apiVersion, kind, metadata } = members[0] as Identified;
    let items: LiveObject[];
    try {
      items = await client.list(apiVersion, kind, metadata.namespace);
    } catch (error) {
      // A kind or namespace that does not exist (yet): each object finds out on its own.
      if (error instanceof KubeError && !error.retryable) return;
      throw error;
    }
    const byName = new Map(items.map((item) => [(item.metadata as { name?: string } | undefined)?.name, item]));
    for (const manifest of members) live.set(objectKey(manifest), byName.get(manifest.metadata.name));
  });
  return live;
}
