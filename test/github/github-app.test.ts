import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import { GitHubStandIn } from '../../dev/github-stand-in/github-stand-in.ts';
import { GitHubApp, type GitHubRequestObservation } from '../../src/github/github-app.ts';
import { createLogger } from '../../src/logging/create-logger.ts';

const TOKEN_REQUEST = 'POST /app/installations/{installation_id}/access_tokens';

describe('the GitHub App identity', () => {
  let dir: string;
  let github: GitHubStandIn;
  let logs: string[];
  let clock: number;

  const app = (overrides: Partial<ConstructorParameters<typeof GitHubApp>[0]> = {}) =>
    new GitHubApp({
      appId: String(github.appId),
      privateKey: github.privateKeyPem,
      baseUrl: github.apiUrl,
      logger: createLogger(
        'trace',
        new Writable({
          write(chunk: Buffer, _e, done) {
            logs.push(chunk.toString());
            done();
          },
        }),
      ),
      now: () => clock,
      ...overrides,
    });

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'plumbline-app-'));
    github = await new GitHubStandIn({ rootDir: dir }).start();
    await github.createRepository('acme/platform-gitops', 1);
    await github.createRepository('acme/other', 2);
    logs = [];
    clock = Date.now();
  });
  afterEach(async () => {
    await github.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('authenticates as the App with a JWT GitHub accepts', async () => {
    const response = await app().octokit.request('GET /app');
    expect(response.data).toMatchObject({ id: github.appId, slug: 'plumbline' });
    expect(github.violations).toEqual([]);
  });

  it('caches an installation token and shares one request between concurrent jobs', async () => {
    const identity = app();
    const tokens = await Promise.all(Array.from({ length: 10 }, () => identity.installationToken(1)));
    expect(new Set(tokens).size).toBe(1);
    await identity.installationToken(1);
    expect(github.callsTo(TOKEN_REQUEST)).toHaveLength(1);
  });

  it('keeps one token per installation', async () => {
    const identity = app();
    const [one, two] = await Promise.all([identity.installationToken(1), identity.installationToken(2)]);
    expect(one).not.toBe(two);
    expect(
      github
        .callsTo(TOKEN_REQUEST)
        .map((call) => call.path)
        .sort(),
    ).toEqual(['/app/installations/1/access_tokens', '/app/installations/2/access_tokens']);
  });

  it('refreshes a token before its one-hour expiry, not after', async () => {
    const identity = app({ refreshMarginMs: 5 * 60_000 });
    const first = await identity.installationToken(1);
    clock += 54 * 60_000; // 6 minutes left: still good
    expect(await identity.installationToken(1)).toBe(first);
    clock += 2 * 60_000; // 4 minutes left: inside the margin
    const second = await identity.installationToken(1);
    expect(second).not.toBe(first);
    expect(github.callsTo(TOKEN_REQUEST)).toHaveLength(2);
  });

  it('acts as the installation with a current token', async () => {
    const response = await app().installationOctokit(1).request('GET /repos/{owner}/{repo}', {
      owner: 'acme',
      repo: 'platform-gitops',
    });
    expect(response.data).toMatchObject({
      full_name: 'acme/platform-gitops',
      clone_url: expect.stringMatching(/\.git$/),
    });
  });

  it('cannot reach a repository of another installation', async () => {
    const reading = app().installationOctokit(1).request('GET /repos/{owner}/{repo}', { owner: 'acme', repo: 'other' });
    await expect(reading).rejects.toMatchObject({ status: 404 });
  });

  it('fails clearly with a key GitHub does not know, and forgets the failed attempt', async () => {
    const { generateKeyPairSync } = await import('node:crypto');
    const wrongKey = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({
      type: 'pkcs1',
      format: 'pem',
    });
    const identity = app({ privateKey: wrongKey.toString() });
    await expect(identity.installationToken(1)).rejects.toMatchObject({ status: 401 });
    await expect(identity.installationToken(1)).rejects.toMatchObject({ status: 401 });
    expect(github.callsTo(TOKEN_REQUEST)).toHaveLength(2);
  });

  it('waits out a rate limit (retry-after) and then succeeds', async () => {
    github.script('GET /app', { status: 429, body: { message: 'rate limited' }, headers: { 'retry-after': '1' } });
    const started = Date.now();
    const response = await app().octokit.request('GET /app');
    expect(response.status).toBe(200);
    expect(Date.now() - started).toBeGreaterThanOrEqual(900);
    expect(github.callsTo('GET /app').map((call) => call.status)).toEqual([429, 200]);
  });

  it('tells its observer of every HTTP request (retries included), its status and the rate limit left', async () => {
    const seen: GitHubRequestObservation[] = [];
    const identity = app({ observe: (request) => seen.push(request) });
    github.script('GET /app', { status: 429, body: { message: 'rate limited' }, headers: { 'retry-after': '1' } });
    github.script('GET /app', { status: 200, body: { id: 1 }, headers: { 'x-ratelimit-remaining': '4321' } });
    await identity.octokit.request('GET /app');
    await identity
      .installationOctokit(1)
      .request('GET /repos/{owner}/{repo}', { owner: 'acme', repo: 'other' })
      .catch(() => undefined);
    expect(seen).toEqual([
      { identity: 'app', method: 'GET', status: 429, rateLimitRemaining: undefined },
      { identity: 'app', method: 'GET', status: 200, rateLimitRemaining: 4321 },
      // The installation's token is asked for with the App's JWT, then used.
      { identity: 'app', method: 'POST', status: 201, rateLimitRemaining: undefined },
      { identity: '1', method: 'GET', status: 404, rateLimitRemaining: undefined },
    ]);
  });

  it('never logs a token or the private key', async () => {
    const identity = app();
    const token = await identity.installationToken(1);
    const text = logs.join('');
    expect(text).toContain('installation token issued');
    expect(text).not.toContain(token);
    expect(text).not.toContain('PRIVATE KEY');
  });
});
