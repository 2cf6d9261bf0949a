import { afterAll, describe, expect, it } from '@jest/globals';
import { Redis } from 'ioredis';
import type { SyncJob } from '../../src/queue/jobs.ts';
import { latestJobRecord, readLatestJob, recordLatestJob } from '../../src/queue/latest-jobs.ts';
import { redisKeys } from '../../src/redis/redis-keys.ts';
import { testEnvironment, uniqueName } from '../helpers/environment.ts';

const env = testEnvironment();

const push = (after: string, overrides: Partial<SyncJob> = {}): SyncJob => ({
  type: 'sync',
  trigger: 'push',
  deliveryId: `d-${after}`,
  repository: { id: 12, fullName: 'acme/platform-gitops' },
  installationId: undefined,
  branch: 'main',
  before: undefined,
  after: after.repeat(40),
  forced: false,
  receivedAt: '2024-05-01T10:00:00.000Z',
  ...overrides,
});

describe('the latest-job record', () => {
  const redis = new Redis(env.redisUrl);
  const prefix = uniqueName('latest');
  const warnings: { fields: object; message: string }[] = [];
  const store = {
    redis,
    keys: redisKeys(prefix),
    logger: { warn: (fields: object, message: string) => warnings.push({ fields, message }) },
  };

  afterAll(async () => {
    const written = await redis.keys(`${prefix}:*`);
    if (written.length > 0) await redis.del(...written);
    redis.disconnect();
  });

  it('reads back the job recorded for a branch, undefined fields and all', async () => {
    await expect(readLatestJob(store, push('a'))).resolves.toBeUndefined();
    await recordLatestJob(store, push('b'));
    const latest = await readLatestJob(store, push('a'));
    expect(latest).toEqual({ ...push('b') });
    expect(latest).not.toHaveProperty('installationId');
    // Another branch of the repository has a record of its own.
    await expect(readLatestJob(store, push('a', { branch: 'staging' }))).resolves.toBeUndefined();
  });

  it('keeps fields it does not know (a newer writer), and expires the record', async () => {
    const record = latestJobRecord(store.keys, push('c', { branch: 'next' }));
    await redis.set(
      record.key,
      JSON.stringify({ ...JSON.parse(record.value), addedLater: 1 }),
      'EX',
      record.ttlSeconds,
    );
    await expect(readLatestJob(store, push('a', { branch: 'next' }))).resolves.toMatchObject({ addedLater: 1 });
    await recordLatestJob(store, push('c', { branch: 'next' }));
    expect(await redis.ttl(record.key)).toBeGreaterThan(24 * 60 * 60);
  });

  it('treats a record that does not parse as absent, and logs it', async () => {
    const key = store.keys.latestJob('sync:12:broken');
    for (const text of ['{"type":"sync"', '{"type":"sync","after":42}', '"just text"']) {
      warnings.length = 0;
      await redis.set(key, text);
      await expect(readLatestJob(store, push('a', { branch: 'broken' }))).resolves.toBeUndefined();
      expect(warnings).toEqual([
        { fields: expect.objectContaining({ key }), message: 'the latest-job record does not parse: ignored' },
      ]);
    }
  });
});
