import type { SourceLocation } from './manifest.ts';
import type { FieldChange } from './object-diff.ts';

export type ObjectAction = 'created' | 'configured' | 'unchanged' | 'deleted' | 'skipped' | 'failed';

export interface ObjectChange {
  /** `Kind/namespace/name`. */
  readonly object: string;
  readonly action: ObjectAction;
  readonly source?: SourceLocation | undefined;
  /** The app of plumbline.yaml the object belongs to. */
  readonly app?: string;
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
