/**
 * The bytes of webhook bodies one receiver holds at once. A body is charged for what it has actually
 * sent (not what it declares), chunk by chunk, and given back when its answer is done: a sender that
 * trickles a byte at a time costs next to nothing, and bodies that really fill memory are refused (503)
 * once together they would pass the limit.
 */
export interface BodyBudget {
  /** Charges `bytes`; false, and nothing charged, when that would pass the limit. */
  take(bytes: number): boolean;
  give(bytes: number): void;
  /** Bytes charged now. */
  used(): number;
}

export function createBodyBudget(limitBytes: number): BodyBudget {
  let used = 0;
  return {
    take(bytes) {
      if (used + bytes > limitBytes) return false;
      used += bytes;
      return true;
    },
    give(bytes) {
      used = Math.max(0, used - bytes);
    },
    used: () => used,
  };
}
