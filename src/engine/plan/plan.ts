import type { TenancyLimits } from '../../clusters/cluster-registry.ts';
import type { Baselines } from '../baseline-store.ts';
import type { ObjectChange } from '../change-set.ts';
import type { KubeError, LiveObject } from '../cluster-client.ts';
import type { Baseline } from '../field-set.ts';
import type { Inventory, ObjectId } from '../inventory.ts';
import type { HookPhase, Manifest, RenderedObject } from '../manifest.ts';
import type { FieldChange } from '../object-diff.ts';
import type { Stage } from '../stages.ts';
import type { Scopes, TenancyProblem } from '../tenancy.ts';

/**
 * A reconcile's plan: what the executor does, in order, with every decision already made and explained.
 * Made by a pure function from the desired objects, what the cluster said, what the last apply recorded
 * and the registry entry's policy; a preview runs the same plan with `dryRun: true`.
 */
export interface Plan {
  /** Set when the commit must not be applied at all (nothing is executed); the phases still say what each object would do. */
  readonly refusal?: Refusal | undefined;
  readonly phases: readonly Phase[];
}

/** Why a commit is refused before anything is written. Text for people is derived in reporting/. */
export type Refusal =
  /** Objects outside the registry entry's tenancy limits (each named, with its file and the limit). */
  | { readonly reason: 'tenancy'; readonly problems: readonly TenancyProblem[] }
  /** The render is empty while the cluster holds objects: almost always a broken path, not an intent. */
  | { readonly reason: 'empty-render'; readonly inventoried: number }
  /** The commit would prune more than the guard allows. */
  | { readonly reason: 'prune-share'; readonly stale: number; readonly inventoried: number; readonly maxShare: number }
  /** The cluster's dry-run rejected objects: the commit is wrong. */
  | { readonly reason: 'rejected'; readonly rejected: readonly Rejection[] };

export interface Rejection {
  readonly object: RenderedObject;
  readonly error: KubeError;
}

export type Phase =
  /** Applies one stage's objects (one app's, once apps exist); the executor confirms the lock first. */
  | { readonly kind: 'apply'; readonly stage: Stage; readonly tasks: readonly (ApplyTask | ReportTask)[] }
  /** Waits for the CRDs and Namespaces just created to be served. */
  | { readonly kind: 'wait'; readonly tasks: readonly WaitTask[] }
  /**
   * Dry-runs the objects that could not be validated before their Namespace or CRD existed, all of them
   * before any is written: one rejection stops the commit with only the definitions written.
   */
  | { readonly kind: 'validate'; readonly tasks: readonly ApplyTask[] }
  /** Deletes one stage's stale objects, stages in reverse order. */
  | { readonly kind: 'prune'; readonly stage: Stage; readonly tasks: readonly (PruneTask | ReportTask)[] }
  /**
   * One app's chart hooks of one phase (pre- before its other objects, post- after), by weight: each hook
   * replaced when its delete policy says so, applied, and waited for (a Job until it completes).
   */
  | { readonly kind: 'hooks'; readonly app: string; readonly when: 'pre' | 'post'; readonly tasks: readonly HookTask[] }
  /** Waits until the apps later apps depend on are healthy; an app that is not stops the plan there. */
  | { readonly kind: 'health'; readonly apps: readonly string[]; readonly tasks: readonly HealthTask[] };

export type Task = ApplyTask | PruneTask | WaitTask | ReportTask | HookTask | HealthTask;

/** One object of an app others depend on, to be healthy before they are applied. */
export interface HealthTask {
  readonly kind: 'health';
  readonly app: string;
  readonly manifest: Manifest;
}

/** A chart hook to run: it is not inventoried, never pruned, and runs only when its app installs or upgrades. */
export interface HookTask {
  readonly kind: 'hook';
  readonly object: RenderedObject;
  readonly hookPhase: HookPhase;
  readonly weight: number;
  readonly deletePolicies: readonly string[];
  /** The hook's live copy from an earlier run: replaced first when its policy is `before-hook-creation`. */
  readonly live?: { readonly uid?: string | undefined; readonly resourceVersion?: string | undefined } | undefined;
  readonly why: string;
}

export interface ApplyTask {
  readonly kind: 'apply';
  readonly object: RenderedObject;
  readonly action: 'created' | 'configured' | 'unchanged';
  /** Written with `force`: fields other managers own are taken over (`takenFrom` says whose). */
  readonly force: boolean;
  readonly takenFrom: readonly string[];
  /**
   * The live resourceVersion: the write of a configured object is conditional on it (a paused lock holder
   * cannot overwrite what a newer one wrote); for an unchanged object, what the records keep.
   */
  readonly resourceVersion?: string | undefined;
  /** Plumbline's fields as the dry-run (or the last apply) says they will be: drift is measured against it. */
  readonly baseline?: Baseline | undefined;
  /** For a configured object: the fields that change. */
  readonly diff?: { readonly changes: readonly FieldChange[]; readonly truncated: number } | undefined;
  /** Not validated yet: its Namespace or CRD is created by this same commit (see the `validate` phase). */
  readonly awaiting?: 'namespace' | 'kind' | undefined;
  /** Why this action: for logs and tests. */
  readonly why: string;
}

export interface PruneTask {
  readonly kind: 'prune';
  readonly id: ObjectId;
  /** The live object's identity when planned: the delete is conditional on exactly it. */
  readonly uid?: string | undefined;
  readonly resourceVersion?: string | undefined;
  readonly why: string;
}

export interface WaitTask {
  readonly kind: 'wait';
  readonly manifest: Manifest;
  readonly until: 'established' | 'active';
}

/** A decision that needs no request: its change is known (left alone, already gone, outside the limits). */
export interface ReportTask {
  readonly kind: 'report';
  readonly change: ObjectChange;
  /** Keep the object in the inventory (its prune is retried next time). */
  readonly retain: boolean;
}

/** What the cluster said before planning: read by `observeCluster`, nothing here is a decision. */
export interface ClusterView {
  /**
   * Live copies of the desired and the stale objects by `objectKey`. A key mapped to undefined: the object
   * does not exist; an absent key: it was not read (the executor reads it when it needs it).
   */
  readonly objects: ReadonlyMap<string, LiveObject | undefined>;
  /** The server-side dry-run of each desired object that needed one, by `objectKey`. */
  readonly dryRuns: ReadonlyMap<string, DryRunAnswer>;
  /** Namespaced or cluster-wide, from discovery, for the desired and the stale objects. */
  readonly scopes: Scopes;
}

export type DryRunAnswer =
  /** `force`: the dry-run without force conflicted and the policy takes ownership; `takenFrom`: from whom. */
  | { readonly ok: true; readonly result: LiveObject; readonly force: boolean; readonly takenFrom: readonly string[] }
  | { readonly ok: false; readonly error: KubeError };

/**
 * The manifest Plumbline last sent for an object, and the resourceVersion the object had right after.
 * While both still match, nobody changed the object and Git did not either: it is unchanged.
 */
export interface AppliedRecord {
  readonly digest: string;
  readonly resourceVersion: string;
  /** Plumbline's fields right after that apply (drift is measured against it). */
  readonly baseline?: Baseline | undefined;
}

/** What the last apply left in the cluster's records. */
export interface RecordedState {
  readonly inventory: Inventory | undefined;
  /** Plumbline's fields per object right after its last apply, by `idKey`. */
  readonly baselines: Baselines;
}

export interface PlanPolicy {
  /** The registry entry: prune deletes only objects labelled as its own. */
  readonly clusterName: string;
  readonly prune: boolean;
  readonly pruneGuards: PruneGuards;
  /** `take-ownership`: fields another manager owns are taken over, and the change set says so. */
  readonly conflicts: 'take-ownership' | 'fail';
  readonly limits?: TenancyLimits | undefined;
}

export interface PruneGuards {
  /** Largest share of the inventory one commit may prune without `override` (default 0.5). */
  readonly maxShare: number;
  readonly override: boolean;
}
