import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { type ClusterRegistry, parseClusterRegistry } from '../../src/clusters/cluster-registry.ts';
import { createClusterClient, loadKubeConfig } from '../../src/engine/cluster-client.ts';
import { readInventory } from '../../src/engine/inventory.ts';
import { createLogger } from '../../src/logging/create-logger.ts';
import type { SyncJob } from '../../src/queue/jobs.ts';
import { recordLatestJob } from '../../src/queue/latest-jobs.ts';
import { redisKeys } from '../../src/redis/redis-keys.ts';
import { createJobConsumer } from '../../workers/job-consumer.ts';
import { processPreviewJob } from '../../workers/process-preview-job.ts';
import { processSyncJob, type SyncDependencies, type SyncResult } from '../../workers/process-sync-job.ts';
import { testEnvironment, uniqueName } from '../helpers/environment.ts';
import { kubeClients } from '../helpers/kube.ts';
import {
  createSourceFixture,
  previewJob,
  pushJob,
  type SourceFixture,
  statusStates,
} from '../helpers/source-fixture.ts';
import { workerDependencies } from '../helpers/worker-deps.ts';

const env = testEnvironment();
const STATUSES = 'POST /repos/{owner}/{repo}/statuses/{sha}';
const FOLDER = 'clusters/local/dev';

/** A plain-YAML cluster folder: a namespace and one ConfigMap per entry (`name: value`). */
function manifests(namespace: string, configMaps: Record<string, string>): string {
  return [
    `apiVersion: v1\nkind: Namespace\nmetadata:\n  name: ${namespace}\n`,
    ...Object.entries(configMaps).map(
      ([name, value]) =>
        `apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ${name}\n  namespace: ${namespace}\ndata:\n  value: "${value}"\n`,
    ),
  ].join('---\n');
}

describe('reporting to GitHub: statuses and check runs for every outcome', () => {
  let f: SourceFixture;
  let redis: Redis;
  let deps: SyncDependencies;
  let registry: ClusterRegistry;
  const logs: string[] = [];
  const prefix = uniqueName('reporting');
  const namespace = uniqueName('reporting');
  const cluster = uniqueName('local-dev');
  const context = `plumbline/${cluster}`;

  const syncJob = (after: string, extra: Partial<SyncJob> = {}): SyncJob => pushJob(f, after, extra);
  const states = (sha: string, ctx: string) => statusStates(f, sha, ctx);
  const latest = (sha: string, ctx: string) => f.github.latestStatus(f.repository.fullName, sha, ctx);
  const checkRun = (sha: string) => f.github.checkRuns(f.repository.fullName, sha).find((r) => r.name === context);
  const commitAndPush = async (configMaps: Record<string, string>, extra: Record<string, string> = {}) => {
    const sha = await f.work.commit('change', { [`${FOLDER}/app.yaml`]: manifests(namespace, configMaps), ...extra });
    await f.work.push();
    return sha;
  };

  beforeAll(async () => {
    f = await createSourceFixture();
    redis = new Redis(env.redisUrl, { maxRetriesPerRequest: null });
    registry = parseClusterRegistry(`
clusters:
  - {name: ${cluster}, repo: ${f.repository.fullName}, path: ${FOLDER}, kubeconfig: ${env.kubeconfig}, prune: true}
`);
    const capture = new Writable({
      write(chunk, _encoding, done) {
        logs.push(String(chunk));
        done();
      },
    });
    deps = workerDependencies(f, { registry, redis, prefix, logger: createLogger('debug', capture) });
  });
  afterAll(async () => {
    redis.disconnect();
    await f.close();
  });

  it('a commit that applies: pending then success per cluster and for the roll-up, and a check run', async () => {
    const sha = await commitAndPush({ first: 'a', second: 'b' });
    const result = await processSyncJob(syncJob(sha), deps);
    expect(result.outcomes).toEqual([expect.objectContaining({ status: 'applied' })]);
    expect(states(sha, context)).toEqual(['pending', 'success']);
    expect(states(sha, 'plumbline')).toEqual(['pending', 'success']);
    expect(latest(sha, context)?.description).toMatch(/^3 created in [\d.]+ s$/);
    expect(checkRun(sha)).toMatchObject({ status: 'completed', conclusion: 'success' });
    expect(checkRun(sha)?.output.summary).toContain(`| created | \`ConfigMap/${namespace}/first\``);
  });

  it('the same commit again is a no-op for GitHub: nothing is rewritten', async () => {
    const sha = await f.work.head();
    const before = f.github.calls.length;
    const result = await processSyncJob(syncJob(sha), deps);
    expect(result.outcomes).toEqual([expect.objectContaining({ status: 'applied', repeated: true })]);
    const writes = f.github.calls
      .slice(before)
      .filter((c) => c.method !== 'GET' && c.operation !== 'git' && !c.path.endsWith('/access_tokens'));
    expect(writes).toEqual([]);
  });

  it('an object the cluster rejects fails the commit, with an annotation on its file and line', async () => {
    const sha = await commitAndPush({ first: 'a', second: 'b', Not_Valid: 'x' });
    const result = await processSyncJob(syncJob(sha), deps);
    expect(result.outcomes).toEqual([expect.objectContaining({ status: 'failed' })]);
    expect(states(sha, context)).toEqual(['pending', 'failure']);
    expect(latest(sha, 'plumbline')).toMatchObject({ state: 'failure', description: `1 failed — see ${cluster}` });
    const run = checkRun(sha);
    expect(run?.conclusion).toBe('failure');
    // The fourth document of app.yaml (Namespace, first, second, Not_Valid) starts on line 22.
    expect(run?.annotations).toEqual([
      expect.objectContaining({
        path: `${FOLDER}/app.yaml`,
        start_line: 22,
        end_line: 22,
        annotation_level: 'failure',
        title: `ConfigMap/${namespace}/Not_Valid`,
        message: expect.stringContaining('Not_Valid'),
      }),
    ]);
    // Nothing of the commit was written.
    await expect(
      kubeClients(env.kubeconfig).core.readNamespacedConfigMap({ name: 'Not_Valid', namespace }),
    ).rejects.toMatchObject({ code: 404 });
  });

  it('invalid YAML fails the commit with an annotation at the broken line', async () => {
    const sha = await commitAndPush(
      { first: 'a', second: 'b' },
      { [`${FOLDER}/broken.yaml`]: 'kind: ConfigMap\nmetadata:\n  name: [unclosed\n' },
    );
    await processSyncJob(syncJob(sha), deps);
    expect(latest(sha, context)?.state).toBe('failure');
    expect(checkRun(sha)?.annotations).toEqual([
      expect.objectContaining({
        path: `${FOLDER}/broken.yaml`,
        annotation_level: 'failure',
        start_line: expect.any(Number),
      }),
    ]);
    expect(checkRun(sha)?.annotations[0]?.start_line).toBeGreaterThanOrEqual(3);
    await f.work.commit('fix', { [`${FOLDER}/broken.yaml`]: null });
    await f.work.push();
  });

  it('a commit older than the applied one is superseded: a final status that says so, nothing applied', async () => {
    const older = await commitAndPush({ first: 'a', second: 'b', third: 'c' });
    const newer = await commitAndPush({ first: 'a', second: 'b', third: 'c', fourth: 'd' });
    await processSyncJob(syncJob(newer), deps);
    await processSyncJob(syncJob(older), deps);
    expect(states(older, context)).toEqual(['success']);
    expect(latest(older, context)?.description).toBe(
      `not applied: superseded by ${newer.slice(0, 7)}, which is newer and already applied`,
    );
    expect(checkRun(older)?.conclusion).toBe('neutral');
    expect(states(older, 'plumbline')).toEqual(['pending', 'success']);
  });

  it('a pull request preview reports what would change, including a prune, and applies nothing', async () => {
    const base = await f.work.head();
    const applied = (await readInventory(createClusterClient(loadKubeConfig({ kubeconfig: env.kubeconfig })), cluster))
      ?.revision;
    expect(applied).toBe(base);
    // The head drops `fourth`, changes `first`, adds `fifth`.
    const head = await f.work.commit('feature', {
      [`${FOLDER}/app.yaml`]: manifests(namespace, { first: 'changed', second: 'b', third: 'c', fifth: 'e' }),
    });
    await f.work.push('feature-7');
    await f.work.resetHard(base);
    const job = previewJob(f, head, { number: 7 });
    const result = await processPreviewJob(job, deps);
    expect(result.outcomes).toEqual([expect.objectContaining({ status: 'previewed' })]);
    expect(states(head, context)).toEqual(['pending', 'success']);
    expect(latest(head, context)?.description).toBe('would create 1, configure 1, prune 1');
    expect(latest(head, 'plumbline')).toMatchObject({ state: 'success', description: 'dry-run: 1 previewed' });
    const run = checkRun(head);
    expect(run?.output.summary).toContain(`| would prune | \`ConfigMap/${namespace}/fourth\``);
    expect(run?.output.summary).toContain(`| would create | \`ConfigMap/${namespace}/fifth\``);
    expect(run?.output.text).toContain('~ data.value → "changed"');
    // The live value ("a") is not shown: only what the commit says.
    expect(run?.output.text).not.toContain('"a"');

    // Nothing applied: the live objects and the inventory are as the base commit left them.
    const core = kubeClients(env.kubeconfig).core;
    expect((await core.readNamespacedConfigMap({ name: 'fourth', namespace })).data).toEqual({ value: 'd' });
    await expect(core.readNamespacedConfigMap({ name: 'fifth', namespace })).rejects.toMatchObject({ code: 404 });
    expect((await core.readNamespacedConfigMap({ name: 'first', namespace })).data).toEqual({ value: 'a' });
    const inventory = await readInventory(createClusterClient(loadKubeConfig({ kubeconfig: env.kubeconfig })), cluster);
    expect(inventory?.revision).toBe(base);
  });

  it('a newer push to the pull request supersedes the preview of the older head', async () => {
    const base = await f.work.head();
    const older = await f.work.commit('pr v1', {
      [`${FOLDER}/extra.yaml`]: 'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: extra\n  namespace: x\n',
    });
    const newer = await f.work.commit('pr v2', { [`${FOLDER}/extra.yaml`]: null });
    await f.work.push('feature-8');
    await f.work.resetHard(base);
    const preview = (headSha: string, receivedAt: string) => previewJob(f, headSha, { number: 8, receivedAt });
    // The receiver records the newest job per pull request before queueing it.
    const newest = preview(newer, new Date(Date.now() + 1000).toISOString());
    await recordLatestJob({ redis, keys: redisKeys(prefix) }, newest);
    const result = await processPreviewJob(preview(older, new Date().toISOString()), deps);
    expect(result.outcomes).toEqual([expect.objectContaining({ status: 'superseded' })]);
    expect(latest(older, context)).toMatchObject({
      state: 'success',
      description: `no dry-run: superseded by ${newer.slice(0, 7)}, the pull request's newer head`,
    });
    expect(checkRun(older)?.conclusion).toBe('neutral');
  });

  it('more than 50 problems reach the check run in batches of 50 annotations', async () => {
    const invalid = Object.fromEntries(Array.from({ length: 60 }, (_, i) => [`Invalid_${i}`, 'x']));
    const sha = await commitAndPush({ first: 'a', second: 'b', ...invalid });
    await processSyncJob(syncJob(sha), deps);
    const run = checkRun(sha);
    expect(run?.annotations).toHaveLength(60);
    expect(new Set(run?.annotations.map((a) => a.start_line)).size).toBe(60);
    const writes = f.github.calls.filter(
      (c) => c.operation?.includes('check-runs') && c.path.includes(String(run?.id)),
    );
    // Created in progress; completed with the first 50 annotations; one more request with the last 10.
    expect(
      writes.map((c) => ((c.body as { output?: { annotations?: unknown[] } }).output?.annotations ?? []).length),
    ).toEqual([50, 10]);
    await f.work.commit('fix', { [`${FOLDER}/app.yaml`]: manifests(namespace, { first: 'a', second: 'b' }) });
    await f.work.push();
  });

  it('a check run whose last annotation batch failed resumes where it stopped: no annotation twice', async () => {
    // The same live state for both runs (so both report the same content): the namespace exists.
    await processSyncJob(syncJob(await commitAndPush({ first: 'a', second: 'b' })), deps);
    const invalid = Object.fromEntries(Array.from({ length: 60 }, (_, i) => [`Broken_${i}`, 'x']));
    const sha = await commitAndPush({ first: 'a', second: 'b', ...invalid });
    const PATCH = 'PATCH /repos/{owner}/{repo}/check-runs/{check_run_id}';
    // Completed with the first 50 annotations; then the request with the last 10 is refused once.
    const patches = f.github.callsTo(PATCH).length;
    const refuseSecondPatch = async () => {
      while (f.github.callsTo(PATCH).length < patches + 1) await new Promise((r) => setTimeout(r, 5));
      // GitHub's replication lag can answer 404 for a run it just created.
      f.github.script(PATCH, { status: 404, body: { message: 'Not Found' } });
    };
    const [first] = await Promise.allSettled([
      processSyncJob(syncJob(sha), deps, { attempt: 1, maxAttempts: 2 }),
      refuseSecondPatch(),
    ]);
    expect(first.status).toBe('rejected');
    expect(checkRun(sha)?.annotations).toHaveLength(50);
    await processSyncJob(syncJob(sha), deps, { attempt: 2, maxAttempts: 2 });
    expect(checkRun(sha)?.annotations).toHaveLength(60);
    expect(f.github.checkRuns(f.repository.fullName, sha).filter((r) => r.name === context)).toHaveLength(1);
    await f.work.commit('fix', { [`${FOLDER}/app.yaml`]: manifests(namespace, { first: 'a', second: 'b' }) });
    await f.work.push();
  });

  it('a commit whose job moved on to a newer push ends as superseded, not pending', async () => {
    const { mkdtemp, writeFile } = await import('node:fs/promises');
    const { tmpdir } = await import('node:os');
    const { join } = await import('node:path');
    const { freePort } = await import('../../dev/local-stack/free-port.ts');
    const dead = join(await mkdtemp(join(tmpdir(), 'plumbline-dead-')), 'kubeconfig');
    await writeFile(
      dead,
      `apiVersion: v1\nkind: Config\nclusters: [{name: dead, cluster: {server: "https://127.0.0.1:${await freePort()}", insecure-skip-tls-verify: true}}]\nusers: [{name: u, user: {token: t}}]\ncontexts: [{name: dead, context: {cluster: dead, user: u}}]\ncurrent-context: dead\n`,
    );
    const older = await commitAndPush({ first: 'a', second: 'b', ninth: 'i' });
    // The first attempt for `older` cannot reach the cluster: its roll-up stays pending, to be retried…
    const unreachable = { ...deps, clusterClient: () => createClusterClient(loadKubeConfig({ kubeconfig: dead })) };
    await expect(processSyncJob(syncJob(older), unreachable, { attempt: 1, maxAttempts: 5 })).rejects.toThrow(
      /could not be reached/,
    );
    expect(states(older, 'plumbline')).toEqual(['pending']);
    // …but a newer push replaces the retry, and its job completes.
    const newer = await commitAndPush({ first: 'a', second: 'b', ninth: 'i', tenth: 'j' });
    await processSyncJob(syncJob(newer), deps);
    expect(latest(newer, 'plumbline')?.state).toBe('success');
    expect(latest(older, 'plumbline')).toMatchObject({
      state: 'success',
      description: `not applied: superseded by ${newer.slice(0, 7)}, which is newer and contains it`,
    });
  });

  it('GitHub rate limits (403 secondary limit, 429 with retry-after) are waited out, then written', async () => {
    const sha = await commitAndPush({ first: 'a', second: 'b', third: 'c', fourth: 'd', sixth: 'f' });
    f.github.script(STATUSES, {
      status: 403,
      body: { message: 'You have exceeded a secondary rate limit. Please wait a few minutes before you try again.' },
      headers: { 'retry-after': '1' },
    });
    f.github.script(STATUSES, { status: 429, body: { message: 'Too Many Requests' }, headers: { 'retry-after': '1' } });
    const from = f.github.calls.length;
    await processSyncJob(syncJob(sha), deps);
    const calls = f.github.calls.slice(from).filter((c) => c.operation === STATUSES);
    const limited = calls.filter((c) => c.status === 403 || c.status === 429);
    expect(limited.map((c) => c.status)).toEqual([403, 429]);
    for (const answer of limited) {
      const context = (answer.body as { context: string }).context;
      const retry = calls.find((c) => c.at > answer.at && (c.body as { context: string }).context === context);
      expect(retry).toBeDefined();
      expect(retry!.at - answer.at).toBeGreaterThanOrEqual(950);
    }
    expect(latest(sha, context)?.state).toBe('success');
    expect(latest(sha, 'plumbline')?.state).toBe('success');
  });

  it('a context GitHub declares full (1,000 statuses) is given up, not retried forever', async () => {
    const sha = await commitAndPush({ first: 'a', second: 'b', seventh: 'g' });
    f.github.statusLimitPerContext = 1;
    let first: SyncResult;
    let rerun: SyncResult;
    try {
      first = await processSyncJob(syncJob(sha), deps);
      rerun = await processSyncJob(syncJob(sha, { trigger: 'rerun' }), deps);
    } finally {
      f.github.statusLimitPerContext = 1000;
    }
    // A full context is not the job's failure: the commit is applied, and the re-run finds it so.
    expect(first.outcomes).toEqual([expect.objectContaining({ cluster, status: 'applied' })]);
    expect(rerun.outcomes).toEqual([expect.objectContaining({ cluster, status: 'applied', repeated: true })]);
    // GitHub shows what it accepted before the context was full: the first status of each context.
    expect(states(sha, context)).toEqual(['pending']);
    expect(states(sha, 'plumbline')).toEqual(['pending']);
    const perContext = f.github.callsTo(STATUSES).filter((c) => c.path.endsWith(sha));
    const forCluster = perContext.filter((c) => (c.body as { context: string }).context === context);
    // One accepted (pending), one refused with 422; the re-run does not try again.
    expect(forCluster.map((c) => c.status)).toEqual([201, 422]);
  });

  it('an App without the Checks permission still reports with statuses', async () => {
    const otherPrefix = uniqueName('nochecks');
    const noChecks = workerDependencies(f, { registry, redis, prefix: otherPrefix });
    const sha = await commitAndPush({ first: 'a', second: 'b', eighth: 'h' });
    f.github.checksPermission = false;
    try {
      await processSyncJob(syncJob(sha), noChecks);
    } finally {
      f.github.checksPermission = true;
    }
    expect(states(sha, context)).toEqual(['pending', 'success']);
    expect(f.github.checkRuns(f.repository.fullName, sha)).toEqual([]);
    // Refused once, then not asked again for this installation.
    const refused = f.github.calls.filter((c) => c.operation?.includes('check-runs') && c.path.includes('check-runs'));
    expect(refused.filter((c) => c.status === 403)).toHaveLength(1);
  });

  it('an unreachable cluster ends in `error` once the retries are used up', async () => {
    const { mkdtemp, writeFile } = await import('node:fs/promises');
    const { tmpdir } = await import('node:os');
    const { join } = await import('node:path');
    const { freePort } = await import('../../dev/local-stack/free-port.ts');
    const dead = join(await mkdtemp(join(tmpdir(), 'plumbline-dead-')), 'kubeconfig');
    await writeFile(
      dead,
      `apiVersion: v1\nkind: Config\nclusters: [{name: dead, cluster: {server: "https://127.0.0.1:${await freePort()}", insecure-skip-tls-verify: true}}]\nusers: [{name: u, user: {token: t}}]\ncontexts: [{name: dead, context: {cluster: dead, user: u}}]\ncurrent-context: dead\n`,
    );
    const unreachable = uniqueName('unreachable');
    const queuePrefix = uniqueName('retries');
    const deadDeps = workerDependencies(f, {
      registry: parseClusterRegistry(
        `clusters:\n  - {name: ${unreachable}, repo: ${f.repository.fullName}, path: ${FOLDER}, kubeconfig: ${dead}}\n`,
      ),
      redis,
      prefix: queuePrefix,
    });
    const sha = await f.work.head();
    const queue = new Queue('sync', { connection: redis, prefix: queuePrefix });
    const finished: SyncResult[] = [];
    const attempts: number[] = [];
    const worker = createJobConsumer<SyncResult | undefined>({
      connection: redis,
      prefix: queuePrefix,
      queue: 'sync',
      concurrency: 1,
      process: async (job, run) => {
        attempts.push(run.attempt);
        return job.type === 'sync' ? processSyncJob(job, deadDeps, run) : undefined;
      },
      onError: () => {},
    });
    worker.on('completed', (job) => {
      if (job.returnvalue) finished.push(job.returnvalue);
    });
    try {
      await queue.add('sync', syncJob(sha), { attempts: 3, backoff: { type: 'fixed', delay: 200 } });
      const deadline = Date.now() + 40_000;
      while (finished.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    } finally {
      await worker.close();
      await queue.close();
    }
    expect(attempts).toEqual([1, 2, 3]);
    expect(finished[0]?.outcomes).toEqual([expect.objectContaining({ cluster: unreachable, status: 'error' })]);
    const ctx = `plumbline/${unreachable}`;
    expect(states(sha, ctx)).toEqual(['error']);
    expect(latest(sha, ctx)?.description).toMatch(/^not applied after 3 attempt\(s\): .*unreachable/);
    expect(latest(sha, 'plumbline')?.state).toBe('error');
  });

  it('keeps every secret out of statuses, check runs and logs', () => {
    const everythingSent = JSON.stringify(f.github.calls);
    const logText = logs.join('');
    expect(logText.length).toBeGreaterThan(1000);
    for (const token of f.github.issuedTokens()) {
      expect(everythingSent).not.toContain(token);
      expect(logText).not.toContain(token);
    }
    const keyBody = f.github.privateKeyPem.split('\n')[1] ?? 'unreachable';
    expect(logText).not.toContain(keyBody);
    expect(f.github.violations).toEqual([]);
    expect(f.github.unexpected).toEqual([]);
  });
});
