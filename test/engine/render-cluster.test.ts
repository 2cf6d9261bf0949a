import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { objectRef } from '../../src/engine/manifest.ts';
import { KUBECTL_KUSTOMIZE, renderCluster } from '../../src/engine/render-cluster.ts';
import { checkSecrets } from '../../src/engine/secrets-gate.ts';
import { packageRoot } from '../../src/support/package-root.ts';

const options = { kustomize: KUBECTL_KUSTOMIZE, timeoutMs: 60_000 };
const portefaix = join(packageRoot(), 'test', 'fixtures', 'repositories', 'portefaix');

/**
 * Scratch trees for one describe block, removed after it: `tree(files)` writes a fresh folder with the
 * given files and returns it. Call inside `describe` (it registers the block's hooks).
 */
function scratchTrees(prefix: string): (files: Record<string, string>) => Promise<string> {
  let root = '';
  let n = 0;
  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), prefix));
  });
  afterAll(async () => {
    await rm(root, { recursive: true, force: true });
  });
  return async (files) => {
    const dir = join(root, `tree-${n++}`);
    for (const [path, content] of Object.entries(files)) {
      await mkdir(dirname(join(dir, path)), { recursive: true });
      await writeFile(join(dir, path), content);
    }
    return dir;
  };
}

describe('rendering a cluster folder', () => {
  const tree = scratchTrees('plumbline-render-');

  it('builds a kustomization with the real kustomize, following shared stacks, apps and components', async () => {
    const result = await renderCluster(portefaix, 'clusters/gcp/production', options);
    expect(result.ok).toBe(true);
    if (!result.ok) return;
    expect(result.renderer).toBe('kustomize');
    expect(result.objects.map((o) => objectRef(o.manifest)).sort()).toEqual([
      'ConfigMap/monitoring/grafana-settings',
      'Deployment/monitoring/prometheus',
      'Deployment/podinfo/podinfo',
      'Namespace/monitoring',
      'Namespace/podinfo',
    ]);
    const podinfo = result.objects.find(
      (o) => o.manifest.metadata.name === 'podinfo' && o.manifest.kind === 'Deployment',
    );
    expect(podinfo?.manifest.spec).toMatchObject({ replicas: 3 });
    // kustomize's output is traced back to the file a person edits.
    expect(podinfo?.source).toEqual({ file: 'apps/podinfo/deployment.yaml', line: 1 });
  });

  it('reads a plain-YAML folder recursively, with file and line for every object', async () => {
    const result = await renderCluster(portefaix, 'clusters/homelab/dev', options);
    expect(result).toMatchObject({
      ok: true,
      renderer: 'plain',
      objects: [
        {
          manifest: { kind: 'ConfigMap', metadata: { name: 'homelab' } },
          source: { file: 'clusters/homelab/dev/configmap.yaml', line: 1 },
        },
        {
          manifest: { metadata: { name: 'homelab-extra' } },
          source: { file: 'clusters/homelab/dev/sub/other.yaml', line: 1 },
        },
      ],
    });
  });

  it('parses YAML 1.1 as Kubernetes does: 0755 is the octal mode 493', async () => {
    const dir = await tree({
      'c/cm.yaml':
        'apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  volumes:\n    - name: v\n      configMap: {name: x, defaultMode: 0755}\n',
    });
    const result = await renderCluster(dir, 'c', options);
    expect(result.ok && result.objects[0]?.manifest.spec).toEqual({
      volumes: [{ name: 'v', configMap: { name: 'x', defaultMode: 493 } }],
    });
  });

  it('expands List documents into their items', async () => {
    const dir = await tree({
      'c/list.yaml':
        'apiVersion: v1\nkind: ConfigMapList\nitems:\n  - {apiVersion: v1, kind: ConfigMap, metadata: {name: a}}\n  - {apiVersion: v1, kind: ConfigMap, metadata: {name: b}}\n',
    });
    const result = await renderCluster(dir, 'c', options);
    expect(result.ok && result.objects.map((o) => o.manifest.metadata.name)).toEqual(['a', 'b']);
  });

  it('maps invalid YAML and incomplete objects to their file and line', async () => {
    const dir = await tree({
      'c/a.yaml':
        'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: ok}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  labels: {a: b}\n',
      'c/b.yaml': 'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x\n',
    });
    const result = await renderCluster(dir, 'c', options);
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.problems).toEqual([
      {
        message: 'a ConfigMap has no metadata.name (generateName cannot be applied declaratively)',
        source: { file: 'c/a.yaml', line: 5 },
      },
      { message: expect.stringMatching(/^invalid YAML: /), source: { file: 'c/b.yaml', line: expect.any(Number) } },
    ]);
  });

  it('refuses two objects with the same identity', async () => {
    const cm = 'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: same, namespace: team}\n';
    const result = await renderCluster(await tree({ 'c/a.yaml': cm, 'c/b.yaml': cm }), 'c', options);
    expect(result).toEqual({
      ok: false,
      problems: [
        {
          message: 'ConfigMap/team/same is defined twice (first defined in c/a.yaml:1)',
          source: { file: 'c/b.yaml', line: 1 },
          object: 'ConfigMap/team/same',
        },
      ],
    });
  });

  it('refuses remote bases before running kustomize, naming the kustomization', async () => {
    const dir = await tree({ 'c/kustomization.yaml': 'resources:\n  - https://github.com/acme/remote//base?ref=v1\n' });
    expect(await renderCluster(dir, 'c', options)).toEqual({
      ok: false,
      problems: [
        {
          message:
            'remote base https://github.com/acme/remote//base?ref=v1 is not allowed: vendor it into the repository',
          source: { file: 'c/kustomization.yaml', line: 2 },
        },
      ],
    });
  });

  it.each([
    'git::https://evil.example/x/y//base',
    'deploy@git.example.com:org/repo.git//base',
    'GitHub.com/acme/remote/base',
    'ssh://git@example.com/org/repo',
    'missing-folder',
  ])('refuses %s before kustomize could fetch it', async (reference) => {
    const dir = await tree({ 'c/kustomization.yaml': `resources:\n  - ${reference}\n` });
    const result = await renderCluster(dir, 'c', options);
    expect(result).toMatchObject({
      ok: false,
      problems: [
        {
          message: expect.stringMatching(/not allowed|not a file or folder inside the repository/),
          source: { file: 'c/kustomization.yaml' },
        },
      ],
    });
  });

  it('renders a cluster whose folder is the repository root', async () => {
    const dir = await tree({
      'kustomization.yaml': 'resources: [cm.yaml]\n',
      'cm.yaml': 'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: root}\n',
    });
    expect(await renderCluster(dir, '', options)).toMatchObject({
      ok: true,
      renderer: 'kustomize',
      objects: [{ manifest: { metadata: { name: 'root' } } }],
    });
    expect(await renderCluster(dir, '.', options)).toMatchObject({ ok: true, renderer: 'kustomize' });
  });

  it('refuses references and symlinks that leave the repository', async () => {
    const up = await renderCluster(
      await tree({ 'c/kustomization.yaml': 'resources: [../../../../../etc]\n' }),
      'c',
      options,
    );
    expect(up).toMatchObject({ ok: false, problems: [{ message: '../../../../../etc leaves the repository' }] });
    const dir = await tree({ 'c/ok.yaml': 'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: ok}\n' });
    await symlink('/etc/hostname', join(dir, 'c', 'escape.yaml'));
    expect(await renderCluster(dir, 'c', options)).toMatchObject({
      ok: false,
      problems: [{ message: 'c/escape.yaml points outside the repository' }],
    });
  });

  it('refuses a YAML alias bomb instead of expanding it', async () => {
    const levels = ['a: &a ["x","x","x","x","x","x","x","x","x","x"]'];
    for (let i = 1; i < 9; i += 1)
      levels.push(
        `${String.fromCharCode(97 + i)}: &${String.fromCharCode(97 + i)} [${Array(10)
          .fill(`*${String.fromCharCode(96 + i)}`)
          .join(',')}]`,
      );
    const bomb = `apiVersion: v1\nkind: ConfigMap\nmetadata: {name: bomb}\ndata:\n${levels.map((l) => `  ${l}`).join('\n')}\n`;
    const result = await renderCluster(await tree({ 'c/bomb.yaml': bomb }), 'c', options);
    expect(result).toMatchObject({
      ok: false,
      problems: [{ message: expect.stringMatching(/alias/i), source: { file: 'c/bomb.yaml' } }],
    });
  });

  it('reports a kustomize failure with the file it names', async () => {
    const dir = await tree({
      'c/kustomization.yaml': 'resources: [list.yaml]\n',
      'c/list.yaml': '- not\n- an object\n',
    });
    const result = await renderCluster(dir, 'c', options);
    expect(result).toMatchObject({
      ok: false,
      problems: [{ message: expect.stringMatching(/kustomize build failed: /) }],
    });
  });

  it('says when the cluster folder is missing from the commit', async () => {
    expect(await renderCluster(portefaix, 'clusters/nowhere', options)).toMatchObject({
      ok: false,
      problems: [{ message: 'cluster folder clusters/nowhere does not exist in this commit' }],
    });
  });
});

/** A loopback HTTP server that records every request: a render must never reach it. */
async function recordingServer(): Promise<{ origin: string; requests: string[]; close: () => Promise<void> }> {
  const { createServer } = await import('node:http');
  const requests: string[] = [];
  const server = createServer((req, res) => {
    requests.push(req.url ?? '');
    res.end('apiVersion: v1\nkind: ConfigMap\nmetadata: {name: fetched}\ndata: {secret: from-the-network}\n');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  return {
    origin: `http://127.0.0.1:${port}`,
    requests,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

/** "Billion laughs" with `levels` levels of ten aliases, as a value under `data:` (or a patch's data). */
function aliasBombData(levels: number): string {
  const lines = ['  a: &a ["x","x","x","x","x","x","x","x","x","x"]'];
  for (let i = 1; i < levels; i += 1) {
    const anchor = String.fromCharCode(97 + i);
    lines.push(
      `  ${anchor}: &${anchor} [${Array(10)
        .fill(`*${String.fromCharCode(96 + i)}`)
        .join(',')}]`,
    );
  }
  return `data:\n${lines.join('\n')}\n`;
}

describe('rendering: every file kustomize reads is checked first', () => {
  const tree = scratchTrees('plumbline-render-checked-');

  it('refuses a URL in an inline generator config before kustomize runs: the server sees nothing', async () => {
    const server = await recordingServer();
    try {
      const dir = await tree({
        'c/kustomization.yaml': `generators:\n  - |-\n    apiVersion: builtin\n    kind: ConfigMapGenerator\n    metadata: {name: leak}\n    files: [creds=${server.origin}/latest/meta-data]\n`,
      });
      const result = await renderCluster(dir, 'c', options);
      expect(server.requests).toEqual([]);
      expect(result).toEqual({
        ok: false,
        problems: [
          {
            message: `remote file ${server.origin}/latest/meta-data is not allowed: vendor it into the repository`,
            source: { file: 'c/kustomization.yaml', line: 6 },
          },
        ],
      });
    } finally {
      await server.close();
    }
  });

  it('refuses a URL in a transformer config file, naming that file and line', async () => {
    const server = await recordingServer();
    try {
      const dir = await tree({
        'c/kustomization.yaml': 'resources: [cm.yaml]\ntransformers: [patch.yaml]\n',
        'c/cm.yaml': 'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: fetched}\n',
        'c/patch.yaml': `apiVersion: builtin\nkind: PatchTransformer\nmetadata: {name: p}\npath: ${server.origin}/patch.yaml\n`,
      });
      const result = await renderCluster(dir, 'c', options);
      expect(server.requests).toEqual([]);
      expect(result).toMatchObject({
        ok: false,
        problems: [
          {
            message: expect.stringMatching(/^remote file .* is not allowed/),
            source: { file: 'c/patch.yaml', line: 4 },
          },
        ],
      });
    } finally {
      await server.close();
    }
  });

  it('refuses a generator config that reads a file through a symlink out of the repository', async () => {
    const dir = await tree({
      'c/kustomization.yaml': 'generators: [gen.yaml]\n',
      'c/gen.yaml': 'apiVersion: builtin\nkind: ConfigMapGenerator\nmetadata: {name: leak}\nfiles: [passwd]\n',
    });
    await symlink('/etc/passwd', join(dir, 'c', 'passwd'));
    const result = await renderCluster(dir, 'c', options);
    expect(result).toMatchObject({
      ok: false,
      problems: [
        {
          message: expect.stringMatching(/^passwd is not a file or folder inside the repository/),
          source: { file: 'c/gen.yaml', line: 4 },
        },
      ],
    });
    expect(JSON.stringify(result)).not.toMatch(/root:x:0:0/);
  });

  it('refuses an alias bomb in a patch file that only a transformer config names, whatever its extension', async () => {
    const dir = await tree({
      'c/kustomization.yaml': 'resources: [cm.yaml]\ntransformers: [t.yaml]\n',
      'c/cm.yaml': 'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: target}\n',
      'c/t.yaml':
        'apiVersion: builtin\nkind: PatchTransformer\nmetadata: {name: p}\npath: bomb.txt\ntarget: {kind: ConfigMap}\n',
      'c/bomb.txt': `apiVersion: v1\nkind: ConfigMap\nmetadata: {name: target}\n${aliasBombData(5)}`,
    });
    const result = await renderCluster(dir, 'c', options);
    expect(result).toMatchObject({
      ok: false,
      problems: [{ message: expect.stringMatching(/alias/i), source: { file: 'c/bomb.txt' } }],
    });
  });

  it('fails a render whose output is larger than the limit, naming the limit and the cluster folder', async () => {
    const data = 'x'.repeat(300 * 1024);
    const generators = [1, 2, 3, 4].map((i) => `  - {name: part-${i}, files: [data.txt]}`).join('\n');
    const dir = await tree({
      'clusters/big/kustomization.yaml': `configMapGenerator:\n${generators}\n`,
      'clusters/big/data.txt': data,
    });
    const result = await renderCluster(dir, 'clusters/big', { ...options, maxOutputBytes: 1024 * 1024 });
    // (Compared as problems only: a failure must not print a megabyte of rendered objects.)
    expect(result.ok ? 'rendered' : result).toEqual({
      ok: false,
      problems: [
        {
          message:
            'the render of clusters/big is larger than the limit of 1 MiB (PLUMBLINE_RENDER_MAX_BYTES): nothing is applied',
          source: { file: 'clusters/big/kustomization.yaml' },
        },
      ],
    });
    // Under the limit, the same folder renders.
    const under = await renderCluster(dir, 'clusters/big', { ...options, maxOutputBytes: 4 * 1024 * 1024 });
    expect(under.ok ? under.objects.length : under.problems).toBe(4);
  });

  it('fails a plain-YAML folder whose files are larger than the limit, without reading them', async () => {
    const dir = await tree({
      'c/a.yaml': `apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\ndata: {v: "${'x'.repeat(600 * 1024)}"}\n`,
      'c/b.yaml': `apiVersion: v1\nkind: ConfigMap\nmetadata: {name: b}\ndata: {v: "${'x'.repeat(600 * 1024)}"}\n`,
    });
    const result = await renderCluster(dir, 'c', { ...options, maxOutputBytes: 1024 * 1024 });
    expect(result.ok ? 'rendered' : result).toEqual({
      ok: false,
      problems: [
        {
          message: 'the render of c is larger than the limit of 1 MiB (PLUMBLINE_RENDER_MAX_BYTES): nothing is applied',
          source: { file: 'c/b.yaml' },
        },
      ],
    });
  });
});

describe('the secrets gate', () => {
  const at = { file: 'clusters/a/secret.yaml', line: 3 };
  const object = (manifest: Record<string, unknown>) => ({
    manifest: { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'x', namespace: 'n' }, ...manifest } as never,
    source: at,
  });

  it('fails a Secret with data or stringData, naming file and object but never the value', () => {
    const problems = checkSecrets([
      object({ kind: 'Secret', data: { password: 'aHVudGVyMg==' } }),
      object({ kind: 'Secret', stringData: { token: 'hunter2' } }),
    ]);
    expect(problems.map((p) => [p.object, p.source])).toEqual([
      ['Secret/n/x', at],
      ['Secret/n/x', at],
    ]);
    expect(JSON.stringify(problems)).not.toMatch(/hunter2|aHVudGVyMg/);
  });

  it('refuses SOPS-encrypted objects with a clear message', () => {
    const [problem] = checkSecrets([object({ kind: 'Secret', sops: { version: '3.9.0' } })]);
    expect(problem?.message).toMatch(/SOPS-encrypted, and Plumbline has no decryption configured/);
  });

  it('lets references through: ExternalSecret, a Secret without payload, ConfigMaps', () => {
    expect(
      checkSecrets([
        object({ apiVersion: 'external-secrets.io/v1', kind: 'ExternalSecret', spec: { data: [{ secretKey: 'p' }] } }),
        object({ kind: 'Secret', type: 'kubernetes.io/service-account-token' }),
        object({ data: { key: 'value' } }),
      ]),
    ).toEqual([]);
  });
});

describe('YAML 1.1 traps', () => {
  it('explains that an unquoted n is a boolean, as the apiserver would read it', async () => {
    const { parseManifests } = await import('../../src/engine/parse-manifests.ts');
    const result = parseManifests('apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x, namespace: n}\n', 'a.yaml');
    expect(result.problems).toEqual([
      {
        message:
          'ConfigMap/x has a namespace that is not a string (YAML 1.1 reads y, n, yes, no, on, off as booleans: quote it)',
        source: { file: 'a.yaml', line: 1 },
      },
    ]);
  });
});

describe('the render cache', () => {
  it('does not keep a render that timed out: the next attempt runs kustomize again', async () => {
    const { createRenderCache } = await import('../../src/engine/render-cache.ts');
    const cache = createRenderCache({ kustomize: KUBECTL_KUSTOMIZE, timeoutMs: 1 });
    const first = await cache.render(portefaix, 'clusters/gcp/production');
    expect(first).toMatchObject({
      ok: false,
      transient: true,
      problems: [{ message: expect.stringMatching(/did not finish/) }],
    });
    await cache.render(portefaix, 'clusters/gcp/production');
    expect(cache.stats).toMatchObject({ hits: 0, misses: 2 });
  });

  it('reuses a render while the files it reads are unchanged, whatever else changes', async () => {
    const { cp, mkdtemp, writeFile } = await import('node:fs/promises');
    const { createRenderCache } = await import('../../src/engine/render-cache.ts');
    const dir = await mkdtemp(join(tmpdir(), 'plumbline-cache-'));
    await cp(portefaix, dir, { recursive: true });
    const cache = createRenderCache(options);
    const first = await cache.render(dir, 'clusters/gcp/production');
    await writeFile(join(dir, 'README.md'), 'changed\n');
    await writeFile(join(dir, 'stacks/security/external-secret.yaml'), 'kind: ExternalSecret\n');
    expect(await cache.render(dir, 'clusters/gcp/production')).toBe(first);
    expect(cache.stats).toMatchObject({ hits: 1, misses: 1 });
    await writeFile(
      join(dir, 'stacks/observability/grafana.yaml'),
      'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: grafana-settings}\ndata: {theme: light}\n',
    );
    const third = await cache.render(dir, 'clusters/gcp/production');
    expect(third).not.toBe(first);
    expect(cache.stats).toMatchObject({ hits: 1, misses: 2 });
    await cache.render(dir, 'clusters/homelab/dev');
    await writeFile(
      join(dir, 'clusters/homelab/dev/sub/new.yaml'),
      'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: new}\n',
    );
    await cache.render(dir, 'clusters/homelab/dev');
    expect(cache.stats.misses).toBe(4);
  });
  it('misses when a file read only through a generator config changes', async () => {
    const { createRenderCache } = await import('../../src/engine/render-cache.ts');
    const dir = await mkdtemp(join(tmpdir(), 'plumbline-cache-gen-'));
    const write = async (path: string, content: string) => {
      await mkdir(dirname(join(dir, path)), { recursive: true });
      await writeFile(join(dir, path), content);
    };
    await write('c/kustomization.yaml', 'generators: [gen/settings.yaml]\n');
    await write(
      'c/gen/settings.yaml',
      'apiVersion: builtin\nkind: ConfigMapGenerator\nmetadata: {name: settings}\nfiles: [settings.conf]\noptions: {disableNameSuffixHash: true}\n',
    );
    await write('c/settings.conf', 'theme=dark\n');
    const cache = createRenderCache(options);
    const first = await cache.render(dir, 'c');
    expect(first).toMatchObject({ ok: true, objects: [{ manifest: { data: { 'settings.conf': 'theme=dark\n' } } }] });
    await write('c/settings.conf', 'theme=light\n');
    const second = await cache.render(dir, 'c');
    expect(cache.stats).toMatchObject({ hits: 0, misses: 2 });
    expect(second).toMatchObject({ ok: true, objects: [{ manifest: { data: { 'settings.conf': 'theme=light\n' } } }] });
    await rm(dir, { recursive: true, force: true });
  });
});
