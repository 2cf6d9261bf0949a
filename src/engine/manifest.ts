/** A Kubernetes object as rendered from Git: the fields every object must have, the rest kept as is. */
export interface Manifest {
  readonly apiVersion: string;
  readonly kind: string;
  readonly metadata: { readonly name: string; readonly namespace?: string; readonly [key: string]: unknown };
  readonly [key: string]: unknown;
}

/** Where an object came from, for error messages and annotations. */
export interface SourceLocation {
  /** Repository-relative path. */
  readonly file: string;
  /** 1-based line of the object's document, when known. */
  readonly line?: number;
}

export interface RenderedObject {
  readonly manifest: Manifest;
  readonly source: SourceLocation | undefined;
}

/** A problem with the commit (not with the infrastructure): it fails the commit, and retrying cannot help. */
export interface ManifestProblem {
  readonly message: string;
  readonly source: SourceLocation | undefined;
  /** `Kind/namespace/name` when the problem is about one object. */
  readonly object?: string;
}

/** `Kind/name` or `Kind/namespace/name`: how every message names an object. */
export function objectRef(manifest: Pick<Manifest, 'kind' | 'metadata'>): string {
  const { namespace, name } = manifest.metadata;
  return namespace ? `${manifest.kind}/${namespace}/${name}` : `${manifest.kind}/${name}`;
}

/** Identity of an object in a cluster: group, kind, namespace, name. */
export function objectKey(manifest: Pick<Manifest, 'apiVersion' | 'kind' | 'metadata'>): string {
  const group = manifest.apiVersion.includes('/') ? manifest.apiVersion.split('/')[0] : '';
  return `${group}|${manifest.kind}|${manifest.metadata.namespace ?? ''}|${manifest.metadata.name}`;
}
