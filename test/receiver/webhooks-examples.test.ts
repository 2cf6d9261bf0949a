import { createRequire } from 'node:module';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { PlumblineJob } from '../../src/queue/jobs.ts';
import { testEnvironment } from '../helpers/environment.ts';
import { githubDelivery, send } from '../helpers/github-delivery.ts';
import { type ReceiverHarness, startReceiverHarness, WEBHOOK_SECRET } from '../helpers/receiver-harness.ts';

interface ExampleGroup {
  name: string;
  examples: Record<string, unknown>[];
}
const examples = createRequire(import.meta.url)('@octokit/webhooks-examples') as ExampleGroup[];
const cases = examples.flatMap((group) =>
  group.examples.map((payload, index) => ({ event: group.name, index, payload, action: String(payload.action ?? '') })),
);

/** What the product brief says each delivery must queue, written independently of the router. */
function expectedJobs(event: string, payload: Record<string, unknown>): { type: string; sha: string }[] {
  const action = payload.action;
  if (event === 'push') {
    const ref = String(payload.ref);
    const deleted = payload.deleted === true || /^0{40}$/.test(String(payload.after));
    return ref.startsWith('refs/heads/') && !deleted ? [{ type: 'sync', sha: String(payload.after) }] : [];
  }
  if (event === 'pull_request' && ['opened', 'synchronize', 'reopened'].includes(String(action))) {
    const pr = payload.pull_request as { head: { sha: string } };
    return [{ type: 'preview', sha: pr.head.sha }];
  }
  if ((event === 'check_run' || event === 'check_suite') && action === 'rerequested') {
    const check = payload[event] as { head_sha: string; pull_requests: unknown[] };
    const type = check.pull_requests.length > 0 ? 'preview' : 'sync';
    return Array.from({ length: Math.max(1, check.pull_requests.length) }, () => ({ type, sha: check.head_sha }));
  }
  return [];
}

/** 202 when the delivery changed something in Redis (jobs, cancelled previews, the repository set). */
function expectedStatus(event: string, payload: Record<string, unknown>, jobs: number): number {
  const action = String(payload.action);
  if (jobs > 0) return 202;
  if (event === 'pull_request' && action === 'closed') return 202;
  if (event === 'installation_repositories') return ['added', 'removed'].includes(action) ? 202 : 200;
  if (event === 'installation') {
    if (['created', 'deleted', 'suspend'].includes(action)) return 202;
    const listsRepositories = Array.isArray(payload.repositories);
    return ['unsuspend', 'new_permissions_accepted'].includes(action) && listsRepositories ? 202 : 200;
  }
  return 200;
}

function shaOf(job: PlumblineJob): string {
  return job.type === 'sync' ? job.after : job.headSha;
}

describe('every payload in @octokit/webhooks-examples, signed and sent over HTTP', () => {
  let harness: ReceiverHarness;

  beforeAll(async () => {
    // A long coalescing window keeps every queued job visible (delayed) while the test looks at it.
    harness = await startReceiverHarness(testEnvironment().redisUrl, { PLUMBLINE_PUSH_COALESCE_MS: '60000' });
  });
  afterAll(async () => {
    await harness.close();
  });

  it(`covers all ${cases.length} examples of ${examples.length} event types`, () => {
    expect(cases.length).toBeGreaterThan(300);
    expect(new Set(cases.map((c) => c.event)).size).toBeGreaterThan(50);
  });

  it.each(cases)('$event #$index ($action) queues exactly what it should', async ({ event, payload }) => {
    const response = await send(harness.baseUrl, githubDelivery(event, payload, WEBHOOK_SECRET));
    const expected = expectedJobs(event, payload);

    const jobs = [
      ...(await harness.queues.sync.getJobs(['delayed', 'waiting'])),
      ...(await harness.queues.preview.getJobs(['delayed', 'waiting'])),
    ].map((job) => job.data as PlumblineJob);
    await Promise.all([
      harness.queues.sync.obliterate({ force: true }),
      harness.queues.preview.obliterate({ force: true }),
    ]);

    expect(response.status).toBe(expectedStatus(event, payload, expected.length));
    expect(jobs.map((job) => ({ type: job.type, sha: shaOf(job) }))).toEqual(expected);
  });
});
