import type { SourceLocation } from './manifest.ts';
import type { FieldChange } from './object-diff.ts';

export type ObjectAction = 'created' | 'configured' | 'unchanged' | 'deleted' | 'skipped' | 'failed';

export interface ObjectChange {
  /** `Kind/namespace/name`. */
  readonly object: string;
  readonly action: ObjectAction;
  readonly source?: SourceLocation | undefined;
  /** Why it failed or was skipped; the apiserver's message for a rejected object. */
  readonly message?: string;
  /** Another field manager's fields this apply took over. */
  readonly tookOwnershipFrom?: readonly string[];
  /** For a configured object: what changes, secret-like values masked (see object-diff.ts). */
  readonly diff?: readonly FieldChange[];
  /** How many more field changes the diff left out. */
  readonly diffTruncated?: number;
}

/** The result of a reconcile: everything else (status text, metrics, logs, inventory) derives from it. */
export interface ChangeSet {
  readonly changes: readonly ObjectChange[];
}

export function countActions(changeSet: ChangeSet): Record<ObjectAction, number> {
  const counts: Record<ObjectAction, number> = {
    created: 0,
    configured: 0,
    unchanged: 0,
    deleted: 0,
    skipped: 0,
    failed: 0,
  };
  for (const change of changeSet.changes) counts[change.action] += 1;
  return counts;
}

/** "3 created, 5 configured, 1 pruned" — only the non-zero parts, in a fixed order. */
export function describeChangeSet(changeSet: ChangeSet): string {
  const c = countActions(changeSet);
  const parts = [
    c.created && `${c.created} created`,
    c.configured && `${c.configured} configured`,
    c.deleted && `${c.deleted} pruned`,
    c.failed && `${c.failed} failed`,
  ].filter(Boolean);
  return parts.length > 0 ? parts.join(', ') : 'no changes';
}

/** "would create 2, configure 1, prune 1" — a dry-run's change set, for pull-request previews. */
export function describePreview(changeSet: ChangeSet): string {
  const c = countActions(changeSet);
  const parts = [
    c.created && `create ${c.created}`,
    c.configured && `configure ${c.configured}`,
    c.deleted && `prune ${c.deleted}`,
  ].filter(Boolean);
  const rejected = c.failed > 0 ? `${c.failed} would be rejected` : '';
  if (parts.length === 0) return rejected || 'would change nothing';
  return [`would ${parts.join(', ')}`, rejected].filter(Boolean).join('; ');
}
