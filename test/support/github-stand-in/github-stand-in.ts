import { spawn } from 'node:child_process';
import { createPublicKey, generateKeyPairSync, type KeyObject, randomBytes, verify } from 'node:crypto';
import { mkdir, readdir, readFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { join } from 'node:path';
import { runCommand } from '../../../src/support/run-command.ts';
import { type MatchedOperation, OpenApiValidator } from './openapi-validator.ts';

export interface RecordedCall {
  readonly method: string;
  readonly path: string;
  readonly operation: string | undefined;
  readonly status: number;
  readonly body: unknown;
}

export interface StandInRepository {
  readonly id: number;
  readonly owner: string;
  readonly name: string;
  readonly fullName: string;
  /** Bare repository on disk: tests push to it directly. */
  readonly bareDir: string;
  /** Smart-HTTP URL served through `git http-backend`, behind the installation-token check. */
  readonly cloneUrl: string;
}

export interface StandInOptions {
  readonly rootDir: string;
  readonly appId?: number;
  /** Lifetime of issued installation tokens (GitHub: one hour). */
  readonly tokenLifetimeMs?: number;
}

type Handler = (
  match: MatchedOperation,
  req: IncomingMessage,
  body: unknown,
) => Promise<{ status: number; body?: unknown; headers?: Record<string, string> }>;

/**
 * A loopback stand-in for GitHub: the REST operations Plumbline calls, each request checked against
 * GitHub's official OpenAPI description, App JWTs and installation tokens checked as GitHub checks them,
 * and repositories served over git's smart HTTP protocol by the real `git http-backend`.
 * A request it does not know is answered 404 and recorded in `unexpected`, so tests can fail on it.
 */
export class GitHubStandIn {
  readonly appId: number;
  /** The App's private key, as an operator would configure it (PEM). */
  readonly privateKeyPem: string;
  readonly calls: RecordedCall[] = [];
  readonly unexpected: string[] = [];
  /** Problems found in requests (invalid bodies, bad credentials), each a readable line. */
  readonly violations: string[] = [];
  /** Tokens seen in another process's command line while serving git: must stay empty. */
  readonly leakedInProcessList: string[] = [];
  tokenLifetimeMs: number;

  private readonly publicKey: KeyObject;
  private readonly validator = new OpenApiValidator();
  private readonly repositories = new Map<string, StandInRepository>();
  private readonly installations = new Map<number, Set<string>>();
  private readonly tokens = new Map<string, { installationId: number; expiresAt: number }>();
  private server: Server | undefined;
  private origin = '';
  private nextRepositoryId = 1000;
  /** Answers to return for the next requests of an operation, before normal handling (rate limits, 500s). */
  private readonly scripted = new Map<string, { status: number; body?: unknown; headers?: Record<string, string> }[]>();

  constructor(private readonly options: StandInOptions) {
    this.appId = options.appId ?? 424_242;
    this.tokenLifetimeMs = options.tokenLifetimeMs ?? 60 * 60_000;
    const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    this.privateKeyPem = privateKey.export({ type: 'pkcs1', format: 'pem' }).toString();
    this.publicKey = createPublicKey(publicKey.export({ type: 'spki', format: 'pem' }));
  }

  /** REST base URL, shaped like GitHub Enterprise Server's. */
  get apiUrl(): string {
    return `${this.origin}/api/v3`;
  }

  async start(): Promise<this> {
    await mkdir(join(this.options.rootDir, 'git'), { recursive: true });
    this.server = createServer((req, res) => {
      this.handle(req, res).catch((error: unknown) => {
        this.violations.push(`stand-in failure: ${String(error)}`);
        if (!res.headersSent) res.writeHead(500).end();
      });
    });
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve));
    const address = this.server.address();
    this.origin = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`;
    return this;
  }

  async stop(): Promise<void> {
    await new Promise<void>((resolve) => {
      this.server?.close(() => resolve());
      this.server?.closeAllConnections();
    });
  }

  /** Creates an empty bare repository and makes it reachable by `installationId`. */
  async createRepository(fullName: string, installationId: number): Promise<StandInRepository> {
    const [owner, name] = fullName.split('/') as [string, string];
    const bareDir = join(this.options.rootDir, 'git', owner, `${name}.git`);
    await mkdir(bareDir, { recursive: true });
    await git(['init', '--bare', '--quiet', '--initial-branch=main', bareDir]);
    // GitHub serves any reachable commit by SHA; http-backend needs to be told.
    await git(['-C', bareDir, 'config', 'uploadpack.allowAnySHA1InWant', 'true']);
    const repository = {
      id: this.nextRepositoryId++,
      owner,
      name,
      fullName,
      bareDir,
      cloneUrl: `${this.origin}/${owner}/${name}.git`,
    };
    this.repositories.set(fullName.toLowerCase(), repository);
    const repos = this.installations.get(installationId) ?? new Set<string>();
    repos.add(fullName.toLowerCase());
    this.installations.set(installationId, repos);
    return repository;
  }

  /** The next `count` requests of `operation` (e.g. `POST /repos/{owner}/{repo}/statuses/{sha}`) get this answer. */
  script(
    operation: string,
    answer: { status: number; body?: unknown; headers?: Record<string, string> },
    count = 1,
  ): void {
    this.scripted.set(operation, [
      ...(this.scripted.get(operation) ?? []),
      ...Array.from({ length: count }, () => answer),
    ]);
  }

  callsTo(operation: string): RecordedCall[] {
    return this.calls.filter((call) => call.operation === operation);
  }

  issuedTokens(): string[] {
    return [...this.tokens.keys()];
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', this.origin);
    if (url.pathname.startsWith('/api/v3/')) {
      await this.handleRest(req, res, url.pathname.slice('/api/v3'.length));
      return;
    }
    const gitPath = /^\/([^/]+)\/([^/]+)\.git(\/.*)$/.exec(url.pathname);
    if (gitPath) {
      await this.handleGit(req, res, `${gitPath[1]}/${gitPath[2]}`, url);
      return;
    }
    this.unexpected.push(`${req.method} ${url.pathname}`);
    res.writeHead(404).end();
  }

  private async handleRest(req: IncomingMessage, res: ServerResponse, path: string): Promise<void> {
    const raw = await readBody(req);
    let body: unknown;
    try {
      body = raw.length > 0 ? JSON.parse(raw.toString('utf8')) : undefined;
    } catch {
      this.violations.push(`${req.method} ${path}: body is not JSON`);
    }
    const method = req.method ?? 'GET';
    const match = this.validator.match(method, path, body);
    if (!match) {
      this.unexpected.push(`${method} ${path}`);
      this.respond(res, { method, path, operation: undefined, body }, { status: 404, body: { message: 'Not Found' } });
      return;
    }
    if (match.bodyErrors.length > 0) {
      this.violations.push(`${match.operation}: ${match.bodyErrors.join('; ')}`);
      this.respond(
        res,
        { method, path, operation: match.operation, body },
        { status: 422, body: { message: 'Validation Failed', errors: match.bodyErrors } },
      );
      return;
    }
    const scripted = this.scripted.get(match.operation)?.shift();
    const handler = this.handlers[match.operation];
    const answer =
      scripted ??
      (handler
        ? await handler(match, req, body)
        : { status: 501, body: { message: `stand-in does not implement ${match.operation}` } });
    this.respond(res, { method, path, operation: match.operation, body }, answer);
  }

  private respond(
    res: ServerResponse,
    call: Omit<RecordedCall, 'status'>,
    answer: { status: number; body?: unknown; headers?: Record<string, string> },
  ): void {
    this.calls.push({ ...call, status: answer.status });
    res.writeHead(answer.status, { 'content-type': 'application/json; charset=utf-8', ...answer.headers });
    res.end(answer.body === undefined ? '' : JSON.stringify(answer.body));
  }

  private readonly handlers: Record<string, Handler> = {
    'POST /app/installations/{installation_id}/access_tokens': async (match, req) => {
      const problem = this.checkAppJwt(req);
      if (problem) return { status: 401, body: { message: problem } };
      const installationId = Number(match.params.installation_id);
      if (!this.installations.has(installationId)) return { status: 404, body: { message: 'Not Found' } };
      const token = `ghs_${randomBytes(18).toString('base64url')}`;
      const expiresAt = Date.now() + this.tokenLifetimeMs;
      this.tokens.set(token, { installationId, expiresAt });
      return {
        status: 201,
        body: {
          token,
          expires_at: new Date(expiresAt).toISOString().replace(/\.\d{3}Z$/, 'Z'),
          permissions: { contents: 'read', metadata: 'read', statuses: 'write', checks: 'write' },
          repository_selection: 'selected',
        },
      };
    },
    'GET /app': async (_match, req) => {
      const problem = this.checkAppJwt(req);
      if (problem) return { status: 401, body: { message: problem } };
      return { status: 200, body: { id: this.appId, slug: 'plumbline', name: 'Plumbline' } };
    },
    'GET /repos/{owner}/{repo}': async (match, req) => {
      const repository = this.authorizedRepository(req, `${match.params.owner}/${match.params.repo}`);
      if (!repository) return { status: 404, body: { message: 'Not Found' } };
      return {
        status: 200,
        body: {
          id: repository.id,
          name: repository.name,
          full_name: repository.fullName,
          clone_url: repository.cloneUrl,
          default_branch: 'main',
          private: true,
        },
      };
    },
  };

  /** GitHub's rules for an App JWT: RS256 by the App's key, `iss` = App ID, at most 10 minutes long. */
  private checkAppJwt(req: IncomingMessage): string | undefined {
    const match = /^bearer (.+)$/i.exec(req.headers.authorization ?? '');
    if (!match?.[1]) return 'A JSON web token could not be decoded';
    const [header, payload, signature] = match[1].split('.');
    if (!header || !payload || !signature) return 'A JSON web token could not be decoded';
    const valid = verify(
      'RSA-SHA256',
      Buffer.from(`${header}.${payload}`),
      this.publicKey,
      Buffer.from(signature, 'base64url'),
    );
    if (!valid) return 'A JSON web token could not be decoded';
    const claims = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as {
      iss?: unknown;
      iat?: number;
      exp?: number;
    };
    const now = Math.floor(Date.now() / 1000);
    if (String(claims.iss) !== String(this.appId)) return "'Issuer' claim ('iss') must be the App ID";
    if (!claims.exp || !claims.iat || claims.exp - claims.iat > 600 || claims.exp < now || claims.iat > now + 60) {
      return "'Expiration time' claim ('exp') is too far in the future or in the past";
    }
    return undefined;
  }

  private tokenOwner(req: IncomingMessage): number | undefined {
    const header = req.headers.authorization ?? '';
    let token: string | undefined;
    const bearer = /^(?:token|bearer) (.+)$/i.exec(header);
    if (bearer) token = bearer[1];
    const basic = /^basic (.+)$/i.exec(header);
    if (basic?.[1]) {
      const [user, password] = Buffer.from(basic[1], 'base64').toString('utf8').split(':');
      if (user === 'x-access-token') token = password;
    }
    const issued = token ? this.tokens.get(token) : undefined;
    if (!issued) return undefined;
    if (issued.expiresAt < Date.now()) {
      this.violations.push('an expired installation token was used');
      return undefined;
    }
    return issued.installationId;
  }

  private authorizedRepository(req: IncomingMessage, fullName: string): StandInRepository | undefined {
    const installationId = this.tokenOwner(req);
    const key = fullName.toLowerCase();
    if (installationId === undefined || !this.installations.get(installationId)?.has(key)) return undefined;
    return this.repositories.get(key);
  }

  private async handleGit(req: IncomingMessage, res: ServerResponse, fullName: string, url: URL): Promise<void> {
    const repository = this.authorizedRepository(req, fullName);
    this.calls.push({
      method: req.method ?? 'GET',
      path: url.pathname,
      operation: 'git',
      status: repository ? 200 : 401,
      body: undefined,
    });
    if (!repository) {
      res.writeHead(401, { 'www-authenticate': 'Basic realm="GitHub"' }).end();
      return;
    }
    await this.scanProcessList();
    const child = spawn('git', ['http-backend'], {
      env: {
        PATH: process.env.PATH ?? '/usr/bin:/bin',
        GIT_PROJECT_ROOT: join(this.options.rootDir, 'git'),
        GIT_HTTP_EXPORT_ALL: '1',
        PATH_INFO: url.pathname,
        REQUEST_METHOD: req.method ?? 'GET',
        QUERY_STRING: url.search.slice(1),
        CONTENT_TYPE: req.headers['content-type'] ?? '',
        REMOTE_USER: 'x-access-token',
        REMOTE_ADDR: '127.0.0.1',
        GIT_PROTOCOL: String(req.headers['git-protocol'] ?? ''),
        HTTP_CONTENT_ENCODING: String(req.headers['content-encoding'] ?? ''),
      },
      stdio: ['pipe', 'pipe', 'ignore'],
    });
    req.pipe(child.stdin);
    await relayCgi(child.stdout, res);
  }

  /** Snapshot of every process's command line while a git client is connected: no token may be in it. */
  private async scanProcessList(): Promise<void> {
    const tokens = this.issuedTokens();
    if (tokens.length === 0) return;
    for (const pid of await readdir('/proc').catch(() => [] as string[])) {
      if (!/^\d+$/.test(pid)) continue;
      const cmdline = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
      for (const token of tokens) {
        if (cmdline.includes(token) || cmdline.includes(Buffer.from(`x-access-token:${token}`).toString('base64'))) {
          this.leakedInProcessList.push(`pid ${pid}: ${cmdline.replace(/\0/g, ' ').slice(0, 120)}`);
        }
      }
    }
  }
}

/** Relays a CGI response: headers (with `Status:`) up to the blank line, then the body as it streams. */
function relayCgi(stdout: NodeJS.ReadableStream, res: ServerResponse): Promise<void> {
  return new Promise((resolve) => {
    let head = Buffer.alloc(0);
    let headersDone = false;
    stdout.on('data', (chunk: Buffer) => {
      if (headersDone) {
        res.write(chunk);
        return;
      }
      head = Buffer.concat([head, chunk]);
      const end = head.indexOf('\r\n\r\n');
      if (end < 0) return;
      headersDone = true;
      let status = 200;
      const headers: Record<string, string> = {};
      for (const line of head.subarray(0, end).toString('latin1').split('\r\n')) {
        const colon = line.indexOf(':');
        const name = line.slice(0, colon).trim().toLowerCase();
        const value = line.slice(colon + 1).trim();
        if (name === 'status') status = Number.parseInt(value, 10);
        else headers[name] = value;
      }
      res.writeHead(status, headers);
      res.write(head.subarray(end + 4));
    });
    stdout.on('end', () => {
      if (!headersDone) res.writeHead(502);
      res.end();
      resolve();
    });
  });
}

function readBody(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

async function git(args: string[]): Promise<void> {
  const result = await runCommand('git', args, { timeoutMs: 30_000 });
  if (result.code !== 0) throw new Error(`git ${args[0]} failed: ${result.stderr}`);
}
