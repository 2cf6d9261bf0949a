import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { Redis } from 'ioredis';
import { type Browser, chromium } from 'playwright-core';
import { parseClusterRegistry } from '../../src/clusters/cluster-registry.ts';
import { packageRoot } from '../../src/support/package-root.ts';
import { processSyncJob } from '../../workers/process-sync-job.ts';
import { testEnvironment, uniqueName } from '../helpers/environment.ts';
import { type ReceiverHarness, startReceiverHarness } from '../helpers/receiver-harness.ts';
import { createSourceFixture, pushJob, type SourceFixture } from '../helpers/source-fixture.ts';
import { workerDependencies } from '../helpers/worker-deps.ts';

const env = testEnvironment();
const CHROMIUM = '/usr/bin/chromium';
const ARTIFACTS = join(packageRoot(), 'test-artifacts');
const TOKEN = 'browser-status-token-0c5f1e';

describe('the status page in a real browser, after a real reconcile', () => {
  let f: SourceFixture;
  let redis: Redis;
  let harness: ReceiverHarness;
  /** The same clusters behind a token. */
  let guarded: ReceiverHarness;
  /** Another site (localhost, where the receivers are on 127.0.0.1) linking to the status page, as GitHub does. */
  let elsewhere: Server;
  let browser: Browser;
  let sha: string;
  const cluster = uniqueName('browser');
  const namespace = uniqueName('browser');

  beforeAll(async () => {
    if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: apt-get install chromium (.ci/run does)`);
    harness = await startReceiverHarness(env.redisUrl);
    f = await createSourceFixture();
    redis = new Redis(env.redisUrl, { maxRetriesPerRequest: null });
    sha = await f.work.commit('app', {
      'clusters/local/dev/app.yaml': `apiVersion: v1\nkind: Namespace\nmetadata:\n  name: ${namespace}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\n  namespace: ${namespace}\ndata:\n  mode: strict\n`,
    });
    await f.work.push();
    const registry = parseClusterRegistry(
      `clusters:\n  - {name: ${cluster}, repo: ${f.repository.fullName}, path: clusters/local/dev, kubeconfig: ${env.kubeconfig}}\n`,
    );
    const result = await processSyncJob(
      pushJob(f, sha),
      workerDependencies(f, { registry, redis, prefix: harness.prefix }),
    );
    expect(result.outcomes).toEqual([expect.objectContaining({ status: 'applied' })]);
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: [
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
    });
    await mkdir(ARTIFACTS, { recursive: true });
    guarded = await startReceiverHarness(env.redisUrl, {
      PLUMBLINE_QUEUE_PREFIX: harness.prefix,
      PLUMBLINE_STATUS_PAGE: 'token',
      PLUMBLINE_STATUS_PAGE_TOKEN: TOKEN,
    });
    elsewhere = createServer((_req, res) => {
      res.setHeader('content-type', 'text/html');
      res.end(`<!doctype html><a href="${guarded.baseUrl}/clusters/${cluster}">plumbline/${cluster}</a>`);
    });
    await new Promise<void>((resolve) => elsewhere.listen(0, '127.0.0.1', resolve));
  }, 120_000);
  afterAll(async () => {
    await browser?.close();
    await harness?.close();
    await guarded?.close();
    await new Promise((resolve) => elsewhere?.close(resolve));
    redis?.disconnect();
    await f?.close();
  });

  it('shows the cluster with the commit it applied, and links to a page of its reconciles', async () => {
    const page = await browser.newPage({ viewport: { width: 1280, height: 720 } });
    await page.goto(`${harness.baseUrl}/`);
    expect(await page.getAttribute('html', 'lang')).toBe('en');
    const row = page.locator(`#cluster-${cluster}`);
    await expect(row.textContent()).resolves.toContain(cluster);
    // biome-ignore lint/performance/useDomNodeTextContent: the text as rendered is what a reader sees
    const text = (await row.innerText()).replace(/\s+/g, ' ');
    expect(text).toContain(sha.slice(0, 7));
    expect(text).toMatch(/applied/);
    expect(text).toMatch(/2 created in [\d.]+ s/);
    // Column headers are real headers, and every link says where it goes.
    expect(await page.locator('thead th[scope="col"]').count()).toBe(7);
    for (const link of await page.locator('a').all()) {
      // biome-ignore lint/performance/useDomNodeTextContent: a link's rendered text is its accessible name here
      expect((await link.innerText()).trim()).not.toBe('');
    }
    await page.screenshot({ path: join(ARTIFACTS, 'status-page.png'), fullPage: true });

    await page.getByRole('link', { name: cluster }).click();
    await page.waitForURL(`**/clusters/${cluster}`);
    const recent = page.locator('table', { hasText: 'Recent reconciles' });
    // biome-ignore lint/performance/useDomNodeTextContent: the text as rendered is what a reader sees
    expect((await recent.innerText()).replace(/\s+/g, ' ')).toMatch(
      new RegExp(`${sha.slice(0, 7)} ✓ applied 2 created`),
    );
    await page.screenshot({ path: join(ARTIFACTS, 'cluster-page.png'), fullPage: true });
    expect(existsSync(join(ARTIFACTS, 'status-page.png'))).toBe(true);
  });

  it('behind a token: signs in with the form, then a link from another site (as from GitHub) opens the page', async () => {
    const context = await browser.newContext({ viewport: { width: 1280, height: 720 } });
    const page = await context.newPage();
    const answer = await page.goto(`${guarded.baseUrl}/clusters/${cluster}`);
    expect(answer?.status()).toBe(401);
    await page.getByLabel('Token').fill(TOKEN);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.waitForURL(`${guarded.baseUrl}/clusters/${cluster}`);
    await expect(page.locator('table', { hasText: 'Recent reconciles' }).textContent()).resolves.toContain(
      sha.slice(0, 7),
    );
    const [cookie] = await context.cookies(guarded.baseUrl);
    expect(cookie).toMatchObject({ name: 'plumbline_status', httpOnly: true, sameSite: 'Strict' });
    expect(cookie?.value).not.toContain(TOKEN);

    // The browser holds a SameSite=Strict cookie back on a cross-site arrival; the page reloads itself
    // once, same-site, and the reader sees it without signing in again.
    const { port } = elsewhere.address() as { port: number };
    await page.goto(`http://localhost:${port}/`);
    await page.getByRole('link', { name: `plumbline/${cluster}` }).click();
    await page.waitForURL(new RegExp(`/clusters/${cluster}\\?signin=1$`));
    await expect(page.locator('table', { hasText: 'Recent reconciles' }).textContent()).resolves.toContain(
      sha.slice(0, 7),
    );
    await page.screenshot({ path: join(ARTIFACTS, 'cluster-page-signed-in.png'), fullPage: true });

    // A reader without the cookie gets the form after that one reload, not a loop.
    const stranger = await browser.newContext();
    const visitor = await stranger.newPage();
    await visitor.goto(`http://localhost:${port}/`);
    await visitor.getByRole('link', { name: `plumbline/${cluster}` }).click();
    await visitor.waitForURL(new RegExp(`/clusters/${cluster}\\?signin=1$`));
    await expect(visitor.getByLabel('Token').isVisible()).resolves.toBe(true);
    await context.close();
    await stranger.close();
  });
});
