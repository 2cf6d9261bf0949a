import { createHmac, randomUUID } from 'node:crypto';

export interface SignedDelivery {
  readonly headers: Record<string, string>;
  readonly body: string;
}

/** `X-Hub-Signature-256` exactly as GitHub computes it (HMAC-SHA256 of the raw body, hex). */
export function signature(secret: string, body: string | Buffer): string {
  return `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`;
}

/** A delivery with the full set of headers GitHub sends (see @octokit/openapi-webhooks). */
export function githubDelivery(
  event: string,
  payload: unknown,
  secret: string,
  overrides: { deliveryId?: string; body?: string } = {},
): SignedDelivery {
  const body = overrides.body ?? JSON.stringify(payload);
  const installation = (payload as { installation?: { id?: number } } | null)?.installation?.id;
  return {
    body,
    headers: {
      'content-type': 'application/json',
      'user-agent': 'GitHub-Hookshot/4c8ef5e',
      'x-github-event': event,
      'x-github-delivery': overrides.deliveryId ?? randomUUID(),
      'x-hub-signature-256': signature(secret, body),
      'x-github-hook-id': '292430182',
      'x-github-hook-installation-target-id': String(installation ?? 79929171),
      'x-github-hook-installation-target-type': installation ? 'integration' : 'repository',
    },
  };
}

export async function send(baseUrl: string, delivery: SignedDelivery): Promise<{ status: number; body: unknown }> {
  const response = await fetch(`${baseUrl}/api/github/webhooks`, {
    method: 'POST',
    headers: delivery.headers,
    body: delivery.body,
  });
  const text = await response.text();
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch {
    // Keep the text.
  }
  return { status: response.status, body };
}

const ZERO = '0'.repeat(40);

/** A minimal real-shaped push to a branch (fields as in GitHub's push payload). */
export function pushPayload(options: {
  after: string;
  before?: string;
  branch?: string;
  repositoryId?: number;
  forced?: boolean;
}): Record<string, unknown> {
  return {
    ref: `refs/heads/${options.branch ?? 'main'}`,
    before: options.before ?? ZERO,
    after: options.after,
    created: options.before === undefined,
    deleted: false,
    forced: options.forced ?? false,
    base_ref: null,
    compare: 'https://github.com/acme/platform-gitops/compare/x',
    commits: [],
    head_commit: null,
    repository: {
      id: options.repositoryId ?? 4242,
      full_name: 'acme/platform-gitops',
      name: 'platform-gitops',
      clone_url: 'https://github.com/acme/platform-gitops.git',
      pushed_at: 1_700_000_000,
    },
    pusher: { name: 'octocat', email: null },
    sender: { login: 'octocat', id: 1 },
    installation: { id: 77, node_id: 'MDIzOkludGVncmF0aW9uSW5zdGFsbGF0aW9uNzc=' },
  };
}

/** Deterministic fake commit SHAs for tests that do not touch Git. */
export function fakeSha(n: number): string {
  return n.toString(16).padStart(40, 'a');
}
