import { setTimeout as sleep } from 'node:timers/promises';
import type { Octokit } from '@octokit/core';
import { RequestError } from '@octokit/request-error';
import { type GitHubErrorShape, isPrimaryLimitExhausted, isSecondaryRateLimit } from './classify-github-error.ts';

/** Longest `retry-after` worth waiting for inside one request; beyond it the caller retries later. */
export const MAX_RETRY_AFTER_SECONDS = 120;
const MAX_RETRIES = 3;

/**
 * Seconds to wait before retrying a 403/429 that the throttling plugin does not handle: one with a
 * `retry-after` but neither GitHub's secondary-limit message nor an exhausted primary limit. Pure.
 */
export function retryAfterSeconds(error: GitHubErrorShape): number | undefined {
  if (error.status !== 403 && error.status !== 429) return undefined;
  const headers = error.response?.headers ?? {};
  // The throttling plugin owns these two cases; retrying them here too would double the wait.
  if (isSecondaryRateLimit(error) || isPrimaryLimitExhausted(headers)) return undefined;
  const seconds = Number(headers['retry-after']);
  if (Number.isFinite(seconds) && seconds >= 0) return seconds;
  // A bare 429 without a hint: GitHub asks for at least a minute.
  return error.status === 429 ? 60 : undefined;
}

/** Octokit plugin: waits out `retry-after` on 403/429 answers, up to a few times and a bounded wait. */
export function honourRetryAfter(octokit: Octokit): void {
  octokit.hook.error('request', async (error, options) => {
    const request = options.request as { retryAfterCount?: number } | undefined;
    const attempts = request?.retryAfterCount ?? 0;
    if (!(error instanceof RequestError)) throw error;
    const seconds = retryAfterSeconds(error);
    if (seconds === undefined || seconds > MAX_RETRY_AFTER_SECONDS || attempts >= MAX_RETRIES) throw error;
    octokit.log.warn(`waiting ${seconds} s (retry-after) before retrying ${options.method} ${options.url}`);
    await sleep(seconds * 1000);
    return octokit.request({ ...options, request: { ...options.request, retryAfterCount: attempts + 1 } });
  });
}
