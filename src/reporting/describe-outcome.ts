import { type ChangeSet, countActions } from '../engine/change-set.ts';
import type { HealthReport } from '../engine/health.ts';
import type { ManifestProblem } from '../engine/manifest.ts';
import type { ReconcileFailure } from '../engine/reconcile-cluster.ts';
import { withoutAddresses } from './mask-live-text.ts';

/**
 * The text of a refused or failed reconcile, from its structured failure: what GitHub and the logs say.
 * `dryRun`: a preview's wording ("would be refused"). Pure.
 */
export function describeFailure(failure: ReconcileFailure, clusterName: string, dryRun = false): string {
  switch (failure.reason) {
    case 'tenancy':
      return `${failure.problems.length} object(s) outside the tenancy limits of cluster ${clusterName}; ${dryRun ? 'it would be refused' : 'nothing was applied'}`;
    case 'empty-render':
      return dryRun
        ? `an empty render would remove all ${failure.inventoried} objects: it would be refused`
        : `refusing an empty render: the commit would remove all ${failure.inventoried} objects; delete them explicitly or disable the cluster`;
    case 'prune-share': {
      const text = `refusing to prune ${failure.stale} of ${failure.inventoried} objects (more than ${Math.round(failure.maxShare * 100)} %); allow it explicitly if intended`;
      return dryRun ? `would be refused: ${text}` : text;
    }
    case 'rejected':
      return dryRun
        ? `${failure.rejected.length} object(s) would be rejected by the cluster`
        : `${failure.rejected.length} object(s) rejected by the cluster; the rest of the commit was not applied`;
    case 'write-refused':
      return `${failure.failed} object(s) rejected by the cluster; the rest of the commit was not applied`;
    case 'hook-failed':
      return `hook ${failure.hooks[0] ?? ''} failed; the apps after it were not applied`;
    case 'unhealthy-dependency':
      return `app ${failure.apps.join(', ')} not healthy in time; the apps depending on it were not applied`;
  }
}

/**
 * "1 rejected (stacks/security/settings.yaml:1): ConfigMap "Bad_Name" is invalid: …" — where, then why,
 * so the location survives the 140-character cut. Undefined when nothing names an object. Pure.
 */
export function describeRejection(problems: readonly ManifestProblem[], verb = 'rejected'): string | undefined {
  const [first] = problems;
  if (!first) return undefined;
  // The apiserver's message already names the object; our prefix would only repeat it.
  const reason =
    first.object && first.message.startsWith(`${first.object}: `)
      ? first.message.slice(first.object.length + 2)
      : first.message;
  return `${problems.length} ${verb}${where(first)}: ${reason}`;
}

/** "kustomization.yaml: …  (clusters/a/kustomization.yaml:3) and 2 more": the first problem, where, how many. Pure. */
export function describeProblems(problems: readonly ManifestProblem[]): string {
  const [first] = problems;
  const more = problems.length > 1 ? ` and ${problems.length - 1} more` : '';
  return `${first?.message ?? 'render failed'}${first ? where(first) : ''}${more}`;
}

/** A failed reconcile's description: the first rejected object where there is one, else the failure. Pure. */
export function describeFailedReconcile(
  failure: ReconcileFailure,
  problems: readonly ManifestProblem[],
  clusterName: string,
  dryRun: boolean,
): string {
  return (
    describeRejection(problems, dryRun ? 'would be rejected' : 'rejected') ??
    withoutAddresses(describeFailure(failure, clusterName, dryRun))
  );
}

export interface AppliedSummary {
  readonly changeSet: ChangeSet;
  readonly unhealthy: readonly HealthReport[];
  readonly seconds: number;
  /** The commit was already applied (a re-run, a retried job). */
  readonly again: boolean;
}

/** "already applied; 3 created, 1 pruned in 2.1 s; still progressing: Deployment/web/api". Pure. */
export function describeApplied(summary: AppliedSummary): string {
  const failing = summary.unhealthy.filter((u) => u.health.state === 'failed').map((u) => u.object);
  const progressing = summary.unhealthy.filter((u) => u.health.state !== 'failed').map((u) => u.object);
  const health = [
    failing.length > 0 ? `; failing: ${failing.join(', ')}` : '',
    progressing.length > 0 ? `; still progressing: ${progressing.join(', ')}` : '',
  ].join('');
  const again = summary.again ? 'already applied; ' : '';
  return `${again}${describeChangeSet(summary.changeSet)} in ${summary.seconds.toFixed(1)} s${health}`;
}

/** "would create 2, prune 1 (cluster suspended: …)". Pure. */
export function describePreviewed(changeSet: ChangeSet, suspended: boolean): string {
  const note = suspended ? ' (cluster suspended: merging applies nothing until resumed)' : '';
  return `${describePreview(changeSet)}${note}`;
}

function where(problem: ManifestProblem): string {
  if (!problem.source) return '';
  return ` (${problem.source.file}${problem.source.line ? `:${problem.source.line}` : ''})`;
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
