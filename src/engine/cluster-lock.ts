import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';

export class LockLostError extends Error {
  override readonly name = 'LockLostError';
}

export class LockBusyError extends Error {
  override readonly name = 'LockBusyError';
}

export interface ClusterLock {
  /** Throws LockLostError when another worker holds the lock now (our lease expired). */
  assertHeld(): Promise<void>;
}

const RELEASE = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0`;
const EXTEND = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end return 0`;

/**
 * Runs `work` holding the cluster's lock, shared by every worker process through Redis: at most one
 * reconcile per cluster at a time (invariant 3). The lease expires if its holder dies and is renewed
 * while the work runs; `assertHeld` is the fencing check before each write.
 */
export async function withClusterLock<T>(
  redis: Redis,
  options: { readonly prefix: string; readonly cluster: string; readonly leaseMs: number; readonly waitMs: number },
  work: (lock: ClusterLock) => Promise<T>,
): Promise<T> {
  const key = `${options.prefix}:lock:${options.cluster}`;
  const owner = randomUUID();
  const deadline = Date.now() + options.waitMs;
  while ((await redis.set(key, owner, 'PX', options.leaseMs, 'NX')) !== 'OK') {
    if (Date.now() > deadline)
      throw new LockBusyError(`cluster ${options.cluster} is being reconciled by another worker`);
    await new Promise((resolve) => setTimeout(resolve, 100 + Math.random() * 100));
  }
  let lost = false;
  const renew = setInterval(
    () => {
      redis.eval(EXTEND, 1, key, owner, options.leaseMs).then(
        (extended) => {
          if (extended !== 1) lost = true;
        },
        () => {},
      );
    },
    Math.max(100, Math.floor(options.leaseMs / 3)),
  );
  renew.unref();
  const lock: ClusterLock = {
    async assertHeld() {
      if (lost || (await redis.get(key)) !== owner) {
        lost = true;
        throw new LockLostError(
          `lost the lock of cluster ${options.cluster} (lease expired); another worker took over`,
        );
      }
    },
  };
  try {
    return await work(lock);
  } finally {
    clearInterval(renew);
    await redis.eval(RELEASE, 1, key, owner).catch(() => undefined);
  }
}
