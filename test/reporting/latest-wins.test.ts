import { describe, expect, it } from '@jest/globals';
import { LatestWins } from '../../src/reporting/latest-wins.ts';

/** A task that records its name when it starts and finishes when `release` is called. */
function gate(name: string, log: string[]): { task: () => Promise<void>; release: () => void } {
  let release = () => {};
  const done = new Promise<void>((resolve) => {
    release = resolve;
  });
  return {
    task: async () => {
      log.push(name);
      await done;
    },
    release: () => release(),
  };
}

describe('LatestWins: one task at a time per lane, the newest waiting task replacing older ones', () => {
  it('runs the task queued last once the running one finishes; the ones in between never run', async () => {
    const lanes = new LatestWins();
    const started: string[] = [];
    const first = gate('pending', started);
    lanes.push('status ctx', first.task);
    lanes.push('status ctx', async () => void started.push('stale'));
    lanes.push('status ctx', async () => void started.push('success'));
    expect(started).toEqual(['pending']);
    first.release();
    await lanes.idle();
    expect(started).toEqual(['pending', 'success']);
  });

  it('never runs two tasks of one lane at once, and keeps lanes apart', async () => {
    const lanes = new LatestWins();
    const started: string[] = [];
    const a = gate('a1', started);
    const b = gate('b1', started);
    lanes.push('a', a.task);
    lanes.push('b', b.task);
    const a2 = gate('a2', started);
    lanes.push('a', a2.task);
    // The second lane's task runs while the first lane's is still running; a2 waits for a1.
    expect(started).toEqual(['a1', 'b1']);
    b.release();
    await new Promise((resolve) => setImmediate(resolve));
    expect(started).toEqual(['a1', 'b1']);
    a.release();
    await new Promise((resolve) => setImmediate(resolve));
    expect(started).toEqual(['a1', 'b1', 'a2']);
    a2.release();
    await lanes.idle();
  });

  it('idle waits for tasks queued while it waits', async () => {
    const lanes = new LatestWins();
    const finished: string[] = [];
    const first = gate('first', []);
    lanes.push('lane', async () => {
      await first.task();
      finished.push('first');
      // Queued from inside a running task, as `abandon` queues writes after the lanes drained.
      lanes.push('other', async () => void finished.push('second'));
    });
    const idle = lanes.idle();
    first.release();
    await idle;
    expect(finished).toEqual(['first', 'second']);
  });

  it('a lane that threw is closed: idle reports the error once, and the lane takes new tasks', async () => {
    const lanes = new LatestWins();
    lanes.push('lane', async () => {
      throw new Error('boom');
    });
    await expect(lanes.idle()).rejects.toThrow('boom');
    const ran: string[] = [];
    lanes.push('lane', async () => void ran.push('after'));
    await lanes.idle();
    expect(ran).toEqual(['after']);
  });
});
