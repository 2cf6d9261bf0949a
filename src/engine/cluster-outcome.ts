import type { ChangeSet } from './change-set.ts';
import type { HealthReport } from './health.ts';
import type { ManifestProblem, RenderedApp } from './manifest.ts';

/** What happened to one cluster for one commit; statuses, check runs, metrics and logs all derive from it. */
export type ClusterOutcome =
  | {
      readonly cluster: string;
      readonly status: 'applied';
      readonly changeSet: ChangeSet;
      readonly unhealthy: readonly HealthReport[];
      readonly description: string;
      /** The apps of the cluster's plumbline.yaml, when it has one: the check run lists each. */
      readonly apps?: readonly RenderedApp[] | undefined;
      /** What the render left out, for people to know: notices in the check run. */
      readonly notices?: readonly ManifestProblem[] | undefined;
      /** The commit was already applied and nothing changed: a repeat with nothing new to report. */
      readonly repeated?: boolean;
    }
  | {
      /** A pull request's dry-run: what applying the commit would do; nothing was written. */
      readonly cluster: string;
      readonly status: 'previewed';
      readonly changeSet: ChangeSet;
      readonly description: string;
      readonly apps?: readonly RenderedApp[] | undefined;
      readonly notices?: readonly ManifestProblem[] | undefined;
    }
  | {
      /** The commit is wrong (render, validation, rejected object, secret in Git, unsafe prune). */
      readonly cluster: string;
      readonly status: 'failed';
      readonly description: string;
      readonly problems: readonly ManifestProblem[];
      readonly changeSet?: ChangeSet;
      readonly apps?: readonly RenderedApp[] | undefined;
    }
  | {
      /** Infrastructure (unreachable cluster, timeouts) after every retry: not the commit's fault. */
      readonly cluster: string;
      readonly status: 'error';
      readonly description: string;
    }
  | {
      /** `not-previewed`: a fork's pull request on a cluster that does not preview forks; nothing was touched. */
      readonly cluster: string;
      readonly status: 'unchanged' | 'superseded' | 'suspended' | 'not-previewed';
      readonly description: string;
    };
