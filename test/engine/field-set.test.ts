import { describe, expect, it } from '@jest/globals';
import type { V1ManagedFieldsEntry } from '@kubernetes/client-node';
import type { LiveObject } from '../../src/engine/cluster-client.ts';
import {
  baselineOf,
  displayPath,
  driftOf,
  type FieldPath,
  type FieldsV1,
  leafPaths,
  segmentNames,
  valueAt,
} from '../../src/engine/field-set.ts';
import { MASK, showValue } from '../../src/engine/object-diff.ts';

const WEB = 'k:{"name":"web"}';
const HTTP = 'k:{"containerPort":80,"protocol":"TCP"}';
const DB_PASSWORD = 'k:{"name":"DB_PASSWORD"}';
const CLEANUP = 'v:"example.com/cleanup"';
const CONTAINER: FieldPath = ['f:spec', 'f:template', 'f:spec', 'f:containers', WEB];
const IMAGE: FieldPath = [...CONTAINER, 'f:image'];
const LABEL_APP: FieldPath = ['f:metadata', 'f:labels', 'f:app'];
const FINALIZER: FieldPath = ['f:metadata', 'f:finalizers', CLEANUP];
const NOTE: FieldPath = ['f:metadata', 'f:annotations', 'f:example.com/note'];

/** What Plumbline's server-side apply of the Deployment below set; keys deliberately out of order. */
const plumblineFields = (): FieldsV1 => ({
  'f:spec': {
    'f:template': {
      'f:spec': {
        'f:securityContext': { '.': {} },
        'f:containers': {
          [WEB]: {
            'f:ports': { [HTTP]: { 'f:protocol': {}, '.': {}, 'f:containerPort': {} } },
            'f:name': {},
            'f:image': {},
            'f:env': { [DB_PASSWORD]: { 'f:value': {}, 'f:name': {}, '.': {} } },
            'f:args': {},
            '.': {},
          },
        },
      },
      'f:metadata': { 'f:labels': { 'f:app': {}, '.': {} } },
    },
    'f:selector': {},
  },
  'f:metadata': {
    'f:labels': { 'f:app': {}, '.': {} },
    'f:finalizers': { [CLEANUP]: {}, '.': {} },
  },
});

const EXPECTED_LEAVES: FieldPath[] = [
  FINALIZER,
  LABEL_APP,
  ['f:spec', 'f:selector'],
  ['f:spec', 'f:template', 'f:metadata', 'f:labels', 'f:app'],
  [...CONTAINER, 'f:args'],
  [...CONTAINER, 'f:env', DB_PASSWORD, 'f:name'],
  [...CONTAINER, 'f:env', DB_PASSWORD, 'f:value'],
  IMAGE,
  [...CONTAINER, 'f:name'],
  [...CONTAINER, 'f:ports', HTTP, 'f:containerPort'],
  [...CONTAINER, 'f:ports', HTTP, 'f:protocol'],
  ['f:spec', 'f:template', 'f:spec', 'f:securityContext'],
];

interface Entry {
  manager: string;
  operation: 'Apply' | 'Update';
  time: string;
  fieldsV1?: FieldsV1;
  subresource?: string;
}

const plumblineApply = (fieldsV1: FieldsV1 = plumblineFields(), time = '2024-05-01T12:00:00Z'): Entry => ({
  manager: 'plumbline',
  operation: 'Apply',
  time,
  fieldsV1,
});

/** The HPA (kube-controller-manager) owns replicas through the scale subresource. */
const hpaScale = (time = '2024-05-01T08:00:00Z'): Entry => ({
  manager: 'kube-controller-manager',
  operation: 'Update',
  subresource: 'scale',
  time,
  fieldsV1: { 'f:spec': { 'f:replicas': {} } },
});

const deployment = (
  managedFields: Entry[],
  overrides: { image?: string; labels?: Record<string, string>; replicas?: number; finalizers?: string[] } = {},
): LiveObject => ({
  apiVersion: 'apps/v1',
  kind: 'Deployment',
  metadata: {
    name: 'web',
    namespace: 'shop',
    labels: overrides.labels ?? { app: 'web' },
    finalizers: overrides.finalizers ?? ['example.com/cleanup'],
    // As JSON from the apiserver: `time` is an RFC 3339 string, not the client library's Date.
    managedFields: managedFields as unknown as V1ManagedFieldsEntry[],
  },
  spec: {
    replicas: overrides.replicas ?? 2,
    selector: { matchLabels: { app: 'web' } },
    template: {
      metadata: { labels: { app: 'web' } },
      spec: {
        securityContext: {},
        containers: [
          {
            name: 'web',
            image: overrides.image ?? 'nginx:1.25',
            args: ['--listen', '--port=80'],
            env: [{ name: 'DB_PASSWORD', value: 'hunter2-correct-horse' }],
            ports: [{ containerPort: 80, protocol: 'TCP' }],
          },
        ],
      },
    },
  },
});

/** Just the Apply response's view: what baselineOf would have recorded at the last apply. */
const appliedBaseline = () => {
  const baseline = baselineOf(deployment([hpaScale(), plumblineApply()]));
  if (!baseline) throw new Error('expected a baseline');
  return baseline;
};

describe('leafPaths', () => {
  it('lists leaves in sorted order whatever the key order', () => {
    expect(leafPaths({ 'f:b': {}, 'f:a': { 'f:z': {}, 'f:y': {} } })).toEqual([
      ['f:a', 'f:y'],
      ['f:a', 'f:z'],
      ['f:b'],
    ]);
  });

  it('walks a realistic field set: skips ".", descends into list items, treats "."-only nodes as leaves', () => {
    expect(leafPaths(plumblineFields())).toEqual(EXPECTED_LEAVES);
  });

  it('treats a node whose only child is "." as a leaf, and a node with more children as a branch', () => {
    expect(leafPaths({ 'f:spec': { 'f:securityContext': { '.': {} } } })).toEqual([['f:spec', 'f:securityContext']]);
    expect(leafPaths({ 'f:spec': { 'f:securityContext': { '.': {}, 'f:runAsUser': {} } } })).toEqual([
      ['f:spec', 'f:securityContext', 'f:runAsUser'],
    ]);
  });

  it('returns nothing for an empty set or one holding only "."', () => {
    expect(leafPaths({})).toEqual([]);
    expect(leafPaths({ '.': {} })).toEqual([]);
  });

  it('prepends the given prefix', () => {
    expect(leafPaths({ 'f:app': {} }, ['f:metadata', 'f:labels'])).toEqual([LABEL_APP]);
  });
});

describe('valueAt', () => {
  const object = deployment([]);

  it('follows f: segments through maps', () => {
    expect(valueAt(object, LABEL_APP)).toBe('web');
    expect(valueAt(object, ['f:spec', 'f:replicas'])).toBe(2);
    expect(valueAt(object, ['f:spec', 'f:selector'])).toEqual({ matchLabels: { app: 'web' } });
  });

  it('returns the object itself for an empty path', () => {
    expect(valueAt(object, [])).toBe(object);
  });

  it('finds a list item by its k: keys', () => {
    expect(valueAt(object, IMAGE)).toBe('nginx:1.25');
    expect(valueAt(object, [...CONTAINER, 'f:env', DB_PASSWORD, 'f:value'])).toBe('hunter2-correct-horse');
    expect(valueAt(object, ['f:spec', 'f:template', 'f:spec', 'f:containers', 'k:{"name":"sidecar"}'])).toBeUndefined();
  });

  it('matches every key of a multi-key k: segment, with its JSON type', () => {
    const spec = {
      ports: [
        { containerPort: 80, protocol: 'TCP', name: 'http' },
        { containerPort: 53, protocol: 'TCP', name: 'dns-tcp' },
        { containerPort: 53, protocol: 'UDP', name: 'dns-udp' },
      ],
    };
    expect(valueAt(spec, ['f:ports', 'k:{"containerPort":53,"protocol":"UDP"}', 'f:name'])).toBe('dns-udp');
    expect(valueAt(spec, ['f:ports', 'k:{"containerPort":53,"protocol":"TCP"}', 'f:name'])).toBe('dns-tcp');
    expect(valueAt(spec, ['f:ports', HTTP])).toEqual({ containerPort: 80, protocol: 'TCP', name: 'http' });
    expect(valueAt(spec, ['f:ports', 'k:{"containerPort":80,"protocol":"UDP"}'])).toBeUndefined();
    expect(valueAt(spec, ['f:ports', 'k:{"containerPort":"80","protocol":"TCP"}'])).toBeUndefined();
  });

  it('finds a set member by its v: value', () => {
    expect(valueAt(object, FINALIZER)).toBe('example.com/cleanup');
    expect(valueAt(object, ['f:metadata', 'f:finalizers', 'v:"example.com/other"'])).toBeUndefined();
    expect(valueAt({ ids: [3, 5, 8] }, ['f:ids', 'v:5'])).toBe(5);
    expect(valueAt({ ids: [3, 5, 8] }, ['f:ids', 'v:"5"'])).toBeUndefined();
  });

  it('indexes a list with i:', () => {
    expect(valueAt(object, [...CONTAINER, 'f:args', 'i:1'])).toBe('--port=80');
    expect(valueAt(object, ['f:spec', 'f:template', 'f:spec', 'f:containers', 'i:0', 'f:name'])).toBe('web');
    expect(valueAt(object, [...CONTAINER, 'f:args', 'i:2'])).toBeUndefined();
  });

  it('returns undefined for paths that are not there', () => {
    expect(valueAt(object, ['f:metadata', 'f:annotations'])).toBeUndefined();
    expect(valueAt(object, NOTE)).toBeUndefined();
    expect(valueAt({ spec: null }, ['f:spec', 'f:replicas'])).toBeUndefined();
    expect(valueAt(undefined, ['f:spec'])).toBeUndefined();
  });

  it('returns undefined when a segment meets the wrong kind of container', () => {
    // f: on a list or a string (which would otherwise yield `length`).
    expect(valueAt(object, ['f:spec', 'f:template', 'f:spec', 'f:containers', 'f:length'])).toBeUndefined();
    expect(valueAt(object, ['f:metadata', 'f:name', 'f:length'])).toBeUndefined();
    // k:/v:/i: on a map, even one whose keys would match.
    expect(valueAt({ labels: { name: 'web' } }, ['f:labels', WEB])).toBeUndefined();
    expect(valueAt({ labels: { web: 'web' } }, ['f:labels', 'v:"web"'])).toBeUndefined();
    expect(valueAt({ labels: { '0': 'zero' } }, ['f:labels', 'i:0'])).toBeUndefined();
    // k: on a list of scalars.
    expect(valueAt({ args: ['web'] }, ['f:args', WEB])).toBeUndefined();
  });

  it('returns undefined for a segment of unknown kind', () => {
    expect(valueAt(object, ['f:metadata', '.'])).toBeUndefined();
    expect(valueAt({ spec: { x: 1 } }, ['f:spec', 'x:x'])).toBeUndefined();
  });
});

describe('baselineOf', () => {
  it("records Plumbline's Apply field set and each leaf's value, aligned with leafPaths", () => {
    const fields = plumblineFields();
    const baseline = baselineOf(deployment([hpaScale(), plumblineApply(fields)]));
    expect(baseline?.fields).toEqual(fields);
    expect(baseline?.values).toEqual([
      'example.com/cleanup',
      'web',
      { matchLabels: { app: 'web' } },
      'web',
      ['--listen', '--port=80'],
      'DB_PASSWORD',
      'hunter2-correct-horse',
      'nginx:1.25',
      'web',
      80,
      'TCP',
      {},
    ]);
    expect(baseline?.values).toHaveLength(leafPaths(fields).length);
  });

  it('records null for a field it set that the object does not hold', () => {
    const fields: FieldsV1 = {
      'f:metadata': { 'f:annotations': { 'f:example.com/note': {} }, 'f:labels': { 'f:app': {} } },
    };
    const baseline = baselineOf(deployment([plumblineApply(fields)]));
    expect(baseline?.values).toEqual([null, 'web']);
  });

  it("ignores a plumbline Update entry and other managers' Apply entries", () => {
    const update: Entry = {
      manager: 'plumbline',
      operation: 'Update',
      time: '2024-05-01T13:00:00Z',
      fieldsV1: { 'f:spec': { 'f:replicas': {} } },
    };
    const otherApply: Entry = {
      manager: 'argocd-controller',
      operation: 'Apply',
      time: '2024-05-01T14:00:00Z',
      fieldsV1: { 'f:metadata': { 'f:labels': { 'f:app': {} } } },
    };
    const baseline = baselineOf(
      deployment([update, otherApply, hpaScale(), plumblineApply({ 'f:spec': { 'f:selector': {} } })]),
    );
    expect(baseline).toEqual({ fields: { 'f:spec': { 'f:selector': {} } }, values: [{ matchLabels: { app: 'web' } }] });
  });

  it('returns undefined when Plumbline has no Apply entry', () => {
    const update: Entry = { ...plumblineApply(), operation: 'Update' };
    const otherApply: Entry = { ...plumblineApply(), manager: 'kubectl' };
    expect(baselineOf(deployment([update, otherApply, hpaScale()]))).toBeUndefined();
    expect(baselineOf(deployment([]))).toBeUndefined();
    const { managedFields: _, ...metadata } = deployment([]).metadata as Record<string, unknown>;
    expect(baselineOf({ ...deployment([]), metadata })).toBeUndefined();
  });

  it('returns undefined when the Apply entry carries no fieldsV1', () => {
    const { fieldsV1: _, ...bare } = plumblineApply();
    expect(baselineOf(deployment([bare]))).toBeUndefined();
  });

  it('uses another manager name when given one', () => {
    const otherApply: Entry = {
      manager: 'argocd-controller',
      operation: 'Apply',
      time: '2024-05-01T14:00:00Z',
      fieldsV1: { 'f:spec': { 'f:replicas': {} } },
    };
    expect(baselineOf(deployment([plumblineApply(), otherApply]), 'argocd-controller')?.values).toEqual([2]);
  });
});

describe('driftOf', () => {
  it('finds no drift when the live object still holds the recorded values', () => {
    const baseline = appliedBaseline();
    expect(driftOf(deployment([hpaScale(), plumblineApply()]), baseline)).toEqual([]);
  });

  it('does not count key order inside a recorded value as drift', () => {
    const baseline = appliedBaseline();
    const live = deployment([plumblineApply()]);
    const spec = live.spec as { selector: unknown };
    spec.selector = { matchLabels: { app: 'web' } };
    const reordered = {
      ...baseline,
      values: baseline.values.map((v, i) => (i === 2 ? { matchLabels: { app: 'web' } } : v)),
    };
    expect(driftOf(live, reordered)).toEqual([]);
  });

  it('attributes a changed value to the manager that owns the field now', () => {
    const baseline = appliedBaseline();
    const withoutImage = plumblineFields();
    const container = (withoutImage['f:spec']?.['f:template']?.['f:spec']?.['f:containers']?.[WEB] ?? {}) as Record<
      string,
      FieldsV1
    >;
    delete container['f:image'];
    const edit: Entry = {
      manager: 'kubectl-edit',
      operation: 'Update',
      time: '2024-05-01T12:30:00Z',
      fieldsV1: { 'f:spec': { 'f:template': { 'f:spec': { 'f:containers': { [WEB]: { 'f:image': {} } } } } } },
    };
    const later: Entry = {
      manager: 'kubectl-label',
      operation: 'Update',
      time: '2024-05-01T13:00:00Z',
      fieldsV1: { 'f:metadata': { 'f:labels': { 'f:tier': {} } } },
    };
    const live = deployment([hpaScale(), plumblineApply(withoutImage), edit, later], {
      image: 'nginx:1.26',
      labels: { app: 'web', tier: 'frontend' },
    });
    expect(driftOf(live, baseline)).toEqual([
      { path: IMAGE, recorded: 'nginx:1.25', live: 'nginx:1.26', changedBy: ['kubectl-edit'] },
    ]);
  });

  it('names every current owner of a changed field once, never Plumbline itself', () => {
    const baseline = appliedBaseline();
    const ownsLabel: FieldsV1 = { 'f:metadata': { 'f:labels': { 'f:app': {} } } };
    const live = deployment(
      [
        { manager: 'team-bot', operation: 'Apply', time: '2024-05-01T12:10:00Z', fieldsV1: ownsLabel },
        plumblineApply(),
        { manager: 'kubectl-edit', operation: 'Update', time: '2024-05-01T12:20:00Z', fieldsV1: ownsLabel },
        {
          manager: 'kubectl-edit',
          operation: 'Update',
          subresource: 'status',
          time: '2024-05-01T12:30:00Z',
          fieldsV1: ownsLabel,
        },
      ],
      { labels: { app: 'shop' } },
    );
    expect(driftOf(live, baseline)).toEqual([
      { path: LABEL_APP, recorded: 'web', live: 'shop', changedBy: ['team-bot', 'kubectl-edit'] },
    ]);
  });

  it('attributes a removed field to the other manager that updated the object last', () => {
    const baseline = appliedBaseline();
    const at = (manager: string, time: string): Entry => ({
      manager,
      operation: 'Update',
      time,
      fieldsV1: { 'f:metadata': { 'f:annotations': { [`f:${manager}`]: {} } } },
    });
    const live = deployment(
      [
        at('kubectl-edit', '2024-05-01T10:00:00Z'),
        at('kubectl-patch', '2024-05-01T11:30:00Z'),
        plumblineApply(plumblineFields(), '2024-05-01T12:00:00Z'),
        hpaScale('2024-05-01T09:00:00Z'),
        at('helm', '2024-04-30T23:59:59Z'),
      ],
      { labels: {} },
    );
    expect(driftOf(live, baseline)).toEqual([
      { path: LABEL_APP, recorded: 'web', live: undefined, changedBy: ['kubectl-patch'] },
    ]);
  });

  it('names nobody for a removed field when no other manager touched the object', () => {
    const baseline = appliedBaseline();
    const live = deployment([plumblineApply()], { finalizers: [] });
    expect(driftOf(live, baseline)).toEqual([
      { path: FINALIZER, recorded: 'example.com/cleanup', live: undefined, changedBy: [] },
    ]);
  });

  it('does not count a recorded null against a field that is still absent, but does once it appears', () => {
    const fields: FieldsV1 = { 'f:metadata': { 'f:annotations': { 'f:example.com/note': {} } } };
    const baseline = baselineOf(deployment([plumblineApply(fields)]));
    if (!baseline) throw new Error('expected a baseline');
    expect(baseline.values).toEqual([null]);
    expect(driftOf(deployment([plumblineApply(fields)]), baseline)).toEqual([]);

    const live = deployment([plumblineApply(fields)]);
    (live.metadata as Record<string, unknown>).annotations = { 'example.com/note': 'hi' };
    expect(driftOf(live, baseline)).toEqual([{ path: NOTE, recorded: null, live: 'hi', changedBy: [] }]);
  });

  it("ignores fields outside the baseline, such as the HPA's replicas or another manager's label", () => {
    const baseline = appliedBaseline();
    const label: Entry = {
      manager: 'kubectl-label',
      operation: 'Update',
      time: '2024-05-01T13:00:00Z',
      fieldsV1: { 'f:metadata': { 'f:labels': { 'f:tier': {} } } },
    };
    const live = deployment([hpaScale('2024-05-01T13:05:00Z'), plumblineApply(), label], {
      replicas: 7,
      labels: { app: 'web', tier: 'frontend' },
    });
    expect(driftOf(live, baseline)).toEqual([]);
  });

  it('reports every drifted leaf, in leaf order', () => {
    const baseline = appliedBaseline();
    const live = deployment([plumblineApply()], { image: 'nginx:1.26', labels: { app: 'shop' } });
    expect(driftOf(live, baseline).map((d) => d.path)).toEqual([LABEL_APP, IMAGE]);
  });
});

describe('segmentNames and displayPath', () => {
  it('shows a container field by the container name', () => {
    expect(segmentNames(IMAGE)).toEqual(['spec', 'template', 'spec', 'containers', 'web', 'image']);
    expect(displayPath(IMAGE)).toBe('spec.template.spec.containers[web].image');
  });

  it('shows plain fields dotted', () => {
    expect(segmentNames(LABEL_APP)).toEqual(['metadata', 'labels', 'app']);
    expect(displayPath(LABEL_APP)).toBe('metadata.labels.app');
    expect(displayPath(NOTE)).toBe('metadata.annotations.example.com/note');
  });

  it('joins the values of a multi-key item', () => {
    const path: FieldPath = [...CONTAINER, 'f:ports', HTTP, 'f:protocol'];
    expect(segmentNames(path).slice(-2)).toEqual(['80,TCP', 'protocol']);
    expect(displayPath(path)).toBe('spec.template.spec.containers[web].ports[80,TCP].protocol');
  });

  it('shows set members by value, unquoted when they are strings', () => {
    expect(segmentNames(FINALIZER)).toEqual(['metadata', 'finalizers', 'example.com/cleanup']);
    expect(displayPath(FINALIZER)).toBe('metadata.finalizers[example.com/cleanup]');
    expect(displayPath(['f:spec', 'f:ids', 'v:5'])).toBe('spec.ids[5]');
    expect(displayPath(['f:spec', 'f:pairs', 'v:[1,"a"]'])).toBe('spec.pairs[[1,"a"]]');
  });

  it('shows an index in brackets', () => {
    expect(displayPath([...CONTAINER, 'f:args', 'i:1'])).toBe('spec.template.spec.containers[web].args[1]');
    expect(displayPath(['f:spec', 'f:template', 'f:spec', 'f:containers', 'i:0', 'f:image'])).toBe(
      'spec.template.spec.containers[0].image',
    );
  });

  it('gives an empty path an empty display', () => {
    expect(segmentNames([])).toEqual([]);
    expect(displayPath([])).toBe('');
  });

  it("gives showValue names that mask a secret env var's value and nothing else", () => {
    const secret = [...CONTAINER, 'f:env', DB_PASSWORD, 'f:value'];
    expect(showValue('hunter2-correct-horse', { kind: 'Deployment', segments: segmentNames(secret) })).toBe(MASK);
    expect(showValue('nginx:1.26', { kind: 'Deployment', segments: segmentNames(IMAGE) })).toBe('"nginx:1.26"');
  });
});
