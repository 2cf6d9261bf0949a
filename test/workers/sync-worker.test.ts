import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { Worker } from 'bullmq';
import { Redis } from 'ioredis';
import { parseClusterRegistry } from '../../src/clusters/cluster-registry.ts';
import { createClusterClient, loadKubeConfig } from '../../src/engine/cluster-client.ts';
import { customResourceDefinition } from '../../src/engine/custom-resource-definition.ts';
import { readInventory } from '../../src/engine/inventory.ts';
import type { PlumblineJob } from '../../src/queue/jobs.ts';
import { createJobConsumer } from '../../workers/job-consumer.ts';
import { processSyncJob, type SyncResult } from '../../workers/process-sync-job.ts';
import { testEnvironment, uniqueName } from '../helpers/environment.ts';
import { githubDelivery, pushPayload, send } from '../helpers/github-delivery.ts';
import { kubeClients } from '../helpers/kube.ts';
import { type ReceiverHarness, startReceiverHarness, WEBHOOK_SECRET } from '../helpers/receiver-harness.ts';
import {
  copyRepositoryFixture,
  createSourceFixture,
  INSTALLATION_ID,
  type SourceFixture,
} from '../helpers/source-fixture.ts';
import { STATUS_PAGE_URL, workerDependencies } from '../helpers/worker-deps.ts';

const env = testEnvironment();

/** The External Secrets Operator's CRD, as a cluster would have it before Plumbline applies references. */
const externalSecretCrd = customResourceDefinition({
  group: 'external-secrets.io',
  kind: 'ExternalSecret',
  plural: 'externalsecrets',
});

/** Renames namespaces (and same-named objects) in every file of a working tree: `name: x` / `namespace: x`. */
async function renameInTree(dir: string, renames: Record<string, string>): Promise<void> {
  const { readdir, readFile, writeFile } = await import('node:fs/promises');
  for (const entry of await readdir(dir, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile() || entry.parentPath.includes('/.git')) continue;
    const path = join(entry.parentPath, entry.name);
    let text = await readFile(path, 'utf8');
    for (const [from, to] of Object.entries(renames))
      text = text.replace(new RegExp(`((?:name|namespace): )${from}\\b`, 'g'), `$1${to}`);
    await writeFile(path, text);
  }
}

describe('a push, end to end: receiver → Redis → worker → two real clusters', () => {
  let f: SourceFixture;
  let harness: ReceiverHarness;
  let redis: Redis;
  let worker: Worker<PlumblineJob, SyncResult | undefined>;
  const results: SyncResult[] = [];
  let deps: Parameters<typeof processSyncJob>[1];
  const failures: string[] = [];
  const gcp = uniqueName('gcp-production');
  const monitoring = uniqueName('monitoring');
  const podinfo = uniqueName('podinfo');
  const aws = uniqueName('aws-staging');

  const pushAndWait = async (sha: string, before: string | undefined) => {
    const count = results.length;
    const payload = pushPayload({ after: sha, ...(before ? { before } : {}), repositoryId: f.repository.id });
    payload.installation = { id: INSTALLATION_ID };
    payload.repository = { id: f.repository.id, full_name: f.repository.fullName, clone_url: f.repository.cloneUrl };
    expect((await send(harness.baseUrl, githubDelivery('push', payload, WEBHOOK_SECRET))).status).toBe(202);
    const deadline = Date.now() + 50_000;
    while (results.length === count && failures.length === 0 && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 100));
    if (failures.length > 0) throw new Error(`the job failed: ${failures.join('; ')}`);
    const result = results.at(-1);
    if (!result || results.length === count) throw new Error('the worker did not finish the job in time');
    return Object.fromEntries(result.outcomes.map((o) => [o.cluster, o]));
  };

  beforeAll(async () => {
    for (const kubeconfig of [env.kubeconfig, env.kubeconfigB]) {
      await createClusterClient(loadKubeConfig({ kubeconfig })).apply(externalSecretCrd, {
        dryRun: false,
        force: true,
      });
    }
    f = await createSourceFixture();
    await copyRepositoryFixture('portefaix', f.work);
    // Namespaces of this run only, so objects left by an earlier run on a long-lived stack do not count.
    await renameInTree(f.work.dir, { monitoring: monitoring, podinfo: podinfo });
    harness = await startReceiverHarness(env.redisUrl, { PLUMBLINE_PUSH_COALESCE_MS: '50' });
    redis = new Redis(env.redisUrl, { maxRetriesPerRequest: null });
    const registry = parseClusterRegistry(`
clusters:
  - {name: ${gcp}, repo: ${f.repository.fullName}, path: clusters/gcp/production, kubeconfig: ${env.kubeconfig}}
  - {name: ${aws}, repo: ${f.repository.fullName}, path: clusters/aws/staging, kubeconfig: ${env.kubeconfigB}}
`);
    deps = workerDependencies(f, { registry, redis, prefix: harness.prefix });
    worker = createJobConsumer<SyncResult | undefined>({
      connection: redis,
      prefix: harness.prefix,
      queue: 'sync',
      concurrency: 2,
      process: async (job) => (job.type === 'sync' ? processSyncJob(job, deps) : undefined),
      onError: () => {},
    });
    worker.on('completed', (job) => {
      if (job.returnvalue) results.push(job.returnvalue);
    });
    worker.on('failed', (_job, error) => failures.push(error.message));
  });
  afterAll(async () => {
    await worker.close();
    await harness.close();
    redis.disconnect();
    await f.close();
  });

  it('applies the first commit to every registered cluster and records it in their inventories', async () => {
    const sha = await f.work.commit('initial layout');
    await f.work.push();
    const outcomes = await pushAndWait(sha, undefined);
    expect(outcomes[gcp]).toMatchObject({
      status: 'applied',
      description: expect.stringMatching(/^5 created in [\d.]+ s/),
    });
    expect(outcomes[aws]).toMatchObject({ status: 'applied' });
    const a = kubeClients(env.kubeconfig);
    const b = kubeClients(env.kubeconfigB);
    await expect(
      a.core.readNamespacedConfigMap({ name: 'grafana-settings', namespace: monitoring }),
    ).resolves.toBeDefined();
    await expect(
      b.objects.read({
        apiVersion: 'external-secrets.io/v1',
        kind: 'ExternalSecret',
        metadata: { name: 'registry-credentials', namespace: monitoring },
      }),
    ).resolves.toBeDefined();
    await expect(a.core.readNamespace({ name: podinfo })).resolves.toBeDefined();
    expect((await readInventory(createClusterClient(a.config), gcp))?.revision).toBe(sha);

    // GitHub: one pending and one final status per context, a roll-up, and a check run per cluster.
    const full = f.repository.fullName;
    const states = (context: string) =>
      f.github
        .statuses(full, sha)
        .filter((s) => s.context === context)
        .map((s) => s.state);
    expect(states(`plumbline/${gcp}`)).toEqual(['pending', 'success']);
    expect(states(`plumbline/${aws}`)).toEqual(['pending', 'success']);
    expect(states('plumbline')).toEqual(['pending', 'success']);
    expect(f.github.latestStatus(full, sha, `plumbline/${gcp}`)).toMatchObject({
      description: expect.stringMatching(/^5 created in [\d.]+ s; still progressing: Deployment\//),
      targetUrl: `${STATUS_PAGE_URL}/#cluster-${gcp}`,
    });
    expect(f.github.latestStatus(full, sha, 'plumbline')?.description).toBe('2 applied');
    const [run] = f.github.checkRuns(full, sha).filter((r) => r.name === `plumbline/${gcp}`);
    expect(run).toMatchObject({ status: 'completed', conclusion: 'success' });
    expect(run?.output.summary).toContain(`| created | \`ConfigMap/${monitoring}/grafana-settings\``);
    expect(f.github.violations).toEqual([]);
    expect(f.github.unexpected).toEqual([]);
  });

  it('reconciles only the clusters a commit affects', async () => {
    const before = await f.work.head();
    const sha = await f.work.commit('tune security', {
      'stacks/security/external-secret.yaml': `apiVersion: external-secrets.io/v1\nkind: ExternalSecret\nmetadata:\n  name: registry-credentials\n  namespace: ${monitoring}\nspec:\n  refreshInterval: 30m\n`,
    });
    await f.work.push();
    const outcomes = await pushAndWait(sha, before);
    expect(outcomes[gcp]).toMatchObject({ status: 'unchanged' });
    expect(outcomes[aws]).toMatchObject({ status: 'applied', description: expect.stringMatching(/^1 configured/) });
    // Only the affected cluster gets a status; the roll-up counts the other as unaffected.
    const contexts = f.github.statuses(f.repository.fullName, sha).map((s) => s.context);
    expect(new Set(contexts)).toEqual(new Set([`plumbline/${aws}`, 'plumbline']));
    expect(f.github.latestStatus(f.repository.fullName, sha, 'plumbline')).toMatchObject({
      state: 'success',
      description: '1 applied, 1 unaffected',
    });
    const [run] = f.github.checkRuns(f.repository.fullName, sha);
    expect(run?.output.text).toContain('~ spec.refreshInterval → "30m"');
  });

  it('fails a commit with a plaintext Secret on the clusters that render it, and applies nothing there', async () => {
    const before = await f.work.head();
    const sha = await f.work.commit('oops, a secret', {
      'apps/podinfo/secret.yaml':
        'apiVersion: v1\nkind: Secret\nmetadata: {name: leaked}\nstringData: {password: hunter2}\n',
      'apps/podinfo/kustomization.yaml': `apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nnamespace: ${podinfo}\nresources:\n  - deployment.yaml\n  - secret.yaml\n`,
    });
    await f.work.push();
    const outcomes = await pushAndWait(sha, before);
    expect(outcomes[gcp]).toMatchObject({
      status: 'failed',
      description: expect.stringMatching(new RegExp(`^Secret/${podinfo}/leaked carries secret data in Git`)),
    });
    expect(JSON.stringify(outcomes)).not.toContain('hunter2');
    expect(f.github.latestStatus(f.repository.fullName, sha, `plumbline/${gcp}`)?.state).toBe('failure');
    expect(f.github.latestStatus(f.repository.fullName, sha, 'plumbline')).toMatchObject({
      state: 'failure',
      description: expect.stringContaining(`see ${gcp}`),
    });
    const [run] = f.github.checkRuns(f.repository.fullName, sha).filter((r) => r.name === `plumbline/${gcp}`);
    expect(run?.annotations).toEqual([
      expect.objectContaining({ path: 'apps/podinfo/secret.yaml', start_line: 1, annotation_level: 'failure' }),
    ]);
    expect(JSON.stringify(f.github.calls)).not.toContain('hunter2');
    expect(outcomes[aws]).toMatchObject({ status: 'unchanged' });
    await expect(
      kubeClients(env.kubeconfig).core.readNamespacedSecret({ name: 'leaked', namespace: podinfo }),
    ).rejects.toMatchObject({ code: 404 });
  });

  it('reports an unreachable cluster as retryable, after the reachable ones had their turn', async () => {
    const { mkdtemp, writeFile } = await import('node:fs/promises');
    const { tmpdir } = await import('node:os');
    const { freePort } = await import('../../dev/local-stack/free-port.ts');
    const { RetryableSyncError } = await import('../../workers/process-sync-job.ts');
    const dead = join(await mkdtemp(join(tmpdir(), 'plumbline-dead-')), 'kubeconfig');
    const port = await freePort();
    await writeFile(
      dead,
      `apiVersion: v1\nkind: Config\nclusters: [{name: dead, cluster: {server: "https://127.0.0.1:${port}", insecure-skip-tls-verify: true}}]\nusers: [{name: u, user: {token: t}}]\ncontexts: [{name: dead, context: {cluster: dead, user: u}}]\ncurrent-context: dead\n`,
    );
    const unreachable = uniqueName('unreachable');
    const registry = parseClusterRegistry(`
clusters:
  - {name: ${unreachable}, repo: ${f.repository.fullName}, path: clusters/gcp/production, kubeconfig: ${dead}}
`);
    const job = {
      type: 'sync' as const,
      trigger: 'push' as const,
      deliveryId: 'd',
      repository: { id: f.repository.id, fullName: f.repository.fullName },
      installationId: INSTALLATION_ID,
      branch: 'main',
      before: undefined,
      after: await f.work.head(),
      forced: false,
      receivedAt: new Date().toISOString(),
    };
    const firstOfFive = { attempt: 1, maxAttempts: 5 };
    await expect(processSyncJob(job, { ...deps, registry }, firstOfFive)).rejects.toThrow(RetryableSyncError);
    // The failure reason BullMQ keeps in Redis names the category, not the address or the socket error.
    await expect(processSyncJob(job, { ...deps, registry }, firstOfFive)).rejects.toThrow(
      new RegExp(`could not be reached: ${unreachable}: cluster unreachable$`),
    );
  });
});
