import type { z } from 'zod';

/** A JSON record read back from Redis: missing, not what its schema says, or the value. */
export type Stored<T> =
  | { readonly state: 'absent' }
  | { readonly state: 'invalid'; readonly issue: string }
  | { readonly state: 'valid'; readonly value: T };

/**
 * Parses a record Plumbline wrote itself — but another version, or a hand-edited key, may have written it:
 * a record that is not JSON or fails its schema is `invalid`, for the caller to treat as absent (and log),
 * never a crash. Pure.
 */
export function parseStored<T>(schema: z.ZodType<T>, text: string | null | undefined): Stored<T> {
  if (text === null || text === undefined || text === '') return { state: 'absent' };
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    return { state: 'invalid', issue: 'not JSON' };
  }
  const parsed = schema.safeParse(json);
  if (!parsed.success) {
    const first = parsed.error.issues[0];
    return { state: 'invalid', issue: first ? `${first.path.join('.') || '(root)'}: ${first.message}` : 'invalid' };
  }
  return { state: 'valid', value: parsed.data };
}

/** The value of a stored record, or undefined when it is absent or invalid. */
export function storedValue<T>(stored: Stored<T>): T | undefined {
  return stored.state === 'valid' ? stored.value : undefined;
}
