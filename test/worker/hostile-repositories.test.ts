import { access, readdir, symlink } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { homedir } from 'node:os';
import { basename, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { Redis } from 'ioredis';
import type { StandInCheckRun, StandInStatus } from '../../dev/github-stand-in/github-stand-in.ts';
import { parseClusterRegistry } from '../../src/clusters/cluster-registry.ts';
import { createClusterClient, loadKubeConfig } from '../../src/engine/cluster-client.ts';
import { INVENTORY_NAMESPACE, readInventory } from '../../src/engine/inventory.ts';
import { KUBECTL_KUSTOMIZE, renderCluster } from '../../src/engine/render-cluster.ts';
import type { SyncJob } from '../../src/queue/jobs.ts';
import { processSyncJob, type SyncDependencies, type SyncResult } from '../../workers/process-sync-job.ts';
import { testEnvironment, uniqueName } from '../support/environment.ts';
import { kubeClients } from '../support/kube.ts';
import { createSourceFixture, INSTALLATION_ID, type SourceFixture } from '../support/source-fixture.ts';
import { workerDependencies } from '../support/worker-deps.ts';

/**
 * The end-to-end drill for repositories written to hurt: each one is pushed to the GitHub stand-in and
 * synced by a real job (real git, real kustomize, a real apiserver). A refused commit must end with a
 * `failure` that says what is wrong, an annotation on the file to blame, and nothing at all in the
 * cluster — no object, no inventory. Legitimate but odd names (shell metacharacters) must simply work.
 */

const env = testEnvironment();
const kube = kubeClients(env.kubeconfig);
const client = createClusterClient(loadKubeConfig({ kubeconfig: env.kubeconfig }));

const namespaceYaml = (name: string) => `apiVersion: v1\nkind: Namespace\nmetadata:\n  name: ${name}\n`;
const configMapYaml = (name: string, namespace: string, value = 'v') =>
  `apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ${name}\n  namespace: ${namespace}\ndata:\n  value: "${value}"\n`;

/** "Billion laughs": `levels` nested lists of ten aliases each — 10^levels strings once expanded. */
function aliasBomb(name: string, namespace: string, levels: number): string {
  const lines = ['  a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol","lol"]'];
  for (let i = 1; i < levels; i += 1) {
    const anchor = String.fromCharCode(97 + i);
    const previous = String.fromCharCode(96 + i);
    lines.push(`  ${anchor}: &${anchor} [${Array(10).fill(`*${previous}`).join(',')}]`);
  }
  return `apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ${name}\n  namespace: ${namespace}\ndata:\n${lines.join('\n')}\n`;
}

/** Every path below `dir` whose last segment is exactly `name`. */
async function findNamed(dir: string, name: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true }).catch(() => [] as string[]);
  return entries.filter((entry) => basename(entry) === name).map((entry) => join(dir, entry));
}

const exists = (path: string) =>
  access(path).then(
    () => true,
    () => false,
  );

interface Synced {
  readonly cluster: string;
  readonly context: string;
  readonly sha: string;
  readonly result: SyncResult;
  readonly seconds: number;
  readonly status: StandInStatus | undefined;
  readonly rollUp: StandInStatus | undefined;
  readonly checkRun: StandInCheckRun | undefined;
}

describe('hostile repositories: a real sync job refuses them and writes nothing to the cluster', () => {
  let f: SourceFixture;
  let redis: Redis;
  const prefix = uniqueName('hostile');
  /** Namespaces and clusters a commit did reach (legitimately, or through a bug below): removed afterwards. */
  const createdNamespaces: string[] = [];
  const appliedClusters: string[] = [];

  beforeAll(async () => {
    f = await createSourceFixture('acme/hostile-gitops');
    redis = new Redis(env.redisUrl, { maxRetriesPerRequest: null });
  });
  afterAll(async () => {
    for (const name of createdNamespaces) await kube.core.deleteNamespace({ name }).catch(() => undefined);
    for (const cluster of appliedClusters) {
      await kube.core
        .deleteCollectionNamespacedConfigMap({
          namespace: INVENTORY_NAMESPACE,
          labelSelector: `plumbline.dev/cluster=${cluster}`,
        })
        .catch(() => undefined);
    }
    redis?.disconnect();
    await f?.close();
  });

  /**
   * Commits `files` (plus whatever `prepare` does in the working tree, such as symlinks), pushes it to
   * `branch`, registers a fresh cluster rendering `path` from that branch, and runs its sync job.
   */
  async function sync(options: {
    readonly cluster: string;
    readonly path: string;
    readonly files: Readonly<Record<string, string | null>>;
    readonly branch?: string;
    readonly prepare?: (workDir: string) => Promise<void>;
    readonly wrap?: (deps: SyncDependencies) => SyncDependencies;
  }): Promise<Synced> {
    const { cluster, path } = options;
    const branch = options.branch ?? 'main';
    await f.work.write(options.files);
    await options.prepare?.(f.work.dir);
    const sha = await f.work.commit(`hostile: ${cluster}`);
    await f.work.push(branch);
    // JSON is YAML: folder names full of quotes and shell syntax need no escaping this way.
    const registry = parseClusterRegistry(
      JSON.stringify({
        clusters: [{ name: cluster, repo: f.repository.fullName, path, branch, kubeconfig: env.kubeconfig }],
      }),
    );
    const base = workerDependencies(f, { registry, redis, prefix });
    const deps = options.wrap ? options.wrap(base) : base;
    const job: SyncJob = {
      type: 'sync',
      trigger: 'push',
      deliveryId: uniqueName('delivery'),
      repository: { id: f.repository.id, fullName: f.repository.fullName },
      installationId: INSTALLATION_ID,
      branch,
      before: undefined,
      after: sha,
      forced: false,
      receivedAt: new Date().toISOString(),
    };
    const started = Date.now();
    const result = await processSyncJob(job, deps);
    const seconds = (Date.now() - started) / 1000;
    const context = `plumbline/${cluster}`;
    return {
      cluster,
      context,
      sha,
      result,
      seconds,
      status: f.github.latestStatus(f.repository.fullName, sha, context),
      rollUp: f.github.latestStatus(f.repository.fullName, sha, 'plumbline'),
      checkRun: f.github.checkRuns(f.repository.fullName, sha).find((run) => run.name === context),
    };
  }

  /** The commit failed, said why, blamed `file` (when given), and left no trace in the cluster. */
  async function expectRefused(
    synced: Synced,
    expected: {
      readonly description: RegExp;
      readonly file?: string;
      readonly line?: number;
      readonly namespaces: readonly string[];
    },
  ): Promise<void> {
    expect(synced.result.outcomes).toEqual([expect.objectContaining({ cluster: synced.cluster, status: 'failed' })]);
    expect(synced.status?.state).toBe('failure');
    expect(synced.status?.description).toMatch(expected.description);
    expect(synced.status?.description?.length ?? 0).toBeLessThanOrEqual(140);
    expect(synced.rollUp).toMatchObject({ state: 'failure', description: `1 failed — see ${synced.cluster}` });
    expect(synced.checkRun).toMatchObject({ status: 'completed', conclusion: 'failure' });
    if (expected.file) {
      expect(synced.checkRun?.annotations).toContainEqual(
        expect.objectContaining({
          path: expected.file,
          annotation_level: 'failure',
          ...(expected.line ? { start_line: expected.line } : {}),
        }),
      );
    }
    await expectNothingWritten(synced.cluster, expected.namespaces);
  }

  async function expectNothingWritten(cluster: string, namespaces: readonly string[]): Promise<void> {
    for (const name of namespaces) {
      await expect(kube.core.readNamespace({ name })).rejects.toMatchObject({ code: 404 });
    }
    expect(await readInventory(client, cluster)).toBeUndefined();
    expect(f.github.violations).toEqual([]);
  }

  describe('1. references and symlinks that leave the repository', () => {
    it.each([
      [
        '../../../../etc',
        /^\.\.\/\.\.\/\.\.\/\.\.\/etc leaves the repository \(clusters\/[\w-]+\/kustomization\.yaml:3\)$/,
      ],
      ['/etc/passwd', /^\/etc\/passwd leaves the repository \(clusters\/[\w-]+\/kustomization\.yaml:3\)$/],
    ])('resources: [%s] is refused before kustomize runs', async (reference, description) => {
      const cluster = uniqueName('escape');
      const namespace = uniqueName('escape');
      const folder = `clusters/${cluster}`;
      const synced = await sync({
        cluster,
        path: folder,
        files: {
          [`${folder}/kustomization.yaml`]: `resources:\n  - ns.yaml\n  - ${reference}\n`,
          [`${folder}/ns.yaml`]: namespaceYaml(namespace),
        },
      });
      await expectRefused(synced, {
        description,
        file: `${folder}/kustomization.yaml`,
        namespaces: [namespace],
      });
    });

    it('a committed symlink to /etc listed as a resource is not followed', async () => {
      const cluster = uniqueName('symlink');
      const namespace = uniqueName('symlink');
      const folder = `clusters/${cluster}`;
      const synced = await sync({
        cluster,
        path: folder,
        files: {
          [`${folder}/kustomization.yaml`]: 'resources:\n  - ns.yaml\n  - evil\n',
          [`${folder}/ns.yaml`]: namespaceYaml(namespace),
        },
        // `ln -s /etc clusters/x/evil`, committed as a symlink (mode 120000), not as a copy.
        prepare: (dir) => symlink('/etc', join(dir, folder, 'evil')),
      });
      expect(await f.work.git('ls-tree', synced.sha, `${folder}/evil`)).toMatch(/^120000 blob /);
      await expectRefused(synced, {
        description:
          /^evil is not a file or folder inside the repository .*\(clusters\/[\w-]+\/kustomization\.yaml:3\)$/,
        file: `${folder}/kustomization.yaml`,
        line: 3,
        namespaces: [namespace],
      });
    });

    it('a generator reading a file through the symlink is refused before kustomize runs: /etc never reaches the cluster', async () => {
      const cluster = uniqueName('symgen');
      const namespace = uniqueName('symgen');
      const folder = `clusters/${cluster}`;
      const synced = await sync({
        cluster,
        path: folder,
        files: {
          [`${folder}/kustomization.yaml`]: `namespace: ${namespace}\nresources: [ns.yaml]\nconfigMapGenerator:\n  - name: leak\n    files: [evil/passwd]\n`,
          [`${folder}/ns.yaml`]: namespaceYaml(namespace),
        },
        prepare: (dir) => symlink('/etc', join(dir, folder, 'evil')),
      });
      await expectRefused(synced, {
        description: /^evil\/passwd is not a file or folder inside the repository/,
        file: `${folder}/kustomization.yaml`,
        namespaces: [namespace],
      });
      // Refused by Plumbline's own walk of the kustomization, without the worker's paths in the message.
      const annotation = synced.checkRun?.annotations[0]?.message ?? '';
      expect(annotation).toMatch(/evil\/passwd/);
      expect(annotation).not.toMatch(/plumbline-source-|\/tmp\//);
      expect(JSON.stringify(f.github.calls)).not.toMatch(/root:x:0:0/);
    });

    it('a plain-YAML folder with a symlinked manifest names the file and applies nothing', async () => {
      const cluster = uniqueName('symplain');
      const namespace = uniqueName('symplain');
      const folder = `clusters/${cluster}`;
      const synced = await sync({
        cluster,
        path: folder,
        files: { [`${folder}/app.yaml`]: `${namespaceYaml(namespace)}---\n${configMapYaml('ok', namespace)}` },
        prepare: async (dir) => {
          await symlink('/etc', join(dir, folder, 'evil'));
          await symlink('/etc/passwd', join(dir, folder, 'passwd.yaml'));
        },
      });
      await expectRefused(synced, {
        description: /^clusters\/[\w-]+\/passwd\.yaml points outside the repository/,
        file: `${folder}/passwd.yaml`,
        namespaces: [namespace],
      });
      expect(JSON.stringify(f.github.calls)).not.toMatch(/root:x:0:0/);
    });
  });

  describe('2. remote bases', () => {
    it.each([
      'github.com/org/repo//path?ref=v1',
      'https://example.com/x.yaml',
      'git::https://github.com/org/repo//path?ref=v1',
      'git@github.com:org/repo',
    ])('resources: [%s] is refused: vendor it into the repository', async (reference) => {
      const cluster = uniqueName('remote');
      const namespace = uniqueName('remote');
      const folder = `clusters/${cluster}`;
      const synced = await sync({
        cluster,
        path: folder,
        files: {
          [`${folder}/kustomization.yaml`]: `resources:\n  - ns.yaml\n  - "${reference}"\n`,
          [`${folder}/ns.yaml`]: namespaceYaml(namespace),
        },
      });
      await expectRefused(synced, {
        description: /^remote base .* is not allowed: vendor it into the repository/,
        file: `${folder}/kustomization.yaml`,
        namespaces: [namespace],
      });
      expect(synced.status?.description).toContain(reference.slice(0, 20));
    });

    describe('remote files other than resources (patches, generators): kustomize fetches http(s) URLs itself', () => {
      let server: Server;
      const fetched: string[] = [];
      let origin = '';
      beforeAll(async () => {
        server = createServer((req, res) => {
          fetched.push(req.url ?? '');
          // `/patch/<namespace>.yaml`: a patch that matches the commit's ConfigMap; anything else, a "secret".
          const patch = /^\/patch\/([\w-]+)\.yaml$/.exec(req.url ?? '');
          res.end(
            patch
              ? `apiVersion: v1\nkind: ConfigMap\nmetadata: {name: app, namespace: ${patch[1]}}\ndata: {value: "from the internet"}\n`
              : 'fetched-by-the-worker\n',
          );
        });
        await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
        origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
      });
      afterAll(async () => {
        await new Promise((resolve) => server.close(resolve));
      });

      // kustomize GETs http(s) URLs in any field that names a file — patches, generator files, and the
      // fields of generator/transformer configs, inline or in files — from the worker: an SSRF whose answer
      // would be applied to the cluster (e.g. metadata-service credentials in a ConfigMap). Each is refused
      // by Plumbline's walk, with the file and line; kustomize itself runs without a network besides.
      it.each([
        ['patches[].path', 4, (url: string, ns: string) => `patches:\n  - path: ${url}/patch/${ns}.yaml\n`],
        [
          'configMapGenerator files',
          5,
          (url: string) => `configMapGenerator:\n  - name: leak\n    files: [${url}/token]\n`,
        ],
        [
          'an inline generator config',
          8,
          (url: string) =>
            `generators:\n  - |-\n    apiVersion: builtin\n    kind: ConfigMapGenerator\n    metadata: {name: leak}\n    files: [creds=${url}/latest/meta-data]\n`,
        ],
      ])('%s with an http URL is refused, and never fetched', async (_field, line, extra) => {
        const cluster = uniqueName('remotefile');
        const namespace = uniqueName('remotefile');
        const folder = `clusters/${cluster}`;
        const before = fetched.length;
        // Should the commit be applied after all (a regression), clean up after it.
        createdNamespaces.push(namespace);
        appliedClusters.push(cluster);
        const synced = await sync({
          cluster,
          path: folder,
          files: {
            [`${folder}/kustomization.yaml`]: `namespace: ${namespace}\nresources: [ns.yaml, app.yaml]\n${extra(origin, namespace)}`,
            [`${folder}/ns.yaml`]: namespaceYaml(namespace),
            [`${folder}/app.yaml`]: configMapYaml('app', namespace),
          },
        });
        expect(fetched.slice(before)).toEqual([]);
        await expectRefused(synced, {
          description: /^remote .* is not allowed/,
          file: `${folder}/kustomization.yaml`,
          line,
          namespaces: [namespace],
        });
      });

      it('a transformer config file whose patch path is an http URL is refused, naming that file and line', async () => {
        const cluster = uniqueName('remotecfg');
        const namespace = uniqueName('remotecfg');
        const folder = `clusters/${cluster}`;
        const before = fetched.length;
        createdNamespaces.push(namespace);
        appliedClusters.push(cluster);
        const synced = await sync({
          cluster,
          path: folder,
          files: {
            [`${folder}/kustomization.yaml`]: `namespace: ${namespace}\nresources: [ns.yaml, app.yaml]\ntransformers: [transformers/patch.yaml]\n`,
            [`${folder}/transformers/patch.yaml`]: `apiVersion: builtin\nkind: PatchTransformer\nmetadata: {name: p}\npath: ${origin}/patch/${namespace}.yaml\n`,
            [`${folder}/ns.yaml`]: namespaceYaml(namespace),
            [`${folder}/app.yaml`]: configMapYaml('app', namespace),
          },
        });
        expect(fetched.slice(before)).toEqual([]);
        await expectRefused(synced, {
          // (The description is cut at 140 characters; the annotation carries the file and line.)
          description: /^remote file http:\/\/127\.0\.0\.1:\d+\/patch\/[\w-]+\.yaml is not allowed/,
          file: `${folder}/transformers/patch.yaml`,
          line: 4,
          namespaces: [namespace],
        });
      });
    });
  });

  describe('3. YAML alias bombs', () => {
    it('a billion laughs in a plain-YAML folder is refused, not expanded', async () => {
      const cluster = uniqueName('bomb');
      const namespace = uniqueName('bomb');
      const folder = `clusters/${cluster}`;
      const synced = await sync({
        cluster,
        path: folder,
        files: {
          [`${folder}/a-namespace.yaml`]: namespaceYaml(namespace),
          [`${folder}/bomb.yaml`]: aliasBomb('lol', namespace, 9),
        },
      });
      expect(synced.seconds).toBeLessThan(30);
      await expectRefused(synced, {
        description: /^invalid YAML: Excessive alias count .* \(clusters\/[\w-]+\/bomb\.yaml:1\)$/,
        file: `${folder}/bomb.yaml`,
        line: 1,
        namespaces: [namespace],
      });
    });

    // kustomize expands aliases without a limit: measured with kubectl kustomize v5.5.0,
    // 10^5 leaves take 0.2 GB and 1.6 s, 10^6 take 1.5 GB and 16 s, 10^7 passed 15 GB before the
    // 60 s render timeout killed it (a 9-level bomb would OOM-kill a worker pod well before its timeout).
    // This case uses 5 levels (bounded cost) — well above what the plain-YAML path refuses.
    it('a bomb listed as a kustomize resource is refused before kustomize expands it', async () => {
      const cluster = uniqueName('kbomb');
      const namespace = uniqueName('kbomb');
      const folder = `clusters/${cluster}`;
      const synced = await sync({
        cluster,
        path: folder,
        files: {
          [`${folder}/kustomization.yaml`]: 'resources: [ns.yaml, bomb.yaml]\n',
          [`${folder}/ns.yaml`]: namespaceYaml(namespace),
          [`${folder}/bomb.yaml`]: aliasBomb('lol', namespace, 5),
        },
      });
      await expectRefused(synced, {
        description: /alias/i,
        file: `${folder}/bomb.yaml`,
        namespaces: [namespace],
      });
    }, 120_000);

    it('a bomb in a patch file only a transformer config names (any extension) is refused before kustomize', async () => {
      const cluster = uniqueName('tbomb');
      const namespace = uniqueName('tbomb');
      const folder = `clusters/${cluster}`;
      const synced = await sync({
        cluster,
        path: folder,
        files: {
          [`${folder}/kustomization.yaml`]: 'resources: [ns.yaml, app.yaml]\ntransformers: [patch.yaml]\n',
          [`${folder}/ns.yaml`]: namespaceYaml(namespace),
          [`${folder}/app.yaml`]: configMapYaml('lol', namespace),
          [`${folder}/patch.yaml`]:
            'apiVersion: builtin\nkind: PatchTransformer\nmetadata: {name: p}\npath: lol.txt\ntarget: {kind: ConfigMap}\n',
          [`${folder}/lol.txt`]: aliasBomb('lol', namespace, 5),
        },
      });
      await expectRefused(synced, {
        description: /alias/i,
        file: `${folder}/lol.txt`,
        namespaces: [namespace],
      });
    }, 120_000);
  });

  describe('4. and 5. sheer size', () => {
    // 20,000 ConfigMaps in a namespace that neither exists nor is created by the commit: nothing can defer
    // them (apply-objects only waits for a Namespace *of the same commit*), so every dry-run is rejected
    // with "namespace … does not exist" and the commit fails before any write. That is a render Plumbline
    // must refuse, through the real apiserver, so it is used as is (no need for 20,000 duplicates).
    it('20,000 documents in one file: refused within a bounded time, every object named, nothing written', async () => {
      const cluster = uniqueName('many');
      const namespace = uniqueName('many');
      const folder = `clusters/${cluster}`;
      const file = `${folder}/many.yaml`;
      const documents = Array.from({ length: 20_000 }, (_, i) => configMapYaml(`cm-${i}`, namespace, String(i)));
      const synced = await sync({ cluster, path: folder, files: { [file]: documents.join('---\n') } });
      // Once the apiserver says the namespace is missing, the other 19,999 objects are not sent: ~7 s.
      expect(synced.seconds).toBeLessThan(90);
      await expectRefused(synced, {
        description: new RegExp(`^20000 rejected \\(${file}:1\\): namespace ${namespace} does not exist$`),
        file,
        line: 1,
        namespaces: [namespace],
      });
      const outcome = synced.result.outcomes[0];
      expect(outcome?.status === 'failed' && outcome.problems.length).toBe(20_000);
      // Annotations are capped (three requests' worth), each on its own object's line (8 lines apart);
      // the summary says how many more there are.
      expect(synced.checkRun?.annotations).toHaveLength(150);
      expect(synced.checkRun?.annotations[149]).toMatchObject({ path: file, start_line: 149 * 8 + 1 });
      expect(synced.checkRun?.output.summary).toContain('19850 more problem(s) are not annotated');
      await f.work.write({ [file]: null });
    }, 150_000);

    it('a 50 MB ConfigMap: a clear refusal from the apiserver, no crash, nothing written', async () => {
      const cluster = uniqueName('huge');
      const namespace = uniqueName('huge');
      const folder = `clusters/${cluster}`;
      const file = `${folder}/huge.yaml`;
      const huge = `${namespaceYaml(namespace)}---\n${configMapYaml('huge', namespace, 'x'.repeat(50 * 1024 * 1024))}`;
      expect(huge.length).toBeGreaterThan(50 * 1024 * 1024);
      const synced = await sync({ cluster, path: folder, files: { [file]: huge } });
      expect(synced.seconds).toBeLessThan(60);
      await expectRefused(synced, {
        description: new RegExp(`^1 rejected \\(${file}:\\d+\\): .*(too large|Too long|at most)`, 'i'),
        file,
        namespaces: [namespace],
      });
      await f.work.write({ [file]: null });
    }, 120_000);

    // Under the render limit (PLUMBLINE_RENDER_MAX_BYTES, 64 MiB by default) Plumbline limits no file
    // size, only the apiserver limits objects: 50 MB of comments around a small valid object is a
    // legitimate (if odd) commit, and is applied.
    it('a 50 MB file of comments around one small ConfigMap is legitimate: applied', async () => {
      const cluster = uniqueName('comments');
      const namespace = uniqueName('comments');
      const folder = `clusters/${cluster}`;
      const file = `${folder}/commented.yaml`;
      const comment = `# ${'c'.repeat(100)}\n`.repeat(250_000);
      const text = `${comment}${namespaceYaml(namespace)}---\n${comment}${configMapYaml('small', namespace)}`;
      expect(text.length).toBeGreaterThan(50_000_000);
      createdNamespaces.push(namespace);
      appliedClusters.push(cluster);
      const synced = await sync({ cluster, path: folder, files: { [file]: text } });
      expect(synced.seconds).toBeLessThan(60);
      expect(synced.result.outcomes).toEqual([expect.objectContaining({ status: 'applied' })]);
      expect(synced.status).toMatchObject({ state: 'success', description: expect.stringMatching(/^2 created in/) });
      const live = await kube.core.readNamespacedConfigMap({ name: 'small', namespace });
      expect(live.data).toEqual({ value: 'v' });
      expect(f.github.violations).toEqual([]);
      await f.work.write({ [file]: null });
    }, 120_000);
  });

  describe('5b. a render larger than PLUMBLINE_RENDER_MAX_BYTES', () => {
    it('kustomize output over the limit fails the cluster, naming the limit and the folder; nothing written', async () => {
      const cluster = uniqueName('toolarge');
      const namespace = uniqueName('toolarge');
      const folder = `clusters/${cluster}`;
      // Four ConfigMaps of 300 KiB from one 300 KiB file: every input is small, the output is not.
      const generators = [1, 2, 3, 4].map((i) => `  - {name: part-${i}, files: [data.txt]}`).join('\n');
      const synced = await sync({
        cluster,
        path: folder,
        files: {
          [`${folder}/kustomization.yaml`]: `namespace: ${namespace}\nresources: [ns.yaml]\nconfigMapGenerator:\n${generators}\n`,
          [`${folder}/ns.yaml`]: namespaceYaml(namespace),
          [`${folder}/data.txt`]: 'x'.repeat(300 * 1024),
        },
        wrap: (deps) => ({
          ...deps,
          render: (treeDir, path) =>
            renderCluster(treeDir, path, {
              kustomize: KUBECTL_KUSTOMIZE,
              timeoutMs: 60_000,
              maxOutputBytes: 1024 * 1024,
            }),
        }),
      });
      await expectRefused(synced, {
        description: new RegExp(
          `^the render of ${folder} is larger than the limit of 1 MiB \\(PLUMBLINE_RENDER_MAX_BYTES\\): nothing is applied`,
        ),
        file: `${folder}/kustomization.yaml`,
        namespaces: [namespace],
      });
      await f.work.write({ [`${folder}/data.txt`]: null });
    });
  });

  describe('6. shell metacharacters in names are just names', () => {
    const weirdFiles = ['`id`.yaml', ';rm -rf x;.yaml'];
    /** Files a shell running `rm -rf x` (in the tree or in the cluster folder) would delete. */
    const sentinels = (folder: string) => ({ x: 'sentinel\n', [`${folder}/x`]: 'sentinel\n' });
    /** Each render is checked right away, before its tree is removed: no `pwned`, the `x` sentinels intact. */
    const traces: string[] = [];
    const watchRender = (deps: SyncDependencies): SyncDependencies => ({
      ...deps,
      render: async (treeDir, path) => {
        const result = await deps.render(treeDir, path);
        traces.push(...(await findNamed(treeDir, 'pwned')));
        for (const sentinel of ['x', `${path}/x`]) {
          if (!(await exists(join(treeDir, sentinel)))) traces.push(`sentinel ${sentinel} was removed`);
        }
        return result;
      },
    });
    const expectNothingExecuted = async () => {
      expect(traces).toEqual([]);
      for (const dir of [f.dir, f.work.dir]) expect(await findNamed(dir, 'pwned')).toEqual([]);
      for (const dir of [process.cwd(), homedir()]) expect(await exists(join(dir, 'pwned'))).toBe(false);
    };
    const expectApplied = async (synced: Synced, namespace: string, configMaps: readonly string[]) => {
      expect(synced.result.outcomes).toEqual([expect.objectContaining({ cluster: synced.cluster, status: 'applied' })]);
      expect(synced.status).toMatchObject({
        state: 'success',
        description: expect.stringMatching(new RegExp(`^${configMaps.length + 1} created in [\\d.]+ s$`)),
      });
      expect(synced.checkRun).toMatchObject({ status: 'completed', conclusion: 'success' });
      for (const name of configMaps) {
        await expect(kube.core.readNamespacedConfigMap({ name, namespace })).resolves.toBeDefined();
      }
      expect((await readInventory(client, synced.cluster))?.revision).toBe(synced.sha);
      expect(f.github.violations).toEqual([]);
    };

    it('a plain-YAML cluster folder named `$(touch pwned);x` with files `id`.yaml and ;rm -rf x;.yaml', async () => {
      const cluster = uniqueName('shell');
      const namespace = uniqueName('shell');
      const folder = 'clusters/$(touch pwned);x';
      createdNamespaces.push(namespace);
      appliedClusters.push(cluster);
      const synced = await sync({
        cluster,
        path: folder,
        files: {
          ...sentinels(folder),
          [`${folder}/${weirdFiles[0]}`]: `${namespaceYaml(namespace)}---\n${configMapYaml('backticks', namespace)}`,
          [`${folder}/${weirdFiles[1]}`]: configMapYaml('semicolons', namespace),
        },
        wrap: watchRender,
      });
      await expectApplied(synced, namespace, ['backticks', 'semicolons']);
      expect(synced.checkRun?.output.summary).toContain(`${folder}/${weirdFiles[1]}`);
      await expectNothingExecuted();
    });

    it(`a kustomize cluster folder named a b'" listing \`id\`.yaml and ;rm -rf x;.yaml`, async () => {
      const cluster = uniqueName('quotes');
      const namespace = uniqueName('quotes');
      const folder = `clusters/a b'"`;
      createdNamespaces.push(namespace);
      appliedClusters.push(cluster);
      const synced = await sync({
        cluster,
        path: folder,
        files: {
          ...sentinels(folder),
          [`${folder}/kustomization.yaml`]: `resources:\n  - ns.yaml\n${weirdFiles.map((w) => `  - '${w}'\n`).join('')}`,
          [`${folder}/ns.yaml`]: namespaceYaml(namespace),
          [`${folder}/${weirdFiles[0]}`]: configMapYaml('backticks', namespace),
          [`${folder}/${weirdFiles[1]}`]: configMapYaml('semicolons', namespace),
        },
        wrap: watchRender,
      });
      await expectApplied(synced, namespace, ['backticks', 'semicolons']);
      // kustomize's output is traced back to the oddly named files.
      expect(synced.checkRun?.output.summary).toContain(`${folder}/${weirdFiles[0]}:1`);
      await expectNothingExecuted();
    });

    it('a branch named feature/$(id) is registered, pushed and processed as any branch', async () => {
      const cluster = uniqueName('branch');
      const namespace = uniqueName('branch');
      const folder = `clusters/${cluster}`;
      const branch = 'feature/$(id)';
      createdNamespaces.push(namespace);
      appliedClusters.push(cluster);
      const synced = await sync({
        cluster,
        path: folder,
        branch,
        files: {
          ...sentinels(folder),
          [`${folder}/app.yaml`]: `${namespaceYaml(namespace)}---\n${configMapYaml('on-branch', namespace)}`,
        },
        wrap: watchRender,
      });
      expect(await f.work.git('ls-remote', 'origin', `refs/heads/${branch}`)).toContain(synced.sha);
      await expectApplied(synced, namespace, ['on-branch']);
      await expectNothingExecuted();
    });
  });
});
