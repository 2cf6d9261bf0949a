import type { Logger } from '../logging/create-logger.ts';
import { redisKeys } from '../redis/redis-keys.ts';
import type { RedisConnection } from '../redis/redis-topology.ts';
import { parseReportTarget, type ReportTarget } from './report-target.ts';

/** The commits of a coalescing scope (a branch, a pull request) whose statuses may still be open. */
export interface OpenCommits {
  add(scope: string, target: ReportTarget): Promise<void>;
  /** The scope's open commits; an unreadable record is dropped (and logged), never returned. */
  list(scope: string): Promise<ReportTarget[]>;
  remove(scope: string, sha: string): Promise<void>;
}

const RECORD_TTL_SECONDS = 30 * 24 * 60 * 60;

export function createOpenCommits(redis: RedisConnection, prefix: string, logger: Logger): OpenCommits {
  const keys = redisKeys(prefix);
  return {
    async add(scope, target) {
      const key = keys.openCommits(scope);
      await redis.multi().hset(key, target.sha, JSON.stringify(target)).expire(key, RECORD_TTL_SECONDS).exec();
    },
    async list(scope) {
      const key = keys.openCommits(scope);
      const targets: ReportTarget[] = [];
      for (const [sha, raw] of Object.entries(await redis.hgetall(key))) {
        const target = parseReportTarget(raw);
        if (target?.sha === sha) {
          targets.push(target);
          continue;
        }
        logger.warn({ scope, sha }, 'unreadable open-commit record in Redis: dropped');
        await redis.hdel(key, sha);
      }
      return targets;
    },
    async remove(scope, sha) {
      await redis.hdel(keys.openCommits(scope), sha);
    },
  };
}
