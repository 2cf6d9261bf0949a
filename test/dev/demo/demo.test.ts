import { type ChildProcess, spawn } from 'node:child_process';
import { afterEach, describe, expect, it } from '@jest/globals';
import { packageRoot } from '../../../src/support/package-root.ts';
import { testEnvironment } from '../../helpers/environment.ts';
import { kubeClients } from '../../helpers/kube.ts';

const running: ChildProcess[] = [];
/** A demo left running by a failed test must not overlap the next one. */
afterEach(() => {
  for (const child of running.splice(0)) if (child.exitCode === null) child.kill('SIGKILL');
});

/** `plumbline demo` as a user runs it (through the CLI), with its output collected. */
function startDemo(args: string[]): { child: ChildProcess; output: () => string; exited: Promise<number | null> } {
  const child = spawn(process.execPath, ['--import', 'tsx', 'dev/demo/cli.ts', ...args], {
    cwd: packageRoot(),
    env: { ...process.env, PORT: '' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let text = '';
  child.stdout?.on('data', (chunk: Buffer) => {
    text += chunk.toString();
  });
  child.stderr?.on('data', (chunk: Buffer) => {
    text += chunk.toString();
  });
  running.push(child);
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { child, output: () => text, exited };
}

/** The story's output from the step that starts with `from` to the one that starts with `to`. */
function section(output: string, from: string, to: string): string {
  const start = output.indexOf(`\n${from}`);
  const end = output.indexOf(`\n${to}`, start + 1);
  expect({ from, found: start >= 0 && end > start }).toEqual({ from, found: true });
  return output.slice(start, end);
}

describe('plumbline demo', () => {
  it('tells the whole story through real webhooks, Helm values change included, then exits cleanly (--exit)', async () => {
    const demo = startDemo(['--exit']);
    const code = await demo.exited;
    const output = demo.output();
    expect({ code, tail: output.slice(-2000) }).toMatchObject({ code: 0 });
    expect(output).toMatch(/signed push webhook answered 202/);
    expect(output).toMatch(/plumbline\/gcp-production +success +5 created/);
    expect(output).toMatch(
      /plumbline\/aws-staging +failure +1 rejected \(stacks\/security\/registry-settings\.yaml:1\)/,
    );
    expect(output).toMatch(/annotation on stacks\/security\/registry-settings\.yaml:1/);
    expect(output).toMatch(/plumbline +success +1 applied, 1 unaffected/);
    expect(output).toMatch(
      /drift: ConfigMap\/monitoring\/grafana-settings data\.theme, changed by kubectl-edit → corrected/,
    );
    expect(output).toMatch(/live value again: theme: dark/);
    expect(output).toMatch(/pushed the upstream chart alerts 1\.4\.0 to oci:\/\/127\.0\.0\.1:\d+\/demo\/charts/);
    // The first push: aws-staging is a plumbline.yaml of apps, the chart among them, after what it depends on.
    const first = section(output, '1. ', '2. ');
    expect(first).toMatch(/plumbline\/aws-staging +success +8 created/);
    expect(first).toContain('| `security` | path | 1 | 2 created | ✓ healthy |');
    expect(first).toContain('| `alerts` | chart | 2 | 2 created | ✓ healthy |');
    // The values change: aws-staging's chart object is configured; gcp-production is not even rendered.
    const values = section(output, '4. ', '5. ');
    expect(values).toMatch(/"Page staging every hour"; signed push webhook answered 202/);
    expect(values).toMatch(/plumbline\/aws-staging +success +1 configured/);
    expect(values).toMatch(/plumbline +success +1 applied, 1 unaffected/);
    expect(values).not.toMatch(/plumbline\/gcp-production/);
    expect(values).toContain('| `alerts` | chart | 2 | 1 configured | ✓ healthy |');
    expect(values).toMatch(/\| `observability` \| path \| 1 \| no changes \|/);
    expect(values).toContain('| `security` | path | 1 | no changes | ✓ healthy |');
    // Live on the cluster (the demo leaves its objects until the next run): the dependency's template,
    // with values.yaml under values-aws-staging.yaml as changed.
    const env = testEnvironment();
    const routes = await kubeClients(env.kubeconfigB).core.readNamespacedConfigMap({
      name: 'alerts-routes',
      namespace: 'alerting',
    });
    expect(routes.data).toEqual({
      receiver: 'staging-oncall',
      'repeat-interval': '1h',
      'webhook-secret': 'alerting-webhook',
    });
    expect(output).toMatch(/demo stopped\.\n$/);
    expect(routes.metadata?.labels).toMatchObject({
      'app.kubernetes.io/name': 'alerts',
      'app.kubernetes.io/version': '1.4.0',
    });
    // gcp-production has no chart app.
    await expect(
      kubeClients(env.kubeconfig).core.readNamespacedConfigMap({ name: 'alerts-routes', namespace: 'alerting' }),
    ).rejects.toMatchObject({ code: 404 });
  }, 300_000);

  it('keeps running until Ctrl-C, then stops everything it started', async () => {
    const demo = startDemo([]);
    const deadline = Date.now() + 200_000;
    while (!/Press Ctrl-C/.test(demo.output()) && Date.now() < deadline) {
      if (demo.child.exitCode !== null) break;
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    expect(demo.output()).toMatch(/Press Ctrl-C/);
    const page = /status page at (http:\/\/127\.0\.0\.1:\d+)\//.exec(demo.output())?.[1];
    expect(page).toBeDefined();
    const html = await (await fetch(`${page}/`)).text();
    expect(html).toContain('id="cluster-gcp-production"');
    demo.child.kill('SIGINT');
    expect(await demo.exited).toBe(0);
    expect(demo.output()).toMatch(/demo stopped\.\n$/);
    // Nothing listens on its port any more.
    await expect(fetch(`${page}/healthz`)).rejects.toThrow();
  }, 300_000);
});
