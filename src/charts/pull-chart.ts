import type { ResolveHost } from './address-wall.ts';
import type { CachedChart, ChartCache } from './chart-cache.ts';
import { type ChartCredentials, ChartCredentialsError, readChartCredentials } from './chart-credentials.ts';
import { type ChartSources, matchChartSource } from './chart-sources.ts';
import { ChartFetchError, type ChartFetchOptions } from './fetch-chart-file.ts';
import { pullFromHttpsRepository } from './pull-from-https-repository.ts';
import { pullFromOciRegistry } from './pull-from-oci-registry.ts';

/** A remote chart by repository URL (`oci://…` or `https://…`), name and exact version. */
export interface ChartReference {
  readonly repository: string;
  readonly name: string;
  readonly version: string;
}

/** Everything a chart fetch needs from the process: the operator's policy and the machine's cache. */
export interface ChartFetchContext {
  readonly sources: ChartSources;
  readonly cache: ChartCache;
  /** Name resolution for the address wall (tests); default `dns.lookup`. */
  readonly resolve?: ResolveHost | undefined;
  /** Called for every HTTP request made (metrics; tests count them). */
  readonly onRequest?: ((url: string) => void) | undefined;
}

/**
 * One remote chart, from the cache or fetched once under the sources policy: the first listed prefix
 * decides the mirror, the credentials (read from their file now, redacted from every error) and the CA;
 * unlisted sources are https only and never on a private address.
 */
export async function pullChart(reference: ChartReference, context: ChartFetchContext): Promise<CachedChart> {
  const match = matchChartSource(context.sources, reference.repository);
  if (/^[a-z]+:\/\/[^/]*@/i.test(match.sourceUrl)) {
    throw new ChartFetchError(
      `${match.sourceUrl.replace(/\/\/[^/]*@/, '//***@')}: a chart repository URL must not carry credentials: the operator configures them`,
      match.sourceUrl.replace(/\/\/[^/]*@/, '//***@'),
      false,
    );
  }
  const oci = match.fetchUrl.startsWith('oci://');
  if (!oci && !/^https?:\/\//.test(match.fetchUrl)) {
    throw new ChartFetchError(`${match.sourceUrl}: not an oci:// or https:// chart repository`, match.sourceUrl, false);
  }
  const key = { sourceUrl: match.sourceUrl, name: reference.name, version: reference.version };
  return context.cache.get(key, async () => {
    const credentials =
      match.source?.credentials === undefined
        ? undefined
        : await loadCredentials(match.source.credentials, match.fetchUrl);
    const options: ChartFetchOptions = {
      allowPrivateAddresses: match.allowPrivateAddresses,
      allowPlainHttp: match.allowPlainHttp,
      caFile: match.source?.caFile,
      secrets:
        credentials === undefined ? [] : [credentials.password, `${credentials.username}:${credentials.password}`],
      resolve: context.resolve,
      onRequest: context.onRequest,
    };
    const pull = { fetchUrl: match.fetchUrl, name: reference.name, version: reference.version };
    return oci
      ? pullFromOciRegistry(pull, { ...options, plainHttp: match.source?.plainHttp ?? false }, credentials)
      : pullFromHttpsRepository(pull, options, credentials);
  });
}

async function loadCredentials(file: string, url: string): Promise<ChartCredentials> {
  try {
    return await readChartCredentials(file);
  } catch (error) {
    if (error instanceof ChartCredentialsError) throw new ChartFetchError(`${url}: ${error.message}`, url, false);
    throw error;
  }
}
