import { describe, expect, it } from '@jest/globals';
import {
  createRepositoryResolver,
  ForeignCloneUrlError,
  RepositoryNotFoundError,
} from '../../src/github/repository-resolver.ts';

type Listed = { id: number; full_name: string; clone_url: string };
const A: Listed = { id: 1, full_name: 'acme/a', clone_url: 'https://github.com/acme/a.git' };
const B: Listed = { id: 2, full_name: 'acme/b', clone_url: 'https://github.com/acme/b.git' };

/** GitHub's `GET /installation/repositories`, answered from a list the test controls, counting requests. */
function fakeApp(answer: () => Promise<Listed[]>) {
  const calls = { count: 0 };
  const app = {
    installationOctokit: () => ({
      request: async () => {
        calls.count += 1;
        return { data: { total_count: 0, repositories: await answer() } };
      },
    }),
  } as unknown as Parameters<typeof createRepositoryResolver>[0]['app'];
  return { app, calls };
}

describe('resolving a repository id to its clone URL', () => {
  it('concurrent lookups of one installation share one request, and all resolve', async () => {
    const { app, calls } = fakeApp(async () => {
      await new Promise((resolve) => setTimeout(resolve, 50));
      return [A, B];
    });
    const resolver = createRepositoryResolver({ app, webUrl: 'https://github.com' });
    const results = await Promise.all([resolver.resolve(1, 9), resolver.resolve(2, 9), resolver.resolve(1, 9)]);
    expect(results.map((r) => r.fullName)).toEqual(['acme/a', 'acme/b', 'acme/a']);
    expect(calls.count).toBe(1);
  });

  it('a failed refresh is the caller’s (retryable) error, and the next lookup asks again', async () => {
    let first = true;
    const { app } = fakeApp(async () => {
      if (first) {
        first = false;
        throw Object.assign(new Error('Bad gateway'), { status: 502 });
      }
      return [A];
    });
    const resolver = createRepositoryResolver({ app, webUrl: 'https://github.com' });
    await expect(resolver.resolve(1, 9)).rejects.toThrow('Bad gateway');
    await expect(resolver.resolve(1, 9)).resolves.toMatchObject({ id: 1 });
  });

  it('an id missing from a list just fetched is unknown, without asking GitHub again and again', async () => {
    let clock = 0;
    let listed = [A];
    const { app, calls } = fakeApp(async () => listed);
    const resolver = createRepositoryResolver({ app, webUrl: 'https://github.com', now: () => clock });
    await expect(resolver.resolve(2, 9)).rejects.toThrow(RepositoryNotFoundError);
    await expect(resolver.resolve(2, 9)).rejects.toThrow(RepositoryNotFoundError);
    expect(calls.count).toBe(1);
    // Added to the installation later: found once the list is older than the negative window.
    listed = [A, B];
    clock += 31_000;
    await expect(resolver.resolve(2, 9)).resolves.toMatchObject({ fullName: 'acme/b' });
    expect(calls.count).toBe(2);
  });

  it('refuses a clone URL that is not exactly the repository on the GitHub host', async () => {
    for (const clone_url of [
      'https://evil.example/acme/a.git',
      'https://github.com/acme/other.git',
      'https://x-access-token:t@github.com/acme/a.git',
      'https://github.com/acme/a.git?x=1',
      'http://github.com/acme/a.git',
    ]) {
      const { app } = fakeApp(async () => [{ ...A, clone_url }]);
      const resolver = createRepositoryResolver({ app, webUrl: 'https://github.com' });
      await expect(resolver.resolve(1, 9)).rejects.toThrow(ForeignCloneUrlError);
    }
  });
});
