import { z } from 'zod';
import type { PlumblineJob, PreviewJob, RepositoryRef, SyncJob } from '../queue/jobs.ts';

/** What a verified delivery asks of us; computing it touches nothing. */
export type Route =
  | { readonly kind: 'enqueue'; readonly jobs: readonly PlumblineJob[] }
  | { readonly kind: 'cancel-previews'; readonly repository: RepositoryRef; readonly number: number }
  | { readonly kind: 'installation'; readonly change: InstallationChange }
  | { readonly kind: 'ignore'; readonly reason: IgnoreReason };

export type IgnoreReason =
  | 'ping'
  | 'tag-push'
  | 'branch-deleted'
  | 'not-a-branch'
  | 'unhandled-event'
  | 'unhandled-action'
  | 'no-branch';

export interface InstallationChange {
  readonly installationId: number;
  /** `replace`: the full set (installation created); `forget`: the App was uninstalled. */
  readonly operation: 'replace' | 'add' | 'remove' | 'forget';
  readonly repositories: readonly { readonly id: number; readonly fullName: string }[];
}

export interface DeliveryContext {
  readonly deliveryId: string;
  readonly receivedAt: string;
}

/** A payload that lacks a field we read: the sender gets a 400 naming it. */
export class PayloadError extends Error {
  override readonly name = 'PayloadError';
}

const ZERO_SHA = /^0{40}$/;
const sha = z.string().regex(/^[0-9a-f]{40}$/, 'must be a 40-character commit SHA');

const repositorySchema = z.object({ id: z.number().int(), full_name: z.string().min(1) });
/** A pull request's head (or base) repository; null when the fork was deleted. */
const prRepositorySchema = z.object({ id: z.number().int() }).nullable().optional();
const installationSchema = z.object({ id: z.number().int() }).optional().nullable();

const pushSchema = z.object({
  ref: z.string().min(1),
  before: z.string(),
  after: z.string(),
  forced: z.boolean().optional(),
  deleted: z.boolean().optional(),
  repository: repositorySchema,
  installation: installationSchema,
});

const pullRequestSchema = z.object({
  action: z.string(),
  number: z.number().int(),
  pull_request: z.object({
    head: z.object({ sha, repo: prRepositorySchema }),
    base: z.object({ ref: z.string().min(1) }),
  }),
  repository: repositorySchema,
  installation: installationSchema,
});

const pullRequestRefSchema = z.object({
  number: z.number().int(),
  head: z.object({ sha: z.string(), repo: prRepositorySchema }),
  base: z.object({ ref: z.string(), repo: prRepositorySchema }),
});

const checkSchema = z.object({
  action: z.string(),
  repository: repositorySchema,
  installation: installationSchema,
});
const checkRunSchema = checkSchema.extend({
  check_run: z.object({
    head_sha: sha,
    check_suite: z.object({ head_branch: z.string().nullable().optional() }).optional(),
    pull_requests: z.array(pullRequestRefSchema).default([]),
  }),
});
const checkSuiteSchema = checkSchema.extend({
  check_suite: z.object({
    head_sha: sha,
    head_branch: z.string().nullable().optional(),
    pull_requests: z.array(pullRequestRefSchema).default([]),
  }),
});

const repoListItem = z.object({ id: z.number().int(), full_name: z.string().min(1) });
const installationEventSchema = z.object({
  action: z.string(),
  installation: z.object({ id: z.number().int() }),
  repositories: z.array(repoListItem).optional().nullable(),
});
const installationRepositoriesSchema = z.object({
  action: z.string(),
  installation: z.object({ id: z.number().int() }),
  repositories_added: z.array(repoListItem).default([]),
  repositories_removed: z.array(repoListItem).default([]),
});

/**
 * Lists in payloads, and the most items GitHub sends in them. Checked before the schema: the schema
 * builds an issue for every wrong item, and a signed 25 MB list of wrong items would stall the event
 * loop for seconds (or exhaust the heap) before it answered.
 */
const LIST_LIMITS: Record<string, readonly (readonly [readonly string[], number])[]> = {
  check_run: [[['check_run', 'pull_requests'], 1_000]],
  check_suite: [[['check_suite', 'pull_requests'], 1_000]],
  installation: [[['repositories'], 100_000]],
  installation_repositories: [
    [['repositories_added'], 100_000],
    [['repositories_removed'], 100_000],
  ],
};

function checkListSizes(payload: unknown, event: string): void {
  for (const [path, limit] of LIST_LIMITS[event] ?? []) {
    let value: unknown = payload;
    for (const key of path)
      value = typeof value === 'object' && value !== null ? (value as Record<string, unknown>)[key] : undefined;
    if (Array.isArray(value) && value.length > limit)
      throw new PayloadError(`${event} payload: ${path.join('.')} has more than ${limit} items`);
  }
}

function parse<T>(schema: z.ZodType<T>, payload: unknown, event: string): T {
  checkListSizes(payload, event);
  const result = schema.safeParse(payload);
  if (result.success) return result.data;
  const issue = result.error.issues[0];
  const field = issue?.path.length ? issue.path.join('.') : '(body)';
  throw new PayloadError(`${event} payload: ${field} ${issue?.message ?? 'is invalid'}`);
}

function repositoryRef(repository: z.infer<typeof repositorySchema>): RepositoryRef {
  return { id: repository.id, fullName: repository.full_name };
}

/** The head's repository id; a head whose repository is gone (a deleted fork) is null, never the base's. */
const headRepositoryId = (repo: z.infer<typeof prRepositorySchema>): number | null => repo?.id ?? null;

/** Maps a verified GitHub delivery to what Plumbline should do about it. Pure. */
export function routeDelivery(event: string, payload: unknown, context: DeliveryContext): Route {
  switch (event) {
    case 'ping':
      return { kind: 'ignore', reason: 'ping' };
    case 'push':
      return routePush(parse(pushSchema, payload, event), context);
    case 'pull_request':
      return routePullRequest(parse(pullRequestSchema, payload, event), context);
    case 'check_run': {
      const p = parse(checkRunSchema, payload, event);
      if (p.action !== 'rerequested') return { kind: 'ignore', reason: 'unhandled-action' };
      return routeRerun(
        p,
        p.check_run.head_sha,
        p.check_run.check_suite?.head_branch,
        p.check_run.pull_requests,
        context,
      );
    }
    case 'check_suite': {
      const p = parse(checkSuiteSchema, payload, event);
      if (p.action !== 'rerequested') return { kind: 'ignore', reason: 'unhandled-action' };
      return routeRerun(p, p.check_suite.head_sha, p.check_suite.head_branch, p.check_suite.pull_requests, context);
    }
    case 'installation':
      return routeInstallation(parse(installationEventSchema, payload, event));
    case 'installation_repositories': {
      const p = parse(installationRepositoriesSchema, payload, event);
      const added = p.action === 'added';
      if (!added && p.action !== 'removed') return { kind: 'ignore', reason: 'unhandled-action' };
      const list = added ? p.repositories_added : p.repositories_removed;
      return {
        kind: 'installation',
        change: {
          installationId: p.installation.id,
          operation: added ? 'add' : 'remove',
          repositories: list.map((r) => ({ id: r.id, fullName: r.full_name })),
        },
      };
    }
    default:
      return { kind: 'ignore', reason: 'unhandled-event' };
  }
}

function routePush(p: z.infer<typeof pushSchema>, context: DeliveryContext): Route {
  if (p.ref.startsWith('refs/tags/')) return { kind: 'ignore', reason: 'tag-push' };
  if (!p.ref.startsWith('refs/heads/')) return { kind: 'ignore', reason: 'not-a-branch' };
  if (p.deleted === true || ZERO_SHA.test(p.after)) return { kind: 'ignore', reason: 'branch-deleted' };
  const { after } = parse(z.object({ after: sha }), { after: p.after }, 'push');
  const job: SyncJob = {
    type: 'sync',
    trigger: 'push',
    deliveryId: context.deliveryId,
    repository: repositoryRef(p.repository),
    installationId: p.installation?.id,
    branch: p.ref.slice('refs/heads/'.length),
    // A new branch has no previous commit: GitHub sends 40 zeros.
    before: ZERO_SHA.test(p.before) ? undefined : p.before,
    after,
    forced: p.forced ?? false,
    receivedAt: context.receivedAt,
  };
  return { kind: 'enqueue', jobs: [job] };
}

const PREVIEW_ACTIONS = new Set(['opened', 'synchronize', 'reopened']);

function routePullRequest(p: z.infer<typeof pullRequestSchema>, context: DeliveryContext): Route {
  const repository = repositoryRef(p.repository);
  if (p.action === 'closed') return { kind: 'cancel-previews', repository, number: p.number };
  if (!PREVIEW_ACTIONS.has(p.action)) return { kind: 'ignore', reason: 'unhandled-action' };
  const job: PreviewJob = {
    type: 'preview',
    trigger: 'pull_request',
    deliveryId: context.deliveryId,
    repository,
    installationId: p.installation?.id,
    number: p.number,
    headSha: p.pull_request.head.sha,
    headRepositoryId: headRepositoryId(p.pull_request.head.repo),
    baseBranch: p.pull_request.base.ref,
    receivedAt: context.receivedAt,
  };
  return { kind: 'enqueue', jobs: [job] };
}

/** A re-requested check re-runs what produced it: previews of its pull requests, or a sync of its branch. */
function routeRerun(
  p: z.infer<typeof checkSchema>,
  headSha: string,
  headBranch: string | null | undefined,
  pullRequests: readonly z.infer<typeof pullRequestRefSchema>[],
  context: DeliveryContext,
): Route {
  const repository = repositoryRef(p.repository);
  const installationId = p.installation?.id;
  // A check on this repository's commit may list pull requests into other repositories: not ours to preview.
  const ours = pullRequests.filter((pr) => pr.base.repo == null || pr.base.repo.id === p.repository.id);
  if (pullRequests.length > 0) {
    if (ours.length === 0) return { kind: 'ignore', reason: 'unhandled-action' };
    return {
      kind: 'enqueue',
      jobs: ours.map(
        (pr): PreviewJob => ({
          type: 'preview',
          trigger: 'rerun',
          deliveryId: context.deliveryId,
          repository,
          installationId,
          number: pr.number,
          headSha,
          headRepositoryId: headRepositoryId(pr.head.repo),
          baseBranch: pr.base.ref,
          receivedAt: context.receivedAt,
        }),
      ),
    };
  }
  if (!headBranch) return { kind: 'ignore', reason: 'no-branch' };
  const job: SyncJob = {
    type: 'sync',
    trigger: 'rerun',
    deliveryId: context.deliveryId,
    repository,
    installationId,
    branch: headBranch,
    before: undefined,
    after: headSha,
    forced: false,
    receivedAt: context.receivedAt,
  };
  return { kind: 'enqueue', jobs: [job] };
}

function routeInstallation(p: z.infer<typeof installationEventSchema>): Route {
  const repositories = (p.repositories ?? []).map((r) => ({ id: r.id, fullName: r.full_name }));
  const installationId = p.installation.id;
  switch (p.action) {
    case 'created':
    case 'unsuspend':
    case 'new_permissions_accepted':
      // Only `created` lists every repository; the others may omit the list, which then says nothing.
      if (p.action !== 'created' && p.repositories == null) return { kind: 'ignore', reason: 'unhandled-action' };
      return { kind: 'installation', change: { installationId, operation: 'replace', repositories } };
    case 'deleted':
    case 'suspend':
      return { kind: 'installation', change: { installationId, operation: 'forget', repositories: [] } };
    default:
      return { kind: 'ignore', reason: 'unhandled-action' };
  }
}
