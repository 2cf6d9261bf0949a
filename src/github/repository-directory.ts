import type { Redis } from 'ioredis';
import type { RepositoryRef } from '../queue/jobs.ts';
import type { GitHubApp } from './github-app.ts';

export interface KnownRepository {
  readonly repository: RepositoryRef;
  readonly installationId: number;
}

/** Where a registered repository lives and which installation reaches it, for work without a webhook. */
export interface RepositoryDirectory {
  /** What a webhook said about a repository: the cheapest source, kept for the resync. */
  remember(known: KnownRepository): Promise<void>;
  lookup(fullName: string): Promise<KnownRepository | undefined>;
}

const TTL_SECONDS = 24 * 60 * 60;

/**
 * Repositories by full name: from webhooks when one arrived, else from GitHub (the App's
 * installation for the repository, then the repository as that installation sees it), cached in Redis.
 */
export function createRepositoryDirectory(
  redis: Redis,
  prefix: string,
  app: Pick<GitHubApp, 'octokit' | 'installationOctokit'>,
): RepositoryDirectory {
  const keyOf = (fullName: string) => `${prefix}:repository:${fullName.toLowerCase()}`;
  const directory: RepositoryDirectory = {
    async remember(known) {
      await redis.set(keyOf(known.repository.fullName), JSON.stringify(known), 'EX', TTL_SECONDS);
    },
    async lookup(fullName) {
      const cached = await redis.get(keyOf(fullName));
      if (cached) return JSON.parse(cached) as KnownRepository;
      const [owner, repo] = fullName.split('/') as [string, string];
      let installationId: number;
      try {
        const installation = await app.octokit.request('GET /repos/{owner}/{repo}/installation', { owner, repo });
        installationId = installation.data.id;
      } catch (error) {
        if ((error as { status?: number }).status === 404) return undefined;
        throw error;
      }
      const found = await app.installationOctokit(installationId).request('GET /repos/{owner}/{repo}', { owner, repo });
      const known: KnownRepository = {
        repository: { id: Number(found.data.id), fullName: found.data.full_name, cloneUrl: found.data.clone_url },
        installationId,
      };
      await directory.remember(known);
      return known;
    },
  };
  return directory;
}
