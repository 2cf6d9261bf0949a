import { setTimeout as sleep } from 'node:timers/promises';
import { mapLimited } from '../support/limit-concurrency.ts';
import type { ChangeSet, ObjectChange } from './change-set.ts';
import { type ClusterClient, KubeError, type LiveObject } from './cluster-client.ts';
import type { Fence } from './cluster-lock.ts';
import { baselineOf } from './field-set.ts';
import { type HealthReport, waitForHealth } from './health.ts';
import { manifestOf, type ObjectId } from './inventory.ts';
import { type Manifest, objectKey, objectRef, type RenderedObject } from './manifest.ts';
import { dryRunAll } from './observe-cluster.ts';
import type {
  AppliedRecord,
  ApplyTask,
  HookTask,
  Phase,
  Plan,
  PlanPolicy,
  PruneTask,
  Rejection,
  ReportTask,
  WaitTask,
} from './plan/plan.ts';
import { decideApply, manifestDigest, pruneTask, resourceVersionOf } from './plan/plan-cluster.ts';

export interface ExecuteOptions {
  /** Nothing is written: the change set says what would be (a pull request's preview). */
  readonly dryRun: boolean;
  /** Requests in flight at once (the apiserver serves 200 mutating requests at a time by default). */
  readonly concurrency: number;
  readonly conflicts: PlanPolicy['conflicts'];
  /** How long to wait for new CRDs to be Established and new Namespaces to be Active. */
  readonly establishTimeoutMs: number;
  /** The registry entry: a stale object looked at again before its delete must still be its own. */
  readonly clusterName: string;
  /**
   * The cluster lock's fencing: confirmed with Redis before each phase's writes, checked before every
   * single write (free while the lease is known to be ours). A lost lock throws LockLostError: retried.
   */
  readonly fence?: Fence | undefined;
  /** How long an app others depend on, or a hook, may take to become healthy (default 120 s). */
  readonly healthTimeoutMs?: number | undefined;
  /** Told how long each phase took, including one that stops the plan or throws (the worker's metrics). */
  readonly onPhase?: ((phase: Phase['kind'], seconds: number) => void) | undefined;
}

export interface Execution {
  /** False when the plan was refused, or the cluster refused a write its dry-run had accepted. */
  readonly ok: boolean;
  /** The one result value: status text, metrics, logs and the inventory all derive from it. */
  readonly changeSet: ChangeSet;
  /** Set when the validation of objects awaiting a definition rejected some: the commit is wrong. */
  readonly rejected?: readonly Rejection[] | undefined;
  /** Per `objectKey`, for every object now as the commit says (none in a dry run). */
  readonly records: ReadonlyMap<string, AppliedRecord>;
  /** Stale objects to keep in the inventory: their delete failed (retried next time). */
  readonly retained: readonly ObjectId[];
  /** Set when apps others depend on did not become healthy in time: the apps after them were not applied. */
  readonly unhealthy?: { readonly apps: readonly string[]; readonly reports: readonly HealthReport[] } | undefined;
  /** Set when a chart hook failed: the hooks and apps after it were not run. */
  readonly failedHooks?: readonly string[] | undefined;
}

const DEFAULT_HEALTH_TIMEOUT_MS = 120_000;

const NOT_APPLIED = 'not applied: another object of the commit was rejected';

/**
 * Runs a plan's phases in order, each phase's tasks with bounded concurrency. With `dryRun` nothing is
 * written and the change set is what the writes would do: a preview and a sync are the same plan. A phase
 * that fails (a write refused, an awaited object rejected) stops the plan: later phases do not run and
 * their objects are reported as skipped. Infrastructure errors throw (retried); refusals are values.
 */
export async function execute(client: ClusterClient, plan: Plan, options: ExecuteOptions): Promise<Execution> {
  if (plan.refusal) return refused(plan, options.dryRun);
  const changes: ObjectChange[] = [];
  const records = new Map<string, AppliedRecord>();
  const retained: ObjectId[] = [];
  const validated = new Map<string, ApplyTask>();
  for (const [index, phase] of plan.phases.entries()) {
    const started = performance.now();
    try {
      if (phase.kind === 'wait') {
        if (!options.dryRun) await waitForDefinitions(client, phase.tasks, options.establishTimeoutMs);
      } else if (phase.kind === 'validate') {
        if (options.dryRun) continue;
        const outcome = await validateAwaiting(client, phase.tasks, options);
        if (outcome.rejected.length > 0) {
          const skipped = outcome.tasks.map((task) => ({
            ...changeOf(task),
            action: 'skipped' as const,
            message: NOT_APPLIED,
          }));
          return stop(plan.phases.slice(index + 1), [...changes, ...failures(outcome.rejected), ...skipped], {
            records,
            rejected: outcome.rejected,
          });
        }
        for (const task of outcome.tasks) validated.set(objectKey(task.object.manifest), task);
      } else if (phase.kind === 'apply') {
        const tasks = phase.tasks.map((task) =>
          task.kind === 'apply' && task.awaiting ? (validated.get(objectKey(task.object.manifest)) ?? task) : task,
        );
        const written = await applyPhase(client, tasks, options, records);
        changes.push(...written);
        if (written.some((change) => change.action === 'failed'))
          return stop(plan.phases.slice(index + 1), changes, { records });
      } else if (phase.kind === 'hooks') {
        const ran = await runHooks(client, phase.tasks, options);
        changes.push(...ran);
        const failedHooks = ran.filter((change) => change.action === 'failed').map((change) => change.object);
        if (failedHooks.length > 0) return stop(plan.phases.slice(index + 1), changes, { records, failedHooks });
      } else if (phase.kind === 'health') {
        if (options.dryRun) continue;
        const manifests = phase.tasks.map((task) => task.manifest);
        const reports = await waitForHealth(client, manifests, {
          timeoutMs: options.healthTimeoutMs ?? DEFAULT_HEALTH_TIMEOUT_MS,
          concurrency: options.concurrency,
        });
        if (reports.length > 0) {
          const late = new Set(reports.map((report) => report.object));
          const apps = phase.apps.filter((app) =>
            phase.tasks.some((task) => task.app === app && late.has(objectRef(task.manifest))),
          );
          const message = `not applied: app ${apps.join(', ')} it depends on is not healthy`;
          return stop(plan.phases.slice(index + 1), changes, { records, unhealthy: { apps, reports }, message });
        }
      } else {
        const pruned = await prunePhase(client, phase.tasks, options);
        changes.push(...pruned.changes);
        retained.push(...pruned.retained);
      }
    } finally {
      options.onPhase?.(phase.kind, (performance.now() - started) / 1000);
    }
  }
  return { ok: true, changeSet: { changes }, records, retained };
}

/** A refused plan: nothing runs. A preview still says what each object would do; a sync, that it was skipped. */
function refused(plan: Plan, dryRun: boolean): Execution {
  const refusal = plan.refusal;
  const tasks = plan.phases.flatMap((phase) => (phase.kind === 'apply' ? phase.tasks : []));
  const planned = tasks.map((task): ObjectChange => {
    if (task.kind === 'report') return task.change;
    return dryRun ? previewChange(task) : { ...changeOf(task), action: 'skipped', message: NOT_APPLIED };
  });
  const failed =
    refusal?.reason === 'rejected'
      ? failures(refusal.rejected)
      : refusal?.reason === 'tenancy'
        ? refusal.problems.map(
            (p): ObjectChange => ({ object: p.object, action: 'failed', source: p.source, message: p.message }),
          )
        : [];
  return { ok: false, changeSet: { changes: [...failed, ...planned] }, records: new Map(), retained: [] };
}

/** The plan stops: what was done, and every apply task of the later phases (and the rest of this one) skipped. */
function stop(
  later: readonly Phase[],
  changes: readonly ObjectChange[],
  extra: {
    readonly records: ReadonlyMap<string, AppliedRecord>;
    readonly rejected?: readonly Rejection[];
    readonly unhealthy?: Execution['unhealthy'];
    readonly failedHooks?: readonly string[];
    readonly message?: string;
  },
): Execution {
  // Objects awaiting a definition were reported by their validation when it is what stopped the plan.
  const reported = new Set(changes.map((change) => change.object));
  const message = extra.message ?? NOT_APPLIED;
  const skipped = later.flatMap((phase) =>
    phase.kind === 'apply' || phase.kind === 'hooks'
      ? phase.tasks
          .filter(
            (task): task is ApplyTask | HookTask =>
              (task.kind === 'apply' || task.kind === 'hook') && !reported.has(objectRef(task.object.manifest)),
          )
          .map((task): ObjectChange => ({ ...changeOfObject(task.object), action: 'skipped', message }))
      : [],
  );
  return {
    ok: false,
    changeSet: { changes: [...changes, ...skipped] },
    records: extra.records,
    retained: [],
    ...(extra.rejected ? { rejected: extra.rejected } : {}),
    ...(extra.unhealthy ? { unhealthy: extra.unhealthy } : {}),
    ...(extra.failedHooks ? { failedHooks: extra.failedHooks } : {}),
  };
}

/**
 * One app's hooks of one phase, as Helm runs them: by weight (a weight's hooks at once), each replaced
 * first when its policy is `before-hook-creation`, applied, and waited for until healthy (a Job until it
 * completes); deleted after when its policy says so (`hook-succeeded`, `hook-failed`). A hook that fails
 * stops the plan. A dry run says what would run.
 */
async function runHooks(
  client: ClusterClient,
  tasks: readonly HookTask[],
  options: ExecuteOptions,
): Promise<ObjectChange[]> {
  if (options.dryRun)
    return tasks.map((task) => ({
      ...changeOfObject(task.object),
      action: task.live ? 'configured' : 'created',
      message: `${task.hookPhase} hook: would run`,
    }));
  await options.fence?.confirm();
  const changes: ObjectChange[] = [];
  const weights = [...new Set(tasks.map((task) => task.weight))].sort((a, b) => a - b);
  for (const weight of weights) {
    const batch = tasks.filter((task) => task.weight === weight);
    const ran = await mapLimited(batch, options.concurrency, (task) => runHook(client, task, options));
    changes.push(...ran);
    if (ran.some((change) => change.action === 'failed')) break;
  }
  return changes;
}

async function runHook(client: ClusterClient, task: HookTask, options: ExecuteOptions): Promise<ObjectChange> {
  const { manifest } = task.object;
  const fence = options.fence;
  const guard = fence && (() => fence.assertFresh());
  const base = changeOfObject(task.object);
  const policies = new Set(task.deletePolicies);
  try {
    if (task.live && policies.has('before-hook-creation')) {
      await fence?.check();
      await deleteAndWait(client, manifest, task.live.uid, options);
    }
    await fence?.check();
    const created = await client.apply(manifest, { dryRun: false, force: true, guard });
    const [report] = await waitForHealth(client, [manifest], {
      timeoutMs: options.healthTimeoutMs ?? DEFAULT_HEALTH_TIMEOUT_MS,
      concurrency: 1,
    });
    const uid = (created.metadata as { uid?: string } | undefined)?.uid;
    if (!report) {
      if (policies.has('hook-succeeded')) await deleteAndWait(client, manifest, uid, options);
      const deleted = policies.has('hook-succeeded') ? ', then deleted (hook-succeeded)' : '';
      return { ...base, action: 'created', message: `${task.hookPhase} hook ran${deleted}` };
    }
    if (policies.has('hook-failed')) await deleteAndWait(client, manifest, uid, options);
    return {
      ...base,
      action: 'failed',
      message: `${task.hookPhase} hook did not succeed: ${report.health.state === 'healthy' ? 'unknown' : report.health.message}`,
    };
  } catch (error) {
    if (error instanceof KubeError && !error.retryable)
      return { ...base, action: 'failed', message: `${task.hookPhase} hook refused: ${error.message}` };
    throw error;
  }
}

/** Deletes exactly that object (uid) and waits until it is gone, so that its replacement is a new object. */
async function deleteAndWait(
  client: ClusterClient,
  manifest: Manifest,
  uid: string | undefined,
  options: ExecuteOptions,
): Promise<void> {
  const fence = options.fence;
  try {
    await client.delete(manifest, {
      ...(uid ? { preconditions: { uid } } : {}),
      guard: fence && (() => fence.assertFresh()),
    });
  } catch (error) {
    if (!(error instanceof KubeError) || (error.kind !== 'not-found' && error.kind !== 'modified')) throw error;
  }
  const deadline = Date.now() + options.establishTimeoutMs;
  for (;;) {
    const live = await client.get(manifest);
    if (!live || (uid && (live.metadata as { uid?: string } | undefined)?.uid !== uid)) return;
    if (Date.now() > deadline)
      throw new KubeError(
        'unavailable',
        `${objectRef(manifest)} was not deleted within ${options.establishTimeoutMs / 1000} s`,
        undefined,
      );
    await sleep(200);
  }
}

async function applyPhase(
  client: ClusterClient,
  tasks: readonly (ApplyTask | ReportTask)[],
  options: ExecuteOptions,
  records: Map<string, AppliedRecord>,
): Promise<ObjectChange[]> {
  if (options.dryRun) return tasks.map((task) => (task.kind === 'report' ? task.change : previewChange(task)));
  if (tasks.some((task) => task.kind === 'apply' && task.action !== 'unchanged')) await options.fence?.confirm();
  return mapLimited(tasks, options.concurrency, async (task): Promise<ObjectChange> => {
    if (task.kind === 'report') return task.change;
    const { manifest } = task.object;
    let result: LiveObject | undefined;
    try {
      result = task.action === 'unchanged' ? undefined : await writeFenced(client, task, options.fence);
    } catch (error) {
      // A webhook or a racing change can refuse what the dry-run accepted: a failed object, not a retry.
      if (error instanceof KubeError && !error.retryable)
        return { ...changeOf(task), action: 'failed', message: error.message };
      throw error;
    }
    const resourceVersion = resourceVersionOf(result) ?? task.resourceVersion;
    const baseline = result ? baselineOf(result) : task.baseline;
    if (resourceVersion)
      records.set(objectKey(manifest), { digest: manifestDigest(manifest), resourceVersion, baseline });
    return changeOf(task);
  });
}

/**
 * One write behind the fence: checked before, guarded at the last moment before it leaves, and — for an
 * object that exists — conditional on the resourceVersion its dry-run saw, so that a holder paused past its
 * lease cannot overwrite what a newer holder wrote even if it was paused after its check. When the object
 * changed since (a controller, or a newer holder), the lock is confirmed with Redis before writing again.
 */
async function writeFenced(client: ClusterClient, task: ApplyTask, fence: Fence | undefined): Promise<LiveObject> {
  const { manifest } = task.object;
  const guard = fence && (() => fence.assertFresh());
  await fence?.check();
  if (!fence || task.action !== 'configured' || !task.resourceVersion)
    return client.apply(manifest, { dryRun: false, force: task.force, guard });
  const conditional = { ...manifest, metadata: { ...manifest.metadata, resourceVersion: task.resourceVersion } };
  try {
    return await client.apply(conditional, { dryRun: false, force: task.force, guard });
  } catch (error) {
    if (!(error instanceof KubeError) || error.kind !== 'modified') throw error;
    await fence.confirm();
    return client.apply(manifest, { dryRun: false, force: task.force, guard });
  }
}

/** The objects that waited for a definition of the commit, dry-run now that it exists; decided as any other. */
async function validateAwaiting(client: ClusterClient, awaiting: readonly ApplyTask[], options: ExecuteOptions) {
  const objects = awaiting.map((task) => task.object);
  // Their Namespace or kind did not exist when the cluster was observed: neither could they. No GET each.
  const live = new Map<string, LiveObject | undefined>(
    objects.map((object) => [objectKey(object.manifest), undefined]),
  );
  const answers = await dryRunAll(client, objects, live, {
    concurrency: options.concurrency,
    conflicts: options.conflicts,
    createdNamespaces: new Set(),
  });
  const tasks: ApplyTask[] = [];
  const rejected: Rejection[] = [];
  for (const object of objects) {
    const key = objectKey(object.manifest);
    const answer = answers.get(key);
    if (!answer) continue;
    const decided = decideApply(object, live.get(key), answer);
    if ('error' in decided) rejected.push(decided);
    else tasks.push(decided);
  }
  return { tasks, rejected };
}

/** How often a delete whose object changed between the read and the delete is looked at again. */
const DELETE_ATTEMPTS = 3;

async function prunePhase(
  client: ClusterClient,
  tasks: readonly (PruneTask | ReportTask)[],
  options: ExecuteOptions,
): Promise<{ changes: ObjectChange[]; retained: ObjectId[] }> {
  if (!options.dryRun && tasks.some((task) => task.kind === 'prune')) await options.fence?.confirm();
  const results = await mapLimited(tasks, options.concurrency, async (task) => {
    if (task.kind === 'report') return { change: task.change, retain: task.retain, id: undefined };
    const outcome = await pruneOne(client, task, options);
    return { ...outcome, id: task.id };
  });
  return {
    changes: results.map((r) => r.change),
    retained: results.flatMap((r) => (r.retain && r.id ? [r.id] : [])),
  };
}

/**
 * Deletes one stale object, conditional on the uid and resourceVersion that were judged: when it changed
 * in between (or was replaced by another object of that name), it is read and judged again. A delete that
 * fails keeps the object in the inventory, to be retried next time.
 */
async function pruneOne(
  client: ClusterClient,
  planned: PruneTask,
  options: ExecuteOptions,
): Promise<{ change: ObjectChange; retain: boolean }> {
  const manifest = manifestOf(planned.id);
  const object = objectRef(manifest);
  try {
    let task: PruneTask | ReportTask =
      planned.uid === undefined ? pruneTask(planned.id, await client.get(manifest), options.clusterName) : planned;
    for (let attempt = 1; ; attempt += 1) {
      if (task.kind === 'report') return { change: task.change, retain: task.retain };
      if (options.dryRun) return { change: { object, action: 'deleted', message: 'would be pruned' }, retain: true };
      const fence = options.fence;
      await fence?.check();
      try {
        await client.delete(manifest, {
          preconditions: { uid: task.uid, resourceVersion: task.resourceVersion },
          guard: fence && (() => fence.assertFresh()),
        });
        return { change: { object, action: 'deleted' }, retain: false };
      } catch (error) {
        if (!(error instanceof KubeError) || error.kind !== 'modified' || attempt >= DELETE_ATTEMPTS) throw error;
        task = pruneTask(planned.id, await client.get(manifest), options.clusterName);
      }
    }
  } catch (error) {
    if (error instanceof KubeError && error.kind === 'not-found')
      return { change: { object, action: 'deleted', message: 'already gone' }, retain: false };
    if (!(error instanceof KubeError)) throw error;
    return { change: { object, action: 'failed', message: `delete failed: ${error.message}` }, retain: true };
  }
}

/** Polls until every new CRD is Established and every new Namespace Active. */
async function waitForDefinitions(client: ClusterClient, tasks: readonly WaitTask[], timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (const task of tasks) {
    for (;;) {
      const live = await client.get(task.manifest);
      if (live && isReady(live, task.until)) break;
      if (Date.now() > deadline)
        throw new KubeError(
          'unavailable',
          `${objectRef(task.manifest)} did not become ready within ${timeoutMs / 1000} s`,
          undefined,
        );
      await sleep(200);
    }
  }
}

function isReady(live: LiveObject, until: WaitTask['until']): boolean {
  const status = live.status as { phase?: string; conditions?: { type: string; status: string }[] } | undefined;
  if (until === 'active') return status?.phase === 'Active';
  return status?.conditions?.some((c) => c.type === 'Established' && c.status === 'True') ?? false;
}

function failures(rejected: readonly Rejection[]): ObjectChange[] {
  return rejected.map(({ object, error }) => ({
    object: objectRef(object.manifest),
    action: 'failed',
    source: object.source,
    message: error.message,
  }));
}

function previewChange(task: ApplyTask): ObjectChange {
  if (!task.awaiting) return changeOf(task);
  const needed = task.awaiting === 'namespace' ? 'Namespace' : 'CRD';
  return { ...changeOf(task), message: `validated once the ${needed} it needs is created by this commit` };
}

/** An object's identity in a change: reference, file, app. */
function changeOfObject(object: RenderedObject): Pick<ObjectChange, 'object' | 'source' | 'app'> {
  return {
    object: objectRef(object.manifest),
    source: object.source,
    ...(object.app ? { app: object.app.name } : {}),
  };
}

function changeOf(task: ApplyTask): ObjectChange {
  return {
    ...changeOfObject(task.object),
    action: task.action,
    ...(task.takenFrom.length > 0 ? { tookOwnershipFrom: task.takenFrom } : {}),
    ...(task.diff && task.diff.changes.length > 0
      ? { diff: task.diff.changes, ...(task.diff.truncated > 0 ? { diffTruncated: task.diff.truncated } : {}) }
      : {}),
  };
}
