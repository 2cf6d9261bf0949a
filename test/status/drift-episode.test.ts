import { describe, expect, it } from '@jest/globals';
import type { DriftedObject } from '../../src/engine/drift.ts';
import {
  type DriftObservation,
  decideDriftEpisode,
  driftSignature,
  resyncResultText,
} from '../../src/status/drift-episode.ts';

const imageEdited: DriftedObject = {
  entry: { apiVersion: 'apps/v1', kind: 'Deployment', namespace: 'shop', name: 'web' },
  object: 'Deployment/shop/web',
  kind: 'changed',
  fields: [
    {
      path: 'spec.template.spec.containers[web].image',
      expected: 'shop/web:1.4.0',
      actual: 'shop/web:debug',
      changedBy: ['kubectl-edit'],
    },
  ],
};
const replicasEdited: DriftedObject = {
  ...imageEdited,
  fields: [{ path: 'spec.replicas', expected: '3', actual: '1', changedBy: ['kubectl-scale'] }],
};
const deleted: DriftedObject = { ...imageEdited, object: 'ConfigMap/shop/settings', kind: 'deleted', fields: [] };

const observation = (overrides: Partial<DriftObservation>): DriftObservation => ({
  drifted: [],
  corrected: 0,
  previousSignature: undefined,
  wasMatching: true,
  selfHeal: false,
  commitKnown: true,
  ...overrides,
});

describe('drift episodes, decided from one observation', () => {
  it('a clean resync reports nothing and writes no commit status', () => {
    expect(decideDriftEpisode(observation({}))).toEqual({ signature: '' });
  });

  it('new drift left in place is an episode, kept open, and the commit says the cluster no longer matches', () => {
    const decision = decideDriftEpisode(observation({ drifted: [imageEdited, deleted] }));
    expect(decision.episode).toEqual({
      objects: [
        {
          object: 'Deployment/shop/web',
          kind: 'changed',
          fields: [{ path: 'spec.template.spec.containers[web].image', changedBy: ['kubectl-edit'] }],
        },
        { object: 'ConfigMap/shop/settings', kind: 'deleted', fields: [] },
      ],
      detected: 2,
      corrected: 0,
      settled: false,
    });
    expect(decision.signature).toBe(driftSignature([imageEdited, deleted]));
    // Values stay out of the status page's record of the episode.
    expect(JSON.stringify(decision.episode)).not.toContain('shop/web:debug');
    expect(decision.commitStatus).toMatchObject({ matching: false, state: 'error' });
    expect(decision.commitStatus?.description).toMatch(/^not what this commit says: 2 drifted: /);
    // GitHub's limit: the description is cut to 140 characters.
    expect(decision.commitStatus?.description.length).toBeLessThanOrEqual(140);
    expect(decideDriftEpisode(observation({ drifted: [deleted] })).commitStatus?.description).toBe(
      'not what this commit says: 1 drifted: ConfigMap/shop/settings (deleted) (selfHeal off)',
    );
    // The status on GitHub does not name who changed it (the status page does).
    expect(decision.commitStatus?.description).not.toContain('kubectl-edit');
  });

  it('the same drift seen again is the same episode: nothing reported, nothing written to GitHub', () => {
    const previousSignature = driftSignature([imageEdited]);
    const decision = decideDriftEpisode(observation({ drifted: [imageEdited], previousSignature, wasMatching: false }));
    expect(decision).toEqual({ signature: previousSignature });
  });

  it('other fields drifting make a new episode, without a second commit status', () => {
    const decision = decideDriftEpisode(
      observation({ drifted: [replicasEdited], previousSignature: driftSignature([imageEdited]), wasMatching: false }),
    );
    expect(decision.episode?.objects[0]?.fields[0]?.path).toBe('spec.replicas');
    expect(decision).not.toHaveProperty('commitStatus');
  });

  it('drift put back (selfHeal) is reported settled and closes the episode; the commit still matches', () => {
    const decision = decideDriftEpisode(observation({ drifted: [imageEdited], corrected: 1, selfHeal: true }));
    expect(decision.episode).toMatchObject({ detected: 1, corrected: 1, settled: true });
    expect(decision.signature).toBe('');
    expect(decision).not.toHaveProperty('commitStatus');
  });

  it('drift only partly put back keeps the episode open and says so on the commit, without "(selfHeal off)"', () => {
    const decision = decideDriftEpisode(observation({ drifted: [imageEdited, deleted], corrected: 1, selfHeal: true }));
    expect(decision.episode).toMatchObject({ detected: 2, corrected: 1, settled: false });
    expect(decision.signature).not.toBe('');
    expect(decision.commitStatus?.state).toBe('error');
    expect(decision.commitStatus?.description).not.toContain('selfHeal off');
  });

  it('a cluster matching again after drift says so on the commit, once', () => {
    const decision = decideDriftEpisode(
      observation({ previousSignature: driftSignature([imageEdited]), wasMatching: false }),
    );
    expect(decision).toEqual({
      signature: '',
      commitStatus: { matching: true, state: 'success', description: 'applied; the cluster matches this commit again' },
    });
  });

  it('writes no commit status when there is no known commit to write it on', () => {
    const decision = decideDriftEpisode(observation({ drifted: [imageEdited], commitKnown: false }));
    expect(decision.episode).toBeDefined();
    expect(decision).not.toHaveProperty('commitStatus');
  });

  it('sums a resync up in one line', () => {
    expect(resyncResultText({ drifted: 0, corrected: 0 })).toBe('in sync');
    expect(resyncResultText({ drifted: 2, corrected: 2 })).toBe('corrected 2');
    expect(resyncResultText({ drifted: 3, corrected: 1 })).toBe('3 drifted');
  });
});
