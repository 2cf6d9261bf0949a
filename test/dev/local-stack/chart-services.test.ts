import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { parse } from 'yaml';
import {
  chartServicesFromEnv,
  loginToRegistry,
  publishToChartRepository,
  pushChartToRegistry,
  runHelm,
  withHelmHome,
} from '../../../dev/local-stack/charts.ts';
import { uniqueName } from '../../helpers/environment.ts';

const services = chartServicesFromEnv();
const basic = (user: string, password: string) => `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;

let scratch: string;

/** The smallest chart: one ConfigMap, so a pulled chart can be told apart by its name and version. */
async function writeChart(name: string, version: string): Promise<string> {
  const dir = join(scratch, `${name}-${version}`);
  await mkdir(join(dir, 'templates'), { recursive: true });
  await writeFile(join(dir, 'Chart.yaml'), `apiVersion: v2\nname: ${name}\nversion: ${version}\ntype: application\n`);
  await writeFile(
    join(dir, 'templates', 'configmap.yaml'),
    'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}\ndata:\n  chart: {{ .Chart.Name }}\n',
  );
  return dir;
}

beforeAll(async () => {
  scratch = await mkdtemp(join(tmpdir(), 'chart-services-'));
});
afterAll(async () => {
  await rm(scratch, { recursive: true, force: true });
});

describe('Helm 4 of the local stack', () => {
  it('reports the pinned version v4.3.1', async () => {
    const result = await runHelm(services.helm, ['version', '--template', '{{.Version}}'], {});
    expect(result).toMatchObject({ code: 0, stdout: 'v4.3.1' });
  });
});

describe('the OCI registry of the local stack', () => {
  it('answers /v2/ with 401 without credentials and 200 with them', async () => {
    const url = `http://${services.registry.host}/v2/`;
    expect((await fetch(url)).status).toBe(401);
    const wrong = await fetch(url, { headers: { authorization: basic(services.registry.username, 'wrong') } });
    expect(wrong.status).toBe(401);
    const { username, password } = services.registry;
    expect((await fetch(url, { headers: { authorization: basic(username, password) } })).status).toBe(200);
  });

  it('serves a chart pushed with helm push to helm pull oci://, with the credentials only', async () => {
    const name = uniqueName('pushed');
    const pushed = await pushChartToRegistry(await writeChart(name, '1.2.3'), `tests/${name}`);
    expect(pushed).toEqual({
      repository: `oci://${services.registry.host}/tests/${name}`,
      chartUrl: `oci://${services.registry.host}/tests/${name}/${name}`,
      name,
      version: '1.2.3',
      digest: expect.stringMatching(/^sha256:[0-9a-f]{64}$/),
    });
    await withHelmHome(async (env) => {
      const into = join(scratch, `pulled-${name}`);
      await mkdir(into);
      const pull = ['pull', pushed.chartUrl, '--version', '1.2.3', '--plain-http', '--destination', into];
      const anonymous = await runHelm(services.helm, pull, env);
      expect(anonymous.code).not.toBe(0);
      expect(anonymous.stderr).toMatch(/401|unauthorized|basic credential not found/i);

      await loginToRegistry(services, env);
      const pulled = await runHelm(services.helm, pull, env);
      expect(pulled.code).toBe(0);
      expect(`${pulled.stdout}${pulled.stderr}`).toContain(`Digest: ${pushed.digest}`);
      expect(await readdir(into)).toEqual([`${name}-1.2.3.tgz`]);
      const shown = await runHelm(services.helm, ['show', 'chart', join(into, `${name}-1.2.3.tgz`)], env);
      expect(parse(shown.stdout)).toMatchObject({ name, version: '1.2.3' });
    });
  });
});

describe('the chart repository of the local stack', () => {
  it('serves index.yaml only with its credentials', async () => {
    const url = `${services.repository.url}/index.yaml`;
    expect((await fetch(url)).status).toBe(401);
    const wrong = await fetch(url, { headers: { authorization: basic(services.repository.username, 'wrong') } });
    expect(wrong.status).toBe(401);
    const { username, password } = services.repository;
    const ok = await fetch(url, { headers: { authorization: basic(username, password) } });
    expect(ok.status).toBe(200);
    expect(parse(await ok.text())).toMatchObject({ apiVersion: 'v1' });
  });

  it('lists what publishToChartRepository publishes, with its digest, for helm to pull with the credentials', async () => {
    const name = uniqueName('published');
    // Two publications at once: the index must list both.
    const [first, second] = await Promise.all([
      publishToChartRepository(await writeChart(name, '0.1.0')),
      publishToChartRepository(await writeChart(`${name}-b`, '2.0.0')),
    ]);
    expect(first).toMatchObject({ repository: services.repository.url, name, version: '0.1.0' });
    expect(second).toMatchObject({ name: `${name}-b`, version: '2.0.0' });
    const { username, password } = services.repository;
    const response = await fetch(`${services.repository.url}/index.yaml`, {
      headers: { authorization: basic(username, password) },
    });
    const index = parse(await response.text()) as { entries: Record<string, { version: string; digest: string }[]> };
    expect(index.entries[name]).toEqual([expect.objectContaining({ version: '0.1.0', digest: first.digest })]);
    expect(index.entries[`${name}-b`]).toEqual([expect.objectContaining({ version: '2.0.0', digest: second.digest })]);

    await withHelmHome(async (env) => {
      const into = join(scratch, `fetched-${name}`);
      await mkdir(into);
      const pull = ['pull', name, '--repo', services.repository.url, '--version', '0.1.0', '--destination', into];
      const anonymous = await runHelm(services.helm, pull, env);
      expect(anonymous.code).not.toBe(0);
      expect(anonymous.stderr).toMatch(/401/);
      const pulled = await runHelm(services.helm, [...pull, '--username', username, '--password', password], env);
      expect(pulled.stderr).toBe('');
      expect(pulled.code).toBe(0);
      expect(await readdir(into)).toEqual([`${name}-0.1.0.tgz`]);
    });
  });
});
