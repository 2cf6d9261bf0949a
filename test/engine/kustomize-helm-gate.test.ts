import { mkdir, mkdtemp, readFile, realpath, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createKustomizeHelmGate } from '../../src/engine/kustomize-helm-gate.ts';
import { KUBECTL_KUSTOMIZE, type KustomizeHelm, runKustomize } from '../../src/engine/run-kustomize.ts';
import type { NetworkSandbox } from '../../src/engine/sandboxed-command.ts';
import { runCommand } from '../../src/support/run-command.ts';
import { packChart, repositoryIndex, startChartServer } from '../helpers/chart-test-server.ts';

/**
 * kustomize's helm is Plumbline's Helm 4 behind a gate: kustomize 5.5 (kubectl's, here) may template the
 * charts Plumbline checked, and nothing else — no pull, no flag of its own, no other chart.
 */
const helm = process.env.PLUMBLINE_TEST_HELM ?? '';
/** No wall at all: what the gate stops, it stops by itself. */
const NO_SANDBOX: NetworkSandbox = { wrapper: [], env: {} };

let root: string;
let n = 0;
beforeAll(async () => {
  if (!helm) throw new Error('PLUMBLINE_TEST_HELM is not set: run the tests through jest global setup');
  // Real paths: kustomize names chart folders by the real path of the kustomization.
  root = await realpath(await mkdtemp(join(tmpdir(), 'plumbline-helm-gate-')));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

async function writeTree(files: Record<string, string>): Promise<string> {
  const dir = join(root, `tree-${n++}`);
  for (const [path, content] of Object.entries(files)) {
    await mkdir(dirname(join(dir, path)), { recursive: true });
    await writeFile(join(dir, path), content);
  }
  return dir;
}

/** A chart folder's files, keyed under `prefix`: a ConfigMap from the release name and one value. */
function chartFiles(prefix: string, name: string, version: string): Record<string, string> {
  return {
    [`${prefix}/Chart.yaml`]: `apiVersion: v2\nname: ${name}\nversion: ${version}\n`,
    [`${prefix}/values.yaml`]: 'greeting: hello\n',
    [`${prefix}/templates/cm.yaml`]:
      'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-{{ .Chart.Name }}\ndata:\n  greeting: {{ .Values.greeting | quote }}\n  namespace: {{ .Release.Namespace | quote }}\n',
  };
}

const run = (dir: string, helmCharts: KustomizeHelm | undefined, sandbox?: NetworkSandbox) =>
  runKustomize(dir, 'c', {
    kustomize: KUBECTL_KUSTOMIZE,
    timeoutMs: 60_000,
    maxOutputBytes: 1024 * 1024,
    helm: helmCharts,
    ...(sandbox ? { sandbox } : {}),
  });

describe('kustomize with helm: the gate', () => {
  it('kustomize never fetches: a chart missing from chartHome makes kustomize ask helm to pull, the gate refuses, and no request reaches the repository — even without the network sandbox', async () => {
    const server = await startChartServer();
    try {
      const archive = packChart({ name: 'pulled', version: '1.0.0' });
      server.route('/index.yaml', { body: repositoryIndex([{ name: 'pulled', version: '1.0.0' }]) });
      server.route('/pulled-1.0.0.tgz', { body: archive });
      const dir = await writeTree({
        'c/kustomization.yaml': `helmCharts:\n  - {name: pulled, repo: "${server.url}", version: 1.0.0, releaseName: r}\n`,
      });

      const result = await run(dir, { command: helm, charts: [] }, NO_SANDBOX);

      expect(server.requests).toEqual([]);
      expect(result).toMatchObject({ ok: false, reason: 'failed' });
      expect(result.ok ? '' : result.message).toContain('Plumbline fetches charts itself');
    } finally {
      await server.close();
    }
  });

  it("renders a checked chart with Plumbline's Helm 4 (kustomize 5.5 asks for a Helm 3), kustomize's own transformers applied after", async () => {
    const dir = await writeTree({
      'c/kustomization.yaml': [
        'namePrefix: p-',
        'commonLabels: {team: a}',
        'helmCharts:',
        '  - name: app',
        '    repo: oci://registry.example/charts',
        '    version: 1.0.0',
        '    releaseName: web',
        '    namespace: apps',
        '    valuesInline: {greeting: bonjour}',
        '',
      ].join('\n'),
      ...chartFiles('c/charts/app-1.0.0/app', 'app', '1.0.0'),
    });

    const result = await run(dir, { command: helm, charts: [join(dir, 'c/charts/app-1.0.0/app')] });

    expect(result).toMatchObject({ ok: true });
    const output = result.ok ? result.output : '';
    expect(output).toContain('name: p-web-app');
    expect(output).toContain('greeting: bonjour');
    expect(output).toContain('namespace: apps');
    expect(output).toContain('team: a');
  });

  it('refuses to template a chart folder Plumbline did not check', async () => {
    const dir = await writeTree({
      'c/kustomization.yaml': 'helmCharts: [{name: app, releaseName: web}]\n',
      ...chartFiles('c/charts/app', 'app', '1.0.0'),
    });

    const result = await run(dir, { command: helm, charts: [join(dir, 'c/charts/other')] });

    expect(result).toMatchObject({ ok: false, reason: 'failed' });
    expect(result.ok ? '' : result.message).toContain('chart folder c/charts/app was not checked by Plumbline');
  });

  it('refuses a release name that helm would read as a flag: no file of the host reaches the output', async () => {
    const dir = await writeTree({
      'c/kustomization.yaml': 'helmCharts: [{name: app, releaseName: "--set-file=greeting=/etc/hostname"}]\n',
      ...chartFiles('c/charts/app', 'app', '1.0.0'),
    });

    const result = await run(dir, { command: helm, charts: [join(dir, 'c/charts/app')] });

    expect(result).toMatchObject({ ok: false, reason: 'failed' });
    expect(result.ok ? '' : result.message).toContain(
      'helm template --set-file=greeting=/etc/hostname is not a flag kustomize passes',
    );
  });

  it('leaves nothing behind: the gate, its helm home and the values kustomize wrote are removed', async () => {
    const dir = await writeTree({
      'c/kustomization.yaml': 'helmCharts: [{name: app, releaseName: web}]\n',
      ...chartFiles('c/charts/app', 'app', '1.0.0'),
    });
    const before = await gateFolders();

    const result = await run(dir, { command: helm, charts: [join(dir, 'c/charts/app')] });

    expect(result).toMatchObject({ ok: true });
    expect(await gateFolders()).toEqual(before);
  });
});

async function gateFolders(): Promise<string[]> {
  const { readdir } = await import('node:fs/promises');
  return (await readdir(tmpdir())).filter((name) => name.startsWith('plumbline-kustomize-helm-')).sort();
}

describe('kustomize with helm: what the gate lets through', () => {
  const gateRun = async (args: readonly string[], charts: readonly string[] = []) => {
    const gate = await createKustomizeHelmGate({ helm, charts });
    try {
      return await runCommand(gate.command, args, { env: gate.env, timeoutMs: 30_000 });
    } finally {
      await gate.remove();
    }
  };

  it("answers kustomize 5.5's version question (`version -c --short`, which Helm 4 rejects) with a major version of 3", async () => {
    const result = await gateRun(['version', '-c', '--short']);
    expect(result.code).toBe(0);
    expect(result.stdout.toString()).toMatch(/^v3\.\d+\.\d+/);
  });

  it('passes `template` of a listed chart on to the real helm, with the flags kustomize uses', async () => {
    const dir = await writeTree(chartFiles('chart', 'listed', '0.1.0'));
    const values = join(dir, 'values-override.yaml');
    await writeFile(values, 'greeting: hallo\n');

    const result = await gateRun(
      ['template', 'rel', join(dir, 'chart'), '--namespace', 'ns', '-f', values, '--include-crds', '--skip-tests'],
      [join(dir, 'chart')],
    );

    expect(result.stderr).toBe('');
    expect(result.stdout.toString()).toContain('name: rel-listed');
    expect(result.stdout.toString()).toContain('greeting: "hallo"');
  });

  it('refuses pull and every other subcommand', async () => {
    for (const args of [
      ['pull', '--repo', 'https://charts.example', 'x'],
      ['install', 'x', '/tmp'],
      ['plugin', 'list'],
      [],
    ]) {
      const result = await gateRun(args);
      expect([args.join(' '), result.code]).toEqual([args.join(' '), 1]);
      expect(result.stderr).toMatch(/^plumbline: /);
    }
  });

  it('refuses what kustomize never passes: --set-file, --repo, --post-renderer, a values URL, a second chart, a name after the chart', async () => {
    const dir = await writeTree({ ...chartFiles('a', 'a', '0.1.0'), ...chartFiles('b', 'b', '0.1.0') });
    const [a, b] = [join(dir, 'a'), join(dir, 'b')];
    const cases: [string[], string][] = [
      [['template', 'r', a, '--set-file', `x=${join(dir, 'a/values.yaml')}`], 'not a flag kustomize passes'],
      [['template', 'r', a, '--repo=https://charts.example'], 'not a flag kustomize passes'],
      [['template', 'r', a, '--post-renderer', '/bin/sh'], 'not a flag kustomize passes'],
      [['template', 'r', a, '-f', 'https://attacker.example/values.yaml'], '-f takes a local file'],
      [['template', 'r', a, b], 'exactly one chart folder'],
      [['template', a, 'r'], 'one release name, before the chart'],
      [['template', 'r', join(dir, 'unlisted')], 'was not checked by Plumbline'],
      [['template', 'Bad_Name', a], 'not a Helm release name'],
      [['template', 'r'], 'exactly one chart folder'],
    ];
    for (const [args, message] of cases) {
      const result = await gateRun(args, [a, b]);
      expect([args.join(' '), result.code, result.stderr]).toEqual([
        args.join(' '),
        1,
        expect.stringContaining(message),
      ]);
      expect(result.stdout.toString()).toBe('');
    }
    // The values file named by --set-file was never read into any output.
    expect(await readFile(join(dir, 'a/values.yaml'), 'utf8')).toBe('greeting: hello\n');
  });

  it('refuses to list a chart folder that is not an absolute path on one line', async () => {
    await expect(createKustomizeHelmGate({ helm, charts: ['relative/chart'] })).rejects.toThrow('not an absolute');
    await expect(createKustomizeHelmGate({ helm, charts: ['/a\n/b'] })).rejects.toThrow('not an absolute');
  });
});
