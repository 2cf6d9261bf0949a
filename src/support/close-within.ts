/** A moment by which a shutdown must be over, on the monotonic clock (a wall-clock jump does not move it). */
export interface Deadline {
  /** Milliseconds left, never below zero. */
  remainingMs(): number;
  /** A deadline `ms` earlier than this one (never before now): room kept for the steps that follow. */
  before(ms: number): Deadline;
}

export function deadlineIn(ms: number, now: () => number = () => performance.now()): Deadline {
  const at = (when: number): Deadline => ({
    remainingMs: () => Math.max(0, when - now()),
    before: (earlier) => at(Math.max(now(), when - earlier)),
  });
  return at(now() + ms);
}

/** The most of a grace kept back from draining (running jobs, requests in flight) for the flushes after it. */
const FLUSH_RESERVE_MS = 2_000;

/**
 * Until when work in progress may drain: all of the grace but its last quarter, at most 2 s, which the
 * steps after it (closing queues, quitting Redis) keep even when the draining took everything it could.
 */
export function drainDeadline(deadline: Deadline): Deadline {
  return deadline.before(Math.min(FLUSH_RESERVE_MS, deadline.remainingMs() / 4));
}

/**
 * What one step of a shutdown came to: `closed` (done in time), `failed` (it threw; nothing left to wait
 * for) or `gave up` (still running at its deadline: it goes on in the background, unawaited).
 */
export type CloseOutcome = 'closed' | 'failed' | 'gave up';

/** Waits for `close` until `deadline`, and no longer. Never rejects. */
export async function closeWithin(close: () => Promise<unknown>, deadline: Deadline): Promise<CloseOutcome> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<CloseOutcome>((resolve) => {
    timer = setTimeout(() => resolve('gave up'), deadline.remainingMs());
  });
  const running = (async (): Promise<CloseOutcome> => {
    await close();
    return 'closed';
  })().catch((): CloseOutcome => 'failed');
  try {
    return await Promise.race([running, late]);
  } finally {
    clearTimeout(timer);
  }
}

export interface StepOptions {
  /** Until when the step is waited for; the shutdown's deadline unless earlier. */
  readonly by?: Deadline;
  /** What ends the step at once when it failed or ran out of time (cut connections, drop sockets). */
  readonly force?: () => unknown;
}

/** What a component's shutdown came to: clean when it gave up on nothing and nothing failed. */
export interface ShutdownReport {
  /** The steps still unfinished at their deadline, named `component: step`. */
  readonly gaveUp: readonly string[];
  /** The steps that threw, named the same way. */
  readonly failed: readonly string[];
}

/** The named steps of one component's shutdown, each bounded by the shared deadline, and what they came to. */
export interface ShutdownSteps {
  /** Runs one step, waiting for it no longer than its deadline; its outcome is recorded in the report. */
  run(step: string, close: () => Promise<unknown>, options?: StepOptions): Promise<CloseOutcome>;
  report(): ShutdownReport;
}

export function shutdownSteps(component: string, deadline: Deadline): ShutdownSteps {
  const gaveUp: string[] = [];
  const failed: string[] = [];
  return {
    async run(step, close, options = {}) {
      const outcome = await closeWithin(close, options.by ?? deadline);
      if (outcome === 'gave up') gaveUp.push(`${component}: ${step}`);
      if (outcome === 'failed') failed.push(`${component}: ${step}`);
      // Not awaited: forcing is the last resort, nothing is left to wait for.
      if (outcome !== 'closed' && options.force)
        void Promise.resolve()
          .then(options.force)
          .catch(() => undefined);
      return outcome;
    },
    report: () => ({ gaveUp: [...gaveUp], failed: [...failed] }),
  };
}

/** Whether a shutdown was clean: nothing given up on, nothing failed. Pure. */
export function isClean(reports: readonly ShutdownReport[]): boolean {
  return reports.every((r) => r.gaveUp.length === 0 && r.failed.length === 0);
}
