import type { LookupAddress } from 'node:dns';
import { readFile } from 'node:fs/promises';
import { request as httpRequest, type IncomingHttpHeaders, type IncomingMessage, type RequestOptions } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { rootCertificates } from 'node:tls';
import { AddressRefusedError, type CheckedAddress, checkHost, type ResolveHost } from './address-wall.ts';

/** How one chart fetch may reach the network: what the sources policy allows for its URL. */
export interface ChartFetchOptions {
  /** Connect to loopback/private/link-local addresses (only for a source the operator listed). */
  readonly allowPrivateAddresses: boolean;
  /** Plain http (only for a source the operator listed); otherwise https only. */
  readonly allowPlainHttp: boolean;
  /** A PEM file of extra CAs to trust (the operator's `caFile`). */
  readonly caFile?: string | undefined;
  /** Sent to the URL's own origin only, never across a redirect to another origin. */
  readonly authorization?: string | undefined;
  readonly accept?: string | undefined;
  /** Largest body accepted (default 50 MiB). */
  readonly maxBytes?: number | undefined;
  /** Deadline for the whole exchange, redirects included (default 60 s). */
  readonly timeoutMs?: number | undefined;
  /**
   * Follow a redirect to another origin (registries send blobs to a CDN): the wall is applied to the new
   * host again, https only, and no credentials go there. Only for content verified by digest afterwards.
   */
  readonly followCrossOriginRedirects?: boolean | undefined;
  /** Strings that must never appear in an error (passwords, tokens); replaced by `***`. */
  readonly secrets?: readonly string[] | undefined;
  /** Name resolution (tests inject a fake name → address); default `dns.lookup` of every address. */
  readonly resolve?: ResolveHost | undefined;
  /** Counts each request made (metrics, tests). */
  readonly onRequest?: ((url: string) => void) | undefined;
}

export interface ChartFetchResponse {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly body: Buffer;
  /** The URL finally answered (after same-origin redirects). */
  readonly url: string;
}

/** A chart could not be fetched. `retryable`: a network blip or a server error, worth another try later. */
export class ChartFetchError extends Error {
  override readonly name = 'ChartFetchError';
  constructor(
    message: string,
    readonly url: string,
    readonly retryable: boolean,
    readonly status?: number,
  ) {
    super(message);
  }
}

export const MAX_CHART_BYTES = 50 * 1024 * 1024;
const MAX_REDIRECTS = 3;
const REDIRECTS = new Set([301, 302, 303, 307, 308]);
const RETRYABLE_STATUS = new Set([408, 425, 429, 500, 502, 503, 504]);

/**
 * GETs one URL for the chart resolver behind the address wall (invariant 8): the host is resolved once,
 * every answer checked, and the connection pinned to the checked address (no second lookup a DNS
 * rebinding could answer differently). Redirects are followed only within the same origin, at most 3
 * (unless `followCrossOriginRedirects`). Returns whatever status the server answered last; the caller
 * decides what a 401 or a 404 means.
 */
export async function fetchChartFile(url: string, options: ChartFetchOptions): Promise<ChartFetchResponse> {
  const redact = redactor(options.secrets ?? []);
  const deadline = Date.now() + (options.timeoutMs ?? 60_000);
  const ca = options.caFile === undefined ? undefined : await readCa(options.caFile, url);
  let current = parseUrl(url);
  let authorization = options.authorization;
  for (let redirects = 0; ; redirects++) {
    const plainHttpAllowed = options.allowPlainHttp && sameOrigin(current, new URL(url));
    if (current.protocol !== 'https:' && !(current.protocol === 'http:' && plainHttpAllowed)) {
      throw new ChartFetchError(
        `${current.href}: only https is allowed for a chart source the operator did not list`,
        current.href,
        false,
      );
    }
    let address: CheckedAddress;
    try {
      address = await checkHost(current.hostname, options.allowPrivateAddresses, options.resolve);
    } catch (error) {
      if (error instanceof AddressRefusedError)
        throw new ChartFetchError(`${current.href}: ${error.message}`, current.href, false);
      throw new ChartFetchError(
        `${current.href}: cannot resolve ${current.hostname}: ${message(error)}`,
        current.href,
        true,
      );
    }
    options.onRequest?.(current.href);
    const response = await get(current, address, { ...options, authorization, ca, deadline }, redact);
    const location = response.headers.location;
    if (!REDIRECTS.has(response.status) || location === undefined) return response;
    const next = new URL(location, current);
    if (redirects >= MAX_REDIRECTS) {
      throw new ChartFetchError(`${redact(url)}: more than ${MAX_REDIRECTS} redirects`, redact(url), false);
    }
    if (!sameOrigin(next, current)) {
      if (!options.followCrossOriginRedirects || next.protocol !== 'https:') {
        throw new ChartFetchError(
          `${redact(current.href)}: redirect to another host (${next.origin}) refused: chart sources are fetched only from the host named`,
          redact(current.href),
          false,
        );
      }
      authorization = undefined;
    }
    current = next;
  }
}

/** A response with a 2xx status, or the error that names the URL and says whether retrying can help. */
export function expectOk(response: ChartFetchResponse, what: string): ChartFetchResponse {
  if (response.status >= 200 && response.status < 300) return response;
  const hint =
    response.status === 401 || response.status === 403
      ? ': check the credentials file the operator configured for this source'
      : response.status === 404
        ? ': not found'
        : '';
  throw new ChartFetchError(
    `${response.url}: ${what} answered HTTP ${response.status}${hint}`,
    response.url,
    RETRYABLE_STATUS.has(response.status),
    response.status,
  );
}

interface RequestContext extends ChartFetchOptions {
  readonly ca: string[] | undefined;
  readonly deadline: number;
}

function get(
  url: URL,
  address: CheckedAddress,
  context: RequestContext,
  redact: (text: string) => string,
): Promise<ChartFetchResponse> {
  const maxBytes = context.maxBytes ?? MAX_CHART_BYTES;
  const remaining = context.deadline - Date.now();
  const where = redact(url.href);
  if (remaining <= 0) return Promise.reject(new ChartFetchError(`${where}: timed out`, where, true));
  const headers: Record<string, string> = { 'user-agent': 'plumbline', accept: context.accept ?? '*/*' };
  if (context.authorization !== undefined) headers.authorization = context.authorization;
  const requestOptions: RequestOptions & { ca?: string[]; servername?: string } = {
    method: 'GET',
    protocol: url.protocol,
    hostname: url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname,
    port: url.port === '' ? undefined : Number(url.port),
    path: `${url.pathname}${url.search}`,
    headers,
    agent: false,
    timeout: Math.min(remaining, 30_000),
    lookup: pinnedLookup(address),
  };
  if (context.ca !== undefined) requestOptions.ca = context.ca;
  const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
  return new Promise((resolve, reject) => {
    const fail = (error: unknown, retryable: boolean) => {
      request.destroy();
      reject(
        error instanceof ChartFetchError
          ? error
          : new ChartFetchError(`${where}: ${redact(message(error))}`, where, retryable),
      );
    };
    const timer = setTimeout(() => fail(new ChartFetchError(`${where}: timed out`, where, true), true), remaining);
    const request = send(requestOptions, (response: IncomingMessage) => {
      const declared = Number(response.headers['content-length'] ?? 0);
      if (declared > maxBytes) {
        clearTimeout(timer);
        fail(new ChartFetchError(`${where}: larger than ${maxBytes} bytes`, where, false), false);
        return;
      }
      const chunks: Buffer[] = [];
      let size = 0;
      response.on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (size > maxBytes) {
          clearTimeout(timer);
          fail(new ChartFetchError(`${where}: larger than ${maxBytes} bytes`, where, false), false);
          return;
        }
        chunks.push(chunk);
      });
      response.on('error', (error) => {
        clearTimeout(timer);
        fail(error, true);
      });
      response.on('end', () => {
        clearTimeout(timer);
        resolve({
          status: response.statusCode ?? 0,
          headers: response.headers,
          body: Buffer.concat(chunks),
          url: where,
        });
      });
    });
    request.on('timeout', () => fail(new ChartFetchError(`${where}: timed out`, where, true), true));
    request.on('error', (error) => {
      clearTimeout(timer);
      fail(error, !isTlsError(error));
    });
    request.end();
  });
}

/** A `lookup` that answers with the address already checked, so the socket connects to exactly that. */
function pinnedLookup(address: CheckedAddress): NonNullable<RequestOptions['lookup']> {
  return ((_host: string, options: { all?: boolean }, callback: (...args: unknown[]) => void) => {
    if (options.all) callback(null, [{ address: address.address, family: address.family } satisfies LookupAddress]);
    else callback(null, address.address, address.family);
  }) as NonNullable<RequestOptions['lookup']>;
}

async function readCa(file: string, url: string): Promise<string[]> {
  try {
    return [...rootCertificates, await readFile(file, 'utf8')];
  } catch (error) {
    throw new ChartFetchError(`${url}: cannot read the caFile ${file}: ${message(error)}`, url, false);
  }
}

function parseUrl(url: string): URL {
  try {
    return new URL(url);
  } catch {
    throw new ChartFetchError(`${url}: not a URL`, url, false);
  }
}

function sameOrigin(a: URL, b: URL): boolean {
  return a.protocol === b.protocol && a.host === b.host;
}

function isTlsError(error: unknown): boolean {
  const code = (error as { code?: unknown }).code;
  return (
    typeof code === 'string' && (code.startsWith('ERR_TLS') || code.includes('CERT') || code.startsWith('ERR_SSL'))
  );
}

function message(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** Replaces every secret (and its base64 form, as sent in Basic auth) by `***`. */
export function redactor(secrets: readonly string[]): (text: string) => string {
  const forms = secrets.filter((s) => s.length > 0).flatMap((s) => [s, Buffer.from(s).toString('base64')]);
  return (text) => forms.reduce((t, s) => t.split(s).join('***'), text);
}
