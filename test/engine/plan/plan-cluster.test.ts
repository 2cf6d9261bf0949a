import { describe, expect, it } from '@jest/globals';
import type { ClusterClient } from '../../../src/engine/cluster-client.ts';
import type { DriftedObject } from '../../../src/engine/drift.ts';
import { execute } from '../../../src/engine/execute-plan.ts';
import { baselineOf } from '../../../src/engine/field-set.ts';
import { idKey, manifestOf, objectIdOf } from '../../../src/engine/inventory.ts';
import { type Manifest, objectKey, objectRef, type RenderedObject } from '../../../src/engine/manifest.ts';
import type { ApplyTask, HookTask, Phase, Plan, PruneTask, ReportTask } from '../../../src/engine/plan/plan.ts';
import {
  decideApply,
  objectsToDryRun,
  planCluster,
  planCorrection,
  pruneTask,
  pruneVerdict,
  screenCommit,
} from '../../../src/engine/plan/plan-cluster.ts';
import {
  accepted,
  appliedBy,
  CLUSTER,
  clusterRole,
  configMap,
  crd,
  deployment,
  ingressClass,
  limits,
  NOTHING_RECORDED,
  namespace,
  policy,
  pvc,
  recorded,
  recordedApply,
  refused,
  rendered,
  scopesOf,
  served,
  storageClass,
  takenOver,
  view,
} from '../../fixtures/plan/cluster.ts';

/** The first (only) object of a render, as Plumbline applies it (owner label on). */
const one = (manifest: Manifest) => rendered(manifest)[0];

/** An object applied by Plumbline at resourceVersion `rv`: what the cluster serves after a clean apply. */
const appliedLive = (manifest: Manifest, rv: string, status?: Record<string, unknown>) =>
  served(manifest, { resourceVersion: rv, managedFields: [appliedBy(manifest)], ...(status ? { status } : {}) });

const applyTasks = (plan: Plan): ApplyTask[] =>
  plan.phases.flatMap((phase) =>
    phase.kind === 'apply' || phase.kind === 'validate'
      ? (phase.tasks as readonly (ApplyTask | ReportTask)[]).filter((t): t is ApplyTask => t.kind === 'apply')
      : [],
  );

const taskOf = (plan: Plan, manifest: Manifest): ApplyTask | undefined =>
  plan.phases
    .flatMap((phase) => (phase.kind === 'apply' ? phase.tasks : []))
    .find((t): t is ApplyTask => t.kind === 'apply' && objectKey(t.object.manifest) === objectKey(manifest));

/** Each phase as `kind[:stage]` with the objects it names, in order. */
const shape = (plan: Plan): [string, string[]][] =>
  plan.phases.map((phase: Phase) => {
    const name = 'stage' in phase ? `${phase.kind}:${phase.stage}` : phase.kind;
    const refs = (
      phase.tasks as readonly (
        | ApplyTask
        | PruneTask
        | ReportTask
        | HookTask
        | { kind: 'wait' | 'health'; manifest: Manifest }
      )[]
    ).map((task) =>
      task.kind === 'apply' || task.kind === 'hook'
        ? objectRef(task.object.manifest)
        : task.kind === 'prune'
          ? objectRef(manifestOf(task.id))
          : task.kind === 'report'
            ? task.change.object
            : objectRef(task.manifest),
    );
    return [name, refs];
  });

const prunePhasesOf = (plan: Plan) => plan.phases.filter((phase) => phase.kind === 'prune');

describe('decideApply: one object, its live copy and its dry-run', () => {
  it('plans an object that is not in the cluster as created, with the dry-run as its baseline', () => {
    const object = one(deployment('web', 'shop'));
    const result = appliedLive(object.manifest, '12');

    const task = decideApply(object, undefined, accepted(result));

    expect(task).toEqual({
      kind: 'apply',
      object,
      action: 'created',
      force: false,
      takenFrom: [],
      resourceVersion: undefined,
      baseline: baselineOf(result),
      diff: undefined,
      why: 'not in the cluster',
    });
    expect(baselineOf(result)).toBeDefined();
  });

  it('plans an object unchanged when the dry-run equals the live object, whatever the server bookkeeping says', () => {
    const object = one(deployment('web', 'shop'));
    const live = served(object.manifest, {
      resourceVersion: '41',
      generation: 3,
      managedFields: [appliedBy(object.manifest, '2025-01-01T10:00:00Z')],
      status: { readyReplicas: 2, observedGeneration: 3 },
    });
    // The dry-run's answer differs only in what the apiserver maintains: version, generation, field times, status.
    const result = served(object.manifest, {
      resourceVersion: '42',
      generation: 4,
      managedFields: [appliedBy(object.manifest, '2025-06-01T12:00:00Z')],
      status: { readyReplicas: 0 },
    });

    const task = decideApply(object, live, accepted(result));

    expect(task).toMatchObject({
      kind: 'apply',
      action: 'unchanged',
      force: false,
      takenFrom: [],
      resourceVersion: '41',
    });
    expect(task).toHaveProperty('why', 'the dry-run equals the live object');
    expect(task).toHaveProperty('diff', undefined);
  });

  it('plans a changed field as configured, with the diff of that field only and its value from the commit', () => {
    const before = one(deployment('web', 'shop', 2));
    const object = one(deployment('web', 'shop', 3));
    const live = served(before.manifest, {
      resourceVersion: '41',
      managedFields: [appliedBy(before.manifest)],
      status: { readyReplicas: 2 },
    });
    const result = served(object.manifest, { resourceVersion: '41', managedFields: [appliedBy(object.manifest)] });

    const task = decideApply(object, live, accepted(result));

    expect(task).toMatchObject({
      kind: 'apply',
      action: 'configured',
      force: false,
      takenFrom: [],
      resourceVersion: '41',
      why: 'the dry-run differs from the live object',
      diff: { changes: [{ path: 'spec.replicas', change: 'changed', after: '3' }], truncated: 0 },
    });
  });

  it('configures (adopts) an identical object that has no managedFields entry of plumbline', () => {
    const object = one(configMap('settings', 'shop'));
    // Created by hand with the very same content: only kubectl manages it.
    const byHand = { manager: 'kubectl-client-side-apply', operation: 'Update' as const, fieldsV1: {} };
    const live = served(object.manifest, { resourceVersion: '7', managedFields: [byHand] });
    const result = served(object.manifest, {
      resourceVersion: '7',
      managedFields: [byHand, appliedBy(object.manifest)],
    });

    const task = decideApply(object, live, accepted(result));

    expect(task).toMatchObject({
      action: 'configured',
      force: false,
      resourceVersion: '7',
      why: 'not yet managed by plumbline: adopted',
      diff: { changes: [], truncated: 0 },
    });
  });

  it('takes over a conflicting field with force, naming the manager it is taken from', () => {
    const object = one(deployment('web', 'shop', 3));
    const edited = served(deployment('web', 'shop', 5), {
      resourceVersion: '50',
      labels: { 'plumbline.dev/cluster': CLUSTER },
      managedFields: [
        appliedBy(object.manifest),
        { manager: 'kubectl-edit', operation: 'Update', fieldsV1: { 'f:spec': { 'f:replicas': {} } } },
      ],
    });
    const result = served(object.manifest, { resourceVersion: '50', managedFields: [appliedBy(object.manifest)] });

    const task = decideApply(object, edited, takenOver(result, 'kubectl-edit'));

    expect(task).toMatchObject({
      action: 'configured',
      force: true,
      takenFrom: ['kubectl-edit'],
      resourceVersion: '50',
      why: 'takes over fields from kubectl-edit',
      diff: { changes: [{ path: 'spec.replicas', change: 'changed', after: '3' }], truncated: 0 },
    });
  });

  it('writes a takeover even when the forced dry-run equals the live object (ownership changes hands)', () => {
    const object = one(configMap('settings', 'shop'));
    const live = appliedLive(object.manifest, '9');

    const task = decideApply(object, live, takenOver(appliedLive(object.manifest, '9'), 'helm'));

    expect(task).toMatchObject({ action: 'configured', force: true, takenFrom: ['helm'] });
  });

  it('returns the rejection, naming the object, for a refused dry-run', () => {
    const object = one(deployment('web', 'shop'));
    const answer = refused('rejected', 'Deployment/shop/web: spec.replicas: Invalid value: -1');

    const decided = decideApply(object, undefined, answer);

    expect(decided).toEqual({ object, error: answer.ok ? undefined : answer.error });
  });
});

describe('planCluster: takeovers within the tenancy limits', () => {
  it('plans the takeover inside the limits and refuses the same takeover outside them (a takeover widens no limit)', () => {
    const inside = one(deployment('web', 'shop', 3));
    const outside = one(deployment('web', 'payments', 3));
    const conflicting = (m: Manifest) =>
      takenOver(served(m, { resourceVersion: '50', managedFields: [appliedBy(m)] }), 'kubectl-edit');
    const live = (m: Manifest) =>
      served(m, { resourceVersion: '50', managedFields: [{ manager: 'kubectl-edit', operation: 'Update' }] });
    const tenancy = policy({ limits: limits({ namespaces: ['shop'] }) });

    const allowed = planCluster(
      [inside],
      view({
        live: [[inside.manifest, live(inside.manifest)]],
        dryRuns: [[inside.manifest, conflicting(inside.manifest)]],
      }),
      NOTHING_RECORDED,
      tenancy,
    );
    const denied = planCluster(
      [outside],
      view({
        live: [[outside.manifest, live(outside.manifest)]],
        dryRuns: [[outside.manifest, conflicting(outside.manifest)]],
      }),
      NOTHING_RECORDED,
      tenancy,
    );

    expect(allowed.refusal).toBeUndefined();
    expect(taskOf(allowed, inside.manifest)).toMatchObject({
      action: 'configured',
      force: true,
      takenFrom: ['kubectl-edit'],
      why: 'takes over fields from kubectl-edit',
    });
    expect(denied).toEqual({
      refusal: {
        reason: 'tenancy',
        problems: [expect.objectContaining({ object: 'Deployment/payments/web', source: outside.source })],
      },
      phases: [],
    });
  });
});

describe('objectsToDryRun: what the records prove unchanged is not sent', () => {
  const web = one(deployment('web', 'shop'));
  const settings = one(configMap('settings', 'shop'));
  const baseline = baselineOf(appliedLive(web.manifest, '41'));
  const records = recorded(
    [recordedApply(web.manifest, '41'), recordedApply(settings.manifest, '8')],
    new Map(baseline ? [[idKey(objectIdOf(web.manifest)), baseline]] : []),
  );

  it('skips an object whose recorded manifest digest and live resourceVersion still match, planning it unchanged with the recorded baseline', () => {
    const cluster = view({
      live: [
        [web.manifest, appliedLive(web.manifest, '41')],
        [settings.manifest, appliedLive(settings.manifest, '8')],
      ],
    });

    const toDryRun = objectsToDryRun([web, settings], cluster.objects, records);
    // No dry-run answers at all: the records alone decide.
    const plan = planCluster([web, settings], cluster, records, policy());

    expect(toDryRun).toEqual([]);
    expect(baseline).toBeDefined();
    expect(taskOf(plan, web.manifest)).toEqual({
      kind: 'apply',
      object: web,
      action: 'unchanged',
      force: false,
      takenFrom: [],
      resourceVersion: '41',
      baseline,
      why: 'the manifest and the live resourceVersion are what the last apply recorded',
    });
  });

  it('dry-runs an object whose manifest changed since the recorded apply', () => {
    const changed = one(deployment('web', 'shop', 5));
    const live = new Map([[objectKey(web.manifest), appliedLive(web.manifest, '41')]]);

    expect(objectsToDryRun([changed], live, records)).toEqual([changed]);
  });

  it('dry-runs an object whose live resourceVersion moved since the recorded apply (someone else changed it)', () => {
    const live = new Map([[objectKey(web.manifest), appliedLive(web.manifest, '57')]]);

    expect(objectsToDryRun([web], live, records)).toEqual([web]);
  });

  it('dry-runs an object that is gone, and one without a record', () => {
    const fresh = one(configMap('fresh', 'shop'));
    const live = new Map([
      [objectKey(web.manifest), undefined],
      [objectKey(fresh.manifest), appliedLive(fresh.manifest, '3')],
    ]);

    expect(objectsToDryRun([web, fresh], live, records)).toEqual([web, fresh]);
  });
});

describe('planCluster: rejections and objects awaiting a definition of the commit', () => {
  it('refuses the commit naming a rejected object, and still plans every other object in its phase', () => {
    const [ns, web, bad] = rendered(namespace('shop'), deployment('web', 'shop'), configMap('bad', 'shop'));
    const rejection = refused('rejected', 'ConfigMap/shop/bad: data.x: Invalid value');

    const plan = planCluster(
      [ns, web, bad],
      view({
        live: [
          [ns.manifest, appliedLive(ns.manifest, '2')],
          [web.manifest, undefined],
          [bad.manifest, undefined],
        ],
        dryRuns: [
          [ns.manifest, accepted(appliedLive(ns.manifest, '2'))],
          [web.manifest, accepted(appliedLive(web.manifest, '3'))],
          [bad.manifest, rejection],
        ],
      }),
      NOTHING_RECORDED,
      policy(),
    );

    expect(plan.refusal).toEqual({
      reason: 'rejected',
      rejected: [{ object: bad, error: rejection.ok ? undefined : rejection.error }],
    });
    expect(shape(plan)).toEqual([
      ['apply:definitions', ['Namespace/shop']],
      ['apply:classes', []],
      ['apply:workloads', ['Deployment/shop/web']],
    ]);
    expect(applyTasks(plan).map((t) => t.action)).toEqual(['unchanged', 'created']);
  });

  it('plans an object whose missing Namespace the commit creates as awaiting it: a wait until active and a validate phase follow the definitions', () => {
    const [ns, web] = rendered(namespace('shop'), deployment('web', 'shop'));

    const plan = planCluster(
      [ns, web],
      view({
        live: [
          [ns.manifest, undefined],
          [web.manifest, undefined],
        ],
        dryRuns: [
          [ns.manifest, accepted(appliedLive(ns.manifest, '1'))],
          [web.manifest, refused('missing-namespace', 'namespaces "shop" not found', 404)],
        ],
      }),
      NOTHING_RECORDED,
      policy(),
    );

    expect(plan.refusal).toBeUndefined();
    expect(shape(plan)).toEqual([
      ['apply:definitions', ['Namespace/shop']],
      ['wait', ['Namespace/shop']],
      ['validate', ['Deployment/shop/web']],
      ['apply:classes', []],
      ['apply:workloads', ['Deployment/shop/web']],
    ]);
    expect(plan.phases[1]).toEqual({ kind: 'wait', tasks: [{ kind: 'wait', manifest: ns.manifest, until: 'active' }] });
    expect(taskOf(plan, web.manifest)).toMatchObject({ action: 'created', awaiting: 'namespace', force: false });
  });

  it('plans a custom resource whose kind a CRD of the commit defines as awaiting it: wait until established', () => {
    const [definition, widget] = rendered(crd('example.com', 'Widget', 'widgets'), {
      apiVersion: 'example.com/v1',
      kind: 'Widget',
      metadata: { name: 'blue', namespace: 'shop' },
      spec: { size: 3 },
    });

    const plan = planCluster(
      [definition, widget],
      view({
        live: [
          [definition.manifest, undefined],
          [widget.manifest, undefined],
        ],
        dryRuns: [
          [definition.manifest, accepted(appliedLive(definition.manifest, '1'))],
          [widget.manifest, refused('missing-kind', 'no matches for kind "Widget" in version "example.com/v1"', 404)],
        ],
      }),
      NOTHING_RECORDED,
      policy(),
    );

    expect(plan.refusal).toBeUndefined();
    expect(plan.phases.slice(0, 3)).toEqual([
      {
        kind: 'apply',
        stage: 'definitions',
        tasks: [expect.objectContaining({ object: definition, action: 'created' })],
      },
      { kind: 'wait', tasks: [{ kind: 'wait', manifest: definition.manifest, until: 'established' }] },
      { kind: 'validate', tasks: [expect.objectContaining({ object: widget, action: 'created', awaiting: 'kind' })] },
    ]);
  });

  it('rejects an object whose missing Namespace the commit does not create', () => {
    const [other, web] = rendered(namespace('other'), deployment('web', 'shop'));
    const missing = refused('missing-namespace', 'namespaces "shop" not found', 404);

    const plan = planCluster(
      [other, web],
      view({
        live: [
          [other.manifest, undefined],
          [web.manifest, undefined],
        ],
        dryRuns: [
          [other.manifest, accepted(appliedLive(other.manifest, '1'))],
          [web.manifest, missing],
        ],
      }),
      NOTHING_RECORDED,
      policy(),
    );

    expect(plan.refusal).toEqual({
      reason: 'rejected',
      rejected: [{ object: web, error: missing.ok ? undefined : missing.error }],
    });
    expect(plan.phases.map((p) => p.kind)).not.toContain('validate');
    expect(plan.phases.map((p) => p.kind)).not.toContain('wait');
  });

  it('rejects a custom resource whose kind no CRD of the commit defines', () => {
    const [widget] = rendered({
      apiVersion: 'example.com/v1',
      kind: 'Widget',
      metadata: { name: 'blue', namespace: 'shop' },
    });

    const plan = planCluster(
      [widget],
      view({
        live: [[widget.manifest, undefined]],
        dryRuns: [[widget.manifest, refused('missing-kind', 'no matches', 404)]],
      }),
      NOTHING_RECORDED,
      policy(),
    );

    expect(plan.refusal).toMatchObject({ reason: 'rejected', rejected: [{ object: widget }] });
  });

  it('refuses to plan an object with neither a dry-run nor a record of its last apply (the observer must send it)', () => {
    const web = one(deployment('web', 'shop'));

    expect(() => planCluster([web], view({ live: [[web.manifest, undefined]] }), NOTHING_RECORDED, policy())).toThrow(
      'Deployment/shop/web has neither a dry-run nor a record',
    );
  });
});

describe('screenCommit: refusals before any dry-run', () => {
  const screen = (manifests: Manifest[], overrides: Parameters<typeof policy>[0] = {}, records = NOTHING_RECORDED) =>
    screenCommit(rendered(...manifests), scopesOf(manifests), records, policy(overrides));

  it('refuses an object outside limits.namespaces, naming it, its file and the limit', () => {
    const screened = screen([deployment('web', 'shop'), deployment('web', 'kube-system')], { limits: limits() });

    expect(screened).toEqual({
      ok: false,
      refusal: {
        reason: 'tenancy',
        problems: [
          expect.objectContaining({
            object: 'Deployment/kube-system/web',
            source: { file: 'apps/deployment-web.yaml', line: 1 },
            reason: expect.stringContaining('namespace kube-system is outside the namespaces'),
          }),
        ],
      },
    });
  });

  it('refuses a kind in deniedKinds even inside an allowed namespace', () => {
    const screened = screen([configMap('settings', 'shop'), { ...configMap('x', 'shop'), kind: 'Secret' }], {
      limits: limits({ deniedKinds: ['Secret'] }),
    });

    expect(screened).toMatchObject({
      ok: false,
      refusal: {
        reason: 'tenancy',
        problems: [{ object: 'Secret/shop/x', reason: expect.stringContaining('deniedKinds') }],
      },
    });
  });

  it('refuses a cluster-scoped kind that is not in limits.clusterScoped', () => {
    const screened = screen([namespace('shop'), clusterRole('reader')], {
      limits: limits({ clusterScoped: ['Namespace'] }),
    });

    expect(screened).toMatchObject({
      ok: false,
      refusal: {
        reason: 'tenancy',
        problems: [
          { object: 'ClusterRole/reader', reason: expect.stringContaining('outside the clusterScoped kinds') },
        ],
      },
    });
  });

  it('refuses anything in plumbline-system, and that Namespace itself, even without limits', () => {
    const screened = screen([
      configMap('sneaky', 'plumbline-system'),
      namespace('plumbline-system'),
      configMap('ok', 'shop'),
    ]);

    expect(screened).toMatchObject({
      ok: false,
      refusal: {
        reason: 'tenancy',
        problems: [{ object: 'ConfigMap/plumbline-system/sneaky' }, { object: 'Namespace/plumbline-system' }],
      },
    });
  });

  it('lets every object through when no limit is set and nothing is in plumbline-system', () => {
    expect(screen([clusterRole('reader'), deployment('web', 'kube-system')])).toEqual({ ok: true, stale: [] });
  });

  it('refuses an empty render over a non-empty inventory', () => {
    const records = recorded([deployment('web', 'shop'), configMap('settings', 'shop')]);

    expect(screen([], {}, records)).toEqual({ ok: false, refusal: { reason: 'empty-render', inventoried: 2 } });
  });

  it('accepts an empty render over an empty inventory, and over no inventory at all', () => {
    expect(screen([], {}, recorded([]))).toEqual({ ok: true, stale: [] });
    expect(screen([], {}, NOTHING_RECORDED)).toEqual({ ok: true, stale: [] });
  });

  it('refuses a prune of more than maxShare of the inventory', () => {
    const kept = configMap('a', 'shop');
    const records = recorded([kept, configMap('b', 'shop'), configMap('c', 'shop'), configMap('d', 'shop')]);

    expect(screen([kept], {}, records)).toEqual({
      ok: false,
      refusal: { reason: 'prune-share', stale: 3, inventoried: 4, maxShare: 0.5 },
    });
  });

  it('allows a prune of exactly maxShare of the inventory', () => {
    const [a, b] = [configMap('a', 'shop'), configMap('b', 'shop')];
    const records = recorded([a, b, configMap('c', 'shop'), configMap('d', 'shop')]);

    expect(screen([a, b], {}, records)).toMatchObject({ ok: true, stale: [{ name: 'c' }, { name: 'd' }] });
  });

  it('allows a prune above maxShare with override', () => {
    const kept = configMap('a', 'shop');
    const records = recorded([kept, configMap('b', 'shop'), configMap('c', 'shop'), configMap('d', 'shop')]);

    const screened = screen([kept], { pruneGuards: { maxShare: 0.5, override: true } }, records);

    expect(screened).toMatchObject({ ok: true, stale: [{ name: 'b' }, { name: 'c' }, { name: 'd' }] });
  });

  it('with prune: false, neither refuses a large prune nor plans any prune phase', () => {
    const kept = one(configMap('a', 'shop'));
    const stale = [configMap('b', 'shop'), configMap('c', 'shop'), namespace('old')];
    const records = recorded([kept.manifest, ...stale]);
    const noPrune = policy({ prune: false });

    const screened = screenCommit([kept], scopesOf([kept.manifest, ...stale]), records, noPrune);
    const plan = planCluster(
      [kept],
      view({
        live: [[kept.manifest, undefined], ...stale.map((m) => [m, appliedLive(m, '1')] as const)],
        dryRuns: [[kept.manifest, accepted(appliedLive(kept.manifest, '1'))]],
      }),
      records,
      noPrune,
    );

    expect(screened).toEqual({ ok: true, stale: [] });
    expect(plan.refusal).toBeUndefined();
    expect(prunePhasesOf(plan)).toEqual([]);
  });

  it('planCluster returns a screened refusal with no phases at all', () => {
    const secret = one(configMap('sneaky', 'plumbline-system'));

    const plan = planCluster(
      [secret],
      view({
        live: [[secret.manifest, undefined]],
        dryRuns: [[secret.manifest, accepted(appliedLive(secret.manifest, '1'))]],
      }),
      NOTHING_RECORDED,
      policy(),
    );

    expect(plan).toMatchObject({ refusal: { reason: 'tenancy' }, phases: [] });
  });
});

describe('planCluster: phase order', () => {
  it('applies definitions (Namespace, CRD, ClusterRole), then class kinds, then workloads, and prunes in reverse stage order', () => {
    const desired = rendered(
      deployment('web', 'shop'),
      storageClass('fast'),
      namespace('shop'),
      configMap('settings', 'shop'),
      crd('example.com', 'Widget', 'widgets'),
      ingressClass('nginx'),
      clusterRole('reader'),
    );
    const stale = [namespace('legacy'), storageClass('slow'), configMap('old', 'shop'), clusterRole('old-reader')];
    const records = recorded([...desired.map((o) => o.manifest), ...stale]);
    const live = (m: Manifest) =>
      appliedLive({ ...m, metadata: { ...m.metadata, labels: { 'plumbline.dev/cluster': CLUSTER } } }, '5');

    const plan = planCluster(
      desired,
      view({
        live: [...desired.map((o) => [o.manifest, undefined] as const), ...stale.map((m) => [m, live(m)] as const)],
        dryRuns: desired.map((o) => [o.manifest, accepted(appliedLive(o.manifest, '1'))] as const),
      }),
      records,
      policy({ pruneGuards: { maxShare: 1, override: false } }),
    );
    const screened = screenCommit(
      desired,
      scopesOf([...desired.map((o) => o.manifest), ...stale]),
      records,
      policy({ pruneGuards: { maxShare: 1, override: false } }),
    );

    expect(plan.refusal).toBeUndefined();
    expect(shape(plan)).toEqual([
      ['apply:definitions', ['Namespace/shop', 'CustomResourceDefinition/widgets.example.com', 'ClusterRole/reader']],
      ['apply:classes', ['StorageClass/fast', 'IngressClass/nginx']],
      ['apply:workloads', ['Deployment/shop/web', 'ConfigMap/shop/settings']],
      ['prune:workloads', ['ConfigMap/shop/old']],
      ['prune:classes', ['StorageClass/slow']],
      ['prune:definitions', ['Namespace/legacy', 'ClusterRole/old-reader']],
    ]);
    expect(screened.ok && screened.stale.map((id) => id.name)).toEqual(['old', 'slow', 'legacy', 'old-reader']);
  });

  it('has no wait and no validate phase when nothing awaits a definition', () => {
    const desired = rendered(namespace('shop'), crd('example.com', 'Widget', 'widgets'), deployment('web', 'shop'));

    const plan = planCluster(
      desired,
      view({
        live: desired.map((o) => [o.manifest, undefined] as const),
        dryRuns: desired.map((o) => [o.manifest, accepted(appliedLive(o.manifest, '1'))] as const),
      }),
      NOTHING_RECORDED,
      policy(),
    );

    expect(plan.phases.map((p) => p.kind)).toEqual(['apply', 'apply', 'apply']);
  });
});

describe('prune decisions', () => {
  /** A stale object as Plumbline left it in the cluster: managed by it, labelled as this entry's. */
  const ours = (
    m: Manifest,
    extra: { annotations?: Record<string, string>; labels?: Record<string, string> | null; managers?: string[] } = {},
  ) =>
    served(m, {
      resourceVersion: '77',
      uid: `uid-${m.metadata.name}`,
      managedFields: (extra.managers ?? ['plumbline']).map((manager) => ({
        manager,
        operation: manager === 'plumbline' ? ('Apply' as const) : ('Update' as const),
      })),
      labels: extra.labels === undefined ? { 'plumbline.dev/cluster': CLUSTER } : extra.labels,
      ...(extra.annotations ? { annotations: extra.annotations } : {}),
    });
  const old = configMap('old', 'shop');
  const oldId = objectIdOf(old);

  it('reports an object that is already gone as deleted, "already gone"', () => {
    expect(pruneTask(oldId, undefined, CLUSTER)).toEqual({
      kind: 'report',
      change: { object: 'ConfigMap/shop/old', action: 'deleted', message: 'already gone' },
      retain: false,
    });
  });

  it('plans the delete of a stale object of ours, conditional on the live uid and resourceVersion', () => {
    expect(pruneVerdict(oldId, ours(old), CLUSTER)).toBeUndefined();
    expect(pruneTask(oldId, ours(old), CLUSTER)).toEqual({
      kind: 'prune',
      id: oldId,
      uid: 'uid-old',
      resourceVersion: '77',
      why: 'in the inventory, not in this commit',
    });
  });

  it('leaves alone an object that plumbline no longer manages', () => {
    const live = ours(old, { managers: ['kubectl-edit'] });

    expect(pruneVerdict(oldId, live, CLUSTER)).toBe('left alone: no longer managed by plumbline');
    expect(pruneTask(oldId, live, CLUSTER)).toEqual({
      kind: 'report',
      change: {
        object: 'ConfigMap/shop/old',
        action: 'skipped',
        message: 'left alone: no longer managed by plumbline',
      },
      retain: false,
    });
  });

  it('leaves alone an object labelled plumbline.dev/cluster for another registry entry, naming that entry', () => {
    const live = ours(old, { labels: { 'plumbline.dev/cluster': 'production' } });

    expect(pruneTask(oldId, live, CLUSTER)).toMatchObject({
      kind: 'report',
      change: {
        action: 'skipped',
        message: "left alone: labelled plumbline.dev/cluster=production, another registry entry's object",
      },
    });
  });

  it('leaves alone an object without the plumbline.dev/cluster label', () => {
    const live = ours(old, { labels: null });

    expect(pruneVerdict(oldId, live, CLUSTER)).toBe('left alone: no plumbline.dev/cluster label naming this cluster');
    expect(pruneTask(oldId, live, CLUSTER)).toMatchObject({ kind: 'report', change: { action: 'skipped' } });
  });

  it.each([
    ['Namespace', namespace('legacy')],
    ['CustomResourceDefinition', crd('example.com', 'Widget', 'widgets')],
    ['PersistentVolumeClaim', pvc('data', 'shop')],
  ])(
    'leaves a %s alone without annotation plumbline.dev/prune: enabled, and plans its delete with it',
    (kind, manifest) => {
      const id = objectIdOf(manifest);

      const without = pruneTask(id, ours(manifest), CLUSTER);
      const other = pruneTask(id, ours(manifest, { annotations: { 'plumbline.dev/prune': 'yes' } }), CLUSTER);
      const withIt = pruneTask(id, ours(manifest, { annotations: { 'plumbline.dev/prune': 'enabled' } }), CLUSTER);

      const message = `left alone: ${kind} is pruned only with annotation plumbline.dev/prune: enabled`;
      expect(without).toMatchObject({ kind: 'report', change: { action: 'skipped', message } });
      expect(other).toMatchObject({ kind: 'report', change: { action: 'skipped', message } });
      expect(withIt).toEqual({
        kind: 'prune',
        id,
        uid: `uid-${manifest.metadata.name}`,
        resourceVersion: '77',
        why: 'in the inventory, not in this commit',
      });
    },
  );

  it('plans the prune phases of planCluster from the same decisions, and leaves stale objects outside the limits alone', () => {
    const kept = one(configMap('kept', 'shop'));
    const gone = configMap('gone', 'shop');
    const foreign = configMap('foreign', 'shop');
    const outside = configMap('outside', 'kube-system');
    const unread = configMap('unread', 'shop');
    const records = recorded([kept.manifest, old, gone, foreign, outside, unread]);

    const plan = planCluster(
      [kept],
      view({
        live: [
          [kept.manifest, appliedLive(kept.manifest, '1')],
          [old, ours(old)],
          [gone, undefined],
          [foreign, ours(foreign, { labels: { 'plumbline.dev/cluster': 'production' } })],
          [outside, ours(outside)],
          // `unread` is absent: a kind the cluster no longer serves, say.
        ],
        dryRuns: [[kept.manifest, accepted(appliedLive(kept.manifest, '1'))]],
        scopes: [unread],
      }),
      records,
      policy({ limits: limits(), pruneGuards: { maxShare: 1, override: false } }),
    );

    expect(plan.refusal).toBeUndefined();
    expect(prunePhasesOf(plan)).toEqual([
      {
        kind: 'prune',
        stage: 'workloads',
        tasks: [
          {
            kind: 'prune',
            id: oldId,
            uid: 'uid-old',
            resourceVersion: '77',
            why: 'in the inventory, not in this commit',
          },
          {
            kind: 'report',
            change: { object: 'ConfigMap/shop/gone', action: 'deleted', message: 'already gone' },
            retain: false,
          },
          {
            kind: 'report',
            change: {
              object: 'ConfigMap/shop/foreign',
              action: 'skipped',
              message: "left alone: labelled plumbline.dev/cluster=production, another registry entry's object",
            },
            retain: false,
          },
          {
            kind: 'report',
            change: {
              object: 'ConfigMap/kube-system/outside',
              action: 'skipped',
              message: expect.stringMatching(
                /^left alone: outside the tenancy limits \(namespace kube-system is outside/,
              ),
            },
            retain: false,
          },
          { kind: 'prune', id: objectIdOf(unread), why: 'in the inventory, not in this commit' },
        ],
      },
    ]);
  });

  it('plans the delete of a stale object that was not read without a uid: the executor looks it up', () => {
    const kept = one(configMap('kept', 'shop'));
    const unread = configMap('unread', 'shop');

    const plan = planCluster(
      [kept],
      view({
        live: [[kept.manifest, appliedLive(kept.manifest, '1')]],
        dryRuns: [[kept.manifest, accepted(appliedLive(kept.manifest, '1'))]],
        scopes: [unread],
      }),
      recorded([kept.manifest, unread]),
      policy(),
    );
    const task = prunePhasesOf(plan)[0]?.tasks[0];

    expect(task).toEqual({ kind: 'prune', id: objectIdOf(unread), why: 'in the inventory, not in this commit' });
    expect(task?.kind === 'prune' && task.uid).toBeUndefined();
  });
});

describe('planCorrection: putting drifted objects back', () => {
  const web = one(deployment('web', 'shop'));
  const drift = (m: Manifest, kind: 'changed' | 'deleted', changedBy: string[][] = []): DriftedObject => ({
    entry: objectIdOf(m),
    object: objectRef(m),
    kind,
    fields: changedBy.map((by, i) => ({ path: `spec.field${i}`, expected: '1', actual: '2', changedBy: by })),
  });
  const correct = (drifted: DriftedObject[], desired = [web], tenancy = limits()) =>
    planCorrection(drifted, desired, scopesOf(desired.map((o) => o.manifest)), {
      clusterName: CLUSTER,
      limits: tenancy,
    });

  it('skips a drifted object that is not in the render of the applied commit', () => {
    const plan = correct([drift(configMap('gone-from-git', 'shop'), 'changed', [['kubectl-edit']])]);

    expect(plan).toEqual({
      phases: [
        {
          kind: 'apply',
          stage: 'workloads',
          tasks: [
            {
              kind: 'report',
              change: {
                object: 'ConfigMap/shop/gone-from-git',
                action: 'skipped',
                message: 'not in the render of the applied commit',
              },
              retain: false,
            },
          ],
        },
      ],
    });
  });

  it('skips a drifted object outside the tenancy limits', () => {
    const elsewhere = one(deployment('web', 'kube-system'));

    const plan = correct([drift(elsewhere.manifest, 'changed', [['kubectl-edit']])], [web, elsewhere]);

    expect(plan.phases[0]?.tasks).toEqual([
      {
        kind: 'report',
        change: {
          object: 'Deployment/kube-system/web',
          action: 'skipped',
          message: expect.stringMatching(/^left alone: outside the tenancy limits \(namespace kube-system/),
        },
        retain: false,
      },
    ]);
  });

  it('recreates a deleted object with force', () => {
    expect(correct([drift(web.manifest, 'deleted')]).phases[0]?.tasks).toEqual([
      {
        kind: 'apply',
        object: web,
        action: 'created',
        force: true,
        takenFrom: [],
        why: 'deleted in the cluster: recreated',
      },
    ]);
  });

  it('configures a changed object with force, taking the fields from whoever changed them (each named once)', () => {
    const plan = correct([drift(web.manifest, 'changed', [['kubectl-edit'], ['kubectl-edit', 'hpa-controller']])]);

    expect(plan.phases[0]?.tasks).toEqual([
      {
        kind: 'apply',
        object: web,
        action: 'configured',
        force: true,
        takenFrom: ['kubectl-edit', 'hpa-controller'],
        why: 'drifted from the applied commit: put back',
      },
    ]);
  });
});

/** A client that fails the test on any request: a dry run of a plan must need none. */
const NO_REQUESTS: ClusterClient = {
  apply: async (manifest) => {
    throw new Error(`no request expected: apply ${objectRef(manifest)}`);
  },
  get: async (manifest) => {
    throw new Error(`no request expected: get ${objectRef(manifest)}`);
  },
  delete: async (manifest) => {
    throw new Error(`no request expected: delete ${objectRef(manifest)}`);
  },
  list: async (_apiVersion, kind) => {
    throw new Error(`no request expected: list ${kind}`);
  },
  scopeOf: async (_apiVersion, kind) => {
    throw new Error(`no request expected: scopeOf ${kind}`);
  },
  forRecords: () => {
    throw new Error('no request expected: forRecords');
  },
};

const EXECUTE = {
  concurrency: 4,
  conflicts: 'take-ownership',
  establishTimeoutMs: 1_000,
  clusterName: CLUSTER,
} as const;

describe('execute with dryRun: the plan run without a single request', () => {
  /** A commit creating a Namespace and an object in it, configuring one, leaving one alone, pruning one. */
  function fixturePlan() {
    const [ns, web, settings, same] = rendered(
      namespace('shop'),
      deployment('web', 'shop'),
      configMap('settings', 'default', { key: 'new' }),
      configMap('same', 'default'),
    );
    const [before] = rendered(configMap('settings', 'default', { key: 'old' }));
    const old = configMap('old', 'default');
    const oldLive = served(old, {
      resourceVersion: '9',
      managedFields: [{ manager: 'plumbline', operation: 'Apply' }],
      labels: { 'plumbline.dev/cluster': CLUSTER },
    });
    const objects = [ns, web, settings, same] as const;
    const plan = planCluster(
      objects,
      view({
        live: [
          [ns.manifest, undefined],
          [web.manifest, undefined],
          [settings.manifest, appliedLive(before.manifest, '20')],
          [same.manifest, appliedLive(same.manifest, '21')],
          [old, oldLive],
        ],
        dryRuns: [
          [ns.manifest, accepted(appliedLive(ns.manifest, '1'))],
          [web.manifest, refused('missing-namespace', 'namespaces "shop" not found', 404)],
          [settings.manifest, accepted(appliedLive(settings.manifest, '20'))],
          [same.manifest, accepted(appliedLive(same.manifest, '21'))],
        ],
      }),
      recorded([same.manifest, settings.manifest, old]),
      policy(),
    );
    return { plan, objects };
  }

  it('lists created, configured (with diff), unchanged, awaiting objects as created, and "would be pruned" deletes', async () => {
    const { plan, objects } = fixturePlan();
    const [ns, web, settings, same] = objects;

    const execution = await execute(NO_REQUESTS, plan, { ...EXECUTE, dryRun: true });

    expect(plan.refusal).toBeUndefined();
    expect(execution).toEqual({
      ok: true,
      changeSet: {
        changes: [
          { object: 'Namespace/shop', action: 'created', source: ns.source },
          // Awaiting its Namespace: not validated in a preview (nothing is created), reported as created.
          {
            object: 'Deployment/shop/web',
            action: 'created',
            source: web.source,
            message: 'validated once the Namespace it needs is created by this commit',
          },
          {
            object: 'ConfigMap/default/settings',
            action: 'configured',
            source: settings.source,
            diff: [{ path: 'data.key', change: 'changed', after: '"new"' }],
          },
          { object: 'ConfigMap/default/same', action: 'unchanged', source: same.source },
          { object: 'ConfigMap/default/old', action: 'deleted', message: 'would be pruned' },
        ],
      },
      records: new Map(),
      retained: [objectIdOf(configMap('old', 'default'))],
    });
  });

  it('executes a refused plan without a request: a sync skips the other objects, a preview shows their planned action', async () => {
    const [good, bad] = rendered(configMap('good', 'shop'), configMap('bad', 'shop'));
    const rejection = refused('rejected', 'ConfigMap/shop/bad: data: Invalid value');
    const plan = planCluster(
      [good, bad],
      view({
        live: [
          [good.manifest, undefined],
          [bad.manifest, undefined],
        ],
        dryRuns: [
          [good.manifest, accepted(appliedLive(good.manifest, '1'))],
          [bad.manifest, rejection],
        ],
      }),
      NOTHING_RECORDED,
      policy(),
    );
    const failed = {
      object: 'ConfigMap/shop/bad',
      action: 'failed',
      source: bad.source,
      message: 'ConfigMap/shop/bad: data: Invalid value',
    };

    const sync = await execute(NO_REQUESTS, plan, { ...EXECUTE, dryRun: false });
    const preview = await execute(NO_REQUESTS, plan, { ...EXECUTE, dryRun: true });

    expect(plan.refusal?.reason).toBe('rejected');
    expect(sync).toEqual({
      ok: false,
      changeSet: {
        changes: [
          failed,
          {
            object: 'ConfigMap/shop/good',
            action: 'skipped',
            source: good.source,
            message: 'not applied: another object of the commit was rejected',
          },
        ],
      },
      records: new Map(),
      retained: [],
    });
    expect(preview).toEqual({
      ok: false,
      changeSet: { changes: [failed, { object: 'ConfigMap/shop/good', action: 'created', source: good.source }] },
      records: new Map(),
      retained: [],
    });
  });

  it('executes a tenancy refusal without a request: each object outside the limits failed, with its file', async () => {
    const [outside] = rendered(configMap('x', 'kube-system'));
    const plan = planCluster(
      [outside],
      view({ scopes: [outside.manifest] }),
      NOTHING_RECORDED,
      policy({ limits: limits() }),
    );

    const sync = await execute(NO_REQUESTS, plan, { ...EXECUTE, dryRun: false });

    expect(sync.ok).toBe(false);
    expect(sync.changeSet.changes).toEqual([
      {
        object: 'ConfigMap/kube-system/x',
        action: 'failed',
        source: outside.source,
        message: expect.stringMatching(/^ConfigMap\/kube-system\/x: namespace kube-system is outside/),
      },
    ]);
  });
});

describe('planCluster: apps in waves, hooks, health gates (ADR 13)', () => {
  const app = (name: string, wave: number, dependsOn: string[] = []) => ({
    name,
    wave,
    dependsOn,
    chart: true,
    source: { file: 'clusters/a/plumbline.yaml', line: 4 },
    objects: 1,
  });
  const of = (name: string, manifest: Manifest, hook?: RenderedObject['hook']) => ({
    ...one(manifest),
    app: { name, chart: true },
    ...(hook ? { hook } : {}),
  });
  const pre = { phases: ['pre-install', 'pre-upgrade'] as const, weight: 0, deletePolicies: ['before-hook-creation'] };
  const crds = of('crds', crd('example.com', 'Widget', 'widgets'));
  const operator = of('operator', deployment('operator', 'ops'));
  const web = of('web', deployment('web', 'shop'));
  const migrate = of('web', configMap('migrate', 'shop'), { ...pre, phases: ['pre-install', 'pre-upgrade'] });
  const fresh = (m: Manifest) => served(m, { resourceVersion: '1', managedFields: [appliedBy(m)] });
  const apps = [app('crds', 0), app('operator', 0), app('web', 1, ['operator'])];
  const created = (manifests: Manifest[]) =>
    view({
      live: manifests.map((m) => [m, undefined] as const),
      dryRuns: manifests.map((m) => [m, accepted(fresh(m))] as const),
    });

  it('applies definitions of every app first, then each wave, waiting for the health of what the next wave needs', () => {
    const all = [crds, operator, web, migrate];
    const plan = planCluster(all, created(all.map((o) => o.manifest)), NOTHING_RECORDED, policy(), apps);

    expect(shape(plan)).toEqual([
      ['apply:definitions', ['CustomResourceDefinition/widgets.example.com']],
      ['apply:classes', []],
      ['apply:workloads', ['Deployment/ops/operator']],
      ['health', ['Deployment/ops/operator']],
      ['hooks', ['ConfigMap/shop/migrate']],
      ['apply:classes', []],
      ['apply:workloads', ['Deployment/shop/web']],
    ]);
    const hooks = plan.phases.find((phase) => phase.kind === 'hooks');
    expect(hooks).toMatchObject({ app: 'web', when: 'pre', tasks: [{ hookPhase: 'pre-install' }] });
  });

  it('runs pre-upgrade hooks when the app changes, and none when it is left as it is', () => {
    const changedWeb = of('web', deployment('web', 'shop', 5));
    const live = appliedLive(web.manifest, '41');
    const changed = planCluster(
      [changedWeb, migrate],
      view({
        live: [
          [web.manifest, live],
          [migrate.manifest, undefined],
        ],
        dryRuns: [
          [changedWeb.manifest, accepted(fresh(changedWeb.manifest))],
          [migrate.manifest, accepted(fresh(migrate.manifest))],
        ],
      }),
      NOTHING_RECORDED,
      policy(),
      [app('web', 0)],
    );
    expect(changed.phases.find((phase) => phase.kind === 'hooks')).toMatchObject({
      tasks: [{ hookPhase: 'pre-upgrade' }],
    });

    const same = planCluster(
      [web, migrate],
      view({
        live: [
          [web.manifest, live],
          [migrate.manifest, undefined],
        ],
        dryRuns: [
          [web.manifest, accepted(live)],
          [migrate.manifest, accepted(fresh(migrate.manifest))],
        ],
      }),
      NOTHING_RECORDED,
      policy(),
      [app('web', 0)],
    );
    expect(applyTasks(same).map((task) => task.action)).toEqual(['unchanged']);
    expect(same.phases.some((phase) => phase.kind === 'hooks')).toBe(false);
  });

  it('a hook left from an earlier run is replaced: its dry-run against the old one does not reject the commit', () => {
    const job = of(
      'web',
      { apiVersion: 'batch/v1', kind: 'Job', metadata: { name: 'migrate', namespace: 'shop' } },
      pre,
    );
    const old = served(job.manifest, { uid: 'u-1', resourceVersion: '7', managedFields: [appliedBy(job.manifest)] });
    const plan = planCluster(
      [web, job],
      view({
        live: [
          [web.manifest, undefined],
          [job.manifest, old],
        ],
        dryRuns: [
          [web.manifest, accepted(fresh(web.manifest))],
          [job.manifest, refused('rejected', 'spec.template: field is immutable')],
        ],
      }),
      NOTHING_RECORDED,
      policy(),
      [app('web', 0)],
    );
    expect(plan.refusal).toBeUndefined();
    expect(plan.phases.find((phase) => phase.kind === 'hooks')).toMatchObject({ tasks: [{ live: { uid: 'u-1' } }] });

    // Without before-hook-creation the old hook stays: the rejection stands.
    const kept = { ...job, hook: { ...pre, deletePolicies: ['hook-succeeded'] } };
    const refusedPlan = planCluster(
      [web, kept],
      view({
        live: [
          [web.manifest, undefined],
          [job.manifest, old],
        ],
        dryRuns: [
          [web.manifest, accepted(fresh(web.manifest))],
          [job.manifest, refused('rejected', 'spec.template: field is immutable')],
        ],
      }),
      NOTHING_RECORDED,
      policy(),
      [app('web', 0)],
    );
    expect(refusedPlan.refusal?.reason).toBe('rejected');
  });

  it("leaves stale objects of a prune: false app, and Helm's resource-policy keep, alone", () => {
    const id = objectIdOf(configMap('old', 'shop'));
    const live = (annotations: Record<string, string>) =>
      served(configMap('old', 'shop'), {
        resourceVersion: '3',
        managedFields: [appliedBy(configMap('old', 'shop'))],
        labels: { 'plumbline.dev/cluster': CLUSTER },
        annotations,
      });
    expect(pruneVerdict(id, live({ 'plumbline.dev/prune': 'disabled' }), CLUSTER)).toMatch(/prune: false/);
    expect(pruneVerdict(id, live({ 'helm.sh/resource-policy': 'keep' }), CLUSTER)).toMatch(/resource-policy: keep/);
    expect(pruneVerdict(id, live({}), CLUSTER)).toBeUndefined();
  });
});
