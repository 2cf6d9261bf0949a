import { afterAll, describe, expect, it } from '@jest/globals';
import { Redis } from 'ioredis';
import { redisKeys } from '../../src/redis/redis-keys.ts';
import { createWriteBudget, type WriteBudgetOptions } from '../../src/reporting/write-budget.ts';
import { testEnvironment, uniqueName } from '../helpers/environment.ts';

const env = testEnvironment();

describe('the shared write budget', () => {
  const prefix = uniqueName('budget');
  const first = new Redis(env.redisUrl);
  const second = new Redis(env.redisUrl);
  const keys = redisKeys(prefix);
  const options = { prefix, perMinute: 600, burst: 3 };
  /**
   * A budget whose waits are recorded (and still waited, so the bucket refills): the budget's own account
   * of whether a write had to wait, rather than a stopwatch.
   */
  const watchedBudget = (redis: Redis, overrides: Partial<WriteBudgetOptions> = {}) => {
    const waits: number[] = [];
    const budget = createWriteBudget(redis, {
      ...options,
      ...overrides,
      sleep: (ms) => {
        waits.push(ms);
        return new Promise((resolve) => setTimeout(resolve, ms));
      },
    });
    return { budget, waits };
  };

  afterAll(async () => {
    const written = await first.keys(`${prefix}:*`);
    if (written.length > 0) await first.del(...written);
    first.disconnect();
    second.disconnect();
  });

  it('lets a burst through without waiting', async () => {
    const { budget, waits } = watchedBudget(first);
    await Promise.all([budget.take(1), budget.take(1), budget.take(1)]);
    expect(waits).toEqual([]);
    // The burst used the bucket up: the next write would wait.
    const state = await first.hgetall(keys.writeBudget(1));
    expect(Number(state.tokens)).toBeLessThan(1);
  });

  it('paces two workers that draw from one installation together', async () => {
    // Two tokens a second: the refill during the first round of calls is far below one token.
    const paced = { perMinute: 120 };
    // One budget per write, alternating between two connections (two workers), so each write's waits are its own.
    const writes = Array.from({ length: 5 }, (_, i) => watchedBudget(i % 2 === 0 ? first : second, paced));
    await Promise.all(writes.map(({ budget }) => budget.take(2)));
    // A burst of 3 for the installation, not per worker: the other 2 writes waited for the pace.
    expect(writes.filter(({ waits }) => waits.length > 0)).toHaveLength(2);
    for (const { waits } of writes) for (const ms of waits) expect(ms).toBeGreaterThan(0);
  });

  it('keeps a separate bucket for every installation', async () => {
    const budget = createWriteBudget(second, options);
    // Drain installation 3…
    await Promise.all([budget.take(3), budget.take(3), budget.take(3)]);
    // …then installation 4 still has its whole burst.
    const before4 = await first.exists(keys.writeBudget(4));
    expect(before4).toBe(0);
    await Promise.all([budget.take(4), budget.take(4), budget.take(4)]);
    const [three, four] = await Promise.all([first.hgetall(keys.writeBudget(3)), first.hgetall(keys.writeBudget(4))]);
    expect(Object.keys(three).sort()).toEqual(['at', 'tokens']);
    expect(Object.keys(four).sort()).toEqual(['at', 'tokens']);
    expect(Number(four.tokens)).toBeLessThan(1);
    expect(await first.pttl(keys.writeBudget(4))).toBeGreaterThan(0);
  });

  it('does not make another installation wait for a drained bucket', async () => {
    const drained = watchedBudget(first);
    await Promise.all(Array.from({ length: 5 }, () => drained.budget.take(5)));
    expect(drained.waits.length).toBeGreaterThan(0);

    const fresh = watchedBudget(first);
    await Promise.all([fresh.budget.take(6), fresh.budget.take(6), fresh.budget.take(6)]);
    expect(fresh.waits).toEqual([]);
  });
});
