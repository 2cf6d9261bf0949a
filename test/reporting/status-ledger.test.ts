import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { Redis } from 'ioredis';
import { createLogger } from '../../src/logging/create-logger.ts';
import { redisKeys } from '../../src/redis/redis-keys.ts';
import { createOpenCommits } from '../../src/reporting/open-commits.ts';
import { createStatusLedger, type StatusLedger } from '../../src/reporting/status-ledger.ts';
import { testEnvironment, uniqueName } from '../helpers/environment.ts';

const env = testEnvironment();
const REPOSITORY_ID = 42;
const SHA = 'c0ffee'.padEnd(40, '0');

describe('the write ledger: what was written to GitHub per commit and context (real Redis)', () => {
  let redis: Redis;
  const logs: string[] = [];
  const logger = createLogger(
    'warn',
    new Writable({
      write(chunk, _encoding, done) {
        logs.push(String(chunk));
        done();
      },
    }),
  );
  /** A ledger under a prefix no other test uses. */
  const fresh = (): { ledger: StatusLedger; prefix: string } => {
    const prefix = uniqueName('ledger');
    return { ledger: createStatusLedger(redis, prefix, logger), prefix };
  };

  beforeAll(() => {
    redis = new Redis(env.redisUrl, { maxRetriesPerRequest: null });
  });
  afterAll(() => {
    redis.disconnect();
  });

  it('claims a value only when it differs from what was written', async () => {
    const commit = fresh().ledger.forCommit(REPOSITORY_ID, SHA);
    const pending = { state: 'pending', description: 'applying' } as const;
    const claim = await commit.claimStatus('plumbline/prod', pending, true);
    expect(claim).toBeDefined();
    await claim?.written();
    expect(await commit.claimStatus('plumbline/prod', pending, true)).toBeUndefined();
    // A different description is a change; so is the same value for another context.
    expect(
      await commit.claimStatus('plumbline/prod', { state: 'pending', description: 'waiting' }, true),
    ).toBeDefined();
    expect(await commit.claimStatus('plumbline/staging', pending, true)).toBeDefined();
  });

  it('lets one writer at a time hold a value; a released claim can be taken again, and the record is unchanged', async () => {
    const { ledger, prefix } = fresh();
    const commit = ledger.forCommit(REPOSITORY_ID, SHA);
    const other = createStatusLedger(redis, prefix, logger).forCommit(REPOSITORY_ID, SHA);
    const success = { state: 'success', description: '1 created' } as const;
    const claim = await commit.claimStatus('plumbline/prod', success, true);
    expect(claim).toBeDefined();
    expect(await other.claimStatus('plumbline/prod', success, true)).toBeUndefined();
    await claim?.release();
    const again = await other.claimStatus('plumbline/prod', success, true);
    expect(again).toBeDefined();
    await again?.written();
    expect(await commit.claimStatus('plumbline/prod', success, true)).toBeUndefined();
  });

  it('keeps a final state in place for a write that must not replace it, and only then', async () => {
    const commit = fresh().ledger.forCommit(REPOSITORY_ID, SHA);
    await (await commit.claimStatus('plumbline/prod', { state: 'pending', description: 'applying' }, true))?.written();
    // Over a pending state, a non-replacing write still goes through.
    const failure = await commit.claimStatus('plumbline/prod', { state: 'failure', description: '1 failed' }, false);
    expect(failure).toBeDefined();
    await failure?.written();
    expect(
      await commit.claimStatus('plumbline/prod', { state: 'pending', description: 'retrying' }, false),
    ).toBeUndefined();
    expect(
      await commit.claimStatus('plumbline/prod', { state: 'pending', description: 'retrying' }, true),
    ).toBeDefined();
  });

  it('never claims a context GitHub declared full again', async () => {
    const commit = fresh().ledger.forCommit(REPOSITORY_ID, SHA);
    await (
      await commit.claimStatus('plumbline/prod', { state: 'pending', description: 'applying' }, true)
    )?.contextFull();
    expect(await commit.claimStatus('plumbline/prod', { state: 'success', description: 'done' }, true)).toBeUndefined();
    expect(
      await commit.claimStatus('plumbline/prod', { state: 'pending', description: 'applying' }, true),
    ).toBeUndefined();
  });

  it('lists the contexts whose last written state is pending, not those only claimed', async () => {
    const commit = fresh().ledger.forCommit(REPOSITORY_ID, SHA);
    await (await commit.claimStatus('plumbline', { state: 'pending', description: 'applying' }, true))?.written();
    await (await commit.claimStatus('plumbline/a', { state: 'pending', description: 'applying' }, true))?.written();
    await (await commit.claimStatus('plumbline/a', { state: 'success', description: 'done' }, true))?.written();
    // Claimed, never written: GitHub has not shown it.
    expect(await commit.claimStatus('plumbline/b', { state: 'pending', description: 'applying' }, true)).toBeDefined();
    expect(await commit.pendingContexts()).toEqual(['plumbline']);
  });

  it('keeps check-run records apart per commit and lists the runs not completed', async () => {
    const { ledger } = fresh();
    const commit = ledger.forCommit(REPOSITORY_ID, SHA);
    await commit.saveCheckRun('plumbline/a', { id: 7, digest: 'd1', completed: false, sent: 1 });
    await commit.saveCheckRun('plumbline/b', { id: 8, digest: 'd2', completed: true, sent: 2 });
    expect(await commit.checkRun('plumbline/a')).toEqual({ id: 7, digest: 'd1', completed: false, sent: 1 });
    expect(await commit.checkRun('plumbline/c')).toBeUndefined();
    expect(await commit.openCheckRuns()).toEqual(['plumbline/a']);
    expect(await ledger.forCommit(REPOSITORY_ID, 'f'.repeat(40)).checkRun('plumbline/a')).toBeUndefined();
  });

  it('treats an unreadable check-run record as absent, and logs it', async () => {
    const { ledger, prefix } = fresh();
    const key = redisKeys(prefix).commitChecks(REPOSITORY_ID, SHA);
    await redis.hset(key, 'plumbline/broken', '{"id":', 'plumbline/wrong', JSON.stringify({ id: 'seven', digest: 1 }));
    await redis.hset(key, 'plumbline/old', JSON.stringify({ id: 9, digest: 'd' }));
    const commit = ledger.forCommit(REPOSITORY_ID, SHA);
    const before = logs.length;
    expect(await commit.checkRun('plumbline/broken')).toBeUndefined();
    expect(await commit.checkRun('plumbline/wrong')).toBeUndefined();
    // A record of an older shape (no `completed`, no `sent`) reads with their defaults.
    expect(await commit.checkRun('plumbline/old')).toEqual({ id: 9, digest: 'd', completed: false, sent: 0 });
    expect(await commit.openCheckRuns()).toEqual(['plumbline/old']);
    const warned = logs.slice(before).map((line) => JSON.parse(line) as { msg: string; name: string });
    expect(warned.filter((l) => l.name === 'plumbline/broken')).toEqual([
      expect.objectContaining({ msg: 'unreadable check-run record in Redis: treated as absent' }),
      expect.objectContaining({ msg: 'unreadable check-run record in Redis: treated as absent' }),
    ]);
  });

  it('remembers per installation that the Checks permission is missing', async () => {
    const { ledger } = fresh();
    expect(await ledger.checksOff(1)).toBe(false);
    await ledger.turnChecksOff(1);
    expect(await ledger.checksOff(1)).toBe(true);
    expect(await ledger.checksOff(2)).toBe(false);
  });
});

describe('open commits: the commits of a scope whose statuses may still be open (real Redis)', () => {
  let redis: Redis;
  beforeAll(() => {
    redis = new Redis(env.redisUrl, { maxRetriesPerRequest: null });
  });
  afterAll(() => {
    redis.disconnect();
  });

  it('lists what was added and not removed, and drops a record that is not a target', async () => {
    const logs: string[] = [];
    const logger = createLogger(
      'warn',
      new Writable({
        write(chunk, _encoding, done) {
          logs.push(String(chunk));
          done();
        },
      }),
    );
    const prefix = uniqueName('open');
    const open = createOpenCommits(redis, prefix, logger);
    const target = (sha: string) => ({ repository: { id: 1, fullName: 'acme/gitops' }, installationId: 5, sha });
    await open.add('push:1:main', target('a'.repeat(40)));
    await open.add('push:1:main', { ...target('b'.repeat(40)), installationId: undefined });
    await open.add('push:1:main', target('c'.repeat(40)));
    await open.remove('push:1:main', 'c'.repeat(40));
    const key = redisKeys(prefix).openCommits('push:1:main');
    await redis.hset(key, 'd'.repeat(40), 'not json', 'e'.repeat(40), JSON.stringify(target('f'.repeat(40))));

    const listed = await open.list('push:1:main');
    expect(listed).toEqual(
      expect.arrayContaining([target('a'.repeat(40)), { ...target('b'.repeat(40)), installationId: undefined }]),
    );
    expect(listed).toHaveLength(2);
    expect(logs.map((l) => (JSON.parse(l) as { sha: string }).sha).sort()).toEqual(['d'.repeat(40), 'e'.repeat(40)]);
    // Dropped: the next reader neither sees nor logs them again.
    expect(await open.list('push:1:main')).toHaveLength(2);
    expect(logs).toHaveLength(2);
    expect(await open.list('push:1:other')).toEqual([]);
  });
});
