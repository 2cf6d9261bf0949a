/**
 * OpenGitOps "versioned and immutable": a cluster only moves forward along its branch's history.
 * Pure: the caller learns ancestry from Git and passes it in.
 */
export type HistoryVerdict =
  | { readonly allowed: true; readonly reason: 'first-apply' | 'fast-forward' | 'same-commit' | 'rewrite-allowed' }
  | {
      readonly allowed: false;
      readonly reason: 'forced-push' | 'not-a-descendant' | 'superseded' | 'not-on-branch';
      readonly message: string;
    };

export interface HistoryFacts {
  /** The commit last applied to the cluster, if any. */
  readonly applied: string | undefined;
  readonly candidate: string;
  /** GitHub's `forced` flag for the push that brought the candidate. */
  readonly forced: boolean;
  /** Whether `applied` is an ancestor of `candidate` (undefined when there is nothing applied). */
  readonly descends: boolean | undefined;
  /** Whether `candidate` is an ancestor of `applied`: an older commit arriving late. */
  readonly older?: boolean;
  /**
   * Whether `candidate` is on the deployed branch now (its head or an ancestor of it); undefined when a
   * push payload vouches for it. A commit off the branch is never applied, rewrites allowed or not.
   */
  readonly onBranch?: boolean | undefined;
  /**
   * For an older candidate: whether the applied commit is still on the branch. When the branch dropped it,
   * going back is not "superseded" but a rewrite (refused unless `allowHistoryRewrite`).
   */
  readonly appliedOnBranch?: boolean | undefined;
  readonly allowHistoryRewrite: boolean;
}

export function judgeHistory(facts: HistoryFacts): HistoryVerdict {
  if (facts.onBranch === false) {
    return {
      allowed: false,
      reason: 'not-on-branch',
      message: `refused: ${short(facts.candidate)} is not on the deployed branch`,
    };
  }
  if (facts.applied === facts.candidate) return { allowed: true, reason: 'same-commit' };
  // Never an older commit over a newer one (invariant 3) — and that is not the commit's fault.
  if (facts.applied !== undefined && facts.older === true && !facts.forced && facts.appliedOnBranch !== false) {
    return {
      allowed: false,
      reason: 'superseded',
      message: `superseded by ${short(facts.applied)}, which is newer and already applied`,
    };
  }
  const rewound = facts.applied !== undefined && facts.older === true && facts.appliedOnBranch === false;
  const problem = rewound
    ? ({
        reason: 'not-a-descendant',
        message: `refused: the branch was rewound to ${short(facts.candidate)}; the applied ${short(facts.applied ?? '')} is no longer on it`,
      } as const)
    : facts.applied !== undefined && facts.forced
      ? ({
          reason: 'forced-push',
          message: `force-push refused: ${short(facts.candidate)} rewrites the history of the deployed branch`,
        } as const)
      : facts.applied !== undefined && facts.descends === false
        ? ({
            reason: 'not-a-descendant',
            message: `refused: ${short(facts.candidate)} does not descend from the applied commit ${short(facts.applied)}`,
          } as const)
        : undefined;
  if (problem && facts.allowHistoryRewrite) return { allowed: true, reason: 'rewrite-allowed' };
  if (problem) return { allowed: false, ...problem };
  return { allowed: true, reason: facts.applied === undefined ? 'first-apply' : 'fast-forward' };
}

const short = (sha: string) => sha.slice(0, 7);
