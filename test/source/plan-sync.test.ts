import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { type ClusterEntry, parseClusterRegistry } from '../../src/clusters/cluster-registry.ts';
import type { SyncJob } from '../../src/queue/jobs.ts';
import { type ClusterPlan, planSync } from '../../src/source/plan-sync.ts';
import { copyRepositoryFixture, createSourceFixture, type SourceFixture } from '../helpers/source-fixture.ts';

const registry = parseClusterRegistry(`
clusters:
  - {name: gcp-production, repo: acme/platform-gitops, path: clusters/gcp/production, inCluster: true}
  - {name: aws-staging, repo: acme/platform-gitops, path: clusters/aws/staging, inCluster: true}
  - {name: homelab-dev, repo: acme/platform-gitops, path: clusters/homelab/dev, inCluster: true}
`);

const summary = (plans: readonly ClusterPlan[]) =>
  Object.fromEntries(
    plans.map((p) => [p.cluster.name, p.action === 'refuse' ? `refuse:${p.verdict.reason}` : p.action]),
  );

describe('planning a sync in a repository with the Portefaix layout', () => {
  let f: SourceFixture;
  let base: string;
  /** The commit before the last `change`: what the clusters had applied when it was pushed. */
  let previous: string;

  const plan = async (
    after: string,
    options: {
      before?: string;
      forced?: boolean;
      applied?: string;
      clusters?: ClusterEntry[];
      trigger?: SyncJob['trigger'];
    } = {},
  ) => {
    const workDir = join(f.dir, 'work');
    await mkdir(workDir, { recursive: true });
    const result = await planSync({
      job: {
        trigger: options.trigger ?? 'push',
        branch: 'main',
        after,
        before: options.before,
        forced: options.forced ?? false,
      },
      remote: await f.remote(),
      clusters: options.clusters ?? registry.clusters,
      appliedSha: () => options.applied ?? previous,
      mirror: f.mirror,
      workDir,
    });
    await result.cleanup();
    return summary(result.plans);
  };

  const change = async (files: Record<string, string | null>) => {
    previous = await f.work.head();
    const sha = await f.work.commit('change', files);
    await f.work.push();
    return sha;
  };

  beforeAll(async () => {
    f = await createSourceFixture();
    await copyRepositoryFixture('portefaix', f.work);
    base = await f.work.commit('initial layout');
    await f.work.push();
  });
  afterAll(async () => {
    await f.close();
  });

  it('reconciles every cluster on its first apply', async () => {
    const result = await planSync({
      job: { trigger: 'push', branch: 'main', after: base, before: undefined, forced: false },
      remote: await f.remote(),
      clusters: registry.clusters,
      appliedSha: () => undefined,
      mirror: f.mirror,
      workDir: f.dir,
    });
    await result.cleanup();
    expect(result.plans.map((p) => p.action)).toEqual(['reconcile', 'reconcile', 'reconcile']);
  });

  it('a change to a shared stack affects exactly the clusters whose kustomizations include it', async () => {
    const sha = await change({
      'stacks/observability/prometheus/deployment.yaml': 'kind: Deployment\nmetadata: {name: prometheus}\n',
    });
    expect(await plan(sha, { before: previous })).toEqual({
      'gcp-production': 'reconcile',
      'aws-staging': 'reconcile',
      'homelab-dev': 'skip',
    });
  });

  it('a change to a stack only one cluster uses affects only that cluster', async () => {
    const sha = await change({ 'stacks/security/external-secret.yaml': 'kind: ExternalSecret\n' });
    expect(await plan(sha)).toEqual({ 'gcp-production': 'skip', 'aws-staging': 'reconcile', 'homelab-dev': 'skip' });
  });

  it('a change to an app affects the clusters that deploy it', async () => {
    const sha = await change({ 'apps/podinfo/deployment.yaml': 'kind: Deployment\nmetadata: {name: podinfo}\n' });
    expect(await plan(sha)).toEqual({ 'gcp-production': 'reconcile', 'aws-staging': 'skip', 'homelab-dev': 'skip' });
  });

  it('follows components, patches and generator files', async () => {
    expect(
      await plan(await change({ 'components/monitoring-labels/kustomization.yaml': 'kind: Component\n' })),
    ).toEqual({
      'gcp-production': 'reconcile',
      'aws-staging': 'reconcile',
      'homelab-dev': 'skip',
    });
    expect(
      await plan(await change({ 'clusters/gcp/production/patches/replicas.yaml': 'spec: {replicas: 5}\n' })),
    ).toEqual({
      'gcp-production': 'reconcile',
      'aws-staging': 'skip',
      'homelab-dev': 'skip',
    });
    expect(await plan(await change({ 'clusters/aws/staging/info.properties': 'provider=aws\n' }))).toEqual({
      'gcp-production': 'skip',
      'aws-staging': 'reconcile',
      'homelab-dev': 'skip',
    });
  });

  it('a plain-YAML cluster folder counts as a whole, sub-folders included', async () => {
    const sha = await change({ 'clusters/homelab/dev/sub/other.yaml': 'kind: ConfigMap\n' });
    expect(await plan(sha)).toEqual({ 'gcp-production': 'skip', 'aws-staging': 'skip', 'homelab-dev': 'reconcile' });
  });

  it('the applied commit again (a re-run, a retried job) is reconciled, so its job ends with a result', async () => {
    const sha = await change({ 'README.md': '# again\n' });
    expect(await plan(sha, { applied: sha })).toEqual({
      'gcp-production': 'reconcile',
      'aws-staging': 'reconcile',
      'homelab-dev': 'reconcile',
    });
  });

  it('files no render reads affect nothing', async () => {
    const sha = await change({ 'README.md': '# changed\n', 'clusters/gcp/production/notes.md': 'new notes\n' });
    expect(await plan(sha)).toEqual({ 'gcp-production': 'skip', 'aws-staging': 'skip', 'homelab-dev': 'skip' });
  });

  it('refuses a forced push and a commit that does not descend from the applied one', async () => {
    const applied = await change({ 'apps/podinfo/deployment.yaml': 'kind: Deployment\nmetadata: {name: v2}\n' });
    await f.work.resetHard(base);
    const rewritten = await f.work.commit('rewrite', {
      'apps/podinfo/deployment.yaml': 'kind: Deployment\nmetadata: {name: v3}\n',
    });
    await f.work.push('main', { force: true });
    expect(await plan(rewritten, { applied, forced: true })).toEqual({
      'gcp-production': 'refuse:forced-push',
      'aws-staging': 'refuse:forced-push',
      'homelab-dev': 'refuse:forced-push',
    });
    expect(await plan(rewritten, { applied, forced: false })).toEqual({
      'gcp-production': 'refuse:not-a-descendant',
      'aws-staging': 'refuse:not-a-descendant',
      'homelab-dev': 'refuse:not-a-descendant',
    });
  });

  it('never applies an older commit over a newer one', async () => {
    const older = await change({ 'apps/podinfo/deployment.yaml': 'kind: Deployment\nmetadata: {name: older}\n' });
    const newer = await change({ 'apps/podinfo/deployment.yaml': 'kind: Deployment\nmetadata: {name: newer}\n' });
    expect(await plan(older, { applied: newer })).toEqual({
      'gcp-production': 'refuse:superseded',
      'aws-staging': 'refuse:superseded',
      'homelab-dev': 'refuse:superseded',
    });
  });

  it('treats an applied commit that no longer exists upstream as a rewritten history', async () => {
    const head = await f.work.head();
    const vanished = 'feed'.repeat(10);
    expect(await plan(head, { applied: vanished })).toEqual({
      'gcp-production': 'refuse:not-a-descendant',
      'aws-staging': 'refuse:not-a-descendant',
      'homelab-dev': 'refuse:not-a-descendant',
    });
    const allowing = registry.clusters.map((c) => ({ ...c, allowHistoryRewrite: true }));
    expect(await plan(head, { applied: vanished, clusters: allowing })).toEqual({
      'gcp-production': 'reconcile',
      'aws-staging': 'reconcile',
      'homelab-dev': 'reconcile',
    });
  });

  it('applies a rewritten history where the operator allows it', async () => {
    const allowing = registry.clusters.map((c) => ({ ...c, allowHistoryRewrite: c.name === 'gcp-production' }));
    const applied = await change({ 'apps/podinfo/deployment.yaml': 'kind: Deployment\nmetadata: {name: v4}\n' });
    await f.work.resetHard(base);
    const rewritten = await f.work.commit('rewrite again', {
      'apps/podinfo/deployment.yaml': 'kind: Deployment\nmetadata: {name: v5}\n',
    });
    await f.work.push('main', { force: true });
    expect(await plan(rewritten, { applied, forced: true, clusters: allowing })).toEqual({
      'gcp-production': 'reconcile',
      'aws-staging': 'refuse:forced-push',
      'homelab-dev': 'refuse:forced-push',
    });
  });
  describe('the history guard on paths without a push payload (invariant 10)', () => {
    it("a resync's job proves ancestry: a branch rewound to an older commit is refused, though it names the applied commit as before", async () => {
      const older = await change({ 'apps/podinfo/deployment.yaml': 'kind: Deployment\nmetadata: {name: r1}\n' });
      const newer = await change({ 'apps/podinfo/deployment.yaml': 'kind: Deployment\nmetadata: {name: r2}\n' });
      await f.work.resetHard(older);
      await f.work.push('main', { force: true });
      // The applied commit is no longer on the branch: going back is a rewrite, not a late arrival.
      expect(await plan(older, { trigger: 'resync', applied: newer, before: newer })).toEqual({
        'gcp-production': 'refuse:not-a-descendant',
        'aws-staging': 'refuse:not-a-descendant',
        'homelab-dev': 'refuse:not-a-descendant',
      });
      const allowing = registry.clusters.map((c) => ({ ...c, allowHistoryRewrite: c.name === 'gcp-production' }));
      expect(await plan(older, { trigger: 'resync', applied: newer, clusters: allowing })).toEqual({
        'gcp-production': 'reconcile',
        'aws-staging': 'refuse:not-a-descendant',
        'homelab-dev': 'refuse:not-a-descendant',
      });
    });

    it('a push delivered after the branch moved away from its commit is refused, and the branch head is not wedged', async () => {
      const applied = await f.work.head();
      const dropped = await change({ 'apps/podinfo/deployment.yaml': 'kind: Deployment\nmetadata: {name: dropped}\n' });
      await f.work.resetHard(applied);
      await f.work.push('main', { force: true });
      // The push of `dropped` (forced: false, before = applied) arrives late, or is redelivered.
      expect(await plan(dropped, { trigger: 'push', applied, before: applied })).toEqual({
        'gcp-production': 'refuse:not-on-branch',
        'aws-staging': 'refuse:not-on-branch',
        'homelab-dev': 'refuse:not-on-branch',
      });
      // So the cluster stays on the branch, and the next push is a plain fast-forward.
      const next = await change({ 'apps/podinfo/deployment.yaml': 'kind: Deployment\nmetadata: {name: next}\n' });
      expect(await plan(next, { trigger: 'push', applied, before: applied })).toMatchObject({
        'gcp-production': 'reconcile',
      });
    });

    it("a resync's job for a rewritten history is refused, though it says forced: false", async () => {
      const applied = await change({ 'apps/podinfo/deployment.yaml': 'kind: Deployment\nmetadata: {name: r3}\n' });
      await f.work.resetHard(base);
      const rewritten = await f.work.commit('rewrite without a webhook', {
        'apps/podinfo/deployment.yaml': 'kind: Deployment\nmetadata: {name: r4}\n',
      });
      await f.work.push('main', { force: true });
      expect(await plan(rewritten, { trigger: 'resync', applied, before: applied, forced: false })).toEqual({
        'gcp-production': 'refuse:not-a-descendant',
        'aws-staging': 'refuse:not-a-descendant',
        'homelab-dev': 'refuse:not-a-descendant',
      });
    });

    it('a real push payload may vouch for ancestry with forced: false and before = the applied commit', async () => {
      const applied = await f.work.head();
      const next = await change({ 'apps/podinfo/deployment.yaml': 'kind: Deployment\nmetadata: {name: r5}\n' });
      expect(await plan(next, { trigger: 'push', applied, before: applied })).toEqual({
        'gcp-production': 'reconcile',
        'aws-staging': 'skip',
        'homelab-dev': 'skip',
      });
    });

    it('a re-run of a commit that is not on the deployed branch is refused, even where rewrites are allowed', async () => {
      const applied = await f.work.head();
      const side = await f.work.commit('on a side branch only', {
        'apps/podinfo/deployment.yaml': 'kind: Deployment\nmetadata: {name: side}\n',
      });
      await f.work.push('feature');
      await f.work.resetHard(applied);
      const allowing = registry.clusters.map((c) => ({ ...c, allowHistoryRewrite: true }));
      expect(await plan(side, { trigger: 'rerun', applied, clusters: allowing })).toEqual({
        'gcp-production': 'refuse:not-on-branch',
        'aws-staging': 'refuse:not-on-branch',
        'homelab-dev': 'refuse:not-on-branch',
      });
      // The branch's own head, re-run, is reconciled as before.
      expect(await plan(applied, { trigger: 'rerun', applied })).toEqual({
        'gcp-production': 'reconcile',
        'aws-staging': 'reconcile',
        'homelab-dev': 'reconcile',
      });
    });
  });
});
