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
  /** The app of `plumbline.yaml` that renders it; absent for a cluster folder without apps. */
  readonly app?: AppRef | undefined;
  /** A chart's install/upgrade hook: applied around its app's other objects, never inventoried. */
  readonly hook?: ChartHook | undefined;
}

export interface AppRef {
  readonly name: string;
  /** Rendered by Helm (a repository or a remote chart), not a kustomize or plain folder. */
  readonly chart: boolean;
}

/** One app of a cluster's `plumbline.yaml`, as rendered: its place in the order, and its policy. */
export interface RenderedApp {
  readonly name: string;
  /** Apps of wave n depend only on apps of earlier waves. */
  readonly wave: number;
  readonly dependsOn: readonly string[];
  readonly chart: boolean;
  /** Unset: the cluster's prune. */
  readonly prune?: boolean;
  /** Its entry in plumbline.yaml. */
  readonly source: SourceLocation;
  readonly objects: number;
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

/** The hooks Plumbline runs: stages before and after an app's other objects (see ADR 13). */
export type HookPhase = 'pre-install' | 'post-install' | 'pre-upgrade' | 'post-upgrade';

export interface ChartHook {
  readonly phases: readonly HookPhase[];
  /** `helm.sh/hook-weight`: lower runs first; 0 when absent or not a number (as helm reads it). */
  readonly weight: number;
  /**
   * `helm.sh/hook-delete-policy`: `before-hook-creation`, `hook-succeeded`, `hook-failed`. When the
   * annotation names none, `before-hook-creation` — helm's default.
   */
  readonly deletePolicies: readonly string[];
}
