import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { Redis } from 'ioredis';
import { createClusterStateStore } from '../../src/status/cluster-state.ts';
import { testEnvironment } from '../helpers/environment.ts';
import { fakeSha, githubDelivery, pushPayload, send } from '../helpers/github-delivery.ts';
import { type ReceiverHarness, startReceiverHarness, WEBHOOK_SECRET } from '../helpers/receiver-harness.ts';

const env = testEnvironment();
const TOKEN = 'status-page-token-7d41c0a9';
const ROUTES = ['/', '/clusters/onprem-a', '/api/clusters', '/api/clusters/onprem-a'];

/**
 * What workers record when things go wrong: transport errors naming the apiserver, and (as a second
 * wall) addresses in text that is otherwise fine to show.
 */
const SECRET_TEXT = {
  errorDescription: 'not applied after 5 attempt(s): connect ECONNREFUSED 10.96.0.1:443',
  failedDescription: '1 rejected (apps/db.yaml:3): request to https://10.20.30.40:6443/apis/apps/v1 failed',
  supersededDescription: 'not applied: kube-apiserver.corp.internal:6443 reported a newer commit',
  resync: 'dial tcp [fd00::1]:6443 via kubernetes.default.svc',
  repoUrl: 'https://ghe.corp.internal/acme/platform-gitops',
};
const HIDDEN = [
  '10.96.0.1',
  'ECONNREFUSED',
  '10.20.30.40',
  '6443',
  'corp.internal',
  'fd00::1',
  'kubernetes.default.svc',
  'ghe.corp',
];

const base = {
  name: 'onprem-a',
  repo: 'acme/platform-gitops',
  branch: 'main',
  path: 'clusters/onprem/a',
  suspended: false,
  selfHeal: true,
  intervalMs: 300_000,
};

async function seed(redis: Redis, prefix: string): Promise<void> {
  const store = createClusterStateStore(redis, prefix);
  const at = (ago: number) => new Date(Date.now() - ago).toISOString();
  const reconciles = [
    { sha: fakeSha(1), status: 'applied', description: '2 created in 0.4 s', at: at(400_000) },
    { sha: fakeSha(2), status: 'failed', description: SECRET_TEXT.failedDescription, at: at(300_000) },
    { sha: fakeSha(3), status: 'superseded', description: SECRET_TEXT.supersededDescription, at: at(200_000) },
    { sha: fakeSha(4), status: 'error', description: SECRET_TEXT.errorDescription, at: at(100_000) },
  ];
  for (const reconciled of reconciles) await store.update(base, { reconciled, lastSync: reconciled });
  await store.update(base, {
    repoUrl: SECRET_TEXT.repoUrl,
    appliedRevision: fakeSha(1),
    lastResyncAt: at(10_000),
    lastResyncResult: SECRET_TEXT.resync,
  });
}

const everything = async (harness: ReceiverHarness, headers: Record<string, string> = {}) => {
  const answers = await Promise.all(
    ROUTES.map(async (route) => {
      const response = await fetch(`${harness.baseUrl}${route}`, { headers, redirect: 'manual' });
      return { route, status: response.status, text: await response.text() };
    }),
  );
  return answers;
};

/** The webhook, health and metrics endpoints answer whatever the status page mode. */
async function expectOperationsServed(harness: ReceiverHarness, repositoryId: number): Promise<void> {
  const push = githubDelivery('push', pushPayload({ after: fakeSha(repositoryId), repositoryId }), WEBHOOK_SECRET);
  expect((await send(harness.baseUrl, push)).status).toBe(202);
  expect((await fetch(`${harness.baseUrl}/healthz`)).status).toBe(200);
  expect((await fetch(`${harness.baseUrl}/readyz`)).status).toBe(200);
  expect((await fetch(`${harness.baseUrl}/metrics`)).status).toBe(200);
}

describe('status page modes (PLUMBLINE_STATUS_PAGE)', () => {
  let redis: Redis;
  const harnesses: ReceiverHarness[] = [];
  const start = async (mode: string, extra: Record<string, string> = {}) => {
    const harness = await startReceiverHarness(env.redisUrl, { PLUMBLINE_STATUS_PAGE: mode, ...extra });
    harnesses.push(harness);
    await seed(redis, harness.prefix);
    return harness;
  };

  beforeAll(() => {
    redis = new Redis(env.redisUrl);
  });
  afterAll(async () => {
    await Promise.all(harnesses.map((h) => h.close()));
    redis.disconnect();
  });

  describe('off', () => {
    it('serves none of the status routes (404), and still takes webhooks and answers health and metrics', async () => {
      const harness = await start('off');
      expect((await everything(harness)).map((a) => [a.route, a.status])).toEqual(ROUTES.map((r) => [r, 404]));
      await expectOperationsServed(harness, 9301);
    });
  });

  describe('public', () => {
    let harness: ReceiverHarness;
    beforeAll(async () => {
      harness = await start('public');
    });

    it('shows failures and errors by their status word only, and no internal address anywhere', async () => {
      const answers = await everything(harness);
      expect(answers.map((a) => a.status)).toEqual([200, 200, 200, 200]);
      for (const answer of answers) {
        expect({ route: answer.route, shown: HIDDEN.filter((text) => answer.text.includes(text)) }).toEqual({
          route: answer.route,
          shown: [],
        });
      }
      const page = answers.find((a) => a.route === '/clusters/onprem-a')!.text;
      expect(page).toMatch(/✗<\/span> error<\/span>/);
      expect(page).toMatch(/✗<\/span> failed<\/span>/);
      // What is not an error stays readable.
      expect(page).toContain('2 created in 0.4 s');
      expect(page).toContain('not applied: [address hidden] reported a newer commit');
      const api = JSON.parse(answers.find((a) => a.route === '/api/clusters/onprem-a')!.text) as {
        lastSync: { status: string; description: string };
        recent: { status: string; description: string }[];
        repoUrl?: string;
      };
      expect(api.lastSync).toMatchObject({ status: 'error', description: '' });
      expect(api.recent.map((r) => r.status)).toEqual(['error', 'superseded', 'failed', 'applied']);
      expect(api.repoUrl).toBeUndefined();
    });

    it('keeps commit links to github.com', async () => {
      const store = createClusterStateStore(redis, harness.prefix);
      await store.update(base, { repoUrl: 'https://github.com/acme/platform-gitops' });
      const html = await (await fetch(`${harness.baseUrl}/clusters/onprem-a`)).text();
      expect(html).toContain(`href="https://github.com/acme/platform-gitops/commit/${fakeSha(1)}"`);
    });
  });

  describe('token', () => {
    let harness: ReceiverHarness;
    beforeAll(async () => {
      harness = await start('token', { PLUMBLINE_STATUS_PAGE_TOKEN: TOKEN });
    });

    it('answers 401 without the token or with a wrong one: a sign-in form for pages, JSON for the API', async () => {
      for (const headers of [{}, { authorization: 'Bearer not-the-token-at-all' }, { cookie: 'plumbline_status=x' }]) {
        const answers = await everything(harness, headers);
        expect(answers.map((a) => a.status)).toEqual([401, 401, 401, 401]);
        for (const answer of answers) expect(HIDDEN.filter((text) => answer.text.includes(text))).toEqual([]);
        expect(answers[0]!.text).toContain('<form method="post" action="/signin">');
        expect(JSON.parse(answers[2]!.text)).toEqual({
          error: 'this status page needs its token: Authorization: Bearer <token>',
        });
      }
      await expectOperationsServed(harness, 9302);
    });

    it('shows everything to a bearer of the token, privately', async () => {
      const answers = await everything(harness, { authorization: `Bearer ${TOKEN}` });
      expect(answers.map((a) => a.status)).toEqual([200, 200, 200, 200]);
      const page = answers.find((a) => a.route === '/clusters/onprem-a')!.text;
      expect(page).toContain(SECRET_TEXT.errorDescription);
      expect(page).toContain('1 rejected (apps/db.yaml:3)');
      const response = await fetch(`${harness.baseUrl}/api/clusters`, {
        headers: { authorization: `Bearer ${TOKEN}` },
      });
      expect(response.headers.get('cache-control')).toBe('no-store');
    });

    it('trades ?token= for an HttpOnly, SameSite=Strict cookie and sends the reader on without the token', async () => {
      const response = await fetch(`${harness.baseUrl}/clusters/onprem-a?refresh=off&token=${TOKEN}`, {
        redirect: 'manual',
      });
      expect(response.status).toBe(303);
      expect(response.headers.get('location')).toBe('/clusters/onprem-a?refresh=off');
      const cookie = response.headers.get('set-cookie') ?? '';
      expect(cookie).toMatch(/^plumbline_status=[\w-]+; Path=\/; HttpOnly; SameSite=Strict; Max-Age=\d+$/);
      expect(cookie).not.toContain(TOKEN);
      const value = cookie.split(';')[0]!;
      const answers = await everything(harness, { cookie: value });
      expect(answers.map((a) => a.status)).toEqual([200, 200, 200, 200]);
      expect(answers[1]!.text).toContain(SECRET_TEXT.errorDescription);

      const wrong = await fetch(`${harness.baseUrl}/?token=not-the-token-at-all`, { redirect: 'manual' });
      expect(wrong.status).toBe(401);
      expect(wrong.headers.get('set-cookie')).toBeNull();
    });

    it('signs in through the form, and only ever sends the reader to a status page afterwards', async () => {
      const post = (form: Record<string, string>) =>
        fetch(`${harness.baseUrl}/signin`, {
          method: 'POST',
          headers: { 'content-type': 'application/x-www-form-urlencoded' },
          body: new URLSearchParams(form).toString(),
          redirect: 'manual',
        });
      const good = await post({ token: TOKEN, next: '/clusters/onprem-a' });
      expect(good.status).toBe(303);
      expect(good.headers.get('location')).toBe('/clusters/onprem-a');
      expect(good.headers.get('set-cookie')).toMatch(/^plumbline_status=[\w-]+; Path=\/; HttpOnly; SameSite=Strict/);
      const elsewhere = await post({ token: TOKEN, next: '//evil.example/phish' });
      expect(elsewhere.headers.get('location')).toBe('/');
      const bad = await post({ token: 'not-the-token-at-all', next: '/' });
      expect(bad.status).toBe(401);
      expect(bad.headers.get('set-cookie')).toBeNull();
      expect(await bad.text()).toContain('That token is not the right one.');
    });
  });
});
