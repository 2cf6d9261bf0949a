/**
 * `Promise.all` over `items` with at most `limit` in flight: the Kubernetes JS client has no limiter, and
 * a large commit must not open thousands of requests at once. On the first failure no further item is
 * started, and the rejection waits until the ones in flight have settled: a caller that releases a lock
 * on failure must not leave requests running behind it.
 */
export async function mapLimited<T, R>(items: readonly T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const results: R[] = new Array(items.length);
  let next = 0;
  let failure: { error: unknown } | undefined;
  const lane = async () => {
    while (failure === undefined && next < items.length) {
      const index = next++;
      try {
        results[index] = await fn(items[index] as T);
      } catch (error) {
        failure ??= { error };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, lane));
  if (failure) throw failure.error;
  return results;
}
