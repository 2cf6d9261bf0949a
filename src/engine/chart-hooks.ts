import type { ChartHook, HookPhase, Manifest } from './manifest.ts';

export type HookKind =
  | { readonly kind: 'none' }
  /** `helm.sh/hook: test…`: run by `helm test`, never installed; dropped. */
  | { readonly kind: 'test' }
  | { readonly kind: 'hook'; readonly hook: ChartHook }
  /**
   * Only events of a release's deletion or rollback, which Plumbline never performs: the hook never runs,
   * as it never would under `helm upgrade`. Dropped, with a notice.
   */
  | { readonly kind: 'never-run'; readonly phases: readonly string[] };

const SUPPORTED: ReadonlySet<string> = new Set<HookPhase>([
  'pre-install',
  'post-install',
  'pre-upgrade',
  'post-upgrade',
]);
const DELETE_POLICIES: ReadonlySet<string> = new Set(['before-hook-creation', 'hook-succeeded', 'hook-failed']);

const list = (value: unknown): string[] =>
  typeof value === 'string'
    ? value
        .split(',')
        .map((part) => part.trim().toLowerCase())
        .filter((part) => part !== '')
    : [];

/**
 * What the `helm.sh/hook` annotations of a rendered object make of it, read as helm reads them. An event
 * helm does not know (`crd-install` of Helm 2) never reaches here: helm itself leaves such objects out
 * of its output.
 */
export function classifyHook(manifest: Pick<Manifest, 'metadata'>): HookKind {
  const annotations = manifest.metadata.annotations;
  const record =
    typeof annotations === 'object' && annotations !== null ? (annotations as Record<string, unknown>) : {};
  const events = list(record['helm.sh/hook']);
  if (events.length === 0) return { kind: 'none' };
  // helm's --skip-tests drops a hook when any of its events is a test; so does Plumbline.
  if (events.some((event) => event.startsWith('test'))) return { kind: 'test' };
  // Events of a deletion or rollback never happen; a hook that also names install or upgrade runs for those.
  const phases = events.filter((event): event is HookPhase => SUPPORTED.has(event));
  if (phases.length === 0) return { kind: 'never-run', phases: events };
  const weightText = String(record['helm.sh/hook-weight'] ?? '0').trim();
  const weight = /^[-+]?\d+$/.test(weightText) ? Number(weightText) : 0;
  const policies = list(record['helm.sh/hook-delete-policy']).filter((policy) => DELETE_POLICIES.has(policy));
  return {
    kind: 'hook',
    hook: {
      phases: [...new Set(phases)],
      weight: Number.isSafeInteger(weight) ? weight : 0,
      deletePolicies: policies.length > 0 ? [...new Set(policies)] : ['before-hook-creation'],
    },
  };
}
