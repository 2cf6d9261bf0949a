import { afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import type { CheckRunAnnotation } from '../../../dev/github-stand-in/github-stand-in.ts';
import { createSourceFixture, INSTALLATION_ID, type SourceFixture } from '../../helpers/source-fixture.ts';

const REPO = 'acme/x';
const CREATE_STATUS = 'POST /repos/{owner}/{repo}/statuses/{sha}';

interface Reply {
  readonly status: number;
  readonly body: Record<string, unknown>;
  readonly list: Record<string, unknown>[];
  readonly link: string | null;
}

function annotations(count: number, from = 1): CheckRunAnnotation[] {
  return Array.from({ length: count }, (_, i) => ({
    path: 'clusters/prod/app.yaml',
    start_line: from + i,
    end_line: from + i,
    annotation_level: 'failure' as const,
    message: `problem ${from + i}`,
  }));
}

describe('GitHub stand-in: commit statuses and check runs', () => {
  let fixture: SourceFixture;
  let token: string;
  let sha: string;

  async function api(method: string, path: string, body?: unknown, as = token): Promise<Reply> {
    const response = await fetch(`${fixture.github.apiUrl}${path}`, {
      method,
      headers: { authorization: `token ${as}`, 'content-type': 'application/json' },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    const text = await response.text();
    const parsed: unknown = text ? JSON.parse(text) : {};
    return {
      status: response.status,
      body: (Array.isArray(parsed) ? {} : parsed) as Reply['body'],
      list: (Array.isArray(parsed) ? parsed : []) as Record<string, unknown>[],
      link: response.headers.get('link'),
    };
  }

  beforeEach(async () => {
    fixture = await createSourceFixture(REPO);
    sha = await fixture.work.commit('first', { 'clusters/prod/app.yaml': 'kind: ConfigMap\n' });
    await fixture.work.push();
    token = (await fixture.remote()).token;
  });

  afterEach(async () => {
    // Every test that provokes a violation asserts and clears it: anything left is a surprise.
    expect(fixture.github.violations).toEqual([]);
    expect(fixture.github.unexpected).toEqual([]);
    await fixture.close();
  });

  it('creates statuses, defaulting the context, and lists them newest first', async () => {
    const first = await api('POST', `/repos/${REPO}/statuses/${sha}`, { state: 'pending', description: 'Syncing' });
    expect(first.status).toBe(201);
    expect(first.body).toMatchObject({
      id: expect.any(Number),
      node_id: expect.any(String),
      url: `${fixture.github.apiUrl}/repos/${REPO}/statuses/${sha}`,
      state: 'pending',
      description: 'Syncing',
      target_url: null,
      context: 'default',
      created_at: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/),
    });
    const second = await api('POST', `/repos/${REPO}/statuses/${sha}`, {
      state: 'success',
      description: 'Synced',
      target_url: 'https://plumbline.example/runs/1',
      context: 'plumbline/prod',
    });
    expect(second.status).toBe(201);

    const listed = await api('GET', `/repos/${REPO}/commits/${sha}/statuses`);
    expect(listed.status).toBe(200);
    expect(listed.list.map((status) => status.context)).toEqual(['plumbline/prod', 'default']);

    expect(fixture.github.statuses(REPO, sha).map((status) => status.state)).toEqual(['pending', 'success']);
    expect(fixture.github.latestStatus(REPO, sha, 'Plumbline/Prod')).toMatchObject({
      state: 'success',
      targetUrl: 'https://plumbline.example/runs/1',
    });
    expect(fixture.github.latestStatus(REPO, sha, 'other')).toBeUndefined();
  });

  it('pages the list as GitHub does, with a next link', async () => {
    for (const state of ['pending', 'failure', 'success']) {
      await api('POST', `/repos/${REPO}/statuses/${sha}`, { state });
    }
    const first = await api('GET', `/repos/${REPO}/commits/${sha}/statuses?per_page=2`);
    expect(first.list.map((status) => status.state)).toEqual(['success', 'failure']);
    const next = /^<([^>]+)>; rel="next"$/.exec(first.link ?? '')?.[1];
    expect(next).toBeDefined();
    const second = await api('GET', next!.slice(fixture.github.apiUrl.length));
    expect(second.list.map((status) => status.state)).toEqual(['pending']);
    expect(second.link).toBeNull();
  });

  it('refuses a description over 140 characters, as GitHub does', async () => {
    const accepted = await api('POST', `/repos/${REPO}/statuses/${sha}`, {
      state: 'success',
      description: 'a'.repeat(140),
    });
    expect(accepted.status).toBe(201);

    const refused = await api('POST', `/repos/${REPO}/statuses/${sha}`, {
      state: 'success',
      description: 'a'.repeat(141),
    });
    expect(refused.status).toBe(422);
    expect(refused.body).toMatchObject({
      message: 'Validation Failed',
      errors: [
        {
          resource: 'Status',
          code: 'custom',
          field: 'description',
          message: 'description is too long (maximum is 140 characters)',
        },
      ],
    });
    expect(fixture.github.violations).toEqual([expect.stringContaining('description is too long')]);
    fixture.github.violations.length = 0;
    expect(fixture.github.statuses(REPO, sha)).toHaveLength(1);
  });

  it('answers 422 once a SHA and context hold the maximum number of statuses', async () => {
    fixture.github.statusLimitPerContext = 3;
    for (let i = 0; i < 3; i++) {
      expect(
        (await api('POST', `/repos/${REPO}/statuses/${sha}`, { state: 'pending', context: 'plumbline' })).status,
      ).toBe(201);
    }
    // Contexts are case-insensitive, so this is the same context.
    const fourth = await api('POST', `/repos/${REPO}/statuses/${sha}`, { state: 'success', context: 'PLUMBLINE' });
    expect(fourth.status).toBe(422);
    expect(fourth.body).toEqual({
      message: 'Validation Failed',
      errors: [
        {
          resource: 'Status',
          code: 'custom',
          field: 'context',
          message: 'This SHA and context has reached the maximum number of statuses.',
        },
      ],
      documentation_url: 'https://docs.github.com/rest/commits/statuses#create-a-commit-status',
    });
    expect((await api('POST', `/repos/${REPO}/statuses/${sha}`, { state: 'success', context: 'other' })).status).toBe(
      201,
    );
  });

  it('answers 422 for a SHA the repository lacks and 404 for a repository the token cannot reach', async () => {
    const missing = 'f'.repeat(40);
    const unknown = await api('POST', `/repos/${REPO}/statuses/${missing}`, { state: 'success' });
    expect(unknown).toMatchObject({ status: 422, body: { message: `No commit found for SHA: ${missing}` } });

    await fixture.github.createRepository('other/y', INSTALLATION_ID + 1);
    expect((await api('POST', `/repos/other/y/statuses/${sha}`, { state: 'success' })).status).toBe(404);
    expect((await api('GET', `/repos/other/y/commits/${sha}/statuses`)).status).toBe(404);
    expect((await api('POST', `/repos/${REPO}/statuses/${sha}`, { state: 'success' }, 'ghs_forged')).status).toBe(404);
  });

  it('validates bodies against GitHub schema and records the violation', async () => {
    const invalid = await api('POST', `/repos/${REPO}/statuses/${sha}`, { state: 'done' });
    expect(invalid.status).toBe(422);
    expect(fixture.github.violations).toEqual([expect.stringMatching(/^POST \/repos\/\{owner\}.*\/state/)]);
    fixture.github.violations.length = 0;
    expect(fixture.github.statuses(REPO, sha)).toEqual([]);
  });

  it('still answers scripted responses ahead of the handlers', async () => {
    fixture.github.script(CREATE_STATUS, { status: 502, body: { message: 'Server Error' } });
    expect((await api('POST', `/repos/${REPO}/statuses/${sha}`, { state: 'success' })).status).toBe(502);
    expect((await api('POST', `/repos/${REPO}/statuses/${sha}`, { state: 'success' })).status).toBe(201);
    expect(fixture.github.statuses(REPO, sha)).toHaveLength(1);
  });

  it('creates a check run and appends annotations across updates', async () => {
    const created = await api('POST', `/repos/${REPO}/check-runs`, {
      name: 'plumbline/prod',
      head_sha: sha,
      external_id: 'job-1',
      output: { title: 'Syncing', summary: 'Applying 3 objects' },
    });
    expect(created.status).toBe(201);
    const id = created.body.id as number;
    expect(created.body).toMatchObject({
      head_sha: sha,
      name: 'plumbline/prod',
      status: 'queued',
      conclusion: null,
      external_id: 'job-1',
      started_at: expect.any(String),
      completed_at: null,
      output: { title: 'Syncing', summary: 'Applying 3 objects', text: null, annotations_count: 0 },
    });

    const firstBatch = await api('PATCH', `/repos/${REPO}/check-runs/${id}`, {
      status: 'in_progress',
      output: { title: 'Problems', summary: 'Found 60 problems', annotations: annotations(50) },
    });
    expect(firstBatch).toMatchObject({
      status: 200,
      body: { status: 'in_progress', output: { annotations_count: 50 } },
    });
    const secondBatch = await api('PATCH', `/repos/${REPO}/check-runs/${id}`, {
      conclusion: 'failure',
      output: { summary: 'Found 60 problems', text: 'details', annotations: annotations(10, 51) },
    });
    expect(secondBatch.status).toBe(200);
    expect(secondBatch.body).toMatchObject({
      status: 'completed',
      conclusion: 'failure',
      completed_at: expect.any(String),
      output: { title: 'Problems', text: 'details', annotations_count: 60 },
    });

    const [run, ...others] = fixture.github.checkRuns(REPO, sha);
    expect(others).toEqual([]);
    expect(run).toMatchObject({ id, status: 'completed', conclusion: 'failure', externalId: 'job-1' });
    expect(run!.annotations.map((annotation) => annotation.start_line)).toEqual(
      Array.from({ length: 60 }, (_, i) => i + 1),
    );
  });

  it('refuses 51 annotations in one request and a completed run without a conclusion', async () => {
    const tooMany = await api('POST', `/repos/${REPO}/check-runs`, {
      name: 'plumbline/prod',
      head_sha: sha,
      output: { title: 'Problems', summary: 'Too many', annotations: annotations(51) },
    });
    expect(tooMany.status).toBe(422);
    const noConclusion = await api('POST', `/repos/${REPO}/check-runs`, {
      name: 'plumbline/prod',
      head_sha: sha,
      status: 'completed',
    });
    expect(noConclusion.status).toBe(422);
    expect(fixture.github.violations).toEqual([
      expect.stringContaining('annotations'),
      expect.stringContaining('conclusion is required'),
    ]);
    fixture.github.violations.length = 0;
    expect(fixture.github.checkRuns(REPO, sha)).toEqual([]);
  });

  it('answers 422 for an unknown head SHA and 404 for a run of another repository', async () => {
    const unknown = await api('POST', `/repos/${REPO}/check-runs`, {
      name: 'plumbline/prod',
      head_sha: 'a'.repeat(40),
    });
    expect(unknown).toMatchObject({ status: 422, body: { message: `No commit found for SHA: ${'a'.repeat(40)}` } });

    const created = await api('POST', `/repos/${REPO}/check-runs`, { name: 'plumbline/prod', head_sha: sha });
    await fixture.github.createRepository('acme/z', INSTALLATION_ID);
    expect((await api('PATCH', `/repos/acme/z/check-runs/${created.body.id}`, { status: 'in_progress' })).status).toBe(
      404,
    );
    expect((await api('PATCH', `/repos/${REPO}/check-runs/999999`, { status: 'in_progress' })).status).toBe(404);
  });

  it('answers 403 when the installation lacks the checks permission', async () => {
    const created = await api('POST', `/repos/${REPO}/check-runs`, { name: 'plumbline/prod', head_sha: sha });
    fixture.github.checksPermission = false;
    const refused = await api('POST', `/repos/${REPO}/check-runs`, { name: 'plumbline/prod', head_sha: sha });
    expect(refused).toEqual({
      status: 403,
      body: {
        message: 'Resource not accessible by integration',
        documentation_url: 'https://docs.github.com/rest/checks/runs#create-a-check-run',
      },
      list: [],
      link: null,
    });
    const update = await api('PATCH', `/repos/${REPO}/check-runs/${created.body.id}`, { conclusion: 'success' });
    expect(update.status).toBe(403);
    expect(fixture.github.checkRuns(REPO, sha)).toMatchObject([{ status: 'queued', conclusion: null }]);
  });
});
