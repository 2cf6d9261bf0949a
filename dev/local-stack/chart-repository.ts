import { timingSafeEqual } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, stat, writeFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { dirname, extname, join, normalize, sep } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { packageRoot } from '../../src/support/package-root.ts';
import { type BasicCredentials, newCredentials } from './oci-registry.ts';
import { type ProcessRecord, startDaemon } from './processes.ts';

/**
 * A Helm chart repository is a folder with `index.yaml` and the chart archives it lists, served over HTTP.
 * This one serves a folder on loopback with HTTP basic auth, so the credentials paths are tested too.
 */
export interface ChartRepositoryRecord extends ProcessRecord {
  /** `http://127.0.0.1:<port>`: the repository URL (`helm repo add`, a `dependencies[].repository`). */
  readonly url: string;
  readonly credentials: BasicCredentials;
  /** The folder it serves: tests publish charts here (see charts.ts). */
  readonly dir: string;
}

const REALM = 'plumbline-charts';
const CONTENT_TYPES: Readonly<Record<string, string>> = {
  '.yaml': 'application/x-yaml',
  '.tgz': 'application/gzip',
  '.prov': 'text/plain',
};

/** True when the `Authorization` header carries exactly these credentials (compared in constant time). */
export function hasCredentials(header: string | undefined, credentials: BasicCredentials): boolean {
  const match = /^Basic\s+(\S+)$/i.exec(header ?? '');
  if (!match?.[1]) return false;
  const given = Buffer.from(Buffer.from(match[1], 'base64').toString('utf8'));
  const expected = Buffer.from(`${credentials.username}:${credentials.password}`);
  return given.length === expected.length && timingSafeEqual(given, expected);
}

/** The file a request path names inside `root`, or undefined when the path would leave it. */
export function fileInside(root: string, urlPath: string): string | undefined {
  let decoded: string;
  try {
    decoded = decodeURIComponent(urlPath.split('?')[0] ?? '');
  } catch {
    return undefined;
  }
  if (decoded.includes('\0')) return undefined;
  const path = normalize(join(root, decoded));
  return path.startsWith(root.endsWith(sep) ? root : `${root}${sep}`) ? path : undefined;
}

/** An HTTP server for the folder: GET/HEAD of its files with basic auth; anything else is refused. */
export function chartRepositoryServer(root: string, credentials: BasicCredentials): Server {
  return createServer((request, response) => {
    handle(root, credentials, request, response).catch(() => {
      if (!response.headersSent) response.writeHead(500);
      response.end();
    });
  });
}

async function handle(
  root: string,
  credentials: BasicCredentials,
  request: IncomingMessage,
  response: ServerResponse,
): Promise<void> {
  if (!hasCredentials(request.headers.authorization, credentials)) {
    response.writeHead(401, { 'www-authenticate': `Basic realm="${REALM}"` }).end();
    return;
  }
  if (request.method !== 'GET' && request.method !== 'HEAD') {
    response.writeHead(405, { allow: 'GET, HEAD' }).end();
    return;
  }
  const path = fileInside(root, request.url ?? '/');
  const info = path ? await stat(path).catch(() => undefined) : undefined;
  if (!path || !info?.isFile()) {
    response.writeHead(404).end();
    return;
  }
  response.writeHead(200, {
    'content-type': CONTENT_TYPES[extname(path)] ?? 'application/octet-stream',
    'content-length': info.size,
  });
  if (request.method === 'HEAD') response.end();
  else createReadStream(path).pipe(response);
}

/** An index with no charts, so the repository can be added before anything is published. */
export const EMPTY_INDEX = 'apiVersion: v1\nentries: {}\n';

/** Starts the server as a daemon of the stack (see chart-repository-main.ts) on `port`. */
export async function startChartRepository(dir: string, port: number): Promise<ChartRepositoryRecord> {
  const served = join(dir, 'served');
  await mkdir(served, { recursive: true });
  await writeFile(join(served, 'index.yaml'), EMPTY_INDEX);
  const credentials = newCredentials('plumbline');
  const url = `http://127.0.0.1:${port}`;
  const authorization = `Basic ${Buffer.from(`${credentials.username}:${credentials.password}`).toString('base64')}`;
  const record = await startDaemon({
    what: `chart repository on ${url}`,
    timeoutMs: 30_000,
    ready: async () => (await fetch(`${url}/index.yaml`, { headers: { authorization } })).status === 200,
    logFile: join(dir, 'chart-repository.log'),
    command: process.execPath,
    args: daemonArgs(),
    // The password goes through the environment, not the argument list that `ps` shows.
    env: {
      ...process.env,
      CHART_REPOSITORY_ROOT: served,
      CHART_REPOSITORY_PORT: String(port),
      CHART_REPOSITORY_USERNAME: credentials.username,
      CHART_REPOSITORY_PASSWORD: credentials.password,
    },
  });
  return { ...record, url, credentials, dir: served };
}

/**
 * The entry point beside this module: compiled (`dist/dev/…`, the demo) it is plain JS; from the sources
 * (tsx, jest) it runs through tsx's loader, named by path so the caller's working directory does not matter.
 */
function daemonArgs(): string[] {
  const here = fileURLToPath(import.meta.url);
  if (!here.endsWith('.ts')) return [join(dirname(here), 'chart-repository-main.js')];
  const loader = pathToFileURL(join(packageRoot(here), 'node_modules', 'tsx', 'dist', 'loader.mjs')).href;
  return ['--import', loader, join(dirname(here), 'chart-repository-main.ts')];
}

/** Listens on loopback; resolves with the port (useful with port 0). */
export function listenOnLoopback(server: Server, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve((server.address() as AddressInfo).port));
  });
}
