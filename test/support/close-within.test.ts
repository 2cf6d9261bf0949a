import { describe, expect, it } from '@jest/globals';
import { closeWithin, deadlineIn, drainDeadline, isClean, shutdownSteps } from '../../src/support/close-within.ts';

const never = () => new Promise<void>(() => {});

describe('deadlineIn', () => {
  it('counts down on the clock it is given, never below zero; `before` keeps room, never before now', () => {
    let now = 1_000;
    const deadline = deadlineIn(10_000, () => now);
    expect(deadline.remainingMs()).toBe(10_000);
    now += 4_000;
    expect(deadline.remainingMs()).toBe(6_000);
    expect(deadline.before(2_000).remainingMs()).toBe(4_000);
    expect(deadline.before(60_000).remainingMs()).toBe(0);
    now += 20_000;
    expect(deadline.remainingMs()).toBe(0);
  });

  it('drains until the last quarter of the grace, keeping at most 2 s for the flushes after it', () => {
    expect(drainDeadline(deadlineIn(20_000, () => 0)).remainingMs()).toBe(18_000);
    expect(drainDeadline(deadlineIn(4_000, () => 0)).remainingMs()).toBe(3_000);
    expect(drainDeadline(deadlineIn(0, () => 0)).remainingMs()).toBe(0);
  });
});

describe('closeWithin', () => {
  it('says whether a close finished, threw, or was still running at its deadline', async () => {
    expect(await closeWithin(async () => {}, deadlineIn(1_000))).toBe('closed');
    expect(await closeWithin(() => Promise.reject(new Error('no')), deadlineIn(1_000))).toBe('failed');
    expect(
      await closeWithin(() => {
        throw new Error('at once');
      }, deadlineIn(1_000)),
    ).toBe('failed');
    expect(await closeWithin(never, deadlineIn(50))).toBe('gave up');
    // A deadline already passed gives up on anything that has to wait.
    expect(await closeWithin(never, deadlineIn(0))).toBe('gave up');
  });
});

describe('shutdownSteps', () => {
  it('names what it gave up on and what failed, and forces only those', async () => {
    const steps = shutdownSteps('worker', deadlineIn(5_000));
    const forced: string[] = [];
    const force = (name: string) => () => {
      forced.push(name);
    };
    expect(await steps.run('fine', async () => {}, { force: force('fine') })).toBe('closed');
    expect(await steps.run('stuck', never, { by: deadlineIn(50), force: force('stuck') })).toBe('gave up');
    expect(await steps.run('broken', () => Promise.reject(new Error('x')), { force: force('broken') })).toBe('failed');
    await new Promise((resolve) => setImmediate(resolve)); // forcing is not awaited
    expect(forced).toEqual(['stuck', 'broken']);
    expect(steps.report()).toEqual({ gaveUp: ['worker: stuck'], failed: ['worker: broken'] });
    expect(isClean([steps.report()])).toBe(false);
    expect(isClean([shutdownSteps('receiver', deadlineIn(1)).report()])).toBe(true);
  });

  it('a force that throws does not make the shutdown throw', async () => {
    const steps = shutdownSteps('receiver', deadlineIn(50));
    const outcome = await steps.run('stuck', never, {
      force: () => {
        throw new Error('cannot even force it');
      },
    });
    expect(outcome).toBe('gave up');
  });
});
