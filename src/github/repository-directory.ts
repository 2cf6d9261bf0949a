import { z } from 'zod';
import type { RepositoryRef } from '../queue/jobs.ts';
import { parseStored } from '../redis/parse-stored.ts';
import { redisKeys } from '../redis/redis-keys.ts';
import type { RedisConnection } from '../redis/redis-topology.ts';
import type { GitHubApp } from './github-app.ts';

export interface KnownRepository {
  readonly repository: RepositoryRef;
  readonly installationId: number;
}

/**
 * Which repository id and installation a registered repository name stands for, for work without a
 * webhook (the resync). Clone URLs are not kept here: workers resolve them by id (repository-resolver.ts).
 */
export interface RepositoryDirectory {
  /** What a webhook said about a repository: the cheapest source, kept for the resync. */
  remember(known: KnownRepository): Promise<void>;
  lookup(fullName: string): Promise<KnownRepository | undefined>;
}

const TTL_SECONDS = 24 * 60 * 60;

/** A cached entry; one that does not parse is looked up again (and replaced). */
const knownSchema = z.looseObject({
  repository: z.looseObject({ id: z.number().int(), fullName: z.string().min(1) }),
  installationId: z.number().int(),
});

/**
 * Repositories by full name: from webhooks when one arrived, else from GitHub (the App's
 * installation for the repository, then the repository as that installation sees it), cached in Redis.
 */
export function createRepositoryDirectory(
  redis: RedisConnection,
  prefix: string,
  app: Pick<GitHubApp, 'octokit' | 'installationOctokit'>,
): RepositoryDirectory {
  const keyOf = redisKeys(prefix).repository;
  const directory: RepositoryDirectory = {
    async remember(known) {
      await redis.set(keyOf(known.repository.fullName), JSON.stringify(known), 'EX', TTL_SECONDS);
    },
    async lookup(fullName) {
      const cached = parseStored(knownSchema, await redis.get(keyOf(fullName)));
      if (cached.state === 'valid') return knownRepository(cached.value);
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
        repository: { id: Number(found.data.id), fullName: found.data.full_name },
        installationId,
      };
      await directory.remember(known);
      return known;
    },
  };
  return directory;
}

/** Only the fields a job carries: a cached entry's other fields stay in Redis. */
function knownRepository(cached: z.infer<typeof knownSchema>): KnownRepository {
  return {
    repository: { id: cached.repository.id, fullName: cached.repository.fullName },
    installationId: cached.installationId,
  };
}
