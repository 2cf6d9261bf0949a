import { createHash } from 'node:crypto';
import { isDeepStrictEqual } from 'node:util';
import type { ObjectChange } from '../change-set.ts';
import { FIELD_MANAGER, KubeError, type LiveObject } from '../cluster-client.ts';
import type { DriftedObject } from '../drift.ts';
import { baselineOf } from '../field-set.ts';
import { idKey, manifestOf, type ObjectId } from '../inventory.ts';
import {
  type ChartHook,
  type Manifest,
  objectKey,
  objectRef,
  type RenderedApp,
  type RenderedObject,
} from '../manifest.ts';
import { comparable } from '../normalize-object.ts';
import { diffObjects } from '../object-diff.ts';
import { OWNER_LABEL } from '../ownership.ts';
import { STAGES, type Stage, stageOf } from '../stages.ts';
import { checkTenancy, type Scopes } from '../tenancy.ts';
import type {
  AppliedRecord,
  ApplyTask,
  ClusterView,
  DryRunAnswer,
  HookTask,
  Phase,
  Plan,
  PlanPolicy,
  PruneTask,
  RecordedState,
  Refusal,
  Rejection,
  ReportTask,
  WaitTask,
} from './plan.ts';

/** Deleting these loses data or everything inside them: only with this annotation on the live object. */
export const PRUNE_OPT_IN_ANNOTATION = 'plumbline.dev/prune';
const PROTECTED_KINDS = new Set(['Namespace', 'CustomResourceDefinition', 'PersistentVolumeClaim']);

/**
 * The plan of one reconcile (pure). `desired` are the objects as Plumbline applies them (owner label on),
 * `view` what the cluster said about them, `recorded` what the last apply left, `policy` the registry
 * entry's. Phases: definitions (CRDs, Namespaces, ClusterRoles), a wait for the new ones, the validation
 * of objects that needed them, class kinds, the rest, then prune in reverse stage order.
 */
export function planCluster(
  desired: readonly RenderedObject[],
  view: ClusterView,
  recorded: RecordedState,
  policy: PlanPolicy,
  apps: readonly RenderedApp[] = [],
): Plan {
  const screened = screenCommit(desired, view.scopes, recorded, policy);
  if (!screened.ok) return { refusal: screened.refusal, phases: [] };

  const created = creationsInCommit(desired);
  const records = appliedRecords(recorded);
  const tasks: ApplyTask[] = [];
  const hooks: HookTask[] = [];
  const rejected: Rejection[] = [];
  for (const object of desired) {
    const key = objectKey(object.manifest);
    const answer = view.dryRuns.get(key);
    if (object.hook) {
      const hook = hookTasks(object, object.hook, view.objects.get(key), answer, created);
      if ('error' in hook) rejected.push(hook);
      else hooks.push(...hook);
      continue;
    }
    const decided = answer
      ? decideApply(object, view.objects.get(key), answer)
      : unchangedByRecord(object, view.objects.get(key), records.get(key));
    if (!decided) throw new Error(`planCluster: ${objectRef(object.manifest)} has neither a dry-run nor a record`);
    if ('error' in decided) {
      const awaiting = awaitedDefinition(object.manifest, decided.error, created);
      if (awaiting) tasks.push(awaitingTask(object, awaiting));
      else rejected.push(decided);
    } else tasks.push(decided);
  }

  const phases: Phase[] = [];
  const awaiting = tasks.filter((task) => task.awaiting);
  const definitions = tasks.filter((task) => stageOf(task.object.manifest) === 'definitions');
  phases.push({ kind: 'apply', stage: 'definitions', tasks: definitions });
  if (awaiting.length > 0) {
    phases.push({ kind: 'wait', tasks: definitions.flatMap(waitFor) });
    phases.push({ kind: 'validate', tasks: awaiting });
  }
  const rest = tasks.filter((task) => stageOf(task.object.manifest) !== 'definitions');
  phases.push(...(apps.length === 0 ? stagePhases(rest) : appPhases(rest, hooks, apps)));
  phases.push(...prunePhases(screened.stale, view, policy));
  return rejected.length > 0 ? { refusal: { reason: 'rejected', rejected }, phases } : { phases };
}

/** The stages after the definitions, for one set of objects. */
function stagePhases(tasks: readonly ApplyTask[]): Phase[] {
  return STAGES.slice(1).map(
    (stage): Phase => ({ kind: 'apply', stage, tasks: tasks.filter((t) => stageOf(t.object.manifest) === stage) }),
  );
}

/**
 * Apps in waves (ADR 13): per wave, each app's pre-hooks, the wave's class kinds and the rest, each app's
 * post-hooks, then — when a later app depends on one of this wave's — a wait until those are healthy.
 * Definitions (CRDs, Namespaces) of every app came first: they are inert, and objects of later waves need
 * them to be validated before anything else is written (invariant 4).
 */
function appPhases(tasks: readonly ApplyTask[], hooks: readonly HookTask[], apps: readonly RenderedApp[]): Phase[] {
  const needed = new Set(apps.flatMap((app) => app.dependsOn));
  const appOf = (object: RenderedObject) => object.app?.name ?? '';
  const waves = [...new Set(apps.map((app) => app.wave))].sort((a, b) => a - b);
  const phases: Phase[] = [];
  for (const wave of waves) {
    const members = apps.filter((app) => app.wave === wave);
    const names = new Set(members.map((app) => app.name));
    const own = tasks.filter((task) => names.has(appOf(task.object)));
    const run = members.map((app) => ({ app, ...hooksToRun(app, own, hooks) }));
    for (const { app, pre } of run)
      if (pre.length > 0) phases.push({ kind: 'hooks', app: app.name, when: 'pre', tasks: pre });
    phases.push(...stagePhases(own));
    for (const { app, post } of run)
      if (post.length > 0) phases.push({ kind: 'hooks', app: app.name, when: 'post', tasks: post });
    const gated = members.filter((app) => needed.has(app.name)).map((app) => app.name);
    if (gated.length > 0) {
      const waits = tasks
        .filter((task) => gated.includes(appOf(task.object)))
        .map((task) => ({ kind: 'health' as const, app: appOf(task.object), manifest: task.object.manifest }));
      phases.push({ kind: 'health', apps: gated, tasks: waits });
    }
  }
  return phases;
}

/**
 * An app's hooks run when it installs (none of its objects exists yet) or upgrades (one of them changes),
 * as `helm install` and `helm upgrade` run them; an app left as it is runs none. By weight, then name.
 */
function hooksToRun(
  app: RenderedApp,
  tasks: readonly ApplyTask[],
  hooks: readonly HookTask[],
): { pre: HookTask[]; post: HookTask[] } {
  const own = tasks.filter((task) => task.object.app?.name === app.name);
  const install = own.every((task) => task.action === 'created');
  const changed = own.some((task) => task.action !== 'unchanged');
  if (!install && !changed) return { pre: [], post: [] };
  const phase = install ? 'install' : 'upgrade';
  const mine = hooks.filter((hook) => hook.object.app?.name === app.name);
  const pick = (when: 'pre' | 'post') =>
    mine
      .filter((hook) => hook.hookPhase === `${when}-${phase}`)
      .sort((a, b) => a.weight - b.weight || objectRef(a.object.manifest).localeCompare(objectRef(b.object.manifest)));
  return { pre: pick('pre'), post: pick('post') };
}

/**
 * A hook as one task per phase it names. Its dry-run answers for a new hook; a hook left from an earlier
 * run that its policy replaces is validated when it is created again (a Job's spec is immutable, so a
 * dry-run against the old one says nothing of the new one).
 */
function hookTasks(
  object: RenderedObject,
  hook: ChartHook,
  live: LiveObject | undefined,
  answer: DryRunAnswer | undefined,
  created: ReturnType<typeof creationsInCommit>,
): HookTask[] | Rejection {
  const replaced = live !== undefined && hook.deletePolicies.includes('before-hook-creation');
  if (answer && !answer.ok && !replaced && !awaitedDefinition(object.manifest, answer.error, created))
    return { object, error: answer.error };
  const metadata = live?.metadata as { uid?: string; resourceVersion?: string } | undefined;
  return hook.phases.map((hookPhase) => ({
    kind: 'hook' as const,
    object,
    hookPhase,
    weight: hook.weight,
    deletePolicies: hook.deletePolicies,
    ...(live ? { live: { uid: metadata?.uid, resourceVersion: metadata?.resourceVersion } } : {}),
    why: `${hookPhase} hook of app ${object.app?.name ?? '?'}, weight ${hook.weight}`,
  }));
}

/**
 * The refusals that need no dry-run, checked before any object is sent to the cluster: objects outside
 * the tenancy limits, an empty render over a non-empty inventory, a prune larger than the guard allows.
 * Otherwise the stale objects (previous inventory − this commit), in reverse stage order. Pure.
 */
export function screenCommit(
  desired: readonly RenderedObject[],
  scopes: Scopes,
  recorded: RecordedState,
  policy: PlanPolicy,
): { readonly ok: true; readonly stale: readonly ObjectId[] } | { readonly ok: false; readonly refusal: Refusal } {
  const problems = checkTenancy(desired, policy.limits, policy.clusterName, scopes);
  if (problems.length > 0) return { ok: false, refusal: { reason: 'tenancy', problems } };
  const inventoried = recorded.inventory?.objects ?? [];
  if (desired.length === 0 && inventoried.length > 0)
    return { ok: false, refusal: { reason: 'empty-render', inventoried: inventoried.length } };
  if (!policy.prune || !recorded.inventory) return { ok: true, stale: [] };
  const keep = new Set(desired.map((o) => objectKey(o.manifest)));
  const stale = inventoried.filter((id) => !keep.has(idKey(id)));
  const { maxShare, override } = policy.pruneGuards;
  if (inventoried.length > 0 && stale.length / inventoried.length > maxShare && !override)
    return {
      ok: false,
      refusal: { reason: 'prune-share', stale: stale.length, inventoried: inventoried.length, maxShare },
    };
  const order = (id: ObjectId) => STAGES.length - STAGES.indexOf(stageOf(id));
  return { ok: true, stale: [...stale].sort((a, b) => order(a) - order(b)) };
}

/**
 * The objects that must be dry-run: all but those whose last apply recorded exactly this manifest and whose
 * live object still has the resourceVersion that apply left (neither Git nor anyone else changed them). Pure.
 */
export function objectsToDryRun(
  desired: readonly RenderedObject[],
  live: ReadonlyMap<string, LiveObject | undefined>,
  recorded: RecordedState,
): RenderedObject[] {
  const records = appliedRecords(recorded);
  return desired.filter((object) => {
    const key = objectKey(object.manifest);
    return unchangedByRecord(object, live.get(key), records.get(key)) === undefined;
  });
}

/** The digest of a manifest as sent: equal digests, equal requests. */
export function manifestDigest(manifest: Manifest): string {
  // Asked for by the dry-run selection, the plan and the records: computed once per manifest object.
  let digest = digests.get(manifest);
  if (digest === undefined) {
    digest = createHash('sha256').update(JSON.stringify(manifest)).digest('hex').slice(0, 20);
    digests.set(manifest, digest);
  }
  return digest;
}

const digests = new WeakMap<Manifest, string>();

/**
 * What to do with one object given its dry-run: create it, configure it (the fields that change), or
 * leave it unchanged; or the rejection. An object with the same content that is not (yet) Plumbline's —
 * created by hand, or fields held by another manager — is still configured: the write makes Plumbline its
 * field manager, or prune and drift detection would not see it. Pure.
 */
export function decideApply(
  object: RenderedObject,
  live: LiveObject | undefined,
  answer: DryRunAnswer,
): ApplyTask | Rejection {
  if (!answer.ok) return { object, error: answer.error };
  const { manifest } = object;
  // A manifest that sets no field at all (a bare Namespace) leaves no manager entry to adopt.
  const adopting = managers(answer.result).includes(FIELD_MANAGER) && !managers(live).includes(FIELD_MANAGER);
  const same = isDeepStrictEqual(comparable(answer.result), comparable(live ?? {}));
  const action = live === undefined ? 'created' : !adopting && !answer.force && same ? 'unchanged' : 'configured';
  const why =
    action === 'created'
      ? 'not in the cluster'
      : action === 'unchanged'
        ? 'the dry-run equals the live object'
        : answer.force
          ? `takes over fields from ${answer.takenFrom.join(', ')}`
          : adopting
            ? 'not yet managed by plumbline: adopted'
            : 'the dry-run differs from the live object';
  return {
    kind: 'apply',
    object,
    action,
    force: answer.force,
    takenFrom: answer.takenFrom,
    resourceVersion: resourceVersionOf(live),
    baseline: baselineOf(answer.result),
    diff:
      action === 'configured' && live
        ? diffObjects(comparable(live), comparable(answer.result), { kind: manifest.kind, desired: manifest })
        : undefined,
    why,
  };
}

/** The plan of putting drifted objects back: each written with force, deleted ones recreated. Pure. */
export function planCorrection(
  drifted: readonly DriftedObject[],
  desired: readonly RenderedObject[],
  scopes: Scopes,
  policy: Pick<PlanPolicy, 'clusterName' | 'limits'>,
): Plan {
  const byKey = new Map(desired.map((o) => [objectKey(o.manifest), o] as const));
  const outside = new Map(
    checkTenancy(
      drifted.flatMap((d) => byKey.get(idKey(d.entry)) ?? []),
      policy.limits,
      policy.clusterName,
      scopes,
    ).map((p) => [p.object, p.reason] as const),
  );
  const tasks = drifted.map((drift): ApplyTask | ReportTask => {
    const object = byKey.get(idKey(drift.entry));
    if (!object)
      return report({ object: drift.object, action: 'skipped', message: 'not in the render of the applied commit' });
    const limit = outside.get(objectRef(object.manifest));
    if (limit !== undefined)
      return report({
        object: drift.object,
        action: 'skipped',
        message: `left alone: outside the tenancy limits (${limit})`,
      });
    return {
      kind: 'apply',
      object,
      action: drift.kind === 'deleted' ? 'created' : 'configured',
      force: true,
      takenFrom: [...new Set(drift.fields.flatMap((f) => f.changedBy))],
      why: drift.kind === 'deleted' ? 'deleted in the cluster: recreated' : 'drifted from the applied commit: put back',
    };
  });
  return { phases: [{ kind: 'apply', stage: 'workloads', tasks }] };
}

/**
 * Why a stale live object must be left alone, or undefined when it may be deleted: it must still be
 * managed by Plumbline, labelled as this registry entry's own (two entries on one apiserver never prune
 * each other's objects, even with a tampered inventory), and a protected kind needs the opt-in annotation. Pure.
 */
export function pruneVerdict(id: ObjectId, live: LiveObject, clusterName: string): string | undefined {
  const metadata = live.metadata as
    | { annotations?: Record<string, string>; labels?: Record<string, string>; managedFields?: { manager?: string }[] }
    | undefined;
  if (!metadata?.managedFields?.some((f) => f.manager === FIELD_MANAGER))
    return 'left alone: no longer managed by plumbline';
  const owner = metadata.labels?.[OWNER_LABEL];
  if (owner !== clusterName)
    return owner
      ? `left alone: labelled ${OWNER_LABEL}=${owner}, another registry entry's object`
      : `left alone: no ${OWNER_LABEL} label naming this cluster`;
  const prune = metadata.annotations?.[PRUNE_OPT_IN_ANNOTATION];
  if (prune === 'disabled') return `left alone: ${PRUNE_OPT_IN_ANNOTATION}: disabled (its app has prune: false)`;
  if (metadata.annotations?.['helm.sh/resource-policy'] === 'keep')
    return 'left alone: helm.sh/resource-policy: keep, as Helm leaves it';
  if (PROTECTED_KINDS.has(id.kind) && prune !== 'enabled')
    return `left alone: ${id.kind} is pruned only with annotation ${PRUNE_OPT_IN_ANNOTATION}: enabled`;
  return undefined;
}

/** The task for deleting a stale object as it is live now (or the change when it is gone or kept). Pure. */
export function pruneTask(id: ObjectId, live: LiveObject | undefined, clusterName: string): PruneTask | ReportTask {
  const object = objectRef(manifestOf(id));
  if (!live) return report({ object, action: 'deleted', message: 'already gone' });
  const verdict = pruneVerdict(id, live, clusterName);
  if (verdict) return report({ object, action: 'skipped', message: verdict });
  const metadata = live.metadata as { uid?: string; resourceVersion?: string } | undefined;
  return {
    kind: 'prune',
    id,
    uid: metadata?.uid,
    resourceVersion: metadata?.resourceVersion,
    why: 'in the inventory, not in this commit',
  };
}

function prunePhases(stale: readonly ObjectId[], view: ClusterView, policy: PlanPolicy): Phase[] {
  if (stale.length === 0) return [];
  const outside = new Map(
    checkTenancy(
      stale.map((id) => ({ manifest: manifestOf(id), source: undefined })),
      policy.limits,
      policy.clusterName,
      view.scopes,
    ).map((problem) => [problem.object, problem.reason] as const),
  );
  return [...STAGES].reverse().flatMap((stage: Stage): Phase[] => {
    const batch = stale.filter((id) => stageOf(id) === stage);
    if (batch.length === 0) return [];
    const tasks = batch.map((id) => {
      const object = objectRef(manifestOf(id));
      const limit = outside.get(object);
      if (limit !== undefined)
        return report({ object, action: 'skipped', message: `left alone: outside the tenancy limits (${limit})` });
      const key = idKey(id);
      // Not read (a kind the cluster no longer serves, say): the executor looks it up before deleting.
      if (!view.objects.has(key)) return { kind: 'prune' as const, id, why: 'in the inventory, not in this commit' };
      return pruneTask(id, view.objects.get(key), policy.clusterName);
    });
    return [{ kind: 'prune', stage, tasks }];
  });
}

function report(change: ObjectChange, retain = false): ReportTask {
  return { kind: 'report', change, retain };
}

function appliedRecords(recorded: RecordedState): Map<string, AppliedRecord> {
  return new Map(
    (recorded.inventory?.objects ?? []).flatMap((entry) =>
      entry.digest && entry.resourceVersion
        ? [
            [
              idKey(entry),
              {
                digest: entry.digest,
                resourceVersion: entry.resourceVersion,
                baseline: recorded.baselines.get(idKey(entry)),
              },
            ] as const,
          ]
        : [],
    ),
  );
}

function unchangedByRecord(
  object: RenderedObject,
  live: LiveObject | undefined,
  record: AppliedRecord | undefined,
): ApplyTask | undefined {
  const liveVersion = resourceVersionOf(live);
  if (!record || liveVersion !== record.resourceVersion || record.digest !== manifestDigest(object.manifest))
    return undefined;
  return {
    kind: 'apply',
    object,
    action: 'unchanged',
    force: false,
    takenFrom: [],
    resourceVersion: liveVersion,
    baseline: record.baseline,
    why: 'the manifest and the live resourceVersion are what the last apply recorded',
  };
}

function awaitingTask(object: RenderedObject, awaiting: 'namespace' | 'kind'): ApplyTask {
  return {
    kind: 'apply',
    object,
    action: 'created',
    force: false,
    takenFrom: [],
    awaiting,
    why: `its ${awaiting === 'namespace' ? 'Namespace' : 'CRD'} is created by this commit: validated once it exists`,
  };
}

function creationsInCommit(objects: readonly RenderedObject[]) {
  const namespaces = new Set<string>();
  const kinds = new Set<string>();
  for (const { manifest } of objects) {
    if (manifest.kind === 'Namespace') namespaces.add(manifest.metadata.name);
    if (manifest.kind === 'CustomResourceDefinition') {
      const spec = manifest.spec as { group?: string; names?: { kind?: string } } | undefined;
      if (spec?.group && spec.names?.kind) kinds.add(`${spec.group}/${spec.names.kind}`);
    }
  }
  return { namespaces, kinds };
}

/** The Namespace or CRD of this same commit that a rejected dry-run was waiting for, if any. */
function awaitedDefinition(
  manifest: Manifest,
  error: KubeError,
  created: ReturnType<typeof creationsInCommit>,
): 'namespace' | 'kind' | undefined {
  if (error.kind === 'missing-namespace' && created.namespaces.has(manifest.metadata.namespace ?? ''))
    return 'namespace';
  if (error.kind === 'missing-kind' && created.kinds.has(`${manifest.apiVersion.split('/')[0]}/${manifest.kind}`))
    return 'kind';
  return undefined;
}

/** The objects the commit needs served before its other objects can be validated. */
function waitFor(task: ApplyTask): WaitTask[] {
  const { manifest } = task.object;
  if (manifest.kind === 'CustomResourceDefinition') return [{ kind: 'wait', manifest, until: 'established' }];
  if (manifest.kind === 'Namespace') return [{ kind: 'wait', manifest, until: 'active' }];
  return [];
}

/** A dry-run error that means "the namespace does not exist", synthesized without a request. */
export function missingNamespace(manifest: Manifest): KubeError {
  const namespace = manifest.metadata.namespace ?? '';
  return new KubeError('missing-namespace', `${objectRef(manifest)}: namespace ${namespace} does not exist`, 404);
}

function managers(object: LiveObject | undefined): string[] {
  const fields = (object?.metadata as { managedFields?: { manager?: string }[] } | undefined)?.managedFields ?? [];
  return fields.map((entry) => entry.manager ?? '');
}

export function resourceVersionOf(object: LiveObject | undefined): string | undefined {
  return (object?.metadata as { resourceVersion?: string } | undefined)?.resourceVersion;
}
