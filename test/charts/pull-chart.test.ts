import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { ChartCache } from '../../src/charts/chart-cache.ts';
import { pullChart } from '../../src/charts/pull-chart.ts';
import {
  type ChartTestServer,
  chartFetchError,
  chartSources,
  credentialsFile,
  loopbackCertificate,
  packChart,
  repositoryIndex,
  scratch,
  sha256,
  startChartServer,
  type TlsMaterial,
} from '../helpers/chart-test-server.ts';

/** Publishes a chart on a server as a Helm repository under `/stable`. */
function publish(server: ChartTestServer, name: string, version: string, options: { digest?: string } = {}): Buffer {
  const archive = packChart({ name, version });
  server.route(`/stable/${name}-${version}.tgz`, { body: archive });
  server.route('/stable/index.yaml', {
    body: repositoryIndex([{ name, version, digest: options.digest ?? sha256(archive) }]),
  });
  return archive;
}

describe('pullChart from an https Helm repository', () => {
  let tls: TlsMaterial;
  let server: ChartTestServer;

  beforeAll(async () => {
    tls = loopbackCertificate();
    server = await startChartServer({ tls });
  });
  afterAll(() => server.close());

  it('fetches the index entry for name and exact version, verifies its digest, and stores it in the cache', async () => {
    const archive = publish(server, 'podinfo', '6.9.2');
    const cache = new ChartCache(scratch('plumbline-charts-cache-'));
    const sources = chartSources({ repositories: [{ url: `${server.url}/stable`, caFile: tls.caFile }] });

    const chart = await pullChart(
      { repository: `${server.url}/stable`, name: 'podinfo', version: '6.9.2' },
      { sources, cache },
    );

    expect(chart.archive.equals(archive)).toBe(true);
    expect(chart.digest).toBe(sha256(archive));
    expect(chart.file).toBe(join(cache.folderOf(`${server.url}/stable`), `podinfo-6.9.2-${sha256(archive)}.tgz`));
    expect(chart.fetched).toBe(true);
  });

  it('refuses an archive whose sha256 differs from the digest in the index', async () => {
    publish(server, 'tampered', '1.0.0', { digest: 'a'.repeat(64) });
    const sources = chartSources({ repositories: [{ url: `${server.url}/stable`, caFile: tls.caFile }] });

    const error = await chartFetchError(
      pullChart(
        { repository: `${server.url}/stable`, name: 'tampered', version: '1.0.0' },
        { sources, cache: new ChartCache(scratch('plumbline-charts-cache-')) },
      ),
    );

    expect(error.message).toContain(`differs from the digest ${'a'.repeat(64)}`);
    expect(error.retryable).toBe(false);
  });

  it('a cache hit makes no request at all', async () => {
    publish(server, 'cached', '2.0.0');
    const cache = new ChartCache(scratch('plumbline-charts-cache-'));
    const sources = chartSources({ repositories: [{ url: `${server.url}/stable`, caFile: tls.caFile }] });
    const reference = { repository: `${server.url}/stable`, name: 'cached', version: '2.0.0' };
    await pullChart(reference, { sources, cache });
    const before = server.requests.length;

    const again = await pullChart(reference, { sources, cache: new ChartCache(cache.cacheDir) });

    expect(again.fetched).toBe(false);
    expect(server.requests.length).toBe(before);
  });

  it('two concurrent pulls of one version download it once, in one process and across two caches on one folder', async () => {
    let release: () => void = () => undefined;
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    const archive = packChart({ name: 'shared', version: '3.1.0' });
    server.route('/stable/shared-3.1.0.tgz', { body: archive, gate });
    server.route('/stable/index.yaml', {
      body: repositoryIndex([{ name: 'shared', version: '3.1.0', digest: sha256(archive) }]),
    });
    const folder = scratch('plumbline-charts-cache-');
    const one = new ChartCache(folder, { pollMs: 20 });
    const other = new ChartCache(folder, { pollMs: 20 }); // another worker process on the machine: only the lock file is shared
    const sources = chartSources({ repositories: [{ url: `${server.url}/stable`, caFile: tls.caFile }] });
    const reference = { repository: `${server.url}/stable`, name: 'shared', version: '3.1.0' };

    const pulls = [
      pullChart(reference, { sources, cache: one }),
      pullChart(reference, { sources, cache: one }),
      pullChart(reference, { sources, cache: other }),
    ];
    while (!server.requests.includes('/stable/shared-3.1.0.tgz'))
      await new Promise((resolve) => setTimeout(resolve, 20));
    release();
    const charts = await Promise.all(pulls);

    expect(server.requests.filter((path) => path === '/stable/shared-3.1.0.tgz')).toHaveLength(1);
    expect(charts.filter((chart) => chart.fetched)).toHaveLength(1);
    expect(charts.every((chart) => chart.archive.equals(archive))).toBe(true);
  });

  it('fetches from the mirror instead of the source when the policy names one', async () => {
    const archive = publish(server, 'mirrored', '1.4.0');
    const sources = chartSources({
      repositories: [
        { url: 'https://charts.example.invalid/upstream', mirror: `${server.url}/stable`, caFile: tls.caFile },
      ],
    });
    const cache = new ChartCache(scratch('plumbline-charts-cache-'));

    const chart = await pullChart(
      { repository: 'https://charts.example.invalid/upstream', name: 'mirrored', version: '1.4.0' },
      { sources, cache },
    );

    expect(chart.archive.equals(archive)).toBe(true);
    // keyed by the source the repository names, wherever it was fetched from
    expect(chart.file.startsWith(cache.folderOf('https://charts.example.invalid/upstream'))).toBe(true);
  });

  it('refuses a loopback source the operator did not list, before any connection', async () => {
    publish(server, 'unlisted', '1.0.0');
    const before = server.requests.length;

    const error = await chartFetchError(
      pullChart(
        { repository: `${server.url}/stable`, name: 'unlisted', version: '1.0.0' },
        { sources: chartSources({ repositories: [] }), cache: new ChartCache(scratch('plumbline-charts-cache-')) },
      ),
    );

    expect(error.message).toContain('127.0.0.1, a loopback, private or link-local address');
    expect(error.retryable).toBe(false);
    expect(server.requests.length).toBe(before);
  });

  it('refuses plain http for a source the operator did not list', async () => {
    const error = await chartFetchError(
      pullChart(
        { repository: 'http://charts.example.com/stable', name: 'x', version: '1.0.0' },
        { sources: chartSources({}), cache: new ChartCache(scratch('plumbline-charts-cache-')) },
      ),
    );

    expect(error.message).toContain('only https is allowed');
  });

  it('refuses a redirect to another host', async () => {
    const elsewhere = await startChartServer({ tls });
    try {
      publish(elsewhere, 'moved', '1.0.0');
      server.route('/redirecting/index.yaml', {
        status: 302,
        headers: { location: `${elsewhere.url}/stable/index.yaml` },
      });
      const sources = chartSources({
        repositories: [
          { url: `${server.url}/redirecting`, caFile: tls.caFile },
          { url: elsewhere.url, caFile: tls.caFile },
        ],
      });

      const error = await chartFetchError(
        pullChart(
          { repository: `${server.url}/redirecting`, name: 'moved', version: '1.0.0' },
          { sources, cache: new ChartCache(scratch('plumbline-charts-cache-')) },
        ),
      );

      expect(error.message).toContain(`redirect to another host (${elsewhere.url}) refused`);
      expect(elsewhere.requests).toEqual([]);
    } finally {
      await elsewhere.close();
    }
  });

  it('follows a redirect within the same origin', async () => {
    const archive = publish(server, 'relocated', '1.0.0');
    server.route('/old/index.yaml', { status: 301, headers: { location: '/stable/index.yaml' } });
    server.route('/old/relocated-1.0.0.tgz', { status: 307, headers: { location: '/stable/relocated-1.0.0.tgz' } });
    const sources = chartSources({ repositories: [{ url: server.url, caFile: tls.caFile }] });

    const chart = await pullChart(
      { repository: `${server.url}/old`, name: 'relocated', version: '1.0.0' },
      { sources, cache: new ChartCache(scratch('plumbline-charts-cache-')) },
    );

    expect(chart.archive.equals(archive)).toBe(true);
  });

  it('refuses a server whose certificate is not trusted (no caFile)', async () => {
    publish(server, 'untrusted', '1.0.0');
    const sources = chartSources({ repositories: [{ url: `${server.url}/stable` }] });

    const error = await chartFetchError(
      pullChart(
        { repository: `${server.url}/stable`, name: 'untrusted', version: '1.0.0' },
        { sources, cache: new ChartCache(scratch('plumbline-charts-cache-')) },
      ),
    );

    expect(error.message).toMatch(/certificate/i);
    expect(error.retryable).toBe(false);
  });
});

describe('pullChart with basic-auth credentials from a file', () => {
  let tls: TlsMaterial;
  let server: ChartTestServer;
  const password = 's3cret-Chart-Passw0rd';

  beforeAll(async () => {
    tls = loopbackCertificate();
    server = await startChartServer({ tls, basicAuth: { username: 'reader', password } });
  });
  afterAll(() => server.close());

  it('sends the credentials the file holds', async () => {
    const archive = publish(server, 'private', '0.9.0');
    const credentials = credentialsFile('reader', password);
    const sources = chartSources({ repositories: [{ url: `${server.url}/stable`, caFile: tls.caFile, credentials }] });

    const chart = await pullChart(
      { repository: `${server.url}/stable`, name: 'private', version: '0.9.0' },
      { sources, cache: new ChartCache(scratch('plumbline-charts-cache-')) },
    );

    expect(chart.archive.equals(archive)).toBe(true);
  });

  it('wrong credentials: a clear error naming the URL, never the password', async () => {
    publish(server, 'private', '0.9.1');
    const wrong = 'not-the-Passw0rd-42';
    const credentials = credentialsFile('reader', wrong);
    const sources = chartSources({ repositories: [{ url: `${server.url}/stable`, caFile: tls.caFile, credentials }] });

    const error = await chartFetchError(
      pullChart(
        { repository: `${server.url}/stable`, name: 'private', version: '0.9.1' },
        { sources, cache: new ChartCache(scratch('plumbline-charts-cache-')) },
      ),
    );

    expect(error.message).toContain(`${server.url}/stable/index.yaml`);
    expect(error.message).toContain('HTTP 401');
    expect(error.message).toContain('credentials');
    expect(error.message).not.toContain(wrong);
    expect(error.message).not.toContain(Buffer.from(`reader:${wrong}`).toString('base64'));
  });

  it('a missing credentials file is named, and nothing is fetched', async () => {
    const before = server.requests.length;
    const sources = chartSources({
      repositories: [
        { url: `${server.url}/stable`, caFile: tls.caFile, credentials: '/nonexistent/plumbline/creds.json' },
      ],
    });

    const error = await chartFetchError(
      pullChart(
        { repository: `${server.url}/stable`, name: 'private', version: '0.9.0' },
        { sources, cache: new ChartCache(scratch('plumbline-charts-cache-')) },
      ),
    );

    expect(error.message).toContain('/nonexistent/plumbline/creds.json');
    expect(server.requests.length).toBe(before);
  });
});
