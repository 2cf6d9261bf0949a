import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { createClusterClient, loadKubeConfig } from '../../src/engine/cluster-client.ts';
import { readInventory } from '../../src/engine/inventory.ts';
import { createJobProducer, type JobProducer, jobIdOf } from '../../src/queue/job-producer.ts';
import type { ResyncJob } from '../../src/queue/jobs.ts';
import { testEnvironment, uniqueName } from '../helpers/environment.ts';
import { deadClusterKubeconfig } from '../helpers/kube.ts';
import {
  createSourceFixture,
  githubWrites,
  previewJob,
  pushJob,
  type SourceFixture,
  spawnWorkerProcess,
  statusStates,
} from '../helpers/source-fixture.ts';

const env = testEnvironment();
const FOLDER = 'clusters/dead-drill';

/**
 * Issue 13, item 10: one registered cluster that cannot be reached must not take the worker down. A real
 * `plumbline worker` process runs previews, syncs, re-runs and a resync with a dead cluster beside a live
 * one: it stays up, the live cluster gets its result, the dead one ends `error` — saying "cluster
 * unreachable", never the address or the socket error.
 */
describe('drill: a dead cluster beside a live one', () => {
  let f: SourceFixture;
  let redis: Redis;
  let producer: JobProducer;
  let producerConnection: Redis;
  let worker: ReturnType<typeof spawnWorkerProcess>;
  let exitCode: unknown = 'running';
  const prefix = uniqueName('dead');
  const live = uniqueName('live');
  const dead = uniqueName('dead');
  const namespace = uniqueName('dead-drill');
  let sha: string;

  const final = (commit: string, context: string) => {
    const state = statusStates(f, commit, context).at(-1);
    return state === undefined || state === 'pending' ? undefined : state;
  };
  const waitFor = async (what: string, ready: () => boolean | Promise<boolean>, ms = 90_000) => {
    const deadline = Date.now() + ms;
    while (!(await ready())) {
      if (exitCode !== 'running') throw new Error(`the worker exited (${String(exitCode)}) while waiting for ${what}`);
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  };
  beforeAll(async () => {
    f = await createSourceFixture();
    redis = new Redis(env.redisUrl, { maxRetriesPerRequest: null });
    const deadKubeconfig = await deadClusterKubeconfig(f.dir);
    const registryFile = join(f.dir, 'clusters.yaml');
    await writeFile(
      registryFile,
      `clusters:\n  - {name: ${live}, repo: ${f.repository.fullName}, path: ${FOLDER}, kubeconfig: ${env.kubeconfig}, interval: 10s}\n  - {name: ${dead}, repo: ${f.repository.fullName}, path: ${FOLDER}, kubeconfig: ${deadKubeconfig}, interval: 10s}\n`,
    );
    sha = await f.work.commit('one namespace and one ConfigMap', {
      [`${FOLDER}/app.yaml`]: `apiVersion: v1\nkind: Namespace\nmetadata:\n  name: ${namespace}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\n  namespace: ${namespace}\ndata:\n  mode: strict\n`,
    });
    await f.work.push();
    worker = spawnWorkerProcess(f, { redisUrl: env.redisUrl, prefix, registryFile });
    void worker.exited.then((code) => {
      exitCode = code;
    });
    producerConnection = new Redis(env.redisUrl, { enableOfflineQueue: false });
    producer = createJobProducer(producerConnection, {
      prefix,
      coalesceMs: 0,
      onError: () => {},
      retry: { attempts: 2, backoffMs: 200 },
    });
  });
  afterAll(async () => {
    worker.child.kill('SIGKILL');
    await worker.exited;
    await producer.close();
    producerConnection.disconnect();
    redis.disconnect();
    await f.close();
  });

  it('a pull request preview: the worker stays up, the live cluster is previewed, the dead one ends `error`', async () => {
    const head = await f.work.commit('change mode', {
      [`${FOLDER}/app.yaml`]: `apiVersion: v1\nkind: Namespace\nmetadata:\n  name: ${namespace}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\n  namespace: ${namespace}\ndata:\n  mode: lenient\n`,
    });
    await f.work.push('feature');
    await f.work.resetHard(sha);
    const job = previewJob(f, head);
    await producer.add(job);
    await waitFor('the preview statuses', () => final(head, `plumbline/${dead}`) !== undefined);
    expect(final(head, `plumbline/${live}`)).toBe('success');
    expect(final(head, `plumbline/${dead}`)).toBe('error');
    expect(f.github.latestStatus(f.repository.fullName, head, `plumbline/${dead}`)?.description).toMatch(
      /^no dry-run after 2 attempt\(s\): cluster unreachable$/,
    );
    expect(exitCode).toBe('running');
  }, 120_000);

  it('a push and its re-run: applied on the live cluster, `error` on the dead one, the worker still up', async () => {
    await producer.add(pushJob(f, sha));
    await waitFor('the sync statuses', () => final(sha, `plumbline/${dead}`) !== undefined);
    expect(final(sha, `plumbline/${live}`)).toBe('success');
    const inventory = await readInventory(createClusterClient(loadKubeConfig({ kubeconfig: env.kubeconfig })), live);
    expect(inventory?.revision).toBe(sha);

    const rerun = pushJob(f, sha, { trigger: 'rerun', deliveryId: uniqueName('rerun') });
    await producer.add(rerun);
    const queue = new Queue('sync', { connection: redis, prefix });
    try {
      await waitFor('the re-run to end', async () => {
        const state = await queue.getJobState(jobIdOf(rerun));
        return state === 'completed' || state === 'failed';
      });
    } finally {
      await queue.close();
    }
    expect(final(sha, `plumbline/${dead}`)).toBe('error');
    expect(final(sha, `plumbline/${live}`)).toBe('success');
    expect(exitCode).toBe('running');
  }, 120_000);

  it('a resync of the dead cluster fails on its own and the worker stays up', async () => {
    const resyncs = new Queue<ResyncJob>('resync', { connection: redis, prefix });
    try {
      const job = await resyncs.add('resync', { type: 'resync', cluster: dead }, { attempts: 1 });
      await waitFor('the resync to fail', async () => (await job.isFailed()) || (await job.isCompleted()));
      expect(await job.isFailed()).toBe(true);
      // A live cluster's resync still runs in the same process.
      const ok = await resyncs.add('resync', { type: 'resync', cluster: live }, { attempts: 1 });
      await waitFor('the live resync', async () => (await ok.isCompleted()) || (await ok.isFailed()));
      expect(await ok.isCompleted()).toBe(true);
    } finally {
      await resyncs.close();
    }
    expect(exitCode).toBe('running');
  }, 120_000);

  it('no status, check run or annotation names the dead address or the socket error', () => {
    const text = githubWrites(f);
    expect(text).toContain('cluster unreachable');
    expect(text).not.toMatch(/127\.0\.0\.1|ECONNREFUSED|https:\/\/127/);
  });
});
