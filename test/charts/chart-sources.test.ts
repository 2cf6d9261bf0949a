import { describe, expect, it } from '@jest/globals';
import { matchChartSource, parseChartSources } from '../../src/charts/chart-sources.ts';

describe('parseChartSources', () => {
  it('reads repositories with mirrors, credentials and CA files; private addresses default to refused', () => {
    const parsed = parseChartSources({
      repositories: [
        {
          url: 'oci://ghcr.io/external-secrets/charts/',
          mirror: 'oci://registry.internal:5000/ghcr/external-secrets/charts',
          credentials: '/etc/plumbline/charts/ghcr.json',
          caFile: '/etc/ca.pem',
        },
      ],
    });

    expect(parsed).toEqual({
      ok: true,
      sources: {
        repositories: [
          {
            url: 'oci://ghcr.io/external-secrets/charts',
            mirror: 'oci://registry.internal:5000/ghcr/external-secrets/charts',
            credentials: '/etc/plumbline/charts/ghcr.json',
            caFile: '/etc/ca.pem',
            plainHttp: false,
          },
        ],
        allowPrivateAddresses: false,
      },
    });
  });

  it('names the field of every problem', () => {
    const parsed = parseChartSources({
      repositories: [{ url: 'ftp://x', credentials: 'relative.json' }, { url: 'https://u:p@host/x' }],
      extra: 1,
    });

    expect(parsed.ok).toBe(false);
    const problems = parsed.ok ? [] : parsed.problems;
    expect(problems).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^charts\.repositories\[0\]\.url: /),
        'charts.repositories[0].credentials: must be an absolute file path',
        'charts.repositories[1].url: must not carry credentials: use the credentials file',
        expect.stringMatching(/^charts: .*extra/),
      ]),
    );
  });

  it('no charts: section is the default policy', () => {
    expect(parseChartSources(undefined)).toEqual({
      ok: true,
      sources: { repositories: [], allowPrivateAddresses: false },
    });
  });
});

describe('matchChartSource', () => {
  const parsed = parseChartSources({
    repositories: [
      { url: 'oci://ghcr.io/org/charts', mirror: 'oci://mirror.internal/ghcr/org/charts' },
      { url: 'oci://ghcr.io', credentials: '/etc/ghcr.json' },
    ],
  });
  if (!parsed.ok) throw new Error('fixture policy is invalid');

  it('the first prefix that matches at a path boundary wins, and its mirror replaces the prefix', () => {
    const match = matchChartSource(parsed.sources, 'oci://ghcr.io/org/charts/sub');

    expect(match.fetchUrl).toBe('oci://mirror.internal/ghcr/org/charts/sub');
    expect(match.sourceUrl).toBe('oci://ghcr.io/org/charts/sub');
    expect(match.allowPrivateAddresses).toBe(true);
  });

  it('a longer name sharing the prefix is not a match of it', () => {
    const match = matchChartSource(parsed.sources, 'oci://ghcr.io/org/chartsx');

    expect(match.source?.url).toBe('oci://ghcr.io');
    expect(match.fetchUrl).toBe('oci://ghcr.io/org/chartsx');
  });

  it('an unlisted source: fetched as named, https only, no private addresses', () => {
    const match = matchChartSource(parsed.sources, 'https://charts.example.com/');

    expect(match).toEqual({
      sourceUrl: 'https://charts.example.com',
      fetchUrl: 'https://charts.example.com',
      source: undefined,
      allowPrivateAddresses: false,
      allowPlainHttp: false,
    });
  });
});
