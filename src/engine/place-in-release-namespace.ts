import type { Manifest, RenderedObject } from './manifest.ts';
import type { Scope } from './tenancy.ts';

/** Whether a kind is namespaced, from the target cluster's discovery or a CRD of the same render. */
export type ScopeOfKind = (apiVersion: string, kind: string) => Scope | undefined;

/**
 * A chart's objects as `helm install --namespace <ns> --create-namespace` would place them (pure):
 * namespaced objects that name no namespace land in the release namespace; cluster-scoped objects that
 * carry one (common in real charts) are cluster-scoped, as Helm sends them; objects of a kind nobody
 * knows stay as rendered (the dry-run will say what is wrong). The release namespace is added as an
 * object of the app when the render does not define it and something lands there.
 */
export function placeInReleaseNamespace<T extends RenderedObject>(
  objects: readonly T[],
  scopeOf: ScopeOfKind,
  namespace: string,
  source: RenderedObject['source'],
): { readonly objects: readonly T[]; readonly releaseNamespace?: RenderedObject | undefined } {
  const placed = objects.map((object) => {
    const { manifest } = object;
    const scope = scopeOf(manifest.apiVersion, manifest.kind);
    if (scope === 'namespaced' && !manifest.metadata.namespace)
      return { ...object, manifest: withNamespace(manifest, namespace) };
    if (scope === 'cluster' && manifest.metadata.namespace !== undefined)
      return { ...object, manifest: withNamespace(manifest, undefined) };
    return object;
  });
  const defined = placed.some((o) => o.manifest.kind === 'Namespace' && o.manifest.metadata.name === namespace);
  const used = placed.some((o) => o.manifest.metadata.namespace === namespace);
  if (defined || !used) return { objects: placed };
  return {
    objects: placed,
    releaseNamespace: { manifest: { apiVersion: 'v1', kind: 'Namespace', metadata: { name: namespace } }, source },
  };
}

function withNamespace(manifest: Manifest, namespace: string | undefined): Manifest {
  const { namespace: _dropped, ...metadata } = manifest.metadata;
  return { ...manifest, metadata: namespace === undefined ? metadata : { ...metadata, namespace } };
}
