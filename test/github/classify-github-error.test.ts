import { describe, expect, it } from '@jest/globals';
import { Octokit } from '@octokit/core';
import { classifyGitHubError } from '../../src/github/classify-github-error.ts';

/** The error a real Octokit throws for GitHub answering `status` with `body` and `headers`. */
async function answer(status: number, body: unknown, headers: Record<string, string> = {}): Promise<unknown> {
  const fetch = async (): Promise<Response> =>
    new Response(JSON.stringify(body), { status, headers: { 'content-type': 'application/json', ...headers } });
  const octokit = new Octokit({ request: { fetch } });
  return octokit
    .request('POST /repos/{owner}/{repo}/statuses/{sha}', {
      owner: 'acme',
      repo: 'gitops',
      sha: 'a'.repeat(40),
      state: 'success',
    })
    .then(
      () => {
        throw new Error('expected GitHub to refuse');
      },
      (error: unknown) => error,
    );
}

const SECONDARY = 'You have exceeded a secondary rate limit. Please wait a few minutes before you try again.';
const DOCS = 'https://docs.github.com/rest/commits/statuses#create-a-commit-status';

describe('classifyGitHubError: what a GitHub answer means, from its status, headers and body', () => {
  it.each([
    ['a 403 without the permission', 403, { message: 'Resource not accessible by integration' }, {}, 'forbidden'],
    ['a 403 for any other refusal', 403, { message: 'Repository access blocked' }, {}, 'forbidden'],
    [
      'a 403 with an exhausted primary limit',
      403,
      { message: 'API rate limit exceeded' },
      { 'x-ratelimit-remaining': '0' },
      'rate-limited',
    ],
    ['a 403 secondary limit', 403, { message: SECONDARY }, {}, 'rate-limited'],
    ['a 403 naming a retry-after', 403, { message: 'Forbidden' }, { 'retry-after': '30' }, 'rate-limited'],
    ['a 429', 429, { message: 'Too Many Requests' }, {}, 'rate-limited'],
    ['a 401', 401, { message: 'Bad credentials' }, {}, 'unauthorized'],
    ['a 404', 404, { message: 'Not Found' }, {}, 'not-found'],
    [
      "GitHub's 422 for a full context (no field)",
      422,
      {
        message: 'Validation Failed',
        errors: [
          {
            resource: 'Status',
            code: 'custom',
            message: 'This SHA and context has reached the maximum number of statuses.',
          },
        ],
        documentation_url: DOCS,
      },
      {},
      'context-full',
    ],
    [
      'a 422 for another custom validation of the status',
      422,
      {
        message: 'Validation Failed',
        errors: [
          {
            resource: 'Status',
            code: 'custom',
            field: 'description',
            message: 'description is too long (maximum is 140 characters)',
          },
        ],
        documentation_url: DOCS,
      },
      {},
      'unprocessable',
    ],
    ['a 422 for an unknown commit', 422, { message: 'No commit found for SHA: abc' }, {}, 'unprocessable'],
    [
      'a 422 whose errors are not objects',
      422,
      { message: 'Validation Failed', errors: ['maximum number of statuses'] },
      {},
      'unprocessable',
    ],
    ['a 500', 500, { message: 'Server Error' }, {}, 'server-error'],
    ['a 502', 502, { message: 'Bad Gateway' }, {}, 'server-error'],
    ['a 409', 409, { message: 'Conflict' }, {}, 'other'],
  ])('%s', async (_name, status, body, headers, kind) => {
    expect(classifyGitHubError(await answer(status, body, headers))).toBe(kind);
  });

  it('is `unreachable` when GitHub did not answer at all', async () => {
    const octokit = new Octokit({
      request: {
        fetch: async () => {
          throw Object.assign(new TypeError('fetch failed'), { cause: { code: 'ECONNREFUSED' } });
        },
      },
    });
    const error = await octokit.request('GET /rate_limit').catch((e: unknown) => e);
    expect(classifyGitHubError(error)).toBe('unreachable');
  });

  it('is undefined for an error that did not come from a GitHub request', () => {
    expect(classifyGitHubError(Object.assign(new Error('Not Found'), { status: 404 }))).toBeUndefined();
    expect(classifyGitHubError('403 Resource not accessible by integration')).toBeUndefined();
  });
});
