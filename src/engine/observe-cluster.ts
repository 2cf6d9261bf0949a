import { mapLimited } from '../support/limit-concurrency.ts';
import { type ClusterClient, conflictingManagers, KubeError, type LiveObject } from './cluster-client.ts';
import { manifestOf } from './inventory.ts';
import { objectKey, type RenderedObject } from './manifest.ts';
import type { ClusterView, DryRunAnswer, PlanPolicy, RecordedState } from './plan/plan.ts';
import { missingNamespace, objectsToDryRun, screenCommit } from './plan/plan-cluster.ts';
import { readLiveObjects } from './read-live-objects.ts';
import { readScopes } from './tenancy.ts';

export interface ObserveOptions {
  /** Requests in flight at once. */
  readonly concurrency: number;
}

/**
 * Everything the planner needs to know from the cluster, read with as few requests as the answers allow:
 * discovery scopes; then — only for a commit the screening lets through, so that nothing outside the
 * tenancy limits is ever sent — the live desired and stale objects (one LIST per large group) and a
 * server-side dry-run of every object that the records cannot prove unchanged. Retryable errors throw;
 * rejections are answers.
 */
export async function observeCluster(
  client: ClusterClient,
  desired: readonly RenderedObject[],
  recorded: RecordedState,
  policy: PlanPolicy,
  options: ObserveOptions,
): Promise<ClusterView> {
  const manifests = desired.map((o) => o.manifest);
  const inventoried = (recorded.inventory?.objects ?? []).map(manifestOf);
  const scopes = new Map([
    ...(await readScopes(client, manifests, manifests)),
    ...(policy.prune ? await readScopes(client, inventoried, manifests) : []),
  ]);
  const screened = screenCommit(desired, scopes, recorded, policy);
  if (!screened.ok) return { objects: new Map(), dryRuns: new Map(), scopes };

  const stale = screened.stale.map(manifestOf);
  const objects = await readLiveObjects(client, [...manifests, ...stale], options.concurrency);
  await mapLimited(
    stale.filter((m) => !objects.has(objectKey(m))),
    options.concurrency,
    async (manifest) => objects.set(objectKey(manifest), await client.get(manifest)),
  );
  const created = manifests.filter((m) => m.kind === 'Namespace');
  // Whether each Namespace of the commit exists decides whether its objects can be dry-run at all.
  await mapLimited(
    created.filter((m) => !objects.has(objectKey(m))),
    options.concurrency,
    async (manifest) => objects.set(objectKey(manifest), await client.get(manifest)),
  );
  const dryRuns = await dryRunAll(client, objectsToDryRun(desired, objects, recorded), objects, {
    ...options,
    conflicts: policy.conflicts,
    createdNamespaces: new Set(created.map((m) => m.metadata.name)),
    // Read as absent just now: nothing can be in them yet, and every dry-run there would answer 404.
    absentNamespaces: new Set(
      created
        .filter((m) => objects.has(objectKey(m)) && objects.get(objectKey(m)) === undefined)
        .map((m) => m.metadata.name),
    ),
  });
  return { objects, dryRuns, scopes };
}

/**
 * Dry-runs objects (reading the live copy of those not read yet into `live`). A namespace that neither
 * exists nor comes with the commit rejects every object in it: once the apiserver has said so, the other
 * objects there are not sent (20,000 of them took 46 s before); nor are the objects of a namespace the
 * commit creates that is known to be absent (B15: half of a cold apply's requests). Throws the first
 * retryable error.
 */
export async function dryRunAll(
  client: ClusterClient,
  objects: readonly RenderedObject[],
  live: Map<string, LiveObject | undefined>,
  options: ObserveOptions & {
    readonly conflicts: PlanPolicy['conflicts'];
    readonly createdNamespaces: ReadonlySet<string>;
    /**
     * Namespaces of the commit known not to exist yet: their objects are answered "missing namespace"
     * without a request (and known absent), to be validated once the Namespace is created.
     */
    readonly absentNamespaces?: ReadonlySet<string> | undefined;
  },
): Promise<Map<string, DryRunAnswer>> {
  const missing = new Set<string>();
  const absent = options.absentNamespaces ?? new Set<string>();
  const answers = await mapLimited(objects, options.concurrency, async (object): Promise<DryRunAnswer> => {
    const namespace = object.manifest.metadata.namespace;
    if (namespace && (missing.has(namespace) || (absent.has(namespace) && !oversized(object)))) {
      live.set(objectKey(object.manifest), undefined);
      return { ok: false, error: missingNamespace(object.manifest) };
    }
    const answer = await dryRunObject(client, object, live, options.conflicts);
    if (
      !answer.ok &&
      answer.error.kind === 'missing-namespace' &&
      namespace &&
      !options.createdNamespaces.has(namespace)
    )
      missing.add(namespace);
    return answer;
  });
  const unavailable = answers.find((a) => !a.ok && a.error.retryable);
  if (unavailable && !unavailable.ok) throw unavailable.error;
  return new Map(objects.map((object, index) => [objectKey(object.manifest), answers[index] as DryRunAnswer]));
}

/**
 * Large enough that the apiserver may refuse its body as such (`--max-request-bytes`, etcd's object limit)
 * — which it says before it looks for the namespace: dry-run even where the namespace is still to come, so
 * that an oversized object fails the commit before anything at all is written.
 */
const PRE_VALIDATED_BYTES = 256 * 1024;

function oversized(object: RenderedObject): boolean {
  return JSON.stringify(object.manifest).length > PRE_VALIDATED_BYTES;
}

/** One object's dry-run, with its live copy read alongside when it was not read yet. */
async function dryRunObject(
  client: ClusterClient,
  object: RenderedObject,
  live: Map<string, LiveObject | undefined>,
  conflicts: PlanPolicy['conflicts'],
): Promise<DryRunAnswer> {
  const { manifest } = object;
  const key = objectKey(manifest);
  try {
    const [current, answer] = await Promise.all([
      live.has(key) ? live.get(key) : client.get(manifest),
      applyTakingOwnership(client, object, conflicts),
    ]);
    live.set(key, current);
    return answer;
  } catch (error) {
    if (error instanceof KubeError) return { ok: false, error };
    throw error;
  }
}

/** Dry-run apply; on a field conflict, per policy, again with force, remembering whose fields they were. */
async function applyTakingOwnership(
  client: ClusterClient,
  object: RenderedObject,
  conflicts: PlanPolicy['conflicts'],
): Promise<DryRunAnswer> {
  try {
    const result = await client.apply(object.manifest, { dryRun: true, force: false });
    return { ok: true, result, force: false, takenFrom: [] };
  } catch (error) {
    if (!(error instanceof KubeError) || error.kind !== 'conflict' || conflicts === 'fail') throw error;
    const result = await client.apply(object.manifest, { dryRun: true, force: true });
    return { ok: true, result, force: true, takenFrom: conflictingManagers(error) };
  }
}
