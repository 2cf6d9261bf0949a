import { afterAll, describe, expect, it } from '@jest/globals';
import { Redis } from 'ioredis';
import { createWriteBudget } from '../../src/reporting/write-budget.ts';
import { testEnvironment, uniqueName } from '../support/environment.ts';

const env = testEnvironment();

describe('the shared write budget', () => {
  const prefix = uniqueName('budget');
  const first = new Redis(env.redisUrl);
  const second = new Redis(env.redisUrl);
  const options = { prefix, perMinute: 600, burst: 3 };

  afterAll(async () => {
    const keys = await first.keys(`${prefix}:*`);
    if (keys.length > 0) await first.del(...keys);
    first.disconnect();
    second.disconnect();
  });

  it('lets a burst through without waiting', async () => {
    const budget = createWriteBudget(first, options);
    await expect(Promise.all([budget.take(1), budget.take(1), budget.take(1)])).resolves.toHaveLength(3);
    const state = await first.hgetall(`${prefix}:github:budget:1`);
    expect(Number(state.tokens)).toBeLessThan(1);
  });

  it('paces two workers that draw from one installation together', async () => {
    const workerA = createWriteBudget(first, options);
    const workerB = createWriteBudget(second, options);
    const started = performance.now();
    await Promise.all(Array.from({ length: 9 }, (_, i) => (i % 2 === 0 ? workerA : workerB).take(2)));
    const elapsed = performance.now() - started;
    // 3 at once, then 6 more at 10 per second: at least ~600 ms whichever worker takes them.
    expect(elapsed).toBeGreaterThanOrEqual(550);
  });

  it('keeps a separate bucket for every installation', async () => {
    const budget = createWriteBudget(second, options);
    // Drain installation 3…
    await Promise.all([budget.take(3), budget.take(3), budget.take(3)]);
    // …then installation 4 still has its whole burst.
    const before4 = await first.exists(`${prefix}:github:budget:4`);
    expect(before4).toBe(0);
    await Promise.all([budget.take(4), budget.take(4), budget.take(4)]);
    const [three, four] = await Promise.all([
      first.hgetall(`${prefix}:github:budget:3`),
      first.hgetall(`${prefix}:github:budget:4`),
    ]);
    expect(Object.keys(three).sort()).toEqual(['at', 'tokens']);
    expect(Object.keys(four).sort()).toEqual(['at', 'tokens']);
    expect(Number(four.tokens)).toBeLessThan(1);
    expect(await first.pttl(`${prefix}:github:budget:4`)).toBeGreaterThan(0);
  });

  it('does not make another installation wait for a drained bucket', async () => {
    const budget = createWriteBudget(first, options);
    const drainedStarted = performance.now();
    await Promise.all(Array.from({ length: 6 }, () => budget.take(5)));
    const drainedElapsed = performance.now() - drainedStarted;
    expect(drainedElapsed).toBeGreaterThanOrEqual(250);

    const freshStarted = performance.now();
    await Promise.all([budget.take(6), budget.take(6), budget.take(6)]);
    const freshElapsed = performance.now() - freshStarted;
    expect(freshElapsed).toBeLessThan(drainedElapsed);
  });
});
