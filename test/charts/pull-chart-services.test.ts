import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from '@jest/globals';
import { stringify } from 'yaml';
import { chartServicesFromEnv, publishToChartRepository, pushChartToRegistry } from '../../dev/local-stack/charts.ts';
import { readChartArchive } from '../../src/charts/chart-archive.ts';
import { ChartCache } from '../../src/charts/chart-cache.ts';
import { pullChart } from '../../src/charts/pull-chart.ts';
import { resolveChartDependencies } from '../../src/charts/resolve-dependencies.ts';
import { chartFetchError, chartSources, credentialsFile, scratch } from '../helpers/chart-test-server.ts';
import { uniqueName } from '../helpers/environment.ts';

/**
 * Against the local stack's real OCI registry (distribution v3, htpasswd) and its basic-auth Helm
 * repository; charts are pushed and published with the real helm. Skipped, saying why, when the stack
 * has no chart services (an external stack without them).
 */
const configured = Boolean(process.env.PLUMBLINE_TEST_OCI_REGISTRY && process.env.PLUMBLINE_TEST_CHART_REPOSITORY_URL);
const describeServices = configured ? describe : describe.skip;
if (!configured)
  process.stderr.write('pull-chart-services: skipped: no OCI registry / chart repository in the test environment\n');

function chartFolder(name: string, version: string, dependencies?: readonly Record<string, unknown>[]): string {
  const dir = join(scratch('plumbline-charts-src-'), name);
  mkdirSync(join(dir, 'templates'), { recursive: true });
  writeFileSync(
    join(dir, 'Chart.yaml'),
    stringify({ apiVersion: 'v2', name, version, ...(dependencies ? { dependencies } : {}) }),
  );
  writeFileSync(join(dir, 'templates', 'cm.yaml'), `apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ${name}\n`);
  return dir;
}

describeServices('pullChart from the real OCI registry and Helm repository', () => {
  it('pulls a chart helm pushed to the OCI registry, with credentials from a file, and verifies the layer digest', async () => {
    const services = chartServicesFromEnv();
    const version = '1.2.3+build.7'; // a tag with `+`, which Helm pushes as `_`
    const pushed = await pushChartToRegistry(chartFolder('oci-app', version), `tests/${uniqueName('pull')}`, services);
    const sources = chartSources({
      repositories: [
        {
          url: `oci://${services.registry.host}`,
          plainHttp: true,
          credentials: credentialsFile(services.registry.username, services.registry.password),
        },
      ],
    });

    const chart = await pullChart(
      { repository: pushed.repository, name: 'oci-app', version },
      { sources, cache: new ChartCache(scratch('plumbline-charts-cache-')) },
    );

    const chartYaml = readChartArchive(chart.archive).find((file) => file.path === 'Chart.yaml');
    expect(chartYaml?.data.toString()).toContain('name: oci-app');
    expect(chart.fetched).toBe(true);
  });

  it('wrong registry credentials: the error names the registry URL and the credentials, never the password', async () => {
    const services = chartServicesFromEnv();
    const pushed = await pushChartToRegistry(
      chartFolder('oci-locked', '0.1.0'),
      `tests/${uniqueName('auth')}`,
      services,
    );
    const wrong = 'Wr0ng-registry-passw0rd';
    const sources = chartSources({
      repositories: [
        {
          url: `oci://${services.registry.host}`,
          plainHttp: true,
          credentials: credentialsFile(services.registry.username, wrong),
        },
      ],
    });

    const error = await chartFetchError(
      pullChart(
        { repository: pushed.repository, name: 'oci-locked', version: '0.1.0' },
        { sources, cache: new ChartCache(scratch('plumbline-charts-cache-')) },
      ),
    );

    expect(error.message).toContain(`http://${services.registry.host}/v2/`);
    expect(error.message).toContain('HTTP 401');
    expect(error.message).not.toContain(wrong);
  });

  it('refuses the registry on loopback when the operator did not list it, without a request', async () => {
    const services = chartServicesFromEnv();
    const requests: string[] = [];

    const error = await chartFetchError(
      pullChart(
        { repository: `oci://${services.registry.host}/tests`, name: 'anything', version: '1.0.0' },
        {
          sources: chartSources({}),
          cache: new ChartCache(scratch('plumbline-charts-cache-')),
          onRequest: (url) => requests.push(url),
        },
      ),
    );

    expect(error.message).toContain('loopback, private or link-local');
    expect(requests).toEqual([]);
  });

  it('resolves an umbrella chart whose dependency is in the OCI registry; a second resolve makes no request', async () => {
    const services = chartServicesFromEnv();
    const pushed = await pushChartToRegistry(
      chartFolder('oci-dep', '4.5.6'),
      `tests/${uniqueName('umbrella')}`,
      services,
    );
    const root = scratch('plumbline-charts-repo-');
    const umbrella = chartFolder('umbrella', '0.1.0', [
      { name: 'oci-dep', version: '4.5.6', repository: pushed.repository },
    ]);
    const requests: string[] = [];
    const context = {
      sources: chartSources({
        repositories: [
          {
            url: `oci://${services.registry.host}`,
            plainHttp: true,
            credentials: credentialsFile(services.registry.username, services.registry.password),
          },
        ],
      }),
      cache: new ChartCache(scratch('plumbline-charts-cache-')),
      onRequest: (url: string) => requests.push(url),
    };
    mkdirSync(join(root, 'charts'), { recursive: true });
    const { cpSync } = await import('node:fs');
    cpSync(umbrella, join(root, 'charts', 'umbrella'), { recursive: true });

    const first = await resolveChartDependencies({
      repositoryRoot: root,
      chartPath: 'charts/umbrella',
      scratchDir: scratch('plumbline-charts-scratch-'),
      context,
    });
    const afterFirst = requests.length;
    const second = await resolveChartDependencies({
      repositoryRoot: root,
      chartPath: 'charts/umbrella',
      scratchDir: scratch('plumbline-charts-scratch-'),
      context,
    });

    expect(first).toMatchObject({ ok: true, fetched: 1 });
    expect(afterFirst).toBeGreaterThan(0);
    expect(second).toMatchObject({ ok: true, fetched: 0 });
    expect(requests.length).toBe(afterFirst);
  });

  it('pulls from the basic-auth Helm repository helm published to', async () => {
    const services = chartServicesFromEnv();
    const name = uniqueName('repo-chart');
    const published = await publishToChartRepository(chartFolder(name, '0.4.0'), services);
    const sources = chartSources({
      repositories: [
        {
          url: services.repository.url,
          credentials: credentialsFile(services.repository.username, services.repository.password),
        },
      ],
    });

    const chart = await pullChart(
      { repository: published.repository, name, version: '0.4.0' },
      { sources, cache: new ChartCache(scratch('plumbline-charts-cache-')) },
    );

    expect(chart.digest).toBe(published.digest);
  });
});
