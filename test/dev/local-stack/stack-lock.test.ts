import { spawnSync } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { withProcessLock } from '../../../dev/local-stack/stack-lock.ts';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'stack-lock-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('the lock that keeps two local:up runs from starting two stacks', () => {
  it('runs one holder at a time, and the waiter after the holder', async () => {
    const lock = join(dir, 'serial.lock');
    const events: string[] = [];
    const holder = (name: string) =>
      withProcessLock(lock, { timeoutMs: 10_000 }, async () => {
        events.push(`${name} in`);
        await sleep(100);
        events.push(`${name} out`);
        return name;
      });
    await expect(Promise.all([holder('a'), holder('b')])).resolves.toEqual(['a', 'b']);
    expect(events).toEqual(['a in', 'a out', 'b in', 'b out']);
  });

  it('takes over a lock whose holder died', async () => {
    const lock = join(dir, 'stale.lock');
    const dead = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))']).stdout.toString();
    await mkdir(lock);
    await writeFile(join(lock, 'pid'), dead);
    await expect(withProcessLock(lock, { timeoutMs: 5_000 }, async () => 'taken')).resolves.toBe('taken');
  });

  it('gives up on a live holder after the timeout, naming the lock', async () => {
    const lock = join(dir, 'held.lock');
    await mkdir(lock);
    await writeFile(join(lock, 'pid'), String(process.pid));
    await expect(withProcessLock(lock, { timeoutMs: 300 }, async () => 'never')).rejects.toThrow(
      `${lock} is still held after 0.3 s`,
    );
  });
});
