import { randomUUID } from 'node:crypto';
import { defineCommands } from '../redis/define-commands.ts';
import { redisKeys } from '../redis/redis-keys.ts';
import type { RedisConnection } from '../redis/redis-topology.ts';

export class LockLostError extends Error {
  override readonly name = 'LockLostError';
}

export class LockBusyError extends Error {
  override readonly name = 'LockBusyError';
}

/**
 * The fencing of a cluster's writes. `check` before every write costs nothing while the lease is known
 * to be ours; `confirm` asks Redis, before each batch of writes and each record write.
 */
export interface Fence {
  /** Monotonic per cluster (a Redis counter bumped on every acquisition): recorded in the inventory. */
  readonly token: number;
  /** Unique per acquisition: a claim of the inventory is always a change, even if the counter was reset. */
  readonly holder: string;
  /**
   * Throws LockLostError unless the lease is known to be ours: confirmed (by a renewal or `confirm`)
   * within the last third of a lease by both the monotonic and the wall clock. A process that was paused
   * (SIGSTOP, a long GC, a frozen VM) finds that window passed and asks Redis; concurrent writers share
   * that one round trip.
   */
  check(): Promise<void>;
  /** Asks Redis now (extending the lease), whatever the window says. */
  confirm(): Promise<void>;
  /**
   * `check`'s judgement, synchronously and without asking Redis: throws LockLostError once the lease may be
   * close to its end (two windows). The client calls it at the last moment before a write leaves
   * (`WriteOptions.guard`): a process paused between its check and its send finds out there.
   */
  assertFresh(): void;
}

/** The lease in Redis and its holder: a Redis write made conditional on it checks both in the same script. */
export interface Lease {
  readonly key: string;
  readonly holder: string;
}

export interface ClusterLock extends Fence {
  /** For writes to Redis that must land only while this lock is held (`ClusterStateStore.update`'s fence). */
  readonly lease: Lease;
  /** Throws LockLostError when another worker holds the lock now (our lease expired). Same as `confirm`. */
  assertHeld(): Promise<void>;
}

/**
 * Runs `work` holding the cluster's lock, shared by every worker process through Redis: at most one
 * reconcile per cluster at a time (invariant 3). The lease expires if its holder dies and is renewed
 * while the work runs; the lock is the work's `Fence`, checked before each write.
 */
export async function withClusterLock<T>(
  redis: RedisConnection,
  options: { readonly prefix: string; readonly cluster: string; readonly leaseMs: number; readonly waitMs: number },
  work: (lock: ClusterLock) => Promise<T>,
): Promise<T> {
  const scripts = defineCommands(redis);
  const keys = redisKeys(options.prefix);
  const leaseKey = keys.clusterLease(options.cluster);
  const fenceKey = keys.clusterFence(options.cluster);
  const owner = randomUUID();
  const deadline = Date.now() + options.waitMs;
  let token: number;
  let acquiredAt = moment();
  for (;;) {
    acquiredAt = moment();
    token = Number(await scripts.plumblineAcquireLease(leaseKey, fenceKey, owner, options.leaseMs));
    if (token > 0) break;
    if (Date.now() > deadline)
      throw new LockBusyError(`cluster ${options.cluster} is being reconciled by another worker`);
    await new Promise((resolve) => setTimeout(resolve, 100 + Math.random() * 100));
  }
  const trustMs = options.leaseMs / 3;
  let confirmedAt = acquiredAt;
  let lost = false;
  let asking: Promise<void> | undefined;
  const lostError = () =>
    new LockLostError(`lost the lock of cluster ${options.cluster} (lease expired); another worker took over`);
  /** One EXTEND: the lease is ours for `leaseMs` from when it was sent, so the window starts then. */
  const extend = async (): Promise<boolean> => {
    const sent = moment();
    const extended = (await scripts.plumblineExtendLease(leaseKey, owner, options.leaseMs)) === 1;
    if (!extended) lost = true;
    else if (!lost && sent.mono > confirmedAt.mono) confirmedAt = sent;
    return extended;
  };
  /** Concurrent callers share the round trip in flight. */
  const ask = (): Promise<void> => {
    asking ??= extend()
      .then((held) => {
        if (!held) throw lostError();
      })
      .finally(() => {
        asking = undefined;
      });
    return asking;
  };
  /** Until Redis confirmed the lease within the window (an answer sent before a pause is stale on arrival). */
  const check = async (): Promise<void> => {
    for (;;) {
      if (lost) throw lostError();
      if (elapsedSince(confirmedAt) < trustMs) return;
      await ask();
    }
  };
  // Twice per window: while Redis answers, `check` never has to ask it.
  const renew = setInterval(
    () => {
      extend().catch(() => {});
    },
    Math.max(100, Math.floor(trustMs / 2)),
  );
  renew.unref();
  const lock: ClusterLock = {
    token,
    holder: owner,
    lease: { key: leaseKey, holder: owner },
    check,
    assertFresh() {
      // Twice the window, still a third of a lease short of its end: a write that passed `check` a moment
      // ago is not refused for the moment itself (a slow handshake, a busy event loop), a paused one is.
      if (lost || elapsedSince(confirmedAt) >= 2 * trustMs) throw lostError();
    },
    async confirm() {
      if (lost) throw lostError();
      await ask();
      await check();
    },
    async assertHeld() {
      await lock.confirm();
    },
  };
  try {
    return await work(lock);
  } finally {
    clearInterval(renew);
    await scripts.plumblineReleaseLease(leaseKey, owner).catch(() => undefined);
  }
}

interface Moment {
  readonly mono: number;
  readonly wall: number;
}

function moment(): Moment {
  return { mono: performance.now(), wall: Date.now() };
}

/** The larger of the monotonic and the wall-clock time passed: a clock that stood still does not help. */
function elapsedSince(then: Moment): number {
  return Math.max(performance.now() - then.mono, Date.now() - then.wall);
}
