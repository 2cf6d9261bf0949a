import type { LiveObject } from './cluster-client.ts';

/** Fields under `metadata` that the apiserver maintains by itself: they change without anyone changing the object. */
const SERVER_METADATA: ReadonlySet<string> = new Set([
  'managedFields',
  'resourceVersion',
  'generation',
  'creationTimestamp',
  'uid',
]);

const isRecord = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

/**
 * What a dry-run result and a live object are compared on: the object without `status` and without the
 * server's bookkeeping in `metadata` (`managedFields`, `resourceVersion`, `generation`, `creationTimestamp`,
 * `uid`). Two objects whose `comparable` forms are deeply equal differ in nothing a user wrote. Everything
 * else — annotations included — is kept; a `metadata` that is absent (or not an object) is left as it is.
 * A shallow copy: the input is not changed. Pure.
 */
export function comparable(object: LiveObject): unknown {
  const { status: _status, ...rest } = object;
  if (!isRecord(rest.metadata)) return rest;
  const metadata = Object.fromEntries(Object.entries(rest.metadata).filter(([key]) => !SERVER_METADATA.has(key)));
  return { ...rest, metadata };
}
