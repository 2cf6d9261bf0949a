import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { PatchStrategy } from '@kubernetes/client-node';
import type { Worker } from 'bullmq';
import { Redis } from 'ioredis';
import { parseClusterRegistry } from '../../src/clusters/cluster-registry.ts';
import { createClusterClient, loadKubeConfig } from '../../src/engine/cluster-client.ts';
import { readInventory } from '../../src/engine/inventory.ts';
import { createJobProducer, type JobProducer } from '../../src/queue/job-producer.ts';
import type { PlumblineJob } from '../../src/queue/jobs.ts';
import { createJobConsumer } from '../../workers/job-consumer.ts';
import { processPreviewJob } from '../../workers/process-preview-job.ts';
import { processResyncJob, type ResyncDependencies } from '../../workers/process-resync-job.ts';
import { processSyncJob, type SyncResult } from '../../workers/process-sync-job.ts';
import { testEnvironment, uniqueName } from '../helpers/environment.ts';
import { githubDelivery, pushPayload, send } from '../helpers/github-delivery.ts';
import { kubeClients } from '../helpers/kube.ts';
import { type ReceiverHarness, startReceiverHarness, WEBHOOK_SECRET } from '../helpers/receiver-harness.ts';
import {
  createSourceFixture,
  githubWrites,
  INSTALLATION_ID,
  previewJob,
  type SourceFixture,
} from '../helpers/source-fixture.ts';
import { workerDependencies } from '../helpers/worker-deps.ts';

const env = testEnvironment();
const FOLDER = 'clusters/trust';
const LIVE_PASSWORD = 'Winter2024!';
const LIVE_API_KEY = 'sk_live_4eC39HqLyjWDarjtT1zdp7dc';

/** A loopback HTTP server that records every request: where a hostile clone URL would send the token. */
async function startCatcher(): Promise<{ url: string; requests: IncomingHttpHeaders[]; server: Server }> {
  const requests: IncomingHttpHeaders[] = [];
  const server = createServer((req, res) => {
    requests.push(req.headers);
    res.writeHead(401, { 'www-authenticate': 'Basic realm="x"' }).end();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  return { url: `http://127.0.0.1:${port}/acme/platform-gitops.git`, requests, server };
}

const manifests = (namespace: string, mode: string) =>
  `apiVersion: v1\nkind: Namespace\nmetadata:\n  name: ${namespace}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: mail\n  namespace: ${namespace}\ndata:\n  host: smtp.example.test\n  mode: ${mode}\n`;

/**
 * Issue 13, items 1, 2 and 4, end to end: signed webhooks into a real receiver, jobs through Redis, the
 * worker's consumers applying to two real apiservers, GitHub played by the OpenAPI-checked stand-in.
 */
describe('trust boundaries, end to end: receiver → Redis → worker → clusters', () => {
  let f: SourceFixture;
  let harness: ReceiverHarness;
  let redis: Redis;
  let producer: JobProducer;
  let producerConnection: Redis;
  let catcher: Awaited<ReturnType<typeof startCatcher>>;
  const workers: Worker<PlumblineJob, SyncResult | undefined>[] = [];
  const done: string[] = [];
  const failures: string[] = [];
  /** Requests each cluster received from the worker, by registry name. */
  const touched = new Map<string, number>();
  const namespace = uniqueName('trust');
  const closed = uniqueName('closed');
  const forks = uniqueName('forks');
  let deps: ResyncDependencies;

  const deliver = async (event: string, payload: Record<string, unknown>) => {
    const count = done.length;
    const response = await send(harness.baseUrl, githubDelivery(event, payload, WEBHOOK_SECRET));
    expect(response.status).toBe(202);
    await waitForJobs(count + 1);
  };
  const waitForJobs = async (count: number) => {
    const deadline = Date.now() + 60_000;
    while (done.length < count && failures.length === 0 && Date.now() < deadline)
      await new Promise((resolve) => setTimeout(resolve, 100));
    if (failures.length > 0) throw new Error(`a job failed: ${failures.join('; ')}`);
    if (done.length < count) throw new Error('the worker did not finish in time');
  };
  const push = (after: string, before?: string, extra: Record<string, unknown> = {}) => {
    const payload = pushPayload({ after, ...(before ? { before } : {}), repositoryId: f.repository.id });
    payload.installation = { id: INSTALLATION_ID };
    payload.repository = { id: f.repository.id, full_name: f.repository.fullName, clone_url: catcher.url, ...extra };
    return deliver('push', payload);
  };
  const appliedOn = async (kubeconfig: string, cluster: string) =>
    (await readInventory(createClusterClient(loadKubeConfig({ kubeconfig })), cluster))?.revision;
  const liveMode = async (kubeconfig: string) =>
    (await kubeClients(kubeconfig).core.readNamespacedConfigMap({ name: 'mail', namespace })).data?.mode;
  beforeAll(async () => {
    f = await createSourceFixture();
    catcher = await startCatcher();
    harness = await startReceiverHarness(env.redisUrl, { PLUMBLINE_PUSH_COALESCE_MS: '20' });
    redis = new Redis(env.redisUrl, { maxRetriesPerRequest: null });
    const registry = parseClusterRegistry(`
clusters:
  - {name: ${closed}, repo: ${f.repository.fullName}, path: ${FOLDER}, kubeconfig: ${env.kubeconfig}}
  - {name: ${forks}, repo: ${f.repository.fullName}, path: ${FOLDER}, kubeconfig: ${env.kubeconfigB}, previewForks: true}
`);
    const base = workerDependencies(f, { registry, redis, prefix: harness.prefix });
    producerConnection = new Redis(env.redisUrl, { enableOfflineQueue: false });
    producer = createJobProducer(producerConnection, {
      prefix: harness.prefix,
      coalesceMs: 0,
      onError: () => {},
    });
    deps = {
      ...base,
      clusterClient: (cluster) => {
        const client = base.clusterClient(cluster);
        const count = () => touched.set(cluster.name, (touched.get(cluster.name) ?? 0) + 1);
        return new Proxy(client, {
          get: (target, property, receiver) => {
            const value: unknown = Reflect.get(target, property, receiver);
            return typeof value === 'function'
              ? (...args: unknown[]) => {
                  count();
                  return (value as (...a: unknown[]) => unknown).apply(target, args);
                }
              : value;
          },
        });
      },
      enqueueSync: (job) => producer.add(job),
      syncInFlight: (job) => producer.inFlight(job),
      nextResyncAt: async () => undefined,
    };
    for (const queue of ['sync', 'preview'] as const) {
      const worker = createJobConsumer<SyncResult | undefined>({
        connection: redis,
        prefix: harness.prefix,
        queue,
        concurrency: 1,
        process: async (job, run) =>
          job.type === 'sync' ? processSyncJob(job, deps, run) : processPreviewJob(job, deps, run),
        onError: () => {},
      });
      worker.on('completed', (job) => done.push(job.id ?? ''));
      worker.on('failed', (_job, error) => failures.push(error.message));
      workers.push(worker);
    }
  });
  afterAll(async () => {
    await Promise.all(workers.map((w) => w.close()));
    await producer.close();
    producerConnection.disconnect();
    await harness.close();
    redis.disconnect();
    await new Promise((resolve) => catcher.server.close(resolve));
    await f.close();
  });

  it('a push payload naming a foreign clone URL: the worker fetches from GitHub by repository id and sends the token nowhere else', async () => {
    const sha = await f.work.commit('first', { [`${FOLDER}/app.yaml`]: manifests(namespace, 'strict') });
    await f.work.push();
    await push(sha);
    expect(catcher.requests).toEqual([]);
    expect(await appliedOn(env.kubeconfig, closed)).toBe(sha);
    expect(await appliedOn(env.kubeconfigB, forks)).toBe(sha);
    expect(f.github.calls.some((c) => c.operation === 'GET /installation/repositories')).toBe(true);
  });

  it('a resync never applies an older commit that the branch was rewound to without a webhook', async () => {
    const older = await f.work.head();
    const newer = await f.work.commit('second', { [`${FOLDER}/app.yaml`]: manifests(namespace, 'lenient') });
    await f.work.push();
    await push(newer, older);
    expect(await liveMode(env.kubeconfig)).toBe('lenient');

    // The branch goes back to the older commit; GitHub's webhook for it never arrives.
    await f.work.resetHard(older);
    await f.work.push('main', { force: true });
    const count = done.length;
    const result = await processResyncJob({ type: 'resync', cluster: closed }, deps);
    expect(result?.missedPush).toBe(older);
    await waitForJobs(count + 1);
    expect(await appliedOn(env.kubeconfig, closed)).toBe(newer);
    expect(await liveMode(env.kubeconfig)).toBe('lenient');
    expect(f.github.latestStatus(f.repository.fullName, older, `plumbline/${closed}`)).toMatchObject({
      state: 'failure',
      description: expect.stringMatching(/^refused: the branch was rewound to/),
    });
    // Back to the newer commit for what follows (a fast-forward from the cluster's point of view).
    await f.work.resetHard(newer);
    await f.work.push('main', { force: true });
  });

  it('a re-run of a commit that is not on the deployed branch is refused', async () => {
    const applied = await f.work.head();
    const stray = await f.work.commit('never on main', { [`${FOLDER}/app.yaml`]: manifests(namespace, 'stray') });
    await f.work.push('stray-branch');
    await f.work.resetHard(applied);
    await deliver('check_suite', {
      action: 'rerequested',
      check_suite: { head_sha: stray, head_branch: 'main', pull_requests: [] },
      repository: { id: f.repository.id, full_name: f.repository.fullName },
      installation: { id: INSTALLATION_ID },
    });
    expect(await appliedOn(env.kubeconfig, closed)).toBe(applied);
    expect(await liveMode(env.kubeconfig)).toBe('lenient');
    expect(f.github.latestStatus(f.repository.fullName, stray, `plumbline/${closed}`)).toMatchObject({
      state: 'failure',
      description: expect.stringContaining('is not on the deployed branch'),
    });
  });

  it('a fork pull request reaches only the cluster that opted in, and no live value reaches GitHub', async () => {
    // Someone set a password by hand on the live ConfigMap, and a Pod runs with a live API key.
    for (const kubeconfig of [env.kubeconfig, env.kubeconfigB]) {
      const kube = kubeClients(kubeconfig);
      await kube.objects.patch(
        {
          apiVersion: 'v1',
          kind: 'ConfigMap',
          metadata: { name: 'mail', namespace },
          data: { SMTP_PW: LIVE_PASSWORD },
        },
        undefined,
        undefined,
        'kubectl-edit',
        undefined,
        PatchStrategy.MergePatch,
      );
      await kube.core.createNamespacedPod({
        namespace,
        body: {
          metadata: { name: 'api' },
          spec: { containers: [{ name: 'api', image: 'api:1', env: [{ name: 'API_KEY', value: LIVE_API_KEY }] }] },
        },
      });
    }
    // The fork's head: guesses the password's key, and changes the Pod (which the apiserver refuses,
    // printing the live Pod spec in its message).
    const base = await f.work.head();
    const head = await f.work.commit('from a fork', {
      [`${FOLDER}/app.yaml`]: `${manifests(namespace, 'lenient')}  SMTP_PW: guess\n`,
      [`${FOLDER}/pod.yaml`]: `apiVersion: v1\nkind: Pod\nmetadata:\n  name: api\n  namespace: ${namespace}\nspec:\n  containers:\n    - name: api\n      image: api:1\n      env:\n        - {name: API_KEY, value: from-the-fork}\n`,
    });
    await f.work.git('push', '--quiet', 'origin', 'HEAD:refs/pull/5/head');
    await f.work.resetHard(base);
    touched.clear();
    const gitCalls = f.github.calls.filter((c) => c.operation === 'git').length;

    await deliver('pull_request', {
      action: 'opened',
      number: 5,
      pull_request: {
        head: { sha: head, ref: 'main', repo: { id: 987_654, full_name: 'mallory/platform-gitops' } },
        base: { ref: 'main', repo: { id: f.repository.id } },
      },
      repository: { id: f.repository.id, full_name: f.repository.fullName },
      installation: { id: INSTALLATION_ID },
    });

    expect(touched.get(closed) ?? 0).toBe(0);
    expect(touched.get(forks) ?? 0).toBeGreaterThan(0);
    expect(f.github.latestStatus(f.repository.fullName, head, `plumbline/${closed}`)).toMatchObject({
      state: 'error',
      description: expect.stringContaining('not previewed: pull requests from forks'),
    });
    const opted = f.github.latestStatus(f.repository.fullName, head, `plumbline/${forks}`);
    expect(opted?.state).toBe('failure');
    const run = f.github.checkRuns(f.repository.fullName, head).find((r) => r.name === `plumbline/${forks}`);
    expect(run?.output.text ?? '').toContain('data.SMTP_PW → "guess"');
    expect(`${run?.output.summary}`).toContain('Pod');
    // Nothing read from the live clusters went to GitHub: statuses, check runs, annotations.
    const text = githubWrites(f);
    expect(text).not.toContain(LIVE_PASSWORD);
    expect(text).not.toContain(LIVE_API_KEY);
    expect(text).not.toContain('sk_live_');
    // Nothing was applied anywhere.
    expect(await liveMode(env.kubeconfigB)).toBe('lenient');
    expect(f.github.calls.filter((c) => c.operation === 'git').length).toBeGreaterThan(gitCalls);
  });

  it('a fork pull request with no cluster opted in fetches nothing and contacts no cluster', async () => {
    const registry = parseClusterRegistry(
      `clusters:\n  - {name: ${closed}, repo: ${f.repository.fullName}, path: ${FOLDER}, kubeconfig: ${env.kubeconfig}}\n`,
    );
    const head = await f.work.commit('another fork head', { [`${FOLDER}/app.yaml`]: manifests(namespace, 'fork2') });
    await f.work.git('push', '--quiet', 'origin', 'HEAD:refs/pull/6/head');
    await f.work.resetHard(`${head}~1`);
    touched.clear();
    const gitCalls = f.github.calls.filter((c) => c.operation === 'git').length;
    const result = await processPreviewJob(previewJob(f, head, { number: 6, headRepositoryId: null }), {
      ...deps,
      registry,
    });
    expect(result.outcomes).toEqual([expect.objectContaining({ status: 'not-previewed' })]);
    expect(touched.size).toBe(0);
    expect(f.github.calls.filter((c) => c.operation === 'git').length).toBe(gitCalls);
  });
});
