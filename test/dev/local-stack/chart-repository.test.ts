import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import type { Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import {
  chartRepositoryServer,
  fileInside,
  hasCredentials,
  listenOnLoopback,
} from '../../../dev/local-stack/chart-repository.ts';

const credentials = { username: 'plumbline', password: 's3cret' };
const basic = (user: string, password: string) => `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;

describe('basic auth of the chart repository', () => {
  it('accepts exactly the configured user and password', () => {
    expect(hasCredentials(basic('plumbline', 's3cret'), credentials)).toBe(true);
    expect(hasCredentials(basic('plumbline', 's3cret!'), credentials)).toBe(false);
    expect(hasCredentials(basic('other', 's3cret'), credentials)).toBe(false);
    expect(hasCredentials('Bearer s3cret', credentials)).toBe(false);
    expect(hasCredentials(undefined, credentials)).toBe(false);
  });
});

describe('paths the chart repository serves', () => {
  it('stays inside its folder', () => {
    expect(fileInside('/srv/charts', '/index.yaml')).toBe('/srv/charts/index.yaml');
    expect(fileInside('/srv/charts', '/a/b-1.0.0.tgz?x=1')).toBe('/srv/charts/a/b-1.0.0.tgz');
    expect(fileInside('/srv/charts', '/../secret')).toBeUndefined();
    expect(fileInside('/srv/charts', '/%2e%2e/secret')).toBeUndefined();
    expect(fileInside('/srv/charts', '/..%2fcharts-other/x')).toBeUndefined();
    expect(fileInside('/srv/charts', '/%zz')).toBeUndefined();
  });
});

describe('the chart repository server', () => {
  let dir: string;
  let server: Server;
  let url: string;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'chart-repo-'));
    await mkdir(join(dir, 'served'));
    await writeFile(join(dir, 'served', 'index.yaml'), 'apiVersion: v1\nentries: {}\n');
    await writeFile(join(dir, 'outside.txt'), 'not served');
    server = chartRepositoryServer(join(dir, 'served'), credentials);
    url = `http://127.0.0.1:${await listenOnLoopback(server, 0)}`;
  });
  afterAll(async () => {
    await new Promise((resolve) => server.close(resolve));
    await rm(dir, { recursive: true, force: true });
  });

  it('asks for credentials, then serves index.yaml as YAML', async () => {
    const anonymous = await fetch(`${url}/index.yaml`);
    expect(anonymous.status).toBe(401);
    expect(anonymous.headers.get('www-authenticate')).toMatch(/^Basic realm=/);
    const wrong = await fetch(`${url}/index.yaml`, { headers: { authorization: basic('plumbline', 'nope') } });
    expect(wrong.status).toBe(401);
    const ok = await fetch(`${url}/index.yaml`, { headers: { authorization: basic('plumbline', 's3cret') } });
    expect(ok.status).toBe(200);
    expect(ok.headers.get('content-type')).toBe('application/x-yaml');
    expect(await ok.text()).toBe('apiVersion: v1\nentries: {}\n');
  });

  it('answers 404 for missing files and for paths outside its folder, 405 for writes', async () => {
    const headers = { authorization: basic('plumbline', 's3cret') };
    expect((await fetch(`${url}/missing-1.0.0.tgz`, { headers })).status).toBe(404);
    expect((await fetch(`${url}/%2e%2e/outside.txt`, { headers })).status).toBe(404);
    expect((await fetch(`${url}/`, { headers })).status).toBe(404);
    expect((await fetch(`${url}/index.yaml`, { method: 'PUT', body: 'x', headers })).status).toBe(405);
  });
});
