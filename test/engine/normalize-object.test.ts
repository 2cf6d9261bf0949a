import { isDeepStrictEqual } from 'node:util';
import { describe, expect, it } from '@jest/globals';
import type { LiveObject } from '../../src/engine/cluster-client.ts';
import { comparable } from '../../src/engine/normalize-object.ts';

const LAST_APPLIED = 'kubectl.kubernetes.io/last-applied-configuration';

/** A live Deployment as the apiserver returns it: what the user wrote plus the server's bookkeeping. */
const live = (): LiveObject => ({
  apiVersion: 'apps/v1',
  kind: 'Deployment',
  metadata: {
    name: 'podinfo',
    namespace: 'apps',
    labels: { app: 'podinfo' },
    annotations: { [LAST_APPLIED]: '{"spec":{}}', owner: 'team-a' },
    uid: '6f1c3e52-0b4e-4c39-9d2f-1c2b3a4d5e6f',
    resourceVersion: '41',
    generation: 3,
    creationTimestamp: new Date('2024-01-01T00:00:00Z'),
    managedFields: [{ manager: 'plumbline', operation: 'Apply' }],
  },
  spec: { replicas: 2 },
  status: { replicas: 2, readyReplicas: 2 },
});

describe('comparable', () => {
  it('keeps what the user wrote — annotations included — and drops status and the server bookkeeping', () => {
    expect(comparable(live())).toEqual({
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: {
        name: 'podinfo',
        namespace: 'apps',
        labels: { app: 'podinfo' },
        annotations: { [LAST_APPLIED]: '{"spec":{}}', owner: 'team-a' },
      },
      spec: { replicas: 2 },
    });
  });

  it.each(['managedFields', 'resourceVersion', 'generation', 'creationTimestamp', 'uid'])(
    'makes a dry-run result equal to the live object when only metadata.%s differs',
    (field) => {
      const dryRun = live();
      (dryRun.metadata as Record<string, unknown>)[field] = 'changed by the server';
      expect(isDeepStrictEqual(dryRun, live())).toBe(false);
      expect(isDeepStrictEqual(comparable(dryRun), comparable(live()))).toBe(true);
    },
  );

  it('makes them equal when only status differs', () => {
    expect(isDeepStrictEqual(comparable({ ...live(), status: { replicas: 1 } }), comparable(live()))).toBe(true);
    expect(comparable({ ...live(), status: undefined })).not.toHaveProperty('status');
  });

  it.each([
    ['a label', (o: LiveObject) => ({ ...o, metadata: { ...o.metadata, labels: { app: 'other' } } })],
    ['an annotation', (o: LiveObject) => ({ ...o, metadata: { ...o.metadata, annotations: { owner: 'team-b' } } })],
    ['the spec', (o: LiveObject) => ({ ...o, spec: { replicas: 3 } })],
    ['a top-level field', (o: LiveObject) => ({ ...o, data: { key: 'value' } })],
  ])('keeps them different when %s differs', (_what, edit) => {
    expect(isDeepStrictEqual(comparable(edit(live())), comparable(live()))).toBe(false);
  });

  it('leaves an absent metadata absent, and does not change its input', () => {
    expect(comparable({ apiVersion: 'v1', kind: 'List', items: [], status: {} })).toEqual({
      apiVersion: 'v1',
      kind: 'List',
      items: [],
    });
    const object = live();
    const before = structuredClone(object);
    comparable(object);
    expect(object).toEqual(before);
  });
});
