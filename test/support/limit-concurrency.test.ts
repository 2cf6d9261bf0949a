import { describe, expect, it } from '@jest/globals';
import { mapLimited } from '../../src/support/limit-concurrency.ts';

describe('mapLimited', () => {
  it('keeps at most `limit` tasks in flight and returns results in order', async () => {
    let active = 0;
    let peak = 0;
    const results = await mapLimited([5, 1, 4, 2, 3, 0], 2, async (n) => {
      active += 1;
      peak = Math.max(peak, active);
      await new Promise((resolve) => setTimeout(resolve, n * 5));
      active -= 1;
      return n * 10;
    });
    expect(results).toEqual([50, 10, 40, 20, 30, 0]);
    expect(peak).toBe(2);
  });

  it('starts nothing after a failure and rejects only once the tasks in flight have settled', async () => {
    const started: number[] = [];
    let inFlight = 0;
    const run = mapLimited([0, 1, 2, 3, 4, 5, 6, 7], 3, async (n) => {
      started.push(n);
      inFlight += 1;
      await new Promise((resolve) => setTimeout(resolve, n === 1 ? 5 : 30));
      inFlight -= 1;
      if (n === 1) throw new Error('boom');
      return n;
    });
    await expect(run).rejects.toThrow('boom');
    expect(inFlight).toBe(0);
    expect(started).toEqual([0, 1, 2]);
  });
});
