import { createAppAuth } from '@octokit/auth-app';
import { Octokit } from '@octokit/core';
import { retry } from '@octokit/plugin-retry';
import { throttling } from '@octokit/plugin-throttling';
import Bottleneck from 'bottleneck';
import type { Logger } from '../logging/create-logger.ts';
import { honourRetryAfter, MAX_RETRY_AFTER_SECONDS } from './honour-retry-after.ts';

/**
 * Octokit with GitHub's documented retry and rate-limit behaviour: the retry plugin for 5xx and network
 * errors, the throttling plugin for primary and secondary rate limits, and `honourRetryAfter` for any
 * other 403/429 that names a `retry-after`.
 */
export const PlumblineOctokit = Octokit.plugin(retry, throttling, honourRetryAfter);
export type PlumblineOctokit = InstanceType<typeof PlumblineOctokit>;

export interface GitHubAppOptions {
  readonly appId: string;
  readonly privateKey: string;
  /** `https://api.github.com`, or GitHub Enterprise Server's `https://HOST/api/v3`. */
  readonly baseUrl: string;
  readonly logger: Logger;
  /** A cached token is replaced once it has less than this left (GitHub issues them for one hour). */
  readonly refreshMarginMs?: number;
  readonly now?: () => number;
  /** How many times a rate-limited request is retried after waiting out `retry-after`. */
  readonly rateLimitRetries?: number;
  /** How many times a 5xx or a network error is retried, with 1, 4, 9 … s between tries (default 3). */
  readonly serverErrorRetries?: number;
  /** Told of every HTTP request to GitHub's API, each retry included (the worker's metrics). */
  readonly observe?: ((request: GitHubRequestObservation) => void) | undefined;
}

/** One HTTP request to GitHub's API, as the client saw it. */
export interface GitHubRequestObservation {
  /** Whose rate limit it counts against: `app` (the App's JWT), or the installation's id. */
  readonly identity: string;
  readonly method: string;
  /** The answer's HTTP status; undefined when none came (network error). */
  readonly status: number | undefined;
  /** GitHub's `x-ratelimit-remaining` on the answer, when it carries one. */
  readonly rateLimitRemaining: number | undefined;
}

interface CachedToken {
  readonly token: string;
  readonly expiresAt: number;
}

/**
 * The App's identity: its JWT, and installation tokens cached per installation. Concurrent jobs share one
 * token and one in-flight refresh; a token is renewed before it expires, never after a 401.
 */
export class GitHubApp {
  readonly octokit: PlumblineOctokit;
  private readonly cache = new Map<number, Promise<CachedToken>>();
  private readonly refreshMarginMs: number;
  private readonly now: () => number;

  constructor(private readonly options: GitHubAppOptions) {
    this.refreshMarginMs = options.refreshMarginMs ?? 5 * 60_000;
    this.now = options.now ?? Date.now;
    this.octokit = createOctokit(
      options,
      { authStrategy: createAppAuth, auth: { appId: options.appId, privateKey: options.privateKey } },
      'app',
    );
  }

  /** An installation token valid for at least the refresh margin. */
  async installationToken(installationId: number): Promise<string> {
    const cached = this.cache.get(installationId);
    if (cached) {
      const token = await cached.catch(() => undefined);
      if (token && token.expiresAt - this.now() > this.refreshMarginMs) return token.token;
      if (this.cache.get(installationId) !== cached) return this.installationToken(installationId);
    }
    const fresh = this.requestToken(installationId);
    this.cache.set(installationId, fresh);
    fresh.catch(() => {
      if (this.cache.get(installationId) === fresh) this.cache.delete(installationId);
    });
    return (await fresh).token;
  }

  /** An Octokit acting as the installation; every request carries a current token. */
  installationOctokit(installationId: number): PlumblineOctokit {
    const octokit = createOctokit(this.options, {}, String(installationId));
    octokit.hook.before('request', async (request) => {
      request.headers.authorization = `token ${await this.installationToken(installationId)}`;
    });
    return octokit;
  }

  private async requestToken(installationId: number): Promise<CachedToken> {
    // `refresh` bypasses @octokit/auth-app's own cache, which keeps tokens for 59 minutes whatever
    // their expiry: this class decides when a token is too old.
    const result = (await this.octokit.auth({ type: 'installation', installationId, refresh: true })) as {
      token: string;
      expiresAt: string;
    };
    this.options.logger.debug({ installationId, expiresAt: result.expiresAt }, 'installation token issued');
    return { token: result.token, expiresAt: Date.parse(result.expiresAt) };
  }
}

const UNPACED_WRITES = new Bottleneck.Group({ maxConcurrent: 16 });

/**
 * `fetch` that tells `observe` of each request: the innermost layer of Octokit, under the retry and
 * throttling plugins, so that every attempt is seen with its own answer.
 */
export function observedFetch(
  identity: string,
  observe: (request: GitHubRequestObservation) => void,
): typeof globalThis.fetch {
  return async (input, init) => {
    const method = (init?.method ?? (input instanceof Request ? input.method : 'GET')).toUpperCase();
    let response: Response;
    try {
      response = await globalThis.fetch(input, init);
    } catch (error) {
      observe({ identity, method, status: undefined, rateLimitRemaining: undefined });
      throw error;
    }
    const remaining = Number.parseInt(response.headers.get('x-ratelimit-remaining') ?? '', 10);
    observe({
      identity,
      method,
      status: response.status,
      rateLimitRemaining: Number.isNaN(remaining) ? undefined : remaining,
    });
    return response;
  };
}

function createOctokit(options: GitHubAppOptions, auth: Record<string, unknown>, identity: string): PlumblineOctokit {
  const retries = options.rateLimitRetries ?? 3;
  const log = options.logger;
  return new PlumblineOctokit({
    ...auth,
    baseUrl: options.baseUrl,
    ...(options.observe ? { request: { fetch: observedFetch(identity, options.observe) } } : {}),
    userAgent: 'plumbline',
    log: {
      debug: () => {},
      info: () => {},
      warn: (message: string) => log.warn({ detail: message.slice(0, 300) }, 'github client warning'),
      error: (message: string) => log.error({ detail: message.slice(0, 300) }, 'github client error'),
    },
    // 429 is left to `honourRetryAfter`, which waits as long as GitHub asks instead of a fixed backoff.
    retry: { doNotRetry: [400, 401, 403, 404, 410, 422, 429, 451], retries: options.serverErrorRetries ?? 3 },
    throttle: {
      // The plugin's own write limiter spaces writes one second apart per process; the shared
      // per-installation budget in Redis (src/reporting/write-budget.ts) paces writes across all workers.
      write: UNPACED_WRITES,
      onRateLimit: (
        retryAfter: number,
        request: { method: string; url: string },
        _octokit: unknown,
        retryCount: number,
      ) => {
        log.warn({ retryAfter, method: request.method, url: request.url, retryCount }, 'github rate limit hit');
        // A longer wait would hold the job (and an installation token that may expire meanwhile): retry later.
        return retryAfter <= MAX_RETRY_AFTER_SECONDS && retryCount < retries;
      },
      onSecondaryRateLimit: (
        retryAfter: number,
        request: { method: string; url: string },
        _octokit: unknown,
        retryCount: number,
      ) => {
        log.warn(
          { retryAfter, method: request.method, url: request.url, retryCount },
          'github secondary rate limit hit',
        );
        // A longer wait would hold the job (and an installation token that may expire meanwhile): retry later.
        return retryAfter <= MAX_RETRY_AFTER_SECONDS && retryCount < retries;
      },
    },
  });
}
