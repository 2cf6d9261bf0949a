import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { z } from 'zod';
import { keyPrefixFor, parseRedisTopology, type RedisTopology } from '../redis/redis-topology.ts';

/** Plumbline's configuration, read once at the edge from the environment and frozen. */
export interface EnvOptions {
  readonly port: number;
  /** One Redis, a Sentinel-managed primary, or a Redis Cluster (product.md, *Queue topology*). */
  readonly redis: RedisTopology;
  /** BullMQ key prefix; use a hash tag such as `{plumbline}` on Redis Cluster. */
  /** Every key's prefix; a hash tag on Redis Cluster (`{plumbline}`), so each script's keys share a slot. */
  readonly queuePrefix: string;
  /**
   * The receiver answers a delivery 2xx only once this many replicas have it (Redis `WAIT`), within
   * `redisWaitTimeoutMs`, and 503 otherwise; 0 (the default): once the primary has it.
   */
  readonly redisWaitReplicas: number;
  readonly redisWaitTimeoutMs: number;
  readonly webhookSecret: string | undefined;
  /** The secret being rotated out: deliveries signed with it are still accepted until it is unset. */
  readonly previousWebhookSecret: string | undefined;
  readonly githubAppId: string | undefined;
  readonly githubPrivateKey: string | undefined;
  readonly githubPrivateKeyPath: string | undefined;
  readonly githubApiUrl: string;
  /**
   * GitHub's web origin: clone URLs must be on it, and the installation token is sent nowhere else.
   * Default: github.com for api.github.com, else the API URL's origin (Enterprise Server, the stand-in).
   */
  readonly githubWebUrl: string;
  readonly clustersFile: string | undefined;
  readonly logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
  /** How long a push waits for a newer push to the same branch to replace it (burst coalescing). */
  readonly pushCoalesceMs: number;
  /** Git mirrors and exported trees; must be writable (an emptyDir in Kubernetes). */
  readonly cacheDir: string;
  /** Jobs one worker process runs at once. */
  readonly workerConcurrency: number;
  /** Public URL of the status page (the receiver), for the `target_url` of statuses; none when unset. */
  readonly publicUrl: string | undefined;
  /** Content writes per minute per installation, shared by all workers (GitHub's guidance: ~80). */
  readonly githubWritesPerMinute: number;
  /** How long a crashed worker's job stays claimed before another worker runs it. */
  readonly jobLockMs: number;
  /** How long an apply waits for rollouts to become healthy before reporting them as still progressing. */
  readonly healthTimeoutMs: number;
  /** Port of the worker's /healthz and /readyz (for Kubernetes probes); none when unset. */
  readonly workerHealthPort: number | undefined;
  /**
   * Who may see the status page and `/api/clusters`: `off` (not served), `public` (anyone; no error
   * detail, no internal addresses) or `token` (only with `PLUMBLINE_STATUS_PAGE_TOKEN`, as a bearer
   * token or cookie; full detail).
   */
  readonly statusPage: 'off' | 'public' | 'token';
  readonly statusPageToken: string | undefined;
  /**
   * How many full-size (25 MB) webhook bodies one receiver holds at once: bodies are charged for the
   * bytes they have sent, and one that would pass this × 25 MB gets 503 with Retry-After. Each held MB
   * costs about one MB of memory; 4 fits the chart's 256 Mi limit.
   */
  readonly maxInflightBodies: number;
  /** Largest render output (kustomize's stdout, a manifest file) a worker accepts, in bytes. */
  readonly renderMaxBytes: number;
  /** The helm binary charts are rendered with (`PLUMBLINE_HELM`; default `helm` on the PATH). */
  readonly helm: string;
  /**
   * How long a shutdown (SIGTERM) waits for running jobs, in-flight requests and Redis before it gives up
   * on them and exits: below Kubernetes' terminationGracePeriodSeconds (30 s unless the pod says otherwise).
   */
  readonly shutdownGraceMs: number;
}

const integer = (min: number, max: number) =>
  z.string().regex(/^\d+$/, 'must be a whole number').transform(Number).pipe(z.number().min(min).max(max));

const schema = z.object({
  PORT: integer(0, 65_535).default(3000),
  REDIS_URL: z
    .string()
    .regex(/^rediss?:\/\//, 'must start with redis:// or rediss://')
    .optional(),
  REDIS_SENTINELS: z.string().min(1).optional(),
  REDIS_SENTINEL_NAME: z.string().min(1).optional(),
  REDIS_CLUSTER_NODES: z.string().min(1).optional(),
  PLUMBLINE_QUEUE_PREFIX: z.string().min(1).default('plumbline'),
  PLUMBLINE_REDIS_WAIT_REPLICAS: integer(0, 16).default(0),
  PLUMBLINE_REDIS_WAIT_TIMEOUT_MS: integer(1, 5_000).default(500),
  GITHUB_WEBHOOK_SECRET: z.string().min(1).optional(),
  GITHUB_WEBHOOK_SECRET_PREVIOUS: z.string().min(1).optional(),
  GITHUB_APP_ID: z.string().regex(/^\d+$/, 'must be the numeric App ID').optional(),
  GITHUB_PRIVATE_KEY: z.string().min(1).optional(),
  GITHUB_PRIVATE_KEY_PATH: z.string().min(1).optional(),
  GITHUB_API_URL: z.url().default('https://api.github.com'),
  GITHUB_WEB_URL: z.url({ protocol: /^https?$/, error: 'must be an http(s) URL' }).optional(),
  PLUMBLINE_CLUSTERS: z.string().min(1).optional(),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  PLUMBLINE_PUSH_COALESCE_MS: integer(0, 60_000).default(250),
  PLUMBLINE_CACHE_DIR: z.string().min(1).optional(),
  PLUMBLINE_WORKER_CONCURRENCY: integer(1, 64).default(4),
  PLUMBLINE_PUBLIC_URL: z.url({ protocol: /^https?$/, error: 'must be an http(s) URL' }).optional(),
  PLUMBLINE_GITHUB_WRITES_PER_MINUTE: integer(1, 5_000).default(80),
  PLUMBLINE_JOB_LOCK_MS: integer(1_000, 600_000).default(30_000),
  PLUMBLINE_HEALTH_TIMEOUT_MS: integer(0, 3_600_000).default(120_000),
  PLUMBLINE_WORKER_HEALTH_PORT: integer(0, 65_535).optional(),
  PLUMBLINE_STATUS_PAGE: z.enum(['off', 'public', 'token']).default('public'),
  PLUMBLINE_STATUS_PAGE_TOKEN: z.string().min(16, 'must be at least 16 characters').optional(),
  PLUMBLINE_MAX_INFLIGHT_BODIES: integer(1, 1_024).default(4),
  PLUMBLINE_RENDER_MAX_BYTES: integer(1_024, 4 * 1024 ** 3).default(64 * 1024 ** 2),
  PLUMBLINE_HELM: z.string().min(1).default('helm'),
  PLUMBLINE_SHUTDOWN_GRACE_MS: integer(0, 3_600_000).default(20_000),
});

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

/**
 * Parses the environment into frozen options. Errors name the variable and never echo its value,
 * since several variables hold secrets.
 */
export function readEnvOptions(env: NodeJS.ProcessEnv = process.env): EnvOptions {
  const blankAsUnset = Object.fromEntries(Object.entries(env).filter(([, value]) => value !== ''));
  const parsed = schema.safeParse(blankAsUnset);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((issue) => `${issue.path.join('.')}: ${issue.message}`);
    throw new ConfigError(`invalid configuration: ${problems.join('; ')}`);
  }
  const e = parsed.data;
  const topology = parseRedisTopology(e);
  if (!topology.ok) throw new ConfigError(`invalid configuration: ${topology.problem}`);
  if (e.PLUMBLINE_STATUS_PAGE === 'token' && !e.PLUMBLINE_STATUS_PAGE_TOKEN)
    throw new ConfigError(
      'invalid configuration: PLUMBLINE_STATUS_PAGE_TOKEN is required when PLUMBLINE_STATUS_PAGE=token',
    );
  return Object.freeze({
    port: e.PORT,
    redis: topology.topology,
    queuePrefix: keyPrefixFor(e.PLUMBLINE_QUEUE_PREFIX, topology.topology),
    redisWaitReplicas: e.PLUMBLINE_REDIS_WAIT_REPLICAS,
    redisWaitTimeoutMs: e.PLUMBLINE_REDIS_WAIT_TIMEOUT_MS,
    webhookSecret: e.GITHUB_WEBHOOK_SECRET,
    previousWebhookSecret: e.GITHUB_WEBHOOK_SECRET_PREVIOUS,
    githubAppId: e.GITHUB_APP_ID,
    githubPrivateKey: e.GITHUB_PRIVATE_KEY,
    githubPrivateKeyPath: e.GITHUB_PRIVATE_KEY_PATH,
    githubApiUrl: e.GITHUB_API_URL.replace(/\/+$/, ''),
    githubWebUrl: new URL(e.GITHUB_WEB_URL ?? defaultWebUrl(e.GITHUB_API_URL)).origin,
    clustersFile: e.PLUMBLINE_CLUSTERS,
    logLevel: e.LOG_LEVEL,
    pushCoalesceMs: e.PLUMBLINE_PUSH_COALESCE_MS,
    cacheDir: e.PLUMBLINE_CACHE_DIR ?? join(tmpdir(), 'plumbline'),
    workerConcurrency: e.PLUMBLINE_WORKER_CONCURRENCY,
    publicUrl: e.PLUMBLINE_PUBLIC_URL?.replace(/\/+$/, ''),
    githubWritesPerMinute: e.PLUMBLINE_GITHUB_WRITES_PER_MINUTE,
    jobLockMs: e.PLUMBLINE_JOB_LOCK_MS,
    healthTimeoutMs: e.PLUMBLINE_HEALTH_TIMEOUT_MS,
    workerHealthPort: e.PLUMBLINE_WORKER_HEALTH_PORT,
    statusPage: e.PLUMBLINE_STATUS_PAGE,
    statusPageToken: e.PLUMBLINE_STATUS_PAGE_TOKEN,
    maxInflightBodies: e.PLUMBLINE_MAX_INFLIGHT_BODIES,
    renderMaxBytes: e.PLUMBLINE_RENDER_MAX_BYTES,
    helm: e.PLUMBLINE_HELM,
    shutdownGraceMs: e.PLUMBLINE_SHUTDOWN_GRACE_MS,
  });
}

/** `https://api.github.com` → `https://github.com`; Enterprise Server's `https://HOST/api/v3` → `https://HOST`. */
function defaultWebUrl(apiUrl: string): string {
  const url = new URL(apiUrl);
  return url.hostname === 'api.github.com' ? 'https://github.com' : url.origin;
}

/** The webhook secret, or a ConfigError naming the variable: the receiver cannot verify anything without it. */
export function requireWebhookSecret(options: EnvOptions): string {
  if (!options.webhookSecret) throw new ConfigError('GITHUB_WEBHOOK_SECRET is required to receive webhooks');
  return options.webhookSecret;
}
