import type { Redis } from 'ioredis';
import type { InstallationChange } from './route-delivery.ts';

export interface InstalledRepository {
  readonly id: number;
  readonly fullName: string;
  readonly installationId: number;
}

/**
 * The repositories the App can reach, kept from installation events so that the scheduled resync knows
 * what exists without asking GitHub. One hash of all repositories plus one set per installation.
 */
export interface InstallationStore {
  apply(change: InstallationChange): Promise<void>;
  list(): Promise<InstalledRepository[]>;
}

export function createInstallationStore(redis: Redis, prefix: string): InstallationStore {
  const all = `${prefix}:repositories`;
  const ofInstallation = (id: number) => `${prefix}:installation:${id}:repositories`;
  return {
    async apply(change) {
      const members = ofInstallation(change.installationId);
      const multi = redis.multi();
      if (change.operation === 'replace' || change.operation === 'forget') {
        const previous = await redis.smembers(members);
        if (previous.length > 0) multi.hdel(all, ...previous);
        multi.del(members);
      }
      for (const repository of change.repositories) {
        const id = String(repository.id);
        if (change.operation === 'remove') {
          multi.hdel(all, id).srem(members, id);
        } else {
          const value: InstalledRepository = { ...repository, installationId: change.installationId };
          multi.hset(all, id, JSON.stringify(value)).sadd(members, id);
        }
      }
      const results = await multi.exec();
      const failed = results?.find(([error]) => error);
      if (!results || failed) throw failed?.[0] ?? new Error('installation update was not executed');
    },
    async list() {
      const values = Object.values(await redis.hgetall(all));
      return values.map((value) => JSON.parse(value) as InstalledRepository).sort((a, b) => a.id - b.id);
    },
  };
}
