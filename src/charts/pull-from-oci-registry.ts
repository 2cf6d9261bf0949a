import { createHash } from 'node:crypto';
import { z } from 'zod';
import { basicAuthorization, type ChartCredentials } from './chart-credentials.ts';
import {
  ChartFetchError,
  type ChartFetchOptions,
  type ChartFetchResponse,
  expectOk,
  fetchChartFile,
} from './fetch-chart-file.ts';
import type { ChartPull, PulledChart } from './pull-from-https-repository.ts';

const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
/** The chart layer's media types: Helm's own, and the one charts pushed by older tools carry. */
const CHART_LAYERS = ['application/vnd.cncf.helm.chart.content.v1.tar+gzip', 'application/tar+gzip'];

const manifestSchema = z.looseObject({
  layers: z.array(z.looseObject({ mediaType: z.string(), digest: z.string(), size: z.number().optional() })),
});
const tokenSchema = z.looseObject({ token: z.string().optional(), access_token: z.string().optional() });

export interface OciPullOptions extends ChartFetchOptions {
  /** Talk to the registry over plain http (a listed source with `plainHttp: true`). */
  readonly plainHttp: boolean;
}

/**
 * A Helm chart from an OCI registry, pulled with the distribution API over the chart fetcher (so the
 * address wall holds): the manifest of tag `<version>` (`+` written `_`, as Helm pushes it), its chart
 * layer, the blob checked against the layer's sha256 digest. A 401 is answered the way registries ask:
 * `Bearer realm=…,service=…,scope=…` → a token from the realm (with the credentials, when configured),
 * or `Basic` → the credentials directly.
 */
export async function pullFromOciRegistry(
  pull: ChartPull,
  options: OciPullOptions,
  credentials: ChartCredentials | undefined,
): Promise<PulledChart> {
  const { origin, repository } = registryOf(pull, options.plainHttp);
  const tag = pull.version.replaceAll('+', '_');
  const manifestUrl = `${origin}/v2/${repository}/manifests/${encodeURIComponent(tag)}`;
  const session = new RegistrySession(options, credentials, repository);
  const manifestResponse = expectOk(
    await session.get(manifestUrl, OCI_MANIFEST, false),
    `the manifest of ${pull.name} ${pull.version}`,
  );
  const manifestDigest = manifestResponse.headers['docker-content-digest'];
  if (typeof manifestDigest === 'string' && manifestDigest.startsWith('sha256:')) {
    const actual = `sha256:${createHash('sha256').update(manifestResponse.body).digest('hex')}`;
    if (actual !== manifestDigest) {
      throw new ChartFetchError(
        `${manifestUrl}: the manifest does not match its digest ${manifestDigest}: refused`,
        manifestUrl,
        false,
      );
    }
  }
  const manifest = parseManifest(manifestResponse.body, manifestUrl);
  const layer = manifest.layers.find((l) => CHART_LAYERS.includes(l.mediaType));
  if (layer === undefined) {
    throw new ChartFetchError(
      `${manifestUrl}: not a Helm chart (no layer of type ${CHART_LAYERS[0]})`,
      manifestUrl,
      false,
    );
  }
  const match = /^sha256:([0-9a-f]{64})$/.exec(layer.digest);
  if (!match?.[1])
    throw new ChartFetchError(`${manifestUrl}: the chart layer has no sha256 digest`, manifestUrl, false);
  const expected = match[1];
  const blobUrl = `${origin}/v2/${repository}/blobs/${layer.digest}`;
  const blob = expectOk(
    await session.get(blobUrl, 'application/octet-stream, */*', true),
    `the chart blob of ${pull.name} ${pull.version}`,
  );
  const digest = createHash('sha256').update(blob.body).digest('hex');
  if (digest !== expected) {
    throw new ChartFetchError(
      `${blobUrl}: the blob's sha256 ${digest} differs from the manifest's ${expected}: refused`,
      blobUrl,
      false,
    );
  }
  return { archive: blob.body, digest };
}

/** `oci://host[:port]/path` + name → the registry's origin and the repository `path/name`. */
export function registryOf(pull: ChartPull, plainHttp: boolean): { origin: string; repository: string } {
  const rest = pull.fetchUrl.replace(/^oci:\/\//, '');
  const slash = rest.indexOf('/');
  const host = slash === -1 ? rest : rest.slice(0, slash);
  const path = slash === -1 ? '' : rest.slice(slash + 1).replace(/\/+$/, '');
  if (host === '' || !/^[a-z0-9]+([._/-][a-z0-9]+)*$/.test(path === '' ? pull.name : `${path}/${pull.name}`)) {
    throw new ChartFetchError(`${pull.fetchUrl}: not an OCI repository reference`, pull.fetchUrl, false);
  }
  return {
    origin: `${plainHttp ? 'http' : 'https'}://${host}`,
    repository: path === '' ? pull.name : `${path}/${pull.name}`,
  };
}

/** One pull's conversation with a registry: remembers the authorization a 401 asked for. */
class RegistrySession {
  private authorization: string | undefined;

  constructor(
    private readonly options: OciPullOptions,
    private readonly credentials: ChartCredentials | undefined,
    private readonly repository: string,
  ) {}

  async get(url: string, accept: string, blob: boolean): Promise<ChartFetchResponse> {
    const request = (authorization: string | undefined) =>
      fetchChartFile(url, {
        ...this.options,
        accept,
        authorization,
        followCrossOriginRedirects: blob,
        maxBytes: blob ? this.options.maxBytes : 4 * 1024 * 1024,
      });
    const response = await request(this.authorization);
    if (response.status !== 401) return response;
    const challenge = parseChallenge(response.headers['www-authenticate']);
    if (challenge?.scheme === 'basic') {
      if (this.credentials === undefined) return response;
      this.authorization = basicAuthorization(this.credentials);
    } else if (challenge?.scheme === 'bearer') {
      this.authorization = `Bearer ${await this.token(challenge.params, url)}`;
    } else return response;
    return request(this.authorization);
  }

  private async token(params: Readonly<Record<string, string>>, url: string): Promise<string> {
    const realm = params.realm;
    if (realm === undefined)
      throw new ChartFetchError(`${url}: the registry's Bearer challenge names no realm`, url, false);
    const tokenUrl = new URL(realm);
    if (params.service !== undefined) tokenUrl.searchParams.set('service', params.service);
    tokenUrl.searchParams.set('scope', params.scope ?? `repository:${this.repository}:pull`);
    const response = expectOk(
      await fetchChartFile(tokenUrl.href, {
        ...this.options,
        accept: 'application/json',
        authorization: this.credentials === undefined ? undefined : basicAuthorization(this.credentials),
        maxBytes: 1024 * 1024,
        allowPlainHttp: this.options.plainHttp && new URL(url).host === tokenUrl.host,
      }),
      'the registry token service',
    );
    let body: unknown;
    try {
      body = JSON.parse(response.body.toString('utf8'));
    } catch {
      body = undefined;
    }
    const parsed = tokenSchema.safeParse(body);
    const token = parsed.success ? (parsed.data.token ?? parsed.data.access_token) : undefined;
    if (token === undefined || token === '') {
      throw new ChartFetchError(
        `${tokenUrl.origin}${tokenUrl.pathname}: the token service answered no token`,
        tokenUrl.href,
        false,
      );
    }
    return token;
  }
}

/** `Bearer realm="…",service="…",scope="…"` or `Basic realm="…"`. */
export function parseChallenge(
  header: string | undefined,
): { scheme: string; params: Record<string, string> } | undefined {
  if (header === undefined) return undefined;
  const match = /^\s*(\w+)\s*(.*)$/s.exec(header);
  if (!match?.[1]) return undefined;
  const params: Record<string, string> = {};
  for (const param of (match[2] ?? '').matchAll(/(\w+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]*))/g)) {
    if (param[1]) params[param[1].toLowerCase()] = (param[2] ?? param[3] ?? '').replace(/\\(.)/g, '$1');
  }
  return { scheme: match[1].toLowerCase(), params };
}

function parseManifest(body: Buffer, url: string) {
  let value: unknown;
  try {
    value = JSON.parse(body.toString('utf8'));
  } catch {
    throw new ChartFetchError(`${url}: the manifest is not JSON`, url, false);
  }
  const parsed = manifestSchema.safeParse(value);
  if (!parsed.success) throw new ChartFetchError(`${url}: not an OCI image manifest`, url, false);
  return parsed.data;
}
