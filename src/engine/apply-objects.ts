import { createHash } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { isDeepStrictEqual } from 'node:util';
import { mapLimited } from '../support/limit-concurrency.ts';
import type { ChangeSet, ObjectChange } from './change-set.ts';
import { type ClusterClient, FIELD_MANAGER, KubeError, type LiveObject } from './cluster-client.ts';
import type { Fence } from './cluster-lock.ts';
import { type Baseline, baselineOf } from './field-set.ts';
import { type Manifest, objectKey, objectRef, type RenderedObject } from './manifest.ts';
import { diffObjects, type FieldChange } from './object-diff.ts';
import { readLiveObjects } from './read-live-objects.ts';
import { STAGES, stageOf } from './stages.ts';

export interface ApplyOptions {
  /** Requests in flight at once (the apiserver serves 200 mutating requests at a time by default). */
  readonly concurrency: number;
  /** `take-ownership` (default): fields another manager owns are taken over, and the change set says so. */
  readonly conflicts: 'take-ownership' | 'fail';
  /** How long to wait for new CRDs to be Established and new Namespaces to be Active. */
  readonly establishTimeoutMs: number;
  /**
   * The cluster lock's fencing: confirmed with Redis before each stage's writes, checked before every
   * single write (free while the lease is known to be ours). A lost lock throws LockLostError: retried.
   */
  readonly fence?: Fence | undefined;
  /** What the last apply recorded per object (by `objectKey`): lets unchanged objects skip the dry-run. */
  readonly recorded?: ReadonlyMap<string, AppliedRecord>;
}

/**
 * The manifest Plumbline last sent for an object, and the resourceVersion the object had right after.
 * While both still match, nobody changed the object and Git did not either: it is unchanged.
 */
export interface AppliedRecord {
  readonly digest: string;
  readonly resourceVersion: string;
  /** What Plumbline's fields held right after (drift is measured against it). */
  readonly baseline?: Baseline | undefined;
}

export function manifestDigest(manifest: Manifest): string {
  return createHash('sha256').update(JSON.stringify(manifest)).digest('hex').slice(0, 20);
}

export interface ApplyResult {
  /** False when any object was rejected: the commit failed (nothing written, or only the first stage). */
  readonly ok: boolean;
  readonly changeSet: ChangeSet;
  /** Per `objectKey`, for every object now as the commit says: to record with the inventory. */
  readonly records: ReadonlyMap<string, AppliedRecord>;
}

type Planned = {
  readonly object: RenderedObject;
  readonly force: boolean;
  readonly takenFrom: readonly string[];
  readonly action: 'created' | 'configured' | 'unchanged';
  /** The live resourceVersion of an unchanged object. */
  readonly resourceVersion?: string | undefined;
  /** For a configured object: the fields that change, secret-like values masked. */
  readonly diff?: { readonly changes: readonly FieldChange[]; readonly truncated: number } | undefined;
  /** Plumbline's fields as the dry-run (or the last apply) says they will be. */
  readonly baseline?: Baseline | undefined;
};
type DryRun =
  | { readonly ok: true; readonly planned: Planned }
  | { readonly ok: false; readonly object: RenderedObject; readonly error: KubeError };

/**
 * Server-side apply in stages, validating before writing (invariant 4): every object is dry-run first
 * and nothing is written if any is rejected — except objects whose Namespace or CRD arrives in this same
 * commit, which cannot be dry-run until it exists; then only the first stage is written before the
 * rest is dry-run as a whole. Unchanged objects are not written. Infrastructure errors throw (retry);
 * rejections are values in the change set.
 */
export async function applyObjects(
  client: ClusterClient,
  objects: readonly RenderedObject[],
  options: ApplyOptions,
): Promise<ApplyResult> {
  const { firstPass, deferred, rejected } = await validateAll(client, objects, options);
  if (rejected.length > 0)
    return { ok: false, changeSet: { changes: firstPass.map(toChange('skipped')) }, records: new Map() };

  const planned = firstPass.filter((r): r is Extract<DryRun, { ok: true }> => r.ok).map((r) => r.planned);
  const changes: ObjectChange[] = [];
  const records = new Map<string, AppliedRecord>();
  /** Writes one stage; false when the apiserver refused a write that its dry-run had accepted. */
  const write = async (items: readonly Planned[]): Promise<boolean> => {
    if (items.some((item) => item.action !== 'unchanged')) await options.fence?.confirm();
    const written = await mapLimited(items, options.concurrency, async (item): Promise<ObjectChange> => {
      const { manifest } = item.object;
      let result: LiveObject | undefined;
      try {
        result = item.action === 'unchanged' ? undefined : await writeFenced(client, item, options.fence);
      } catch (error) {
        // A webhook or a racing change can refuse what the dry-run accepted: a failed object, not a retry.
        if (error instanceof KubeError && !error.retryable)
          return { ...changeOf(item), action: 'failed', message: error.message };
        throw error;
      }
      const resourceVersion = resourceVersionOf(result) ?? item.resourceVersion;
      const baseline = result ? baselineOf(result) : item.baseline;
      if (resourceVersion)
        records.set(objectKey(manifest), { digest: manifestDigest(manifest), resourceVersion, baseline });
      return changeOf(item);
    });
    changes.push(...written);
    return written.every((change) => change.action !== 'failed');
  };
  /** The commit stops here: what was written, `extra` (the objects that failed), and everything else skipped. */
  const stopped = (extra: readonly ObjectChange[] = []): ApplyResult => {
    const done = new Set([...changes, ...extra].map((c) => c.object));
    const rest = planned.filter((p) => !done.has(objectRef(p.object.manifest)));
    const skipped = rest.map((p) => ({
      ...changeOf(p),
      action: 'skipped' as const,
      message: 'not applied: another object of the commit was rejected',
    }));
    return { ok: false, records, changeSet: { changes: [...changes, ...extra, ...skipped] } };
  };

  const firstStage = planned.filter((p) => stageOf(p.object.manifest) === 'definitions');
  if (!(await write(firstStage))) return stopped();
  if (deferred.length > 0) {
    await waitForDefinitions(
      client,
      firstStage.map((p) => p.object.manifest),
      options.establishTimeoutMs,
    );
    const secondPass = await mapLimited(deferred, options.concurrency, (d) =>
      dryRun(client, d.object, options, new Map()),
    );
    throwIfUnavailable(secondPass);
    if (secondPass.some((r) => !r.ok)) return stopped(secondPass.map(toChange('skipped')));
    planned.push(...secondPass.flatMap((r) => (r.ok ? [r.planned] : [])));
  }
  for (const stage of STAGES.slice(1)) {
    if (!(await write(planned.filter((p) => stageOf(p.object.manifest) === stage)))) return stopped();
  }
  return { ok: true, changeSet: { changes }, records };
}

/**
 * One write behind the fence: checked before, guarded at the last moment before it leaves, and — for an
 * object that exists — conditional on the resourceVersion its dry-run saw, so that a holder paused past its
 * lease cannot overwrite what a newer holder wrote even if it was paused after its check. When the object
 * changed since (a controller, or a newer holder), the lock is confirmed with Redis before writing again.
 */
async function writeFenced(client: ClusterClient, item: Planned, fence: Fence | undefined): Promise<LiveObject> {
  const { manifest } = item.object;
  const guard = fence && (() => fence.assertFresh());
  await fence?.check();
  if (!fence || item.action !== 'configured' || !item.resourceVersion)
    return client.apply(manifest, { dryRun: false, force: item.force, guard });
  const conditional = { ...manifest, metadata: { ...manifest.metadata, resourceVersion: item.resourceVersion } };
  try {
    return await client.apply(conditional, { dryRun: false, force: item.force, guard });
  } catch (error) {
    if (!(error instanceof KubeError) || error.kind !== 'modified') throw error;
    await fence.confirm();
    return client.apply(manifest, { dryRun: false, force: item.force, guard });
  }
}

/**
 * The first pass: every object dry-run against the live cluster. `deferred` are the objects that can only
 * be validated once a Namespace or CRD of the same commit exists; `rejected`, the ones the cluster refuses.
 */
async function validateAll(client: ClusterClient, objects: readonly RenderedObject[], options: ApplyOptions) {
  const live = await readLiveObjects(
    client,
    objects.map((o) => o.manifest),
    options.concurrency,
  );
  const created = creationsInCommit(objects);
  // A namespace that neither exists nor comes with the commit rejects every object in it: once the
  // apiserver has said so, the other objects there are not sent (20,000 of them took 46 s before).
  const missing = new Set<string>();
  const firstPass = await mapLimited(objects, options.concurrency, async (object): Promise<DryRun> => {
    const namespace = object.manifest.metadata.namespace;
    if (namespace && missing.has(namespace)) {
      const message = `${objectRef(object.manifest)}: namespace ${namespace} does not exist`;
      return { ok: false, object, error: new KubeError('missing-namespace', message, 404) };
    }
    const result = await dryRun(client, object, options, live);
    if (!result.ok && result.error.kind === 'missing-namespace' && namespace && !created.namespaces.has(namespace))
      missing.add(namespace);
    return result;
  });
  throwIfUnavailable(firstPass);
  const deferred = firstPass.filter((r): r is Extract<DryRun, { ok: false }> => !r.ok && isDeferrable(r, created));
  const rejected = firstPass.filter((r): r is Extract<DryRun, { ok: false }> => !r.ok && !isDeferrable(r, created));
  return { firstPass, deferred, rejected };
}

/**
 * What applying the objects would do, from a server-side dry-run of each against the live cluster;
 * nothing is written. Objects waiting for a Namespace or CRD of the same commit are reported as
 * creations that the cluster can only validate once that exists.
 */
export async function previewObjects(
  client: ClusterClient,
  objects: readonly RenderedObject[],
  options: ApplyOptions,
): Promise<{ readonly ok: boolean; readonly changeSet: ChangeSet }> {
  const { firstPass, deferred, rejected } = await validateAll(client, objects, options);
  const deferredSet = new Set(deferred);
  const changes = firstPass.map((result): ObjectChange => {
    if (result.ok) return changeOf(result.planned);
    if (!deferredSet.has(result)) return toChange('skipped')(result);
    return {
      object: objectRef(result.object.manifest),
      action: 'created',
      source: result.object.source,
      message: `validated once the ${result.error.kind === 'missing-namespace' ? 'Namespace' : 'CRD'} it needs is created by this commit`,
    };
  });
  return { ok: rejected.length === 0, changeSet: { changes } };
}

async function dryRun(
  client: ClusterClient,
  object: RenderedObject,
  options: ApplyOptions,
  known: Map<string, LiveObject | undefined>,
): Promise<DryRun> {
  const manifest = object.manifest;
  const key = objectKey(manifest);
  const recorded = options.recorded?.get(key);
  const knownLive = known.get(key);
  const liveVersion = resourceVersionOf(knownLive);
  if (recorded && liveVersion === recorded.resourceVersion && recorded.digest === manifestDigest(manifest)) {
    // Neither Git nor anyone else changed it since Plumbline applied it: no dry-run, no write.
    return {
      ok: true,
      planned: {
        object,
        force: false,
        takenFrom: [],
        action: 'unchanged',
        resourceVersion: liveVersion,
        baseline: recorded.baseline,
      },
    };
  }
  try {
    const [live, result] = await Promise.all([
      known.has(key) ? known.get(key) : client.get(manifest),
      applyTakingOwnership(client, manifest, options),
    ]);
    // Same content but not (yet) ours — created by hand, or fields held by another manager — still needs
    // the write that makes Plumbline its field manager, or prune and drift detection would not see it.
    // (A manifest that sets no field at all, like a bare Namespace, leaves no manager entry to adopt.)
    const adopting = managers(result.object).includes(FIELD_MANAGER) && !managers(live).includes(FIELD_MANAGER);
    const action =
      live === undefined
        ? 'created'
        : !adopting && !result.force && isDeepStrictEqual(comparable(result.object), comparable(live))
          ? 'unchanged'
          : 'configured';
    return {
      ok: true,
      planned: {
        object,
        force: result.force,
        takenFrom: result.takenFrom,
        action,
        resourceVersion: resourceVersionOf(live),
        baseline: baselineOf(result.object),
        diff:
          action === 'configured' && live
            ? diffObjects(comparable(live), comparable(result.object), { kind: manifest.kind, desired: manifest })
            : undefined,
      },
    };
  } catch (error) {
    if (error instanceof KubeError) return { ok: false, object, error };
    throw error;
  }
}

/** Dry-run apply; on a field conflict, per policy, again with force, remembering whose fields they were. */
async function applyTakingOwnership(client: ClusterClient, manifest: Manifest, options: ApplyOptions) {
  try {
    return {
      object: await client.apply(manifest, { dryRun: true, force: false }),
      force: false,
      takenFrom: [] as string[],
    };
  } catch (error) {
    if (!(error instanceof KubeError) || error.kind !== 'conflict' || options.conflicts === 'fail') throw error;
    const takenFrom = [...new Set([...error.message.matchAll(/conflict with "([^"]+)"/g)].map((m) => m[1] ?? ''))];
    return { object: await client.apply(manifest, { dryRun: true, force: true }), force: true, takenFrom };
  }
}

function managers(object: LiveObject | undefined): string[] {
  const fields = (object?.metadata as { managedFields?: { manager?: string }[] } | undefined)?.managedFields ?? [];
  return fields.map((entry) => entry.manager ?? '');
}

function resourceVersionOf(object: LiveObject | undefined): string | undefined {
  return (object?.metadata as { resourceVersion?: string } | undefined)?.resourceVersion;
}

/** What a dry-run result and the live object are compared on: no bookkeeping the server changes by itself. */
export function comparable(object: LiveObject): unknown {
  const {
    metadata,
    status: _status,
    ...rest
  } = object as LiveObject & { metadata?: Record<string, unknown>; status?: unknown };
  const {
    managedFields: _m,
    resourceVersion: _r,
    generation: _g,
    creationTimestamp: _c,
    uid: _u,
    ...meta
  } = metadata ?? {};
  return { ...rest, metadata: meta };
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

function isDeferrable(result: Extract<DryRun, { ok: false }>, created: ReturnType<typeof creationsInCommit>): boolean {
  const { manifest } = result.object;
  if (result.error.kind === 'missing-namespace') return created.namespaces.has(manifest.metadata.namespace ?? '');
  if (result.error.kind === 'missing-kind')
    return created.kinds.has(`${manifest.apiVersion.split('/')[0]}/${manifest.kind}`);
  return false;
}

function throwIfUnavailable(results: readonly DryRun[]): void {
  const failure = results.find((r) => !r.ok && r.error.retryable);
  if (failure && !failure.ok) throw failure.error;
}

function changeOf(item: Planned): ObjectChange {
  return {
    object: objectRef(item.object.manifest),
    action: item.action,
    source: item.object.source,
    ...(item.takenFrom.length > 0 ? { tookOwnershipFrom: item.takenFrom } : {}),
    ...(item.diff && item.diff.changes.length > 0
      ? { diff: item.diff.changes, ...(item.diff.truncated > 0 ? { diffTruncated: item.diff.truncated } : {}) }
      : {}),
  };
}

const toChange =
  (otherwise: 'skipped') =>
  (result: DryRun): ObjectChange =>
    result.ok
      ? {
          ...changeOf(result.planned),
          action: otherwise,
          message: 'not applied: another object of the commit was rejected',
        }
      : {
          object: objectRef(result.object.manifest),
          action: 'failed',
          source: result.object.source,
          message: result.error.message,
        };

/** Polls until every new CRD is Established and every new Namespace Active. */
async function waitForDefinitions(
  client: ClusterClient,
  definitions: readonly Manifest[],
  timeoutMs: number,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  const pending = definitions.filter((m) => m.kind === 'CustomResourceDefinition' || m.kind === 'Namespace');
  for (const manifest of pending) {
    for (;;) {
      const live = await client.get(manifest);
      if (live && isDefinitionReady(live)) break;
      if (Date.now() > deadline)
        throw new KubeError(
          'unavailable',
          `${objectRef(manifest)} did not become ready within ${timeoutMs / 1000} s`,
          undefined,
        );
      await sleep(200);
    }
  }
}

function isDefinitionReady(live: LiveObject): boolean {
  const status = live.status as { phase?: string; conditions?: { type: string; status: string }[] } | undefined;
  if (live.kind === 'Namespace') return status?.phase === 'Active';
  return status?.conditions?.some((c) => c.type === 'Established' && c.status === 'True') ?? false;
}
