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
  readonly app: Pick<GitHubApp, 'installationOctokit'>;
  /** GitHub's web origin (`https://github.com`, GHES, the stand-in): every clone URL must be `<origin>/<owner>/<repo>.git`. */
  readonly webUrl: string;
  /** How long an installation's repository list is trusted (default 10 minutes). */
  readonly ttlMs?: number;
  /** An id missing from a list fetched this recently is unknown without asking again (default 30 s). */
  readonly negativeMs?: number;
  readonly now?: () => number;
}

const listedRepository = z.object({ id: z.number().int(), full_name: z.string().min(1), clone_url: z.string().min(1) });
const repositoryList = z.object({ repositories: z.array(listedRepository) });

interface InstallationList {
  readonly fetchedAt: number;
  readonly repositories: ReadonlyMap<number, ResolvedRepository>;
}

/**
 * The clone URL a job's repository id resolves to, from GitHub's list of the installation's repositories
 * (`GET /installation/repositories`). Kept in this process's memory, not in Redis: whoever can write to
 * Redis must not decide where the installation token is sent. Concurrent lookups share one refresh; an id
 * is unknown only when a list fetched just now does not have it (a failed refresh is the caller's
 * retryable error, never "not found").
 */
export function createRepositoryResolver(options: RepositoryResolverOptions): RepositoryResolver {
  const ttl = options.ttlMs ?? 600_000;
  const negative = options.negativeMs ?? 30_000;
  const now = options.now ?? Date.now;
  const lists = new Map<number, InstallationList>();
  const refreshing = new Map<number, Promise<InstallationList>>();

  const fetchList = async (installationId: number): Promise<InstallationList> => {
    const octokit = options.app.installationOctokit(installationId);
    const repositories = new Map<number, ResolvedRepository>();
    for (let page = 1; page <= 100; page++) {
      const response = await octokit.request('GET /installation/repositories', { per_page: 100, page });
      const list = repositoryList.parse(response.data).repositories;
      for (const r of list) repositories.set(r.id, { id: r.id, fullName: r.full_name, cloneUrl: r.clone_url });
      if (list.length < 100) break;
    }
    const fetched = { fetchedAt: now(), repositories };
    lists.set(installationId, fetched);
    return fetched;
  };
  const refresh = (installationId: number): Promise<InstallationList> => {
    const running = refreshing.get(installationId);
    if (running) return running;
    const started = fetchList(installationId).finally(() => refreshing.delete(installationId));
    refreshing.set(installationId, started);
    return started;
  };

  return {
    async resolve(repositoryId, installationId) {
      let list = lists.get(installationId);
      if (!list || now() - list.fetchedAt > ttl) list = await refresh(installationId);
      let repository = list.repositories.get(repositoryId);
      // Added to the installation since the list was fetched: ask again, unless the list is that fresh.
      if (!repository && now() - list.fetchedAt > negative) {
        list = await refresh(installationId);
        repository = list.repositories.get(repositoryId);
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
