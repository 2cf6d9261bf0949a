import type { TenancyLimits } from '../clusters/cluster-registry.ts';
import type { ClusterClient } from './cluster-client.ts';
import { INVENTORY_NAMESPACE } from './inventory.ts';
import { type Manifest, type ManifestProblem, objectKey, objectRef, type RenderedObject } from './manifest.ts';

/** Where an object lives: in a namespace, or cluster-wide. */
export type Scope = 'namespaced' | 'cluster';

/** The scope of each object, by `objectKey`; missing = unknown (a kind neither served nor defined by the commit). */
export type Scopes = ReadonlyMap<string, Scope>;

/** An object outside the limits: `message` is `reason` prefixed with the object, as every message names it. */
export interface TenancyProblem extends ManifestProblem {
  readonly object: string;
  /** Which limit, and why. */
  readonly reason: string;
}

/** Where the apiserver puts a namespaced object that names no namespace (cluster-client.ts does the same). */
export const DEFAULT_NAMESPACE = 'default';

/**
 * The objects outside what the registry entry lets its repository write, each naming the object, its file
 * and the limit. Always — whatever the registry says — nothing in `plumbline-system`, where Plumbline keeps
 * its records, nor that Namespace itself. Then: `deniedKinds` never; namespaced objects only in
 * `namespaces` (no namespace = `default`; a Namespace object counts as its own name too, so a repository
 * limited to `podinfo` cannot relabel `kube-system`); cluster-scoped kinds only in `clusterScoped`. A kind
 * whose scope is unknown counts as namespaced when it names a namespace, else as cluster-scoped. Pure.
 */
export function checkTenancy(
  objects: readonly RenderedObject[],
  limits: TenancyLimits | undefined,
  clusterName: string,
  scopes: Scopes,
): TenancyProblem[] {
  const problems: TenancyProblem[] = [];
  const entry = `the registry entry of cluster ${clusterName}`;
  for (const { manifest, source } of objects) {
    const object = objectRef(manifest);
    const problem = (reason: string) => problems.push({ object, source, reason, message: `${object}: ${reason}` });
    const scope = scopes.get(objectKey(manifest)) ?? (manifest.metadata.namespace ? 'namespaced' : 'cluster');
    const namespace = scope === 'namespaced' ? (manifest.metadata.namespace ?? DEFAULT_NAMESPACE) : undefined;
    if (
      namespace === INVENTORY_NAMESPACE ||
      (manifest.kind === 'Namespace' && manifest.metadata.name === INVENTORY_NAMESPACE)
    ) {
      problem(`${INVENTORY_NAMESPACE} holds Plumbline's own records: a repository may not write there`);
      continue;
    }
    if (limits?.deniedKinds.includes(manifest.kind)) {
      problem(`kind ${manifest.kind} is in deniedKinds of ${entry}: never written`);
      continue;
    }
    const allowed = limits?.namespaces;
    if (namespace !== undefined && allowed && !allowed.includes(namespace)) {
      problem(`namespace ${namespace} is outside the namespaces of ${entry} (${allowed.join(', ')})`);
      continue;
    }
    if (scope !== 'cluster') continue;
    if (limits?.clusterScoped && !limits.clusterScoped.includes(manifest.kind)) {
      const list = limits.clusterScoped.length > 0 ? limits.clusterScoped.join(', ') : 'none';
      problem(`cluster-scoped kind ${manifest.kind} is outside the clusterScoped kinds of ${entry} (${list})`);
      continue;
    }
    if (manifest.kind === 'Namespace' && allowed && !allowed.includes(manifest.metadata.name)) {
      problem(`namespace ${manifest.metadata.name} is outside the namespaces of ${entry} (${allowed.join(', ')})`);
    }
  }
  return problems;
}

/**
 * Whether each object is namespaced: from the cluster's discovery (cached by the client per group
 * version); for a kind the cluster does not serve (yet), from the `spec.scope` of a CRD in the same
 * commit, else — Kubernetes' own kinds — from the built-in list. Other kinds are left out (see `checkTenancy`).
 */
export async function readScopes(
  client: Pick<ClusterClient, 'scopeOf'>,
  manifests: readonly Pick<Manifest, 'apiVersion' | 'kind' | 'metadata'>[],
  defined: readonly Manifest[] = [],
): Promise<Map<string, Scope>> {
  const fromCommit = definedScopes(defined);
  const byKind = new Map<string, Scope | undefined>();
  for (const { apiVersion, kind } of manifests) {
    const key = `${apiVersion}|${kind}`;
    if (byKind.has(key)) continue;
    byKind.set(key, (await client.scopeOf?.(apiVersion, kind)) ?? fromCommit.get(groupKind(apiVersion, kind)));
  }
  const scopes = new Map<string, Scope>();
  for (const manifest of manifests) {
    const scope = byKind.get(`${manifest.apiVersion}|${manifest.kind}`) ?? builtInScope(manifest);
    if (scope) scopes.set(objectKey(manifest), scope);
  }
  return scopes;
}

/** Cluster-scoped kinds of Kubernetes' own API groups: known even through a client without discovery. */
const BUILT_IN_CLUSTER_SCOPED = new Set([
  'Namespace',
  'Node',
  'PersistentVolume',
  'ClusterRole',
  'ClusterRoleBinding',
  'CustomResourceDefinition',
  'APIService',
  'StorageClass',
  'IngressClass',
  'PriorityClass',
  'RuntimeClass',
  'CSIDriver',
  'CSINode',
  'VolumeAttachment',
  'ValidatingWebhookConfiguration',
  'MutatingWebhookConfiguration',
  'ValidatingAdmissionPolicy',
  'ValidatingAdmissionPolicyBinding',
  'MutatingAdmissionPolicy',
  'MutatingAdmissionPolicyBinding',
  'CertificateSigningRequest',
  'FlowSchema',
  'PriorityLevelConfiguration',
  'DeviceClass',
  'GatewayClass',
  'VolumeSnapshotClass',
  'VolumeSnapshotContent',
]);

/** Kubernetes' own API groups (no dot, or `*.k8s.io`): every other kind of theirs is namespaced. */
function builtInScope(manifest: Pick<Manifest, 'apiVersion' | 'kind'>): Scope | undefined {
  const group = manifest.apiVersion.includes('/') ? (manifest.apiVersion.split('/')[0] ?? '') : '';
  if (group.includes('.') && !group.endsWith('.k8s.io')) return undefined;
  return BUILT_IN_CLUSTER_SCOPED.has(manifest.kind) ? 'cluster' : 'namespaced';
}

function groupKind(apiVersion: string, kind: string): string {
  return `${apiVersion.includes('/') ? apiVersion.split('/')[0] : ''}/${kind}`;
}

function definedScopes(defined: readonly Manifest[]): Map<string, Scope> {
  const scopes = new Map<string, Scope>();
  for (const manifest of defined) {
    if (manifest.kind !== 'CustomResourceDefinition') continue;
    const spec = manifest.spec as { group?: string; scope?: string; names?: { kind?: string } } | undefined;
    if (spec?.group && spec.names?.kind)
      scopes.set(`${spec.group}/${spec.names.kind}`, spec.scope === 'Cluster' ? 'cluster' : 'namespaced');
  }
  return scopes;
}
