import type { Redis } from 'ioredis';
import { z } from 'zod';
import type { GitHubApp } from './github-app.ts';

/** A repository as GitHub reports it to the installation: the only source of a clone URL a worker uses. */
export interface ResolvedRepository {
  readonly id: number;
  readonly fullName: string;
  readonly cloneUrl: string;
}

/** The installation cannot reach the repository (removed, never added, or the id is wrong): terminal. */
export class RepositoryNotFoundError extends Error {
  override readonly name = 'RepositoryNotFoundError';
}

/** GitHub named a clone URL outside the configured GitHub host: refused, the token never goes there. */
export class ForeignCloneUrlError extends Error {
  override readonly name = 'ForeignCloneUrlError';
}

export interface RepositoryResolver {
  /** The repository with this id as the installation sees it, its clone URL checked against the GitHub host. */
  resolve(repositoryId: number, installationId: number): Promise<ResolvedRepository>;
}

export interface RepositoryResolverOptions {
  readonly redis: Redis;
  readonly prefix: string;
  readonly app: Pick<GitHubApp, 'installationOctokit'>;
  /** GitHub's web origin (`https://github.com`, GHES, the stand-in): every clone URL must be `<origin>/<owner>/<repo>.git`. */
  readonly webUrl: string;
  /** How long an installation's repository list is trusted (default 10 minutes). */
  readonly ttlSeconds?: number;
  /** At most one refresh per installation this often, so an unknown id cannot make us page GitHub in a loop. */
  readonly refreshIntervalSeconds?: number;
}

const cachedRepository = z.object({ id: z.number().int(), fullName: z.string().min(1), cloneUrl: z.string().min(1) });
const listedRepository = z.object({ id: z.number().int(), full_name: z.string().min(1), clone_url: z.string().min(1) });
const repositoryList = z.object({ repositories: z.array(listedRepository) });

/**
 * The clone URL a job's repository id resolves to, from GitHub's list of the installation's repositories
 * (`GET /installation/repositories`), cached in Redis per installation. Job data names a repository by id
 * only: a clone URL in Redis or a webhook payload never decides where the installation token is sent.
 */
export function createRepositoryResolver(options: RepositoryResolverOptions): RepositoryResolver {
  const { redis, prefix } = options;
  const ttl = options.ttlSeconds ?? 600;
  const refreshEvery = options.refreshIntervalSeconds ?? 30;
  const listKey = (installationId: number) => `${prefix}:installation-repositories:${installationId}`;
  const refreshedKey = (installationId: number) => `${listKey(installationId)}:refreshed`;

  const cached = async (repositoryId: number, installationId: number): Promise<ResolvedRepository | undefined> => {
    const raw = await redis.hget(listKey(installationId), String(repositoryId));
    if (!raw) return undefined;
    const parsed = cachedRepository.safeParse(safeJson(raw));
    return parsed.success && parsed.data.id === repositoryId ? parsed.data : undefined;
  };

  const refresh = async (installationId: number): Promise<void> => {
    const octokit = options.app.installationOctokit(installationId);
    const found: ResolvedRepository[] = [];
    for (let page = 1; ; page++) {
      const response = await octokit.request('GET /installation/repositories', { per_page: 100, page });
      const list = repositoryList.parse(response.data).repositories;
      found.push(...list.map((r) => ({ id: r.id, fullName: r.full_name, cloneUrl: r.clone_url })));
      if (list.length < 100 || page >= 100) break;
    }
    const key = listKey(installationId);
    const multi = redis.multi().del(key);
    if (found.length > 0) multi.hset(key, Object.fromEntries(found.map((r) => [String(r.id), JSON.stringify(r)])));
    await multi.expire(key, ttl).exec();
  };

  return {
    async resolve(repositoryId, installationId) {
      let repository = await cached(repositoryId, installationId);
      if (!repository && (await redis.set(refreshedKey(installationId), '1', 'EX', refreshEvery, 'NX')) === 'OK') {
        await refresh(installationId);
        repository = await cached(repositoryId, installationId);
      }
      if (!repository)
        throw new RepositoryNotFoundError(
          `repository ${repositoryId} is not reachable by installation ${installationId}`,
        );
      checkCloneUrl(repository, options.webUrl);
      return repository;
    },
  };
}

/**
 * The clone URL must be exactly GitHub's for this repository: same origin as the configured GitHub host,
 * path `/<owner>/<repo>.git`, no credentials, no query. Pure.
 */
export function checkCloneUrl(repository: ResolvedRepository, webUrl: string): void {
  const expected = `${new URL(webUrl).origin}/${repository.fullName}.git`.toLowerCase();
  let actual: string;
  try {
    const url = new URL(repository.cloneUrl);
    if (url.username || url.password || url.search || url.hash) throw new Error('credentials or query');
    actual = `${url.origin}${url.pathname}`.toLowerCase();
  } catch {
    actual = '';
  }
  if (actual !== expected)
    throw new ForeignCloneUrlError(
      `refusing to fetch repository ${repository.id}: its clone URL is not on the configured GitHub host`,
    );
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}
