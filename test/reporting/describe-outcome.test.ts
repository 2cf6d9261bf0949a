import { describe, expect, it } from '@jest/globals';
import type { ChangeSet } from '../../src/engine/change-set.ts';
import { KubeError } from '../../src/engine/cluster-client.ts';
import {
  describeApplied,
  describeChangeSet,
  describeFailedReconcile,
  describeFailure,
  describePreview,
  describePreviewed,
  describeProblems,
  describeRejection,
} from '../../src/reporting/describe-outcome.ts';

const changeSet: ChangeSet = {
  changes: [
    { object: 'ConfigMap/a/one', action: 'created' },
    { object: 'ConfigMap/a/two', action: 'configured' },
    { object: 'ConfigMap/a/three', action: 'unchanged' },
    { object: 'ConfigMap/a/four', action: 'deleted' },
  ],
};
const rejected = {
  object: { manifest: { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'x' } }, source: undefined },
  error: new KubeError('rejected', 'ConfigMap/x: invalid', 422),
};

describe('the text of outcomes, derived from their values', () => {
  it('names each refusal, for a sync and for a preview', () => {
    const tenancy = {
      reason: 'tenancy' as const,
      problems: [{ object: 'o', reason: 'r', message: 'o: r', source: undefined }],
    };
    expect(describeFailure(tenancy, 'prod')).toBe(
      '1 object(s) outside the tenancy limits of cluster prod; nothing was applied',
    );
    expect(describeFailure(tenancy, 'prod', true)).toBe(
      '1 object(s) outside the tenancy limits of cluster prod; it would be refused',
    );
    expect(describeFailure({ reason: 'empty-render', inventoried: 7 }, 'prod')).toBe(
      'refusing an empty render: the commit would remove all 7 objects; delete them explicitly or disable the cluster',
    );
    expect(describeFailure({ reason: 'empty-render', inventoried: 7 }, 'prod', true)).toBe(
      'an empty render would remove all 7 objects: it would be refused',
    );
    const share = { reason: 'prune-share' as const, stale: 3, inventoried: 4, maxShare: 0.5 };
    expect(describeFailure(share, 'prod')).toBe(
      'refusing to prune 3 of 4 objects (more than 50 %); allow it explicitly if intended',
    );
    expect(describeFailure(share, 'prod', true)).toMatch(/^would be refused: refusing to prune 3 of 4/);
    expect(describeFailure({ reason: 'rejected', rejected: [rejected] }, 'prod')).toBe(
      '1 object(s) rejected by the cluster; the rest of the commit was not applied',
    );
    expect(describeFailure({ reason: 'rejected', rejected: [rejected] }, 'prod', true)).toBe(
      '1 object(s) would be rejected by the cluster',
    );
    expect(describeFailure({ reason: 'write-refused', failed: 2 }, 'prod')).toBe(
      '2 object(s) rejected by the cluster; the rest of the commit was not applied',
    );
  });

  it('puts the first rejected object and its file before the reason, so the location survives the cut', () => {
    const problems = [
      {
        object: 'ConfigMap/a/Bad_Name',
        message: 'ConfigMap/a/Bad_Name: is invalid',
        source: { file: 'a.yaml', line: 3 },
      },
      { object: 'ConfigMap/a/other', message: 'ConfigMap/a/other: is invalid', source: undefined },
    ];
    expect(describeRejection(problems)).toBe('2 rejected (a.yaml:3): is invalid');
    expect(describeFailedReconcile({ reason: 'write-refused', failed: 2 }, problems, 'prod', true)).toBe(
      '2 would be rejected (a.yaml:3): is invalid',
    );
    expect(describeFailedReconcile({ reason: 'empty-render', inventoried: 1 }, [], 'prod', false)).toMatch(
      /^refusing an empty render/,
    );
    expect(describeProblems(problems)).toBe('ConfigMap/a/Bad_Name: is invalid (a.yaml:3) and 1 more');
    expect(describeProblems([])).toBe('render failed');
  });

  it('summarises a change set, an apply and a preview', () => {
    expect(describeChangeSet(changeSet)).toBe('1 created, 1 configured, 1 pruned');
    expect(describeChangeSet({ changes: [] })).toBe('no changes');
    expect(describePreview(changeSet)).toBe('would create 1, configure 1, prune 1');
    expect(describePreview({ changes: [] })).toBe('would change nothing');
    expect(describePreviewed(changeSet, true)).toBe(
      'would create 1, configure 1, prune 1 (cluster suspended: merging applies nothing until resumed)',
    );
    const unhealthy = [
      { object: 'Deployment/a/web', health: { state: 'progressing' as const, message: 'rolling out' } },
      { object: 'Deployment/a/db', health: { state: 'failed' as const, message: 'crash loop' } },
    ];
    expect(describeApplied({ changeSet, unhealthy, seconds: 2.04, again: true })).toBe(
      'already applied; 1 created, 1 configured, 1 pruned in 2.0 s; failing: Deployment/a/db; still progressing: Deployment/a/web',
    );
  });
});
