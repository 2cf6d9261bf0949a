import type { RenderedObject } from './manifest.ts';

/**
 * The label Plumbline puts on every object it applies: the registered cluster whose inventory owns
 * it. The drift scan lists by it, so unmanaged neighbours of the same kind are never transferred.
 */
export const OWNER_LABEL = 'plumbline.dev/cluster';

export function ownerSelector(clusterName: string): string {
  return `${OWNER_LABEL}=${clusterName}`;
}

/** The objects as Plumbline applies them: rendered, plus the ownership label. Pure. */
export function withOwnerLabel(objects: readonly RenderedObject[], clusterName: string): RenderedObject[] {
  return objects.map((object) => {
    const metadata = object.manifest.metadata;
    const labels = (metadata.labels ?? {}) as Record<string, string>;
    return {
      ...object,
      manifest: { ...object.manifest, metadata: { ...metadata, labels: { ...labels, [OWNER_LABEL]: clusterName } } },
    };
  });
}
