import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

export interface LockOptions {
  /** How long to wait for another holder (a first `local:up` builds for many minutes). */
  readonly timeoutMs: number;
  readonly onWait?: () => void;
}

/**
 * Runs `work` holding the lock folder `dir` (mkdir is atomic across processes). The holder's pid is
 * written inside, so a lock left by a process that died is taken over instead of waited out.
 */
export async function withProcessLock<T>(dir: string, options: LockOptions, work: () => Promise<T>): Promise<T> {
  const deadline = Date.now() + options.timeoutMs;
  let told = false;
  for (;;) {
    try {
      await mkdir(dir);
      await writeFile(join(dir, 'pid'), String(process.pid));
      break;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      if (await holderIsGone(dir)) {
        await rm(dir, { recursive: true, force: true });
        continue;
      }
      if (Date.now() > deadline) throw new Error(`${dir} is still held after ${options.timeoutMs / 1000} s`);
      if (!told) options.onWait?.();
      told = true;
      await sleep(250);
    }
  }
  try {
    return await work();
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** True when the lock names a pid that no longer runs. A lock without a pid file yet is being taken: held. */
async function holderIsGone(dir: string): Promise<boolean> {
  const pid = Number(await readFile(join(dir, 'pid'), 'utf8').catch(() => ''));
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return false;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'ESRCH';
  }
}
