import { join } from 'node:path';
import { describe, expect, it } from '@jest/globals';
import { parseAllDocuments } from 'yaml';
import { readEnvOptions } from '../../src/config/read-env-options.ts';
import { packageRoot } from '../../src/support/package-root.ts';
import { runCommand } from '../../src/support/run-command.ts';

const chart = join(packageRoot(), 'helm', 'plumbline');
const MINIMAL = [
  '--set',
  'github.appId=123',
  '--set',
  'credentials.existingSecret=plumbline-credentials',
  '--set',
  'clusters[0].name=in-cluster,clusters[0].repo=acme/platform-gitops,clusters[0].path=clusters/gcp/production,clusters[0].inCluster=true,clusters[0].namespaces[0]=apps',
];

interface PodSpec {
  readonly terminationGracePeriodSeconds?: number;
  readonly containers: readonly { readonly env?: readonly { readonly name: string; readonly value?: string }[] }[];
}

/** Each Deployment's Kubernetes grace and the shutdown grace its process reads from the environment. */
async function graces(
  ...values: string[]
): Promise<Record<string, { podSeconds: number | undefined; processMs: number }>> {
  const helm = process.env.PLUMBLINE_TEST_HELM;
  if (!helm) throw new Error('PLUMBLINE_TEST_HELM is not set: run through jest global setup');
  const result = await runCommand(helm, ['template', 'plumbline', chart, ...MINIMAL, ...values], {
    env: { HELM_CACHE_HOME: '/tmp/helm-cache', HELM_CONFIG_HOME: '/tmp/helm-config', HELM_DATA_HOME: '/tmp/helm-data' },
    timeoutMs: 60_000,
  });
  if (result.code !== 0) throw new Error(`helm template failed: ${result.stderr}`);
  const deployments = parseAllDocuments(result.stdout.toString())
    .map((d) => d.toJS() as { kind?: string; metadata?: { name: string }; spec?: { template: { spec: PodSpec } } })
    .filter((m) => m?.kind === 'Deployment');
  return Object.fromEntries(
    deployments.map((d) => {
      const pod = d.spec?.template.spec;
      const env = Object.fromEntries(
        (pod?.containers[0]?.env ?? []).flatMap((e) => (e.value ? [[e.name, e.value]] : [])),
      );
      // As the process reads it: a value it refused would throw here.
      const processMs = readEnvOptions({
        PLUMBLINE_SHUTDOWN_GRACE_MS: env.PLUMBLINE_SHUTDOWN_GRACE_MS,
      }).shutdownGraceMs;
      return [d.metadata?.name ?? '', { podSeconds: pod?.terminationGracePeriodSeconds, processMs }];
    }),
  );
}

describe('the chart’s shutdown graces', () => {
  it('gives each process a shutdown grace 10 s shorter than its pod’s, so that it exits before the SIGKILL', async () => {
    expect(await graces()).toEqual({
      'plumbline-receiver': { podSeconds: 30, processMs: 20_000 },
      'plumbline-worker': { podSeconds: 120, processMs: 110_000 },
    });
  });

  it('follows a pod grace that is set, keeping half of a short one', async () => {
    expect(
      await graces(
        '--set',
        'worker.terminationGracePeriodSeconds=600',
        '--set',
        'receiver.terminationGracePeriodSeconds=12',
      ),
    ).toEqual({
      'plumbline-receiver': { podSeconds: 12, processMs: 6_000 },
      'plumbline-worker': { podSeconds: 600, processMs: 590_000 },
    });
  });
});
