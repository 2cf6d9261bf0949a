import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { AppsV1Api, BatchV1Api, type V1Job } from '@kubernetes/client-node';
import { ChartCache } from '../../src/charts/chart-cache.ts';
import { NO_CHART_SOURCES } from '../../src/charts/chart-sources.ts';
import { createClusterClient } from '../../src/engine/cluster-client.ts';
import { readInventory } from '../../src/engine/inventory.ts';
import { reconcileCluster } from '../../src/engine/reconcile-cluster.ts';
import { targetOf } from '../../src/engine/render-apps.ts';
import { KUBECTL_KUSTOMIZE, renderCluster } from '../../src/engine/render-cluster.ts';
import { scratch } from '../helpers/chart-test-server.ts';
import { testEnvironment, uniqueName } from '../helpers/environment.ts';
import { kubeClients } from '../helpers/kube.ts';

/**
 * Apps reconciled against the real apiserver: hooks around their app with their delete policies, apps
 * gated on the health of what they depend on, `prune: false`. There is no kubelet or Job controller: the
 * tests play the controller, writing status through the /status subresource as one would.
 */
const env = testEnvironment();
const kube = kubeClients(env.kubeconfig);
const client = createClusterClient(kube.config);
const batch = kube.config.makeApiClient(BatchV1Api);
const appsApi = kube.config.makeApiClient(AppsV1Api);
const options = {
  kustomize: KUBECTL_KUSTOMIZE,
  timeoutMs: 60_000,
  charts: {
    helm: process.env.PLUMBLINE_TEST_HELM ?? '',
    fetch: { sources: NO_CHART_SOURCES, cache: new ChartCache(scratch('plumbline-reconcile-apps-cache-')) },
  },
};
const namespaces: string[] = [];

afterAll(async () => {
  await Promise.all(namespaces.map((name) => kube.core.deleteNamespace({ name }).catch(() => undefined)));
});

async function write(tree: string, files: Record<string, string>): Promise<void> {
  for (const [path, text] of Object.entries(files)) {
    await mkdir(join(tree, path, '..'), { recursive: true });
    await writeFile(join(tree, path), text);
  }
}

/** A chart whose pre-install/upgrade Job must complete before the app, and a post-install ConfigMap hook. */
const hookedChart = (jobPolicy: string) => ({
  'charts/svc/Chart.yaml': 'apiVersion: v2\nname: svc\nversion: 0.1.0\n',
  'charts/svc/values.yaml': 'level: info\n',
  'charts/svc/templates/settings.yaml':
    'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  level: {{ .Values.level | quote }}\n',
  'charts/svc/templates/migrate.yaml': `apiVersion: batch/v1
kind: Job
metadata:
  name: migrate
  annotations:
    helm.sh/hook: pre-install,pre-upgrade
    helm.sh/hook-delete-policy: ${jobPolicy}
spec:
  template:
    spec:
      restartPolicy: Never
      containers: [{ name: migrate, image: busybox:1.36, command: [sh, -c, "echo migrated {{ .Values.level }}"] }]
`,
  'charts/svc/templates/notify.yaml':
    'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: notified\n  annotations:\n    helm.sh/hook: post-install,post-upgrade\n',
});

/** Plays the Job controller: each Job named `name` that appears in `namespace` is finished as `outcome`. */
function jobController(namespace: string, outcome: 'Complete' | 'Failed') {
  const seen: { uid: string; settingsExisted: boolean }[] = [];
  let running = true;
  const loop = (async () => {
    while (running) {
      const jobs = await batch.listNamespacedJob({ namespace }).catch(() => ({ items: [] as V1Job[] }));
      for (const job of jobs.items) {
        const uid = job.metadata?.uid ?? '';
        if (seen.some((s) => s.uid === uid) || job.metadata?.deletionTimestamp) continue;
        const settings = await kube.core.readNamespacedConfigMap({ name: 'settings', namespace }).then(
          (cm) => cm.data?.level,
          () => undefined,
        );
        seen.push({ uid, settingsExisted: settings !== undefined });
        const now = new Date();
        const conditions =
          outcome === 'Complete'
            ? [
                { type: 'SuccessCriteriaMet', status: 'True', lastTransitionTime: now, lastProbeTime: now },
                { type: 'Complete', status: 'True', lastTransitionTime: now, lastProbeTime: now },
              ]
            : [
                {
                  type: 'FailureTarget',
                  status: 'True',
                  lastTransitionTime: now,
                  lastProbeTime: now,
                  reason: 'BackoffLimitExceeded',
                  message: 'Job has reached the specified backoff limit',
                },
                {
                  type: 'Failed',
                  status: 'True',
                  lastTransitionTime: now,
                  lastProbeTime: now,
                  reason: 'BackoffLimitExceeded',
                  message: 'Job has reached the specified backoff limit',
                },
              ];
        await batch.replaceNamespacedJobStatus({
          name: job.metadata?.name ?? '',
          namespace,
          body: {
            ...job,
            status: {
              startTime: now,
              ...(outcome === 'Complete' ? { completionTime: now, succeeded: 1 } : { failed: 1 }),
              conditions,
            },
          },
        });
      }
      await sleep(100);
    }
  })();
  return {
    seen,
    stop: async () => {
      running = false;
      await loop;
    },
  };
}

async function reconcileTree(tree: string, cluster: string, healthTimeoutMs = 30_000) {
  const rendered = await renderCluster(tree, 'clusters/a', options, targetOf(client));
  if (!rendered.ok) throw new Error(`render failed: ${JSON.stringify(rendered.problems)}`);
  return reconcileCluster({
    client,
    clusterName: cluster,
    revision: uniqueName('rev').padEnd(40, '0'),
    objects: rendered.objects,
    apps: rendered.apps,
    prune: true,
    pruneGuards: { maxShare: 0.9, override: false },
    apply: { concurrency: 8, conflicts: 'take-ownership', establishTimeoutMs: 30_000, healthTimeoutMs },
  });
}

const exists = (read: () => Promise<unknown>) =>
  read().then(
    () => true,
    () => false,
  );

describe('reconciling apps on the real apiserver', () => {
  let tree: string;
  beforeAll(() => {
    tree = scratch('plumbline-reconcile-apps-');
  });

  it('runs a pre-install Job hook to completion before the app, deletes it (hook-succeeded), posts the post-install hook, and inventories neither', async () => {
    const namespace = uniqueName('hooks');
    namespaces.push(namespace);
    const cluster = uniqueName('hooked');
    await write(tree, {
      ...hookedChart('hook-succeeded,before-hook-creation'),
      'clusters/a/plumbline.yaml': `apiVersion: plumbline.dev/v1alpha1\nkind: Apps\napps:\n  - name: svc\n    chart: ../../charts/svc\n    namespace: ${namespace}\n`,
    });
    const controller = jobController(namespace, 'Complete');
    try {
      const installed = await reconcileTree(tree, cluster);
      expect(installed.status).toBe('applied');
      const change = (object: string) => installed.changeSet.changes.find((c) => c.object === object);
      expect(change(`Job/${namespace}/migrate`)).toMatchObject({
        action: 'created',
        app: 'svc',
        message: 'pre-install hook ran, then deleted (hook-succeeded)',
      });
      expect(change(`ConfigMap/${namespace}/notified`)).toMatchObject({
        action: 'created',
        message: 'post-install hook ran',
      });
      expect(change(`ConfigMap/${namespace}/settings`)).toMatchObject({ action: 'created', app: 'svc' });
      // The hook ran before the app's objects, and is gone after.
      expect(controller.seen).toEqual([{ uid: expect.any(String), settingsExisted: false }]);
      expect(await exists(() => batch.readNamespacedJob({ name: 'migrate', namespace }))).toBe(false);
      expect(await exists(() => kube.core.readNamespacedConfigMap({ name: 'notified', namespace }))).toBe(true);
      const inventory = await readInventory(client, cluster);
      expect(inventory?.objects.map((o) => `${o.kind}/${o.name}`).sort()).toEqual([
        'ConfigMap/settings',
        `Namespace/${namespace}`,
      ]);

      // The same commit again: the app is unchanged, so no hook runs.
      const again = await reconcileTree(tree, cluster);
      expect(again.status).toBe('applied');
      expect(again.changeSet.changes.map((c) => c.object).sort()).toEqual([
        `ConfigMap/${namespace}/settings`,
        `Namespace/${namespace}`,
      ]);
      expect(controller.seen).toHaveLength(1);

      // A values change upgrades the app: the pre-upgrade hook runs again, the post-upgrade hook is replaced.
      await write(tree, { 'charts/svc/values.yaml': 'level: debug\n' });
      const upgraded = await reconcileTree(tree, cluster);
      expect(upgraded.status).toBe('applied');
      expect(upgraded.changeSet.changes.find((c) => c.object === `Job/${namespace}/migrate`)?.message).toBe(
        'pre-upgrade hook ran, then deleted (hook-succeeded)',
      );
      expect(controller.seen).toEqual([
        { uid: expect.any(String), settingsExisted: false },
        { uid: expect.any(String), settingsExisted: true },
      ]);
    } finally {
      await controller.stop();
    }
  });

  it('a failing hook stops its app: nothing else of it is applied, and hook-failed deletes the Job', async () => {
    const namespace = uniqueName('hookfail');
    namespaces.push(namespace);
    const failTree = scratch('plumbline-reconcile-apps-fail-');
    await write(failTree, {
      ...hookedChart('hook-failed'),
      'clusters/a/plumbline.yaml': `apiVersion: plumbline.dev/v1alpha1\nkind: Apps\napps:\n  - name: svc\n    chart: ../../charts/svc\n    namespace: ${namespace}\n`,
    });
    const controller = jobController(namespace, 'Failed');
    try {
      const outcome = await reconcileTree(failTree, uniqueName('hookfail'));
      expect(outcome).toMatchObject({
        status: 'failed',
        failure: { reason: 'hook-failed', hooks: [`Job/${namespace}/migrate`] },
      });
      expect(outcome.changeSet.changes.find((c) => c.object === `Job/${namespace}/migrate`)).toMatchObject({
        action: 'failed',
        message: expect.stringMatching(/^pre-install hook did not succeed: /),
      });
      expect(outcome.changeSet.changes.find((c) => c.object === `ConfigMap/${namespace}/settings`)?.action).toBe(
        'skipped',
      );
      expect(await exists(() => kube.core.readNamespacedConfigMap({ name: 'settings', namespace }))).toBe(false);
      expect(await exists(() => batch.readNamespacedJob({ name: 'migrate', namespace }))).toBe(false);
    } finally {
      await controller.stop();
    }
  });

  it('applies an app only once the app it depends on is healthy; a deadline passed stops before it', async () => {
    const namespace = uniqueName('waves');
    namespaces.push(namespace);
    const wavesTree = scratch('plumbline-reconcile-apps-waves-');
    await write(wavesTree, {
      'stacks/db/db.yaml': `apiVersion: v1
kind: Namespace
metadata:
  name: ${namespace}
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: db
  namespace: ${namespace}
spec:
  replicas: 1
  selector: { matchLabels: { app: db } }
  template:
    metadata: { labels: { app: db } }
    spec: { containers: [{ name: db, image: postgres:17 }] }
`,
      'stacks/api/api.yaml': `apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: api\n  namespace: ${namespace}\n`,
      'clusters/a/plumbline.yaml': `apiVersion: plumbline.dev/v1alpha1
kind: Apps
apps:
  - name: api
    path: ../../stacks/api
    dependsOn: [db]
  - name: db
    path: ../../stacks/db
`,
    });
    const cluster = uniqueName('waves');
    const early = await reconcileTree(wavesTree, cluster, 1_500);
    expect(early).toMatchObject({ status: 'failed', failure: { reason: 'unhealthy-dependency', apps: ['db'] } });
    expect(early.changeSet.changes.find((c) => c.object === `ConfigMap/${namespace}/api`)).toMatchObject({
      action: 'skipped',
      app: 'api',
      message: 'not applied: app db it depends on is not healthy',
    });
    expect(await exists(() => kube.core.readNamespacedConfigMap({ name: 'api', namespace }))).toBe(false);

    // The controller reports the database available: the next reconcile applies the app that needs it.
    const live = await appsApi.readNamespacedDeployment({ name: 'db', namespace });
    const now = new Date();
    await appsApi.replaceNamespacedDeploymentStatus({
      name: 'db',
      namespace,
      body: {
        ...live,
        status: {
          observedGeneration: live.metadata?.generation ?? 1,
          replicas: 1,
          updatedReplicas: 1,
          readyReplicas: 1,
          availableReplicas: 1,
          conditions: [{ type: 'Available', status: 'True', lastTransitionTime: now, lastUpdateTime: now }],
        },
      },
    });
    const later = await reconcileTree(wavesTree, cluster, 10_000);
    expect(later.status).toBe('applied');
    expect(await exists(() => kube.core.readNamespacedConfigMap({ name: 'api', namespace }))).toBe(true);
  });

  it('leaves the objects of a prune: false app in the cluster when the app is removed', async () => {
    const namespace = uniqueName('keep');
    namespaces.push(namespace);
    const keepTree = scratch('plumbline-reconcile-apps-keep-');
    const appsFile = (withKept: boolean) => `apiVersion: plumbline.dev/v1alpha1
kind: Apps
apps:
  - name: base
    path: ../../stacks/base
${withKept ? '  - name: kept\n    path: ../../stacks/kept\n    prune: false\n' : ''}`;
    await write(keepTree, {
      'stacks/base/base.yaml': `apiVersion: v1\nkind: Namespace\nmetadata:\n  name: ${namespace}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: base\n  namespace: ${namespace}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: other\n  namespace: ${namespace}\n`,
      'stacks/kept/kept.yaml': `apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: kept\n  namespace: ${namespace}\n`,
      'clusters/a/plumbline.yaml': appsFile(true),
    });
    const cluster = uniqueName('keep');
    expect((await reconcileTree(keepTree, cluster)).status).toBe('applied');
    await write(keepTree, { 'clusters/a/plumbline.yaml': appsFile(false) });
    const removed = await reconcileTree(keepTree, cluster);
    expect(removed.status).toBe('applied');
    expect(removed.changeSet.changes.find((c) => c.object === `ConfigMap/${namespace}/kept`)).toMatchObject({
      action: 'skipped',
      message: 'left alone: plumbline.dev/prune: disabled (its app has prune: false)',
    });
    expect(await exists(() => kube.core.readNamespacedConfigMap({ name: 'kept', namespace }))).toBe(true);
    const inventory = await readInventory(client, cluster);
    expect(inventory?.objects.map((o) => o.name)).not.toContain('kept');
  });
});
