import { createHash } from 'node:crypto';
import { parse } from 'yaml';
import { z } from 'zod';
import { basicAuthorization, type ChartCredentials } from './chart-credentials.ts';
import { ChartFetchError, type ChartFetchOptions, expectOk, fetchChartFile } from './fetch-chart-file.ts';

/** A packaged chart as fetched: its bytes and their sha256 (hex), verified against what the source published. */
export interface PulledChart {
  readonly archive: Buffer;
  readonly digest: string;
}

export interface ChartPull {
  /** Where to fetch (the mirror's URL when the policy has one). */
  readonly fetchUrl: string;
  readonly name: string;
  readonly version: string;
}

const indexSchema = z.object({
  entries: z.record(
    z.string(),
    z
      .array(
        z.looseObject({
          version: z.string(),
          urls: z.array(z.string()).optional(),
          digest: z.string().optional(),
        }),
      )
      .nullable(),
  ),
});

/**
 * A chart from a Helm repository (that is all one is: `index.yaml` plus `.tgz` files): the index entry
 * for name and exact version, its first URL (relative to the repository URL), the bytes checked against
 * the entry's `digest` when the index gives one. Credentials go to the repository's own origin only
 * (as Helm does without `--pass-credentials`).
 */
export async function pullFromHttpsRepository(
  pull: ChartPull,
  options: ChartFetchOptions,
  credentials: ChartCredentials | undefined,
): Promise<PulledChart> {
  const base = `${pull.fetchUrl}/`;
  const indexUrl = new URL('index.yaml', base).href;
  const authorization = credentials === undefined ? undefined : basicAuthorization(credentials);
  const index = expectOk(
    await fetchChartFile(indexUrl, { ...options, authorization, accept: 'application/yaml, */*' }),
    'the repository index',
  );
  const entry = findEntry(index.body, indexUrl, pull);
  const [first] = entry.urls ?? [];
  if (first === undefined) {
    throw new ChartFetchError(`${indexUrl}: ${pull.name} ${pull.version} has no download URL`, indexUrl, false);
  }
  const chartUrl = new URL(first, base);
  const expected = entry.digest?.replace(/^sha256:/, '').toLowerCase();
  const sameOrigin = chartUrl.origin === new URL(indexUrl).origin;
  const response = expectOk(
    await fetchChartFile(chartUrl.href, {
      ...options,
      authorization: sameOrigin ? authorization : undefined,
      allowPrivateAddresses: sameOrigin && options.allowPrivateAddresses,
      allowPlainHttp: sameOrigin && options.allowPlainHttp,
      followCrossOriginRedirects: expected !== undefined,
      accept: 'application/gzip, application/octet-stream, */*',
    }),
    `${pull.name} ${pull.version}`,
  );
  const digest = createHash('sha256').update(response.body).digest('hex');
  if (expected !== undefined && digest !== expected) {
    throw new ChartFetchError(
      `${chartUrl.href}: sha256 ${digest} differs from the digest ${expected} in ${indexUrl}: refused`,
      chartUrl.href,
      false,
    );
  }
  return { archive: response.body, digest };
}

function findEntry(body: Buffer, indexUrl: string, pull: ChartPull) {
  let document: unknown;
  try {
    document = parse(body.toString('utf8'), { maxAliasCount: 1000 });
  } catch (error) {
    throw new ChartFetchError(`${indexUrl}: not a YAML repository index: ${(error as Error).message}`, indexUrl, false);
  }
  const parsed = indexSchema.safeParse(document);
  if (!parsed.success) throw new ChartFetchError(`${indexUrl}: not a Helm repository index`, indexUrl, false);
  const versions = parsed.data.entries[pull.name] ?? [];
  const wanted = pull.version.replace(/^v/, '');
  const entry =
    versions.find((v) => v.version === pull.version) ?? versions.find((v) => v.version.replace(/^v/, '') === wanted);
  if (entry === undefined) {
    throw new ChartFetchError(`${indexUrl}: no chart ${pull.name} version ${pull.version}`, indexUrl, false);
  }
  return entry;
}
