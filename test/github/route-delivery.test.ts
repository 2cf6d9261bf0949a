import { describe, expect, it } from '@jest/globals';
import { PayloadError, routeDelivery } from '../../src/github/route-delivery.ts';
import { fakeSha, pushPayload } from '../helpers/github-delivery.ts';

const context = { deliveryId: 'd-1', receivedAt: '2026-11-28T10:00:00.000Z' };

describe('routeDelivery', () => {
  it('turns a branch push into a sync job carrying exactly what a worker needs — and no clone URL (invariant 8)', () => {
    const route = routeDelivery('push', pushPayload({ after: fakeSha(2), before: fakeSha(1), forced: true }), context);
    expect(route).toEqual({
      kind: 'enqueue',
      jobs: [
        {
          type: 'sync',
          trigger: 'push',
          deliveryId: 'd-1',
          repository: { id: 4242, fullName: 'acme/platform-gitops' },
          installationId: 77,
          branch: 'main',
          before: fakeSha(1),
          after: fakeSha(2),
          forced: true,
          receivedAt: context.receivedAt,
        },
      ],
    });
  });

  it('keeps slashes in branch names and treats a new branch as having no previous commit', () => {
    const route = routeDelivery('push', pushPayload({ after: fakeSha(3), branch: 'release/2026.11' }), context);
    expect(route).toMatchObject({ kind: 'enqueue', jobs: [{ branch: 'release/2026.11', before: undefined }] });
  });

  it('acknowledges branch deletions and tag pushes without work', () => {
    const deletion = { ...pushPayload({ after: '0'.repeat(40), before: fakeSha(1) }), deleted: true };
    const tag = { ...pushPayload({ after: fakeSha(1) }), ref: 'refs/tags/v1.0.0' };
    expect(routeDelivery('push', deletion, context)).toEqual({ kind: 'ignore', reason: 'branch-deleted' });
    expect(routeDelivery('push', tag, context)).toEqual({ kind: 'ignore', reason: 'tag-push' });
  });

  it('names the field when a payload lacks what we read', () => {
    const { repository: _omitted, ...withoutRepository } = pushPayload({ after: fakeSha(1) });
    expect(() => routeDelivery('push', withoutRepository, context)).toThrow(PayloadError);
    expect(() => routeDelivery('push', withoutRepository, context)).toThrow('push payload: repository');
    expect(() => routeDelivery('push', { ...pushPayload({ after: 'HEAD' }) }, context)).toThrow(
      'must be a 40-character commit SHA',
    );
    expect(() => routeDelivery('push', null, context)).toThrow(PayloadError);
  });

  it('cancels previews when a pull request closes', () => {
    const payload = {
      action: 'closed',
      number: 12,
      pull_request: { head: { sha: fakeSha(9) }, base: { ref: 'main' } },
      repository: { id: 1, full_name: 'a/b', clone_url: 'https://x/a/b.git' },
    };
    expect(routeDelivery('pull_request', payload, context)).toMatchObject({ kind: 'cancel-previews', number: 12 });
  });

  it("records where a pull request's head lives: the base repository, a fork, or a deleted fork (null)", () => {
    const pullRequest = (head: unknown) => ({
      action: 'opened',
      number: 3,
      pull_request: { head: { sha: fakeSha(4), ...(head === undefined ? {} : { repo: head }) }, base: { ref: 'main' } },
      repository: { id: 10, full_name: 'acme/gitops' },
      installation: { id: 77 },
    });
    const headOf = (head: unknown) => {
      const route = routeDelivery('pull_request', pullRequest(head), context);
      return route.kind === 'enqueue' && route.jobs[0]?.type === 'preview' ? route.jobs[0].headRepositoryId : 'none';
    };
    expect(headOf({ id: 10 })).toBe(10);
    expect(headOf({ id: 99 })).toBe(99);
    expect(headOf(null)).toBeNull();
    expect(headOf(undefined)).toBeNull();
  });

  it("a re-requested check's pull requests keep their heads' repositories", () => {
    const payload = {
      action: 'rerequested',
      check_run: {
        head_sha: fakeSha(5),
        check_suite: { head_branch: 'feature' },
        pull_requests: [
          { number: 4, head: { sha: fakeSha(5), repo: { id: 99 } }, base: { ref: 'main', repo: { id: 10 } } },
        ],
      },
      repository: { id: 10, full_name: 'acme/gitops' },
      installation: { id: 77 },
    };
    expect(routeDelivery('check_run', payload, context)).toMatchObject({
      kind: 'enqueue',
      jobs: [{ type: 'preview', trigger: 'rerun', headRepositoryId: 99, number: 4 }],
    });
    // A pull request of this commit into another repository is not previewed here.
    const elsewhere = structuredClone(payload);
    const [pr] = elsewhere.check_run.pull_requests;
    if (pr) pr.base.repo.id = 555;
    expect(routeDelivery('check_run', elsewhere, context)).toEqual({ kind: 'ignore', reason: 'unhandled-action' });
  });

  it('keeps the repository set from installation events', () => {
    const created = { action: 'created', installation: { id: 5 }, repositories: [{ id: 1, full_name: 'a/b' }] };
    const removed = {
      action: 'removed',
      installation: { id: 5 },
      repositories_added: [],
      repositories_removed: [{ id: 1, full_name: 'a/b' }],
    };
    expect(routeDelivery('installation', created, context)).toEqual({
      kind: 'installation',
      change: { installationId: 5, operation: 'replace', repositories: [{ id: 1, fullName: 'a/b' }] },
    });
    expect(routeDelivery('installation_repositories', removed, context)).toMatchObject({
      change: { operation: 'remove' },
    });
    expect(routeDelivery('installation', { action: 'deleted', installation: { id: 5 } }, context)).toMatchObject({
      change: { operation: 'forget', repositories: [] },
    });
  });

  it('acknowledges events it does not handle', () => {
    expect(routeDelivery('star', { action: 'created' }, context)).toEqual({
      kind: 'ignore',
      reason: 'unhandled-event',
    });
    expect(routeDelivery('ping', {}, context)).toEqual({ kind: 'ignore', reason: 'ping' });
  });
});
