import { describe, expect, it } from '@jest/globals';
import { Octokit } from '@octokit/core';
import { honourRetryAfter, retryAfterSeconds } from '../../src/github/honour-retry-after.ts';

const rateLimited = (status: number, headers: Record<string, string | number | undefined>, message = 'Too many') => ({
  status,
  message,
  response: { headers },
});

describe('retryAfterSeconds', () => {
  it('waits what a 429 asks for', () => {
    expect(retryAfterSeconds(rateLimited(429, { 'retry-after': '3' }))).toBe(3);
  });

  it('waits what a 403 with retry-after asks for when it is not a secondary limit', () => {
    expect(retryAfterSeconds(rateLimited(403, { 'retry-after': '7' }, 'Forbidden'))).toBe(7);
  });

  it('leaves secondary rate limits to the throttling plugin', () => {
    const message = 'You have exceeded a secondary rate limit. Please wait a few minutes before you try again.';
    expect(retryAfterSeconds(rateLimited(403, { 'retry-after': '30' }, message))).toBeUndefined();
    expect(retryAfterSeconds(rateLimited(429, { 'retry-after': '30' }, message))).toBeUndefined();
    expect(retryAfterSeconds(rateLimited(429, {}, 'SECONDARY RATE LIMIT exceeded'))).toBeUndefined();
  });

  it('leaves an exhausted primary limit to the throttling plugin', () => {
    expect(retryAfterSeconds(rateLimited(429, { 'retry-after': '5', 'x-ratelimit-remaining': '0' }))).toBeUndefined();
    expect(retryAfterSeconds(rateLimited(403, { 'retry-after': '5', 'x-ratelimit-remaining': '0' }))).toBeUndefined();
    expect(retryAfterSeconds(rateLimited(403, { 'retry-after': '5', 'x-ratelimit-remaining': 0 }))).toBeUndefined();
  });

  it('still retries when the primary limit is not exhausted', () => {
    expect(retryAfterSeconds(rateLimited(429, { 'retry-after': '2', 'x-ratelimit-remaining': '10' }))).toBe(2);
  });

  it('waits a minute for a bare 429', () => {
    expect(retryAfterSeconds(rateLimited(429, {}))).toBe(60);
    expect(retryAfterSeconds({ status: 429, message: 'Too many' })).toBe(60);
  });

  it('does not retry other statuses', () => {
    expect(retryAfterSeconds(rateLimited(500, { 'retry-after': '3' }))).toBeUndefined();
    expect(retryAfterSeconds(rateLimited(404, { 'retry-after': '3' }))).toBeUndefined();
  });

  it('does not retry a 403 without retry-after', () => {
    expect(retryAfterSeconds(rateLimited(403, {}, 'Resource not accessible by integration'))).toBeUndefined();
  });
});

describe('the honourRetryAfter plugin', () => {
  it('waits out retry-after on a 429 and retries the request', async () => {
    const calls: number[] = [];
    const fakeFetch = async (_url: string | URL | Request, _init?: RequestInit): Promise<Response> => {
      calls.push(performance.now());
      if (calls.length === 1) {
        return new Response(JSON.stringify({ message: 'Too many requests' }), {
          status: 429,
          headers: { 'content-type': 'application/json', 'retry-after': '1' },
        });
      }
      return new Response(JSON.stringify({ id: 42, name: 'plumbline' }), {
        status: 200,
        headers: { 'content-type': 'application/json' },
      });
    };
    const warnings: string[] = [];
    const log = {
      debug: () => {},
      info: () => {},
      warn: (message: string) => void warnings.push(message),
      error: () => {},
    };
    const RetryingOctokit = Octokit.plugin(honourRetryAfter);
    const octokit = new RetryingOctokit({ request: { fetch: fakeFetch }, log });

    const response = await octokit.request('GET /repos/{owner}/{repo}', { owner: 'acme', repo: 'plumbline' });

    expect(response.status).toBe(200);
    expect(response.data).toEqual({ id: 42, name: 'plumbline' });
    expect(calls).toHaveLength(2);
    const [first = 0, second = 0] = calls;
    expect(second - first).toBeGreaterThanOrEqual(900);
    expect(warnings.some((w) => w.includes('retry-after'))).toBe(true);
  });

  it('gives up on a 500 at once', async () => {
    let count = 0;
    const fakeFetch = async (): Promise<Response> => {
      count++;
      return new Response(JSON.stringify({ message: 'boom' }), {
        status: 500,
        headers: { 'content-type': 'application/json', 'retry-after': '1' },
      });
    };
    const octokit = new (Octokit.plugin(honourRetryAfter))({ request: { fetch: fakeFetch, retries: 0 } });
    await expect(octokit.request('GET /rate_limit')).rejects.toMatchObject({ status: 500 });
    expect(count).toBe(1);
  });
});
