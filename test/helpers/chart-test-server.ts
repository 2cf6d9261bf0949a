import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer as createHttpServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { stringify } from 'yaml';
import { type ChartSources, parseChartSources } from '../../src/charts/chart-sources.ts';
import { ChartFetchError } from '../../src/charts/fetch-chart-file.ts';

/** A packaged chart as `helm package` lays it out: `<name>/Chart.yaml`, `<name>/templates/…`, gzipped tar. */
export function packChart(
  chart: { name: string; version: string; dependencies?: readonly Record<string, unknown>[] },
  files: Readonly<Record<string, string | Buffer>> = {},
): Buffer {
  const chartYaml = stringify({
    apiVersion: 'v2',
    name: chart.name,
    version: chart.version,
    ...(chart.dependencies ? { dependencies: chart.dependencies } : {}),
  });
  const entries: [string, Buffer][] = [
    [`${chart.name}/Chart.yaml`, Buffer.from(chartYaml)],
    [
      `${chart.name}/templates/configmap.yaml`,
      Buffer.from(
        `apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ${chart.name}\ndata:\n  version: "${chart.version}"\n`,
      ),
    ],
    ...Object.entries(files).map(([path, data]): [string, Buffer] => [`${chart.name}/${path}`, Buffer.from(data)]),
  ];
  return gzipSync(tar(entries));
}

/** A minimal ustar writer: regular files only, names up to 100 bytes. */
export function tar(entries: readonly (readonly [string, Buffer])[]): Buffer {
  const blocks: Buffer[] = [];
  for (const [name, data] of entries) {
    const header = Buffer.alloc(512);
    header.write(name, 0, 100, 'utf8');
    header.write('0000644\0', 100);
    header.write('0000000\0', 108);
    header.write('0000000\0', 116);
    header.write(`${data.length.toString(8).padStart(11, '0')}\0`, 124);
    header.write(
      `${Math.floor(Date.now() / 1000)
        .toString(8)
        .padStart(11, '0')}\0`,
      136,
    );
    header.write('        ', 148);
    header.write('0', 156);
    header.write('ustar\0', 257);
    header.write('00', 263);
    let sum = 0;
    for (const byte of header) sum += byte;
    header.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148);
    blocks.push(header, data, Buffer.alloc((512 - (data.length % 512)) % 512));
  }
  blocks.push(Buffer.alloc(1024));
  return Buffer.concat(blocks);
}

export interface Route {
  readonly status?: number;
  readonly body?: string | Buffer;
  readonly headers?: Readonly<Record<string, string>>;
  /** Answer only after this promise settles (to hold concurrent fetchers in flight). */
  readonly gate?: Promise<unknown>;
}

export interface ChartTestServer {
  /** `https://127.0.0.1:<port>` (or http). */
  readonly url: string;
  /** Every request path received, in order. */
  readonly requests: string[];
  route(path: string, route: Route): void;
  close(): Promise<void>;
}

export interface TlsMaterial {
  readonly key: string;
  readonly cert: string;
  /** The certificate's file: the policy's `caFile`. */
  readonly caFile: string;
}

/** A self-signed certificate for 127.0.0.1 (openssl), so the https path runs with real TLS and a caFile. */
export function loopbackCertificate(): TlsMaterial {
  const dir = mkdtempSync(join(tmpdir(), 'plumbline-charts-tls-'));
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-days',
      '2',
      '-subj',
      '/CN=127.0.0.1',
      '-addext',
      'subjectAltName=IP:127.0.0.1',
      '-keyout',
      join(dir, 'key.pem'),
      '-out',
      join(dir, 'cert.pem'),
    ],
    { stdio: 'ignore' },
  );
  return {
    key: readFileSync(join(dir, 'key.pem'), 'utf8'),
    cert: readFileSync(join(dir, 'cert.pem'), 'utf8'),
    caFile: join(dir, 'cert.pem'),
  };
}

/**
 * A Helm repository on loopback (that is all one is: index.yaml and .tgz files over HTTP), optionally with
 * basic auth. Unknown paths answer 404; every request is recorded so tests can count them.
 */
export async function startChartServer(
  options: { tls?: TlsMaterial; basicAuth?: { username: string; password: string } } = {},
): Promise<ChartTestServer> {
  const routes = new Map<string, Route>();
  const requests: string[] = [];
  const handler = (request: IncomingMessage, response: ServerResponse) => {
    const path = request.url ?? '/';
    requests.push(path);
    if (options.basicAuth) {
      const expected = `Basic ${Buffer.from(`${options.basicAuth.username}:${options.basicAuth.password}`).toString('base64')}`;
      if (request.headers.authorization !== expected) {
        response.writeHead(401, { 'www-authenticate': 'Basic realm="charts"' }).end('unauthorized');
        return;
      }
    }
    const route = routes.get(path.split('?')[0] ?? path);
    const answer = () => {
      if (!route) {
        response.writeHead(404).end('not found');
        return;
      }
      response.writeHead(route.status ?? 200, route.headers ?? {}).end(route.body ?? '');
    };
    if (route?.gate) void route.gate.then(answer, answer);
    else answer();
  };
  const server = options.tls
    ? createHttpsServer({ key: options.tls.key, cert: options.tls.cert }, handler)
    : createHttpServer(handler);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `${options.tls ? 'https' : 'http'}://127.0.0.1:${port}`,
    requests,
    route: (path, route) => routes.set(path, route),
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** An index.yaml for some packaged charts, their URLs relative (as `helm repo index` writes them without --url). */
export function repositoryIndex(
  charts: readonly { name: string; version: string; digest?: string; url?: string }[],
): string {
  const entries: Record<string, unknown[]> = {};
  for (const chart of charts) {
    const list = entries[chart.name] ?? [];
    entries[chart.name] = list;
    list.push({
      apiVersion: 'v2',
      name: chart.name,
      version: chart.version,
      urls: [chart.url ?? `${chart.name}-${chart.version}.tgz`],
      ...(chart.digest ? { digest: chart.digest } : {}),
    });
  }
  return stringify({ apiVersion: 'v1', entries });
}

/** Hex sha256, as Helm indexes and OCI digests carry it. */
export const sha256 = (data: Buffer): string => createHash('sha256').update(data).digest('hex');

/** A fresh scratch folder under the system's temp folder. */
export const scratch = (prefix: string): string => mkdtempSync(join(tmpdir(), prefix));

/** A chart-sources policy as the registry file gives it; a test fixture that does not parse fails loudly. */
export function chartSources(value: unknown): ChartSources {
  const parsed = parseChartSources(value);
  if (!parsed.ok) throw new Error(parsed.problems.join('; '));
  return parsed.sources;
}

/** A credentials file as the operator mounts it: `{"username": …, "password": …}`. */
export function credentialsFile(username: string, password: string): string {
  const file = join(scratch('plumbline-charts-creds-'), 'creds.json');
  writeFileSync(file, JSON.stringify({ username, password }));
  return file;
}

/** The ChartFetchError a pull rejects with (anything else fails the test, naming what came instead). */
export async function chartFetchError(promise: Promise<unknown>): Promise<ChartFetchError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  if (!(error instanceof ChartFetchError)) throw new Error(`expected a ChartFetchError, got ${String(error)}`);
  return error;
}
