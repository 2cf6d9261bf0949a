import { cpSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { stringify } from 'yaml';
import { ChartCache } from '../../src/charts/chart-cache.ts';
import type { ChartFetchContext } from '../../src/charts/pull-chart.ts';
import { type ResolvedChart, resolveChartDependencies } from '../../src/charts/resolve-dependencies.ts';
import { runCommand } from '../../src/support/run-command.ts';
import {
  type ChartTestServer,
  chartSources,
  loopbackCertificate,
  packChart,
  repositoryIndex,
  scratch,
  sha256,
  startChartServer,
  type TlsMaterial,
} from '../helpers/chart-test-server.ts';

const FIXTURES = join(import.meta.dirname, '..', 'fixtures', 'charts-deps');

/** A repository checkout with files at the given paths. */
function repository(files: Readonly<Record<string, string>>): string {
  const root = scratch('plumbline-charts-repo-');
  for (const [path, text] of Object.entries(files)) {
    mkdirSync(join(root, path, '..'), { recursive: true });
    writeFileSync(join(root, path), text);
  }
  return root;
}

const chartYaml = (name: string, dependencies: readonly Record<string, unknown>[]) =>
  stringify({ apiVersion: 'v2', name, version: '0.1.0', dependencies });

function expectOk(result: ResolvedChart): string {
  if (!result.ok) throw new Error(`expected a resolved chart, got: ${JSON.stringify(result.problems)}`);
  return result.chartDir;
}

describe('resolveChartDependencies', () => {
  let tls: TlsMaterial;
  let server: ChartTestServer;
  let context: ChartFetchContext;

  beforeAll(async () => {
    tls = loopbackCertificate();
    server = await startChartServer({ tls });
    const charts = [
      { name: 'lib-a', version: '1.2.0' },
      { name: 'child', version: '2.0.0' },
      {
        name: 'parent',
        version: '1.0.0',
        dependencies: [{ name: 'child', version: '2.0.0', repository: `${server.url}/stable` }],
      },
    ];
    const index = [];
    for (const chart of charts) {
      const archive = packChart(chart);
      server.route(`/stable/${chart.name}-${chart.version}.tgz`, { body: archive });
      index.push({ name: chart.name, version: chart.version, digest: sha256(archive) });
    }
    server.route('/stable/index.yaml', { body: repositoryIndex(index) });
    context = {
      sources: chartSources({
        repositories: [
          // the fixture's Chart.lock names this source (Helm wrote it); the mirror is the test server
          { url: 'http://127.0.0.1:8879/stable', mirror: `${server.url}/stable`, caFile: tls.caFile },
          { url: server.url, caFile: tls.caFile },
        ],
      }),
      cache: new ChartCache(scratch('plumbline-charts-cache-')),
    };
  });
  afterAll(() => server.close());

  it('refuses a version range without Chart.lock, naming Chart.yaml and the line, before any request', async () => {
    const root = repository({
      'charts/app/Chart.yaml': chartYaml('app', [
        { name: 'lib-a', version: '~1.2.0', repository: `${server.url}/stable` },
      ]),
    });
    const before = server.requests.length;

    const result = await resolveChartDependencies({
      repositoryRoot: root,
      chartPath: 'charts/app',
      scratchDir: scratch('plumbline-charts-scratch-'),
      context,
    });

    expect(result).toEqual({
      ok: false,
      problems: [
        {
          file: 'charts/app/Chart.yaml',
          line: 6,
          message: 'dependency lib-a version "~1.2.0" is a range: pin the version or commit Chart.lock',
          retryable: false,
        },
      ],
    });
    expect(server.requests.length).toBe(before);
  });

  it('accepts a range pinned by a Chart.lock Helm wrote, checks its digest, and the copy renders with helm template', async () => {
    const root = scratch('plumbline-charts-repo-');
    cpSync(join(FIXTURES, 'ranged'), join(root, 'charts', 'ranged'), { recursive: true });
    cpSync(join(FIXTURES, 'local-lib'), join(root, 'charts', 'local-lib'), { recursive: true });

    const chartDir = expectOk(
      await resolveChartDependencies({
        repositoryRoot: root,
        chartPath: 'charts/ranged',
        scratchDir: scratch('plumbline-charts-scratch-'),
        context,
      }),
    );

    // the lock's version of the range, from the mirror; the file:// chart copied under its own name
    expect(readFileSync(join(chartDir, 'charts', 'lib-a-1.2.0', 'Chart.yaml'), 'utf8')).toContain('version: 1.2.0');
    expect(existsSync(join(chartDir, 'charts', 'local-lib', 'templates', 'cm.yaml'))).toBe(true);
    // condition, tags and the alias are Helm's business: it renders lib-a (no condition value set) and local-lib under its alias
    const helm = process.env.PLUMBLINE_TEST_HELM;
    if (!helm) throw new Error('PLUMBLINE_TEST_HELM is not set: run through jest global setup');
    const rendered = await runCommand(helm, ['template', 'release', chartDir], { timeoutMs: 60_000 });
    expect(rendered.code).toBe(0); // stderr has Helm's import-values warnings: the fixture's tables are not there
    expect(rendered.stdout.toString()).toContain('name: lib-a');
    expect(rendered.stdout.toString()).toContain('name: local-lib');
    expect(rendered.stdout.toString()).toContain('# Source: ranged/charts/local/templates/cm.yaml');
  });

  it('refuses a Chart.lock that no longer matches Chart.yaml', async () => {
    const root = scratch('plumbline-charts-repo-');
    cpSync(join(FIXTURES, 'ranged'), join(root, 'charts', 'ranged'), { recursive: true });
    cpSync(join(FIXTURES, 'local-lib'), join(root, 'charts', 'local-lib'), { recursive: true });
    const file = join(root, 'charts', 'ranged', 'Chart.yaml');
    writeFileSync(file, readFileSync(file, 'utf8').replace('"^1.0.0"', '"^1.1.0"'));

    const result = await resolveChartDependencies({
      repositoryRoot: root,
      chartPath: 'charts/ranged',
      scratchDir: scratch('plumbline-charts-scratch-'),
      context,
    });

    expect(result.ok).toBe(false);
    expect(!result.ok && result.problems[0]?.file).toBe('charts/ranged/Chart.lock');
    expect(!result.ok && result.problems[0]?.message).toContain('Chart.lock is out of sync with Chart.yaml');
  });

  it('materializes a file:// dependency and its own dependencies', async () => {
    const root = repository({
      'charts/app/Chart.yaml': chartYaml('app', [
        { name: 'common', version: '0.2.0', repository: 'file://../../libs/common' },
      ]),
      'libs/common/Chart.yaml': chartYaml('common', [
        { name: 'child', version: '2.0.0', repository: `${server.url}/stable` },
      ]),
      'libs/common/templates/_helpers.tpl': '{{- define "common.name" -}}common{{- end -}}\n',
    });

    const chartDir = expectOk(
      await resolveChartDependencies({
        repositoryRoot: root,
        chartPath: 'charts/app',
        scratchDir: scratch('plumbline-charts-scratch-'),
        context,
      }),
    );

    expect(existsSync(join(chartDir, 'charts', 'common', 'templates', '_helpers.tpl'))).toBe(true);
    expect(existsSync(join(chartDir, 'charts', 'common', 'charts', 'child-2.0.0', 'Chart.yaml'))).toBe(true);
  });

  it('refuses a file:// dependency that leaves the repository', async () => {
    const outside = scratch('plumbline-charts-outside-');
    writeFileSync(join(outside, 'Chart.yaml'), chartYaml('secret-chart', []));
    const root = repository({
      'charts/app/Chart.yaml': chartYaml('app', [
        { name: 'secret-chart', version: '0.1.0', repository: `file://${outside}` },
      ]),
    });

    const result = await resolveChartDependencies({
      repositoryRoot: root,
      chartPath: 'charts/app',
      scratchDir: scratch('plumbline-charts-scratch-'),
      context,
    });

    expect(result.ok).toBe(false);
    expect(!result.ok && result.problems).toEqual([
      {
        file: 'charts/app/Chart.yaml',
        line: 7,
        message: `dependency secret-chart: file://${outside} leaves the repository (or does not exist)`,
        retryable: false,
      },
    ]);
  });

  it('completes a fetched chart whose own dependency is not packaged with it (nested)', async () => {
    const root = repository({
      'charts/app/Chart.yaml': chartYaml('app', [
        {
          name: 'parent',
          version: '1.0.0',
          repository: `${server.url}/stable`,
          alias: 'front',
          condition: 'front.enabled',
          tags: ['web'],
        },
      ]),
    });

    const chartDir = expectOk(
      await resolveChartDependencies({
        repositoryRoot: root,
        chartPath: 'charts/app',
        scratchDir: scratch('plumbline-charts-scratch-'),
        context,
      }),
    );

    expect(
      existsSync(join(chartDir, 'charts', 'parent-1.0.0', 'charts', 'child-2.0.0', 'templates', 'configmap.yaml')),
    ).toBe(true);
  });

  it('a source that does not answer is a retryable problem naming Chart.yaml and the line', async () => {
    const closed = await startChartServer({ tls });
    const url = closed.url;
    await closed.close();
    const root = repository({
      'charts/app/Chart.yaml': chartYaml('app', [{ name: 'gone', version: '1.0.0', repository: `${url}/stable` }]),
    });
    const unreachable = { ...context, sources: chartSources({ repositories: [{ url, caFile: tls.caFile }] }) };

    const result = await resolveChartDependencies({
      repositoryRoot: root,
      chartPath: 'charts/app',
      scratchDir: scratch('plumbline-charts-scratch-'),
      context: unreachable,
    });

    expect(result.ok).toBe(false);
    const [problem] = result.ok ? [] : result.problems;
    expect(problem?.file).toBe('charts/app/Chart.yaml');
    expect(problem?.line).toBe(6); // the version line: the version that could not be fetched
    expect(problem?.message).toContain(`dependency gone 1.0.0: ${url}/stable/index.yaml`);
    expect(problem?.retryable).toBe(true);
  });
});
