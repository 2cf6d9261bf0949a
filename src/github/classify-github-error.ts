import { RequestError } from '@octokit/request-error';
import { z } from 'zod';

/**
 * What an answer from GitHub's REST API means for the caller, read from its status, headers and body
 * structure (https://docs.github.com/en/rest/using-the-rest-api/troubleshooting-the-rest-api):
 * - `rate-limited`: 403/429 for a primary limit (`x-ratelimit-remaining: 0`), a secondary limit, or any
 *   403/429 that names a `retry-after`;
 * - `unauthorized`: 401 (the token); `forbidden`: any other 403 (the App's permissions do not allow it);
 * - `not-found`: 404; `context-full`: 422, the commit and context hold GitHub's 1,000 statuses;
 * - `unprocessable`: any other 422; `server-error`: 5xx; `unreachable`: no answer at all (Octokit
 *   reports a network failure as a RequestError without a response); `other`: any other status.
 */
export type GitHubErrorKind =
  | 'rate-limited'
  | 'unauthorized'
  | 'forbidden'
  | 'not-found'
  | 'context-full'
  | 'unprocessable'
  | 'server-error'
  | 'unreachable'
  | 'other';

/** The parts of an Octokit `RequestError` the classification reads (a `RequestError` is one). */
export interface GitHubErrorShape {
  readonly status: number;
  readonly message: string;
  readonly response?:
    | {
        readonly headers: Readonly<Record<string, string | number | undefined>>;
        readonly data?: unknown;
      }
    | undefined;
}

/** The kind of a GitHub answer; undefined for an error that did not come from a GitHub request. Pure. */
export function classifyGitHubError(error: unknown): GitHubErrorKind | undefined {
  if (!(error instanceof RequestError)) return undefined;
  return kindOf(error);
}

/** `classifyGitHubError` for the error's shape alone (tests, and hooks that see a plain object). Pure. */
export function kindOf(error: GitHubErrorShape): GitHubErrorKind {
  if (!error.response) return 'unreachable';
  const { status } = error;
  if ((status === 403 || status === 429) && isRateLimit(error)) return 'rate-limited';
  if (status === 401) return 'unauthorized';
  if (status === 403) return 'forbidden';
  if (status === 404) return 'not-found';
  if (status === 422) return isContextFull(error.response.data) ? 'context-full' : 'unprocessable';
  if (status >= 500) return 'server-error';
  return 'other';
}

/** A 403/429 of any rate limit: an exhausted primary limit, a secondary limit, or a `retry-after`. */
function isRateLimit(error: GitHubErrorShape): boolean {
  const headers = error.response?.headers ?? {};
  return (
    error.status === 429 ||
    isPrimaryLimitExhausted(headers) ||
    isSecondaryRateLimit(error) ||
    headers['retry-after'] !== undefined
  );
}

/** GitHub's documented signal of an exhausted primary rate limit. */
export function isPrimaryLimitExhausted(headers: Readonly<Record<string, string | number | undefined>>): boolean {
  return String(headers['x-ratelimit-remaining']) === '0';
}

/**
 * A secondary rate limit. GitHub's only signal is the text: "you will receive a 403 Forbidden or 429 Too
 * Many Requests response and an error message that indicates that you exceeded a secondary rate limit"
 * (no header, no field). The same test as @octokit/plugin-throttling's, which must agree with ours: the
 * plugin handles these, and `honourRetryAfter` must leave them to it.
 */
export function isSecondaryRateLimit(error: Pick<GitHubErrorShape, 'message'>): boolean {
  return /\bsecondary rate\b/i.test(error.message);
}

const validationFailed = z.object({
  errors: z.array(z.object({ resource: z.string().optional(), message: z.string().optional() })),
});

/**
 * GitHub's 422 for a full context is `{"message": "Validation Failed", "errors": [{"resource": "Status",
 * "code": "custom", "message": "This SHA and context has reached the maximum number of statuses."}]}`:
 * `code: custom` and no `field`, the same shape as other custom validations, so the error's own message
 * is the only signal that distinguishes it. This is the one place that reads it.
 */
function isContextFull(data: unknown): boolean {
  const parsed = validationFailed.safeParse(data);
  return (
    parsed.success &&
    parsed.data.errors.some((e) => e.resource === 'Status' && /maximum number of statuses/i.test(e.message ?? ''))
  );
}
