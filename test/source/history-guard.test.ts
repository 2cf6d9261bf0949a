import { describe, expect, it } from '@jest/globals';
import { judgeHistory } from '../../src/source/history-guard.ts';

const A = 'a'.repeat(40);
const B = 'b'.repeat(40);
const facts = { applied: A, candidate: B, forced: false, descends: true, allowHistoryRewrite: false };

describe('the history guard', () => {
  it('lets a cluster move forward', () => {
    expect(judgeHistory(facts)).toEqual({ allowed: true, reason: 'fast-forward' });
    expect(judgeHistory({ ...facts, applied: undefined, descends: undefined })).toEqual({
      allowed: true,
      reason: 'first-apply',
    });
    expect(judgeHistory({ ...facts, candidate: A })).toEqual({ allowed: true, reason: 'same-commit' });
  });

  it('refuses a force-push and says why', () => {
    expect(judgeHistory({ ...facts, forced: true })).toEqual({
      allowed: false,
      reason: 'forced-push',
      message: 'force-push refused: bbbbbbb rewrites the history of the deployed branch',
    });
  });

  it('refuses a commit that does not descend from the applied one, and an older commit over a newer one', () => {
    expect(judgeHistory({ ...facts, descends: false })).toMatchObject({ allowed: false, reason: 'not-a-descendant' });
  });

  it('skips an older commit that arrives after a newer one was applied, without calling it a failure', () => {
    expect(judgeHistory({ ...facts, descends: false, older: true })).toEqual({
      allowed: false,
      reason: 'superseded',
      message: 'superseded by aaaaaaa, which is newer and already applied',
    });
  });

  it('lets the operator allow a rewrite per cluster', () => {
    expect(judgeHistory({ ...facts, forced: true, descends: false, allowHistoryRewrite: true })).toEqual({
      allowed: true,
      reason: 'rewrite-allowed',
    });
  });
  it('never applies a commit that is not on the branch, rewrites allowed or not', () => {
    expect(judgeHistory({ ...facts, onBranch: false, allowHistoryRewrite: true })).toMatchObject({
      allowed: false,
      reason: 'not-on-branch',
    });
    expect(judgeHistory({ ...facts, candidate: A, onBranch: false })).toMatchObject({ reason: 'not-on-branch' });
  });

  it('an older commit after the branch dropped the applied one is a rewrite, not a late arrival', () => {
    const rewound = { ...facts, descends: false, older: true, onBranch: true, appliedOnBranch: false };
    expect(judgeHistory(rewound)).toEqual({
      allowed: false,
      reason: 'not-a-descendant',
      message: 'refused: the branch was rewound to bbbbbbb; the applied aaaaaaa is no longer on it',
    });
    expect(judgeHistory({ ...rewound, allowHistoryRewrite: true })).toEqual({
      allowed: true,
      reason: 'rewrite-allowed',
    });
    expect(judgeHistory({ ...rewound, appliedOnBranch: true })).toMatchObject({ reason: 'superseded' });
  });
});
