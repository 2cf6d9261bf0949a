import { describe, expect, it } from '@jest/globals';
import type { PlumblineJob, SyncJob } from '../../src/queue/jobs.ts';
import { planMissedPush, resyncSyncJob, unappliedHead } from '../../src/queue/missed-push.ts';

const sha = (c: string) => c.repeat(40);
const repository = { id: 7, fullName: 'acme/platform-gitops' };

const pushOf = (after: string): SyncJob => ({
  type: 'sync',
  trigger: 'push',
  deliveryId: 'd-1',
  repository,
  installationId: 77,
  branch: 'main',
  before: sha('0'),
  after,
  forced: false,
  receivedAt: '2024-05-01T10:00:00.000Z',
});

describe('missed-push decisions of the resync', () => {
  it('acts only on a head that differs from the applied revision', () => {
    expect(unappliedHead({ head: sha('b'), applied: sha('a') })).toBe(sha('b'));
    expect(unappliedHead({ head: sha('b'), applied: undefined })).toBe(sha('b'));
    expect(unappliedHead({ head: sha('a'), applied: sha('a') })).toBeUndefined();
    // ls-remote found no such branch.
    expect(unappliedHead({ head: undefined, applied: sha('a') })).toBeUndefined();
    expect(unappliedHead({ head: '', applied: undefined })).toBeUndefined();
  });

  it('waits while a job for the branch is waiting or running, whatever the record says', () => {
    expect(planMissedPush({ head: sha('b'), inFlight: true, latest: undefined })).toEqual({ action: 'wait' });
    expect(planMissedPush({ head: sha('b'), inFlight: true, latest: pushOf(sha('b')) })).toEqual({ action: 'wait' });
  });

  it('syncs a head no webhook announced as a missed push', () => {
    expect(planMissedPush({ head: sha('b'), inFlight: false, latest: undefined })).toEqual({
      action: 'sync',
      announced: false,
    });
    // The record names an older push: the newer head came without a webhook.
    expect(planMissedPush({ head: sha('b'), inFlight: false, latest: pushOf(sha('a')) })).toEqual({
      action: 'sync',
      announced: false,
    });
  });

  it('syncs again, not as a missed push, a head whose announced job gave up', () => {
    expect(planMissedPush({ head: sha('b'), inFlight: false, latest: pushOf(sha('b')) })).toEqual({
      action: 'sync',
      announced: true,
    });
  });

  it('does not take a preview of the same sha for an announcement of the branch', () => {
    const preview: PlumblineJob = {
      type: 'preview',
      trigger: 'pull_request',
      deliveryId: 'd-2',
      repository,
      headRepositoryId: 7,
      installationId: 77,
      number: 3,
      headSha: sha('b'),
      baseBranch: 'main',
      receivedAt: '2024-05-01T10:00:00.000Z',
    };
    expect(planMissedPush({ head: sha('b'), inFlight: false, latest: preview })).toMatchObject({ announced: false });
  });

  it('queues a resync job of its own per resync, recording what was applied', () => {
    const input = {
      cluster: { name: 'gcp-production', branch: 'main' },
      repository,
      installationId: 77,
      head: sha('b'),
      applied: sha('a'),
      now: new Date('2024-05-01T10:00:00.000Z'),
    };
    const job = resyncSyncJob(input);
    expect(job).toEqual({
      type: 'sync',
      trigger: 'resync',
      deliveryId: expect.stringMatching(/^resync-gcp-production-bbbbbbbbbbbb-/),
      repository,
      installationId: 77,
      branch: 'main',
      before: sha('a'),
      after: sha('b'),
      forced: false,
      receivedAt: '2024-05-01T10:00:00.000Z',
    });
    expect(resyncSyncJob({ ...input, now: new Date('2024-05-01T10:05:00.000Z') }).deliveryId).not.toBe(job.deliveryId);
    expect(resyncSyncJob({ ...input, applied: '' }).before).toBeUndefined();
  });
});
