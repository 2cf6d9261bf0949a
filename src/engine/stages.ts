import type { Manifest } from './manifest.ts';

/**
 * Apply order. Definitions other objects need come first (CRDs, Namespaces, ClusterRoles), then
 * the class kinds that workloads name, then everything else. Prune runs in reverse.
 */
export const STAGES = ['definitions', 'classes', 'workloads'] as const;
export type Stage = (typeof STAGES)[number];

const DEFINITION_KINDS = new Set(['CustomResourceDefinition', 'Namespace', 'ClusterRole']);
const CLASS_KINDS = new Set([
  'StorageClass',
  'IngressClass',
  'PriorityClass',
  'RuntimeClass',
  'GatewayClass',
  'VolumeSnapshotClass',
  'DeviceClass',
]);

export function stageOf(manifest: Pick<Manifest, 'kind'>): Stage {
  if (DEFINITION_KINDS.has(manifest.kind)) return 'definitions';
  if (CLASS_KINDS.has(manifest.kind)) return 'classes';
  return 'workloads';
}
