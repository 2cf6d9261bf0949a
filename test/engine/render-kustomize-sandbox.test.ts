import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { networkInterfaces, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { KUBECTL_KUSTOMIZE, runKustomize } from '../../src/engine/run-kustomize.ts';
import { type NetworkSandbox, PROXY_ONLY_SANDBOX, resolveNetworkSandbox } from '../../src/engine/sandboxed-command.ts';

/**
 * The second wall: kustomize itself runs without a network. These call the lower-level runner directly,
 * so the reference check that normally refuses URLs first is bypassed on purpose.
 */

/** A non-loopback IPv4 address of this machine (Go sends loopback requests past any proxy). */
const externalAddress = Object.values(networkInterfaces())
  .flat()
  .find((a) => a && a.family === 'IPv4' && !a.internal)?.address;

const asRoot = process.getuid?.() === 0;
const defaultSandbox = await resolveNetworkSandbox();
/** Without a namespace only the proxy wall is left, and Go does not proxy loopback: that case needs one. */
const namespaced = defaultSandbox.wrapper.length > 0;

describe('kustomize runs without a network', () => {
  let server: Server;
  const requests: string[] = [];
  let root: string;
  let n = 0;
  beforeAll(async () => {
    server = createServer((req, res) => {
      requests.push(req.url ?? '');
      res.end('apiVersion: v1\nkind: ConfigMap\nmetadata: {name: fetched}\ndata: {secret: from-the-network}\n');
    });
    // Every address, so the same server answers on loopback and on the machine's own address.
    await new Promise<void>((resolve) => server.listen(0, '0.0.0.0', resolve));
    root = await mkdtemp(join(tmpdir(), 'plumbline-sandbox-'));
  });
  afterAll(async () => {
    await new Promise((resolve) => server.close(resolve));
    await rm(root, { recursive: true, force: true });
  });

  /** A kustomization that makes kustomize fetch from `host` in three ways: a resource, a patch, a generator file. */
  const hostileTree = async (host: string) => {
    const origin = `http://${host}:${(server.address() as AddressInfo).port}`;
    const dir = join(root, `tree-${n++}`);
    await mkdir(join(dir, 'c'), { recursive: true });
    await writeFile(
      join(dir, 'c', 'kustomization.yaml'),
      `resources: [${origin}/resource.yaml]\nconfigMapGenerator:\n  - name: leak\n    files: [creds=${origin}/latest/meta-data]\n`,
    );
    return { dir, origin };
  };
  const run = (dir: string, sandbox: NetworkSandbox) =>
    runKustomize(dir, 'c', { kustomize: KUBECTL_KUSTOMIZE, timeoutMs: 60_000, maxOutputBytes: 1024 * 1024, sandbox });

  it('the control: with no wall at all, the same kustomization does reach the server', async () => {
    const { dir } = await hostileTree('127.0.0.1');
    const before = requests.length;
    const result = await run(dir, { wrapper: [], env: {} });
    expect(requests.length).toBeGreaterThan(before);
    expect(result).toMatchObject({ ok: true, output: expect.stringContaining('from-the-network') });
  });

  (asRoot ? it : it.skip)('as root, kustomize gets a network namespace of its own', async () => {
    expect(defaultSandbox.wrapper).toEqual(['unshare', '--net', '--']);
  });

  (namespaced ? it : it.skip)(
    'by default, a URL to a loopback server is never requested, and the build fails saying why',
    async () => {
      const { dir, origin } = await hostileTree('127.0.0.1');
      const before = requests.length;
      const result = await run(dir, defaultSandbox);
      expect(requests.slice(before)).toEqual([]);
      expect(result).toMatchObject({ ok: false, reason: 'failed', message: expect.stringContaining(origin) });
      expect(result.ok ? '' : result.message).toMatch(/network is unreachable|connection refused/);
    },
  );

  (externalAddress ? it : it.skip)(
    'where no namespace can be made, the proxy wall stops requests to other hosts',
    async () => {
      const { dir, origin } = await hostileTree(externalAddress ?? '');
      const before = requests.length;
      const result = await run(dir, PROXY_ONLY_SANDBOX);
      expect(requests.slice(before)).toEqual([]);
      expect(result).toMatchObject({ ok: false, reason: 'failed', message: expect.stringContaining(origin) });
      expect(result.ok ? '' : result.message).toMatch(/proxyconnect tcp: .*connection refused/);
    },
  );

  it('a build that prints more than the limit is stopped and says so', async () => {
    const dir = join(root, `tree-${n++}`);
    await mkdir(join(dir, 'c'), { recursive: true });
    await writeFile(join(dir, 'c', 'data.txt'), 'x'.repeat(700 * 1024));
    await writeFile(
      join(dir, 'c', 'kustomization.yaml'),
      'configMapGenerator:\n  - {name: a, files: [data.txt]}\n  - {name: b, files: [data.txt]}\n',
    );
    expect(await run(dir, defaultSandbox)).toEqual({
      ok: false,
      reason: 'too-large',
      message: 'kustomize printed more than 1 MiB',
    });
  });
});
