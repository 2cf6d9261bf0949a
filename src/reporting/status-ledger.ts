import { createHash } from 'node:crypto';
import { z } from 'zod';
import type { Logger } from '../logging/create-logger.ts';
import { defineCommands } from '../redis/define-commands.ts';
import { parseStored } from '../redis/parse-stored.ts';
import { redisKeys } from '../redis/redis-keys.ts';
import type { RedisConnection } from '../redis/redis-topology.ts';
import type { StatusState } from './status-text.ts';

/** A status as GitHub shows it: what the ledger compares before writing. */
export interface LedgerStatus {
  readonly state: StatusState;
  readonly description: string;
}

/** A check run written for a commit, and how far its content has reached GitHub. */
export interface CheckRecord {
  readonly id: number;
  /** Of the content being written; `sent` of its annotation batches have reached GitHub. */
  readonly digest: string;
  readonly completed: boolean;
  readonly sent: number;
}

/** The right to write one status value, held for a short while (see `claimStatus`). */
export interface StatusClaim {
  /** GitHub accepted the value: it is recorded as written, and the claim released. */
  written(): Promise<void>;
  /** GitHub holds its 1,000 statuses for the commit and context: nothing is written there again. */
  contextFull(): Promise<void>;
  /** The write failed: the record stays as it was, and a retry may claim the value again. */
  release(): Promise<void>;
}

/** What was written to GitHub about one commit. */
export interface CommitLedger {
  /**
   * Claims the write of `status` for `context`; undefined when it must not be written: GitHub already
   * shows this value, the context is full, a final state must stay (`replaceFinal: false`), or another
   * worker is writing the same value right now. A claim lapses by itself if its holder dies mid-write.
   */
  claimStatus(context: string, status: LedgerStatus, replaceFinal: boolean): Promise<StatusClaim | undefined>;
  /** The contexts whose last written state is `pending`. */
  pendingContexts(): Promise<string[]>;
  /** The check run of this name written for the commit; undefined if none (or its record is unreadable). */
  checkRun(name: string): Promise<CheckRecord | undefined>;
  saveCheckRun(name: string, record: CheckRecord): Promise<void>;
  /** The names of the check runs recorded as not completed. */
  openCheckRuns(): Promise<string[]>;
}

/** The write ledger: what Plumbline wrote to GitHub, so that re-runs and other workers write only changes. */
export interface StatusLedger {
  forCommit(repositoryId: number, sha: string): CommitLedger;
  /** Whether the installation was found without the Checks permission in the last hour. */
  checksOff(installationId: number): Promise<boolean>;
  turnChecksOff(installationId: number): Promise<void>;
}

const RECORD_TTL_SECONDS = 30 * 24 * 60 * 60;
const CHECKS_OFF_SECONDS = 60 * 60;
const CLAIM_MS = 60_000;
/** The recorded value of a context GitHub declared full (claim-status.lua knows it too). */
const EXHAUSTED = 'exhausted';
/** Claims live in the commit's status hash beside the values they guard; no context starts with a newline. */
const CLAIM_FIELD = '\nclaim:';

const checkRecordSchema = z.object({
  id: z.number().int(),
  digest: z.string(),
  completed: z.boolean().default(false),
  sent: z.number().int().nonnegative().default(0),
});

export function createStatusLedger(redis: RedisConnection, prefix: string, logger: Logger): StatusLedger {
  const keys = redisKeys(prefix);
  const scripted = defineCommands(redis);

  return {
    forCommit(repositoryId, sha) {
      const statusKey = keys.commitStatuses(repositoryId, sha);
      const checkKey = keys.commitChecks(repositoryId, sha);
      const readCheck = (name: string, raw: string | null): CheckRecord | undefined => {
        const stored = parseStored(checkRecordSchema, raw);
        if (stored.state === 'invalid') {
          const issue = stored.issue;
          logger.warn({ repositoryId, sha, name, issue }, 'unreadable check-run record in Redis: treated as absent');
        }
        return stored.state === 'valid' ? stored.value : undefined;
      };
      return {
        async claimStatus(context, status, replaceFinal) {
          const value = `${status.state}\n${status.description}`;
          const claimField = `${CLAIM_FIELD}${createHash('sha256').update(context).update(value).digest('hex').slice(0, 16)}`;
          const claimed = await scripted.plumblineClaimStatus(
            statusKey,
            context,
            value,
            replaceFinal ? '1' : '0',
            CLAIM_MS,
            claimField,
            RECORD_TTL_SECONDS,
          );
          if (claimed !== 1) return undefined;
          const settle = async (recorded: string) => {
            await redis
              .multi()
              .hset(statusKey, context, recorded)
              .hdel(statusKey, claimField)
              .expire(statusKey, RECORD_TTL_SECONDS)
              .exec();
          };
          return {
            written: () => settle(value),
            contextFull: () => settle(EXHAUSTED),
            async release() {
              await redis.hdel(statusKey, claimField);
            },
          };
        },
        async pendingContexts() {
          const recorded = await redis.hgetall(statusKey);
          return Object.entries(recorded)
            .filter(([context, value]) => !context.startsWith(CLAIM_FIELD) && value.startsWith('pending\n'))
            .map(([context]) => context);
        },
        async checkRun(name) {
          return readCheck(name, await redis.hget(checkKey, name));
        },
        async saveCheckRun(name, record) {
          await redis.multi().hset(checkKey, name, JSON.stringify(record)).expire(checkKey, RECORD_TTL_SECONDS).exec();
        },
        async openCheckRuns() {
          const recorded = await redis.hgetall(checkKey);
          return Object.entries(recorded)
            .filter(([name, raw]) => readCheck(name, raw)?.completed === false)
            .map(([name]) => name);
        },
      };
    },
    async checksOff(installationId) {
      return (await redis.exists(keys.checksOff(installationId))) > 0;
    },
    async turnChecksOff(installationId) {
      await redis.set(keys.checksOff(installationId), '1', 'EX', CHECKS_OFF_SECONDS);
    },
  };
}
