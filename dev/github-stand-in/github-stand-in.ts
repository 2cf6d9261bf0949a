import { spawn } from 'node:child_process';
import { createPublicKey, generateKeyPairSync, type KeyObject, randomBytes, verify } from 'node:crypto';
import { mkdir, readdir, readFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { join } from 'node:path';
import { runCommand } from '../../src/support/run-command.ts';
import { type MatchedOperation, OpenApiValidator } from './openapi-validator.ts';

export interface RecordedCall {
  readonly method: string;
  readonly path: string;
  readonly operation: string | undefined;
  readonly status: number;
  readonly body: unknown;
  /** When the answer was sent (ms since the epoch): rate-limit tests measure the wait before a retry. */
  readonly at: number;
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
  /** Statuses GitHub keeps per SHA and context (1000); lower it so a test can reach the limit. */
  readonly statusLimitPerContext?: number;
  /** Whether installation tokens carry `checks: write`; without it check-run writes answer 403. */
  readonly checksPermission?: boolean;
}

export type StatusState = 'error' | 'failure' | 'pending' | 'success';

/** A commit status as stored by the stand-in. */
export interface StandInStatus {
  readonly id: number;
  readonly sha: string;
  readonly state: StatusState;
  readonly description: string | null;
  readonly targetUrl: string | null;
  readonly context: string;
  readonly createdAt: string;
}

/** An annotation exactly as sent in a check run's `output.annotations`. */
export interface CheckRunAnnotation {
  readonly path: string;
  readonly start_line: number;
  readonly end_line: number;
  readonly start_column?: number;
  readonly end_column?: number;
  readonly annotation_level: 'notice' | 'warning' | 'failure';
  readonly message: string;
  readonly title?: string;
  readonly raw_details?: string;
}

/** A check run as stored by the stand-in, with every annotation sent across its create and updates. */
export interface StandInCheckRun {
  readonly id: number;
  readonly name: string;
  readonly headSha: string;
  readonly status: string;
  readonly conclusion: string | null;
  readonly detailsUrl: string | null;
  readonly externalId: string | null;
  readonly startedAt: string;
  readonly completedAt: string | null;
  readonly output: { readonly title: string | null; readonly summary: string | null; readonly text: string | null };
  readonly annotations: readonly CheckRunAnnotation[];
}

type Answer = { status: number; body?: unknown; headers?: Record<string, string> };
type Handler = (match: MatchedOperation, req: IncomingMessage, body: unknown) => Promise<Answer>;

/** Request bodies, already checked against GitHub's schema by the time a handler reads them. */
interface StatusRequest {
  readonly state: StatusState;
  readonly target_url?: string | null;
  readonly description?: string | null;
  readonly context?: string;
}

interface CheckRunRequest {
  readonly name?: string;
  readonly head_sha?: string;
  readonly details_url?: string;
  readonly external_id?: string;
  readonly status?: string;
  readonly started_at?: string;
  readonly conclusion?: string;
  readonly completed_at?: string;
  readonly output?: {
    readonly title?: string;
    readonly summary?: string;
    readonly text?: string;
    readonly annotations?: readonly CheckRunAnnotation[];
  };
}

interface StoredCheckRun {
  readonly id: number;
  readonly repositoryKey: string;
  readonly headSha: string;
  readonly checkSuiteId: number;
  name: string;
  status: string;
  conclusion: string | null;
  detailsUrl: string | null;
  externalId: string | null;
  startedAt: string;
  completedAt: string | null;
  output: { title: string | null; summary: string | null; text: string | null };
  readonly annotations: CheckRunAnnotation[];
}

const DOCS = {
  createStatus: 'https://docs.github.com/rest/commits/statuses#create-a-commit-status',
  createCheckRun: 'https://docs.github.com/rest/checks/runs#create-a-check-run',
  updateCheckRun: 'https://docs.github.com/rest/checks/runs#update-a-check-run',
};
/** GitHub's documented limits, which its OpenAPI description only partly encodes. */
const MAX_STATUS_DESCRIPTION = 140;
const MAX_ANNOTATIONS_PER_REQUEST = 50;
const MAX_OUTPUT_TEXT = 65_535;

/**
 * A loopback stand-in for GitHub, for the tests and `plumbline demo`: the REST operations Plumbline calls, each request checked against
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
  statusLimitPerContext: number;
  checksPermission: boolean;

  private readonly publicKey: KeyObject;
  private readonly validator = new OpenApiValidator();
  private readonly repositories = new Map<string, StandInRepository>();
  private readonly installations = new Map<number, Set<string>>();
  private readonly tokens = new Map<string, { installationId: number; expiresAt: number }>();
  private server: Server | undefined;
  private origin = '';
  private nextRepositoryId = 1000;
  /** Statuses by `<repository>@<sha>`, oldest first. */
  private readonly statusStore = new Map<string, StandInStatus[]>();
  private nextStatusId = 1;
  private readonly checkRunStore = new Map<number, StoredCheckRun>();
  private nextCheckRunId = 5000;
  /** GitHub groups an App's check runs on one commit in one check suite. */
  private readonly checkSuites = new Map<string, number>();
  /** Answers to return for the next requests of an operation, before normal handling (rate limits, 500s). */
  private readonly scripted = new Map<string, Answer[]>();

  constructor(private readonly options: StandInOptions) {
    this.appId = options.appId ?? 424_242;
    this.tokenLifetimeMs = options.tokenLifetimeMs ?? 60 * 60_000;
    this.statusLimitPerContext = options.statusLimitPerContext ?? 1000;
    this.checksPermission = options.checksPermission ?? true;
    const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    this.privateKeyPem = privateKey.export({ type: 'pkcs1', format: 'pem' }).toString();
    this.publicKey = createPublicKey(publicKey.export({ type: 'spki', format: 'pem' }));
  }

  /** REST base URL, shaped like GitHub Enterprise Server's. */
  get apiUrl(): string {
    return `${this.origin}/api/v3`;
  }

  /** The web origin, as `GITHUB_WEB_URL` names it: clone URLs live here. */
  get webUrl(): string {
    return this.origin;
  }

  async start(): Promise<this> {
    await mkdir(join(this.options.rootDir, 'git'), { recursive: true });
    const server = createServer((req, res) => {
      this.handle(req, res).catch((error: unknown) => {
        this.violations.push(`stand-in failure: ${String(error)}`);
        if (!res.headersSent) res.writeHead(500).end();
      });
    });
    this.server = server;
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const address = server.address();
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
  script(operation: string, answer: Answer, count = 1): void {
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

  /** Statuses created on `sha`, oldest first. */
  statuses(fullName: string, sha: string): StandInStatus[] {
    return [...(this.statusStore.get(statusKey(fullName, sha)) ?? [])];
  }

  /** The status GitHub shows for `context` on `sha`: the newest one (contexts compare case-insensitively). */
  latestStatus(fullName: string, sha: string, context: string): StandInStatus | undefined {
    return this.statuses(fullName, sha).findLast((status) => sameContext(status.context, context));
  }

  /** Check runs created on `sha`, oldest first, each with all its annotations. */
  checkRuns(fullName: string, sha: string): StandInCheckRun[] {
    const key = fullName.toLowerCase();
    return [...this.checkRunStore.values()]
      .filter((run) => run.repositoryKey === key && run.headSha === sha.toLowerCase())
      .map(({ repositoryKey: _key, checkSuiteId: _suite, ...run }) => structuredClone(run));
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

  private respond(res: ServerResponse, call: Omit<RecordedCall, 'status' | 'at'>, answer: Answer): void {
    this.calls.push({ ...call, status: answer.status, at: Date.now() });
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
          permissions: {
            contents: 'read',
            metadata: 'read',
            statuses: 'write',
            ...(this.checksPermission ? { checks: 'write' } : {}),
          },
          repository_selection: 'selected',
        },
      };
    },
    'GET /app': async (_match, req) => {
      const problem = this.checkAppJwt(req);
      if (problem) return { status: 401, body: { message: problem } };
      return { status: 200, body: { id: this.appId, slug: 'plumbline', name: 'Plumbline' } };
    },
    'GET /repos/{owner}/{repo}/installation': async (match, req) => {
      const problem = this.checkAppJwt(req);
      if (problem) return { status: 401, body: { message: problem } };
      const key = `${match.params.owner}/${match.params.repo}`.toLowerCase();
      const found = [...this.installations].find(([, repos]) => repos.has(key));
      if (!found) return { status: 404, body: { message: 'Not Found' } };
      return {
        status: 200,
        body: {
          id: found[0],
          app_id: this.appId,
          account: { login: match.params.owner, id: 1, type: 'Organization' },
          target_type: 'Organization',
          repository_selection: 'selected',
          permissions: { contents: 'read', metadata: 'read', statuses: 'write', checks: 'write' },
          events: ['push', 'pull_request', 'check_run', 'check_suite'],
          created_at: '2026-01-01T00:00:00Z',
          updated_at: '2026-01-01T00:00:00Z',
        },
      };
    },
    'GET /installation/repositories': async (_match, req) => {
      const installationId = this.tokenOwner(req);
      if (installationId === undefined) return { status: 401, body: { message: 'Bad credentials' } };
      const reachable = [...(this.installations.get(installationId) ?? [])]
        .map((key) => this.repositories.get(key))
        .filter((r): r is StandInRepository => r !== undefined)
        .sort((a, b) => a.id - b.id);
      const page = paginate(reachable, new URL(req.url ?? '/', this.origin));
      return {
        status: 200,
        body: {
          total_count: reachable.length,
          repositories: page.items.map((repository) => this.repositoryBody(repository)),
        },
        headers: page.next ? { link: `<${page.next}>; rel="next"` } : {},
      };
    },
    'GET /repos/{owner}/{repo}': async (match, req) => {
      const repository = this.authorizedRepository(req, `${match.params.owner}/${match.params.repo}`);
      if (!repository) return { status: 404, body: { message: 'Not Found' } };
      return { status: 200, body: this.repositoryBody(repository) };
    },
    'POST /repos/{owner}/{repo}/statuses/{sha}': async (match, req, body) => {
      const repository = this.authorizedRepository(req, `${match.params.owner}/${match.params.repo}`);
      if (!repository) return { status: 404, body: { message: 'Not Found' } };
      const request = body as StatusRequest;
      const sha = (match.params.sha ?? '').toLowerCase();
      if (!(await commitExists(repository, sha))) {
        return { status: 422, body: { message: `No commit found for SHA: ${match.params.sha}` } };
      }
      const description = request.description ?? null;
      if (description !== null && characters(description) > MAX_STATUS_DESCRIPTION) {
        const message = `description is too long (maximum is ${MAX_STATUS_DESCRIPTION} characters)`;
        this.violations.push(`${match.operation}: ${message}, got ${characters(description)}`);
        return validationFailed('Status', 'description', message, DOCS.createStatus);
      }
      const context = request.context ?? 'default';
      const existing = this.statuses(repository.fullName, sha);
      // Not a violation: a client may meet the limit legitimately and must cope with the 422.
      if (existing.filter((status) => sameContext(status.context, context)).length >= this.statusLimitPerContext) {
        return validationFailed(
          'Status',
          'context',
          'This SHA and context has reached the maximum number of statuses.',
          DOCS.createStatus,
        );
      }
      const status: StandInStatus = {
        id: this.nextStatusId++,
        sha,
        state: request.state,
        description,
        targetUrl: request.target_url ?? null,
        context,
        createdAt: githubTime(),
      };
      this.statusStore.set(statusKey(repository.fullName, sha), [...existing, status]);
      return {
        status: 201,
        body: this.statusBody(repository, status),
        headers: { location: `${this.apiUrl}/repos/${repository.fullName}/statuses/${sha}` },
      };
    },
    'GET /repos/{owner}/{repo}/commits/{ref}/statuses': async (match, req) => {
      const repository = this.authorizedRepository(req, `${match.params.owner}/${match.params.repo}`);
      if (!repository) return { status: 404, body: { message: 'Not Found' } };
      const newestFirst = this.statuses(repository.fullName, match.params.ref ?? '').reverse();
      const page = paginate(newestFirst, new URL(req.url ?? '/', this.origin));
      return {
        status: 200,
        body: page.items.map((status) => this.statusBody(repository, status)),
        headers: page.next ? { link: `<${page.next}>; rel="next"` } : {},
      };
    },
    'POST /repos/{owner}/{repo}/check-runs': async (match, req, body) => {
      const repository = this.authorizedRepository(req, `${match.params.owner}/${match.params.repo}`);
      if (!repository) return { status: 404, body: { message: 'Not Found' } };
      if (!this.checksPermission) return notAccessible(DOCS.createCheckRun);
      const request = body as CheckRunRequest & { readonly name: string; readonly head_sha: string };
      const breach = this.checkRunBreach(match.operation, request, DOCS.createCheckRun);
      if (breach) return breach;
      const headSha = request.head_sha.toLowerCase();
      if (!(await commitExists(repository, headSha))) {
        return { status: 422, body: { message: `No commit found for SHA: ${request.head_sha}` } };
      }
      const now = githubTime();
      const repositoryKey = repository.fullName.toLowerCase();
      const run: StoredCheckRun = {
        id: this.nextCheckRunId++,
        repositoryKey,
        headSha,
        checkSuiteId: this.checkSuiteId(`${repositoryKey}@${headSha}`),
        name: request.name,
        status: 'queued',
        conclusion: null,
        detailsUrl: null,
        externalId: null,
        startedAt: request.started_at ?? now,
        completedAt: null,
        output: { title: null, summary: null, text: null },
        annotations: [],
      };
      applyCheckRunUpdate(run, request, now);
      this.checkRunStore.set(run.id, run);
      return { status: 201, body: this.checkRunBody(repository, run) };
    },
    'PATCH /repos/{owner}/{repo}/check-runs/{check_run_id}': async (match, req, body) => {
      const repository = this.authorizedRepository(req, `${match.params.owner}/${match.params.repo}`);
      const run = this.checkRunStore.get(Number(match.params.check_run_id));
      // A run of another repository is as invisible as one that does not exist.
      if (!repository || !run || run.repositoryKey !== repository.fullName.toLowerCase()) {
        return { status: 404, body: { message: 'Not Found' } };
      }
      if (!this.checksPermission) return notAccessible(DOCS.updateCheckRun);
      const request = body as CheckRunRequest;
      const breach = this.checkRunBreach(match.operation, request, DOCS.updateCheckRun);
      if (breach) return breach;
      applyCheckRunUpdate(run, request, githubTime());
      return { status: 200, body: this.checkRunBody(repository, run) };
    },
  };

  /**
   * GitHub's rules for a check-run body that a client can break even when the body fits the schema
   * (the subset encodes some of them; checking again keeps the stand-in honest if it is regenerated).
   */
  private checkRunBreach(operation: string, request: CheckRunRequest, documentationUrl: string): Answer | undefined {
    const annotations = request.output?.annotations ?? [];
    let field: string | undefined;
    let message = '';
    if (annotations.length > MAX_ANNOTATIONS_PER_REQUEST) {
      field = 'output.annotations';
      message = `at most ${MAX_ANNOTATIONS_PER_REQUEST} annotations are allowed per request, got ${annotations.length}`;
    }
    for (const key of ['summary', 'text'] as const) {
      const value = request.output?.[key];
      if (!field && value !== undefined && characters(value) > MAX_OUTPUT_TEXT) {
        field = `output.${key}`;
        message = `${key} is too long (maximum is ${MAX_OUTPUT_TEXT} characters)`;
      }
    }
    if (
      !field &&
      (request.status === 'completed' || request.completed_at !== undefined) &&
      request.conclusion === undefined
    ) {
      field = 'conclusion';
      message = 'conclusion is required when status is completed or completed_at is given';
    }
    if (!field && request.conclusion === 'stale') {
      field = 'conclusion';
      message = 'only GitHub can set the conclusion stale';
    }
    if (!field) return undefined;
    this.violations.push(`${operation}: ${message}`);
    return validationFailed('CheckRun', field, message, documentationUrl);
  }

  private checkSuiteId(commitKey: string): number {
    const id = this.checkSuites.get(commitKey) ?? 9000 + this.checkSuites.size;
    this.checkSuites.set(commitKey, id);
    return id;
  }

  private repositoryBody(repository: StandInRepository): Record<string, unknown> {
    return {
      id: repository.id,
      name: repository.name,
      full_name: repository.fullName,
      owner: { login: repository.owner },
      clone_url: repository.cloneUrl,
      html_url: `${this.origin}/${repository.fullName}`,
      default_branch: 'main',
      private: true,
    };
  }

  private statusBody(repository: StandInRepository, status: StandInStatus): Record<string, unknown> {
    return {
      url: `${this.apiUrl}/repos/${repository.fullName}/statuses/${status.sha}`,
      avatar_url: `https://avatars.githubusercontent.com/in/${this.appId}?v=4`,
      id: status.id,
      node_id: legacyNodeId('Status', status.id),
      state: status.state,
      description: status.description,
      target_url: status.targetUrl,
      context: status.context,
      created_at: status.createdAt,
      updated_at: status.createdAt,
      creator: null,
    };
  }

  private checkRunBody(repository: StandInRepository, run: StoredCheckRun): Record<string, unknown> {
    const url = `${this.apiUrl}/repos/${repository.fullName}/check-runs/${run.id}`;
    return {
      id: run.id,
      node_id: legacyNodeId('CheckRun', run.id),
      head_sha: run.headSha,
      external_id: run.externalId,
      url,
      html_url: `${this.origin}/${repository.fullName}/runs/${run.id}`,
      details_url: run.detailsUrl,
      status: run.status,
      conclusion: run.conclusion,
      started_at: run.startedAt,
      completed_at: run.completedAt,
      output: { ...run.output, annotations_count: run.annotations.length, annotations_url: `${url}/annotations` },
      name: run.name,
      check_suite: { id: run.checkSuiteId },
      app: { id: this.appId, slug: 'plumbline', name: 'Plumbline' },
      pull_requests: [],
    };
  }

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
      at: Date.now(),
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

/** Fields given replace the stored ones; annotations are appended, as GitHub does across updates. */
function applyCheckRunUpdate(run: StoredCheckRun, request: CheckRunRequest, now: string): void {
  if (request.name !== undefined) run.name = request.name;
  if (request.details_url !== undefined) run.detailsUrl = request.details_url;
  if (request.external_id !== undefined) run.externalId = request.external_id;
  if (request.started_at !== undefined) run.startedAt = request.started_at;
  if (request.status !== undefined) run.status = request.status;
  // GitHub: providing a conclusion sets the status to completed.
  if (request.conclusion !== undefined) {
    run.conclusion = request.conclusion;
    run.status = 'completed';
  }
  if (request.completed_at !== undefined) run.completedAt = request.completed_at;
  else if (run.status === 'completed' && run.completedAt === null) run.completedAt = now;
  const output = request.output;
  if (output?.title !== undefined) run.output.title = output.title;
  if (output?.summary !== undefined) run.output.summary = output.summary;
  if (output?.text !== undefined) run.output.text = output.text;
  run.annotations.push(...(output?.annotations ?? []));
}

/** GitHub only takes statuses and check runs for a commit the repository holds, named by its full SHA. */
async function commitExists(repository: StandInRepository, sha: string): Promise<boolean> {
  // The pattern also keeps anything option-like away from git's command line.
  if (!/^[0-9a-f]{40}$/.test(sha)) return false;
  const result = await runCommand('git', ['-C', repository.bareDir, 'cat-file', '-e', `${sha}^{commit}`], {
    timeoutMs: 30_000,
  });
  return result.code === 0;
}

/** GitHub's `per_page` (default 30, at most 100) and `page`, with the `next` link Octokit follows. */
function paginate<T>(items: readonly T[], url: URL): { items: T[]; next: string | undefined } {
  const perPage = Math.min(Math.max(Number(url.searchParams.get('per_page') ?? 30) || 30, 1), 100);
  const page = Math.max(Number(url.searchParams.get('page') ?? 1) || 1, 1);
  const start = (page - 1) * perPage;
  if (start + perPage >= items.length) return { items: items.slice(start), next: undefined };
  const next = new URL(url);
  next.searchParams.set('per_page', String(perPage));
  next.searchParams.set('page', String(page + 1));
  return { items: items.slice(start, start + perPage), next: next.toString() };
}

function validationFailed(resource: string, field: string, message: string, documentationUrl: string): Answer {
  return {
    status: 422,
    body: {
      message: 'Validation Failed',
      errors: [{ resource, code: 'custom', field, message }],
      documentation_url: documentationUrl,
    },
  };
}

function notAccessible(documentationUrl: string): Answer {
  return {
    status: 403,
    body: { message: 'Resource not accessible by integration', documentation_url: documentationUrl },
  };
}

function statusKey(fullName: string, sha: string): string {
  return `${fullName.toLowerCase()}@${sha.toLowerCase()}`;
}

/** GitHub treats status contexts case-insensitively. */
function sameContext(a: string, b: string): boolean {
  return a.toLowerCase() === b.toLowerCase();
}

/** GitHub counts characters, not UTF-16 code units. */
function characters(text: string): number {
  return [...text].length;
}

/** Timestamps as GitHub writes them: ISO 8601 to the second. */
function githubTime(): string {
  return new Date().toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/** GitHub's legacy global node IDs: base64 of `<length of type>:<type><id>`, e.g. `MDY6U3RhdHVzMQ==`. */
function legacyNodeId(type: string, id: number): string {
  return Buffer.from(`${String(type.length).padStart(2, '0')}:${type}${id}`).toString('base64');
}

async function git(args: string[]): Promise<void> {
  const result = await runCommand('git', args, { timeoutMs: 30_000 });
  if (result.code !== 0) throw new Error(`git ${args[0]} failed: ${result.stderr}`);
}
