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
import { testEnvironment, uniqueName } from '../helpers/environment.ts';
import { kubeClients } from '../helpers/kube.ts';
import { createSourceFixture, INSTALLATION_ID, type SourceFixture } from '../helpers/source-fixture.ts';
import { workerDependencies } from '../helpers/worker-deps.ts';

/**
 * The end-to-end drill for repositories written to hurt: each one is pushed to the GitHub stand-in and
 * synced by a real job (real git, real kustomize, a real apiserver). A refused commit must end with a
 * `failure` that says what is wrong, an annotation on the file to blame, and nothing at all in the
 * cluster — no object, no inventory. Legitimate but odd commits (shell metacharacters in names, 50 MB of
 * comments) must simply work. Each case is one row of one of the two tables below.
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

/** What a row knows when it builds its commit: a fresh cluster, namespace and folder, and the URL server. */
interface Case {
  readonly cluster: string;
  readonly namespace: string;
  /** `clusters/<cluster>` unless the row names its own. */
  readonly folder: string;
  /** The loopback server that records every GET (an SSRF target): `http://127.0.0.1:<port>`. */
  readonly origin: string;
}

/** A hostile commit, refused: the failure says `description`, blames `file` (at `line`), and writes nothing. */
interface RefusedRow {
  readonly name: string;
  readonly files: (c: Case) => Readonly<Record<string, string>>;
  /** Work-tree changes a commit of files cannot express (symlinks). */
  readonly prepare?: (c: Case, workDir: string) => Promise<void>;
  /** Another render (its own limits). */
  readonly render?: SyncDependencies['render'];
  readonly description: (c: Case) => RegExp;
  /** The status description also contains this. */
  readonly descriptionIncludes?: string;
  readonly file: (c: Case) => string;
  readonly line?: number;
  /** The job ends within this many seconds. */
  readonly maxSeconds?: number;
  /** Checks only this row makes. */
  readonly also?: (synced: Synced, c: Case) => Promise<void>;
}

/** A legitimate but odd commit, applied: `configMaps` (all `value: v`) and one Namespace, no command run. */
interface AppliedRow {
  readonly name: string;
  readonly folder?: (cluster: string) => string;
  readonly branch?: string;
  readonly files: (c: Case) => Readonly<Record<string, string>>;
  readonly configMaps: readonly string[];
  readonly maxSeconds?: number;
  /** The check run's summary contains this (a file traced back by its odd name). */
  readonly summaryIncludes?: (c: Case) => string;
  readonly also?: (synced: Synced, c: Case) => Promise<void>;
}

const kustomization = (c: Case) => `${c.folder}/kustomization.yaml`;
/** `ln -s /etc clusters/x/evil`, committed as a symlink (mode 120000), not as a copy. */
const symlinkEtc = (c: Case, dir: string) => symlink('/etc', join(dir, c.folder, 'evil'));
/** Names that would run commands or delete files if a shell ever saw them. */
const WEIRD_FILES = ['`id`.yaml', ';rm -rf x;.yaml'] as const;
const [BACKTICKS, SEMICOLONS] = WEIRD_FILES;
/** The 50 MB cases keep their render under PLUMBLINE_RENDER_MAX_BYTES (64 MiB by default). */
const FIFTY_MB = 50 * 1024 * 1024;

const remoteBase = (reference: string): RefusedRow => ({
  name: `2. resources: [${reference}] is refused: vendor it into the repository`,
  files: (c) => ({
    [kustomization(c)]: `resources:\n  - ns.yaml\n  - "${reference}"\n`,
    [`${c.folder}/ns.yaml`]: namespaceYaml(c.namespace),
  }),
  description: () => /^remote base .* is not allowed: vendor it into the repository/,
  descriptionIncludes: reference.slice(0, 20),
  file: kustomization,
});

// kustomize GETs http(s) URLs in any field that names a file — patches, generator files, and the
// fields of generator/transformer configs, inline or in files — from the worker: an SSRF whose answer
// would be applied to the cluster (e.g. metadata-service credentials in a ConfigMap). Each is refused
// by Plumbline's walk, with the file and line; kustomize itself runs without a network besides. (Every
// row checks that nothing was fetched from the loopback server.)
const remoteFile = (field: string, line: number, extra: (c: Case) => string): RefusedRow => ({
  name: `2. ${field} with an http URL is refused, and never fetched`,
  files: (c) => ({
    [kustomization(c)]: `namespace: ${c.namespace}\nresources: [ns.yaml, app.yaml]\n${extra(c)}`,
    [`${c.folder}/ns.yaml`]: namespaceYaml(c.namespace),
    [`${c.folder}/app.yaml`]: configMapYaml('app', c.namespace),
  }),
  description: () => /^remote .* is not allowed/,
  file: kustomization,
  line,
});

const REFUSED: readonly RefusedRow[] = [
  // 1. References and symlinks that leave the repository.
  {
    name: '1. resources: [../../../../etc] is refused before kustomize runs',
    files: (c) => ({
      [kustomization(c)]: 'resources:\n  - ns.yaml\n  - ../../../../etc\n',
      [`${c.folder}/ns.yaml`]: namespaceYaml(c.namespace),
    }),
    description: () =>
      /^\.\.\/\.\.\/\.\.\/\.\.\/etc leaves the repository \(clusters\/[\w-]+\/kustomization\.yaml:3\)$/,
    file: kustomization,
  },
  {
    name: '1. resources: [/etc/passwd] is refused before kustomize runs',
    files: (c) => ({
      [kustomization(c)]: 'resources:\n  - ns.yaml\n  - /etc/passwd\n',
      [`${c.folder}/ns.yaml`]: namespaceYaml(c.namespace),
    }),
    description: () => /^\/etc\/passwd leaves the repository \(clusters\/[\w-]+\/kustomization\.yaml:3\)$/,
    file: kustomization,
  },
  {
    name: '1. a committed symlink to /etc listed as a resource is not followed',
    files: (c) => ({
      [kustomization(c)]: 'resources:\n  - ns.yaml\n  - evil\n',
      [`${c.folder}/ns.yaml`]: namespaceYaml(c.namespace),
    }),
    prepare: symlinkEtc,
    description: () =>
      /^evil is not a file or folder inside the repository .*\(clusters\/[\w-]+\/kustomization\.yaml:3\)$/,
    file: kustomization,
    line: 3,
    also: async (synced, c) => {
      expect(await f.work.git('ls-tree', synced.sha, `${c.folder}/evil`)).toMatch(/^120000 blob /);
    },
  },
  {
    name: '1. a generator reading a file through the symlink is refused before kustomize runs: /etc never reaches the cluster',
    files: (c) => ({
      [kustomization(c)]:
        `namespace: ${c.namespace}\nresources: [ns.yaml]\nconfigMapGenerator:\n  - name: leak\n    files: [evil/passwd]\n`,
      [`${c.folder}/ns.yaml`]: namespaceYaml(c.namespace),
    }),
    prepare: symlinkEtc,
    description: () => /^evil\/passwd is not a file or folder inside the repository/,
    file: kustomization,
    also: async (synced) => {
      // Refused by Plumbline's own walk of the kustomization, without the worker's paths in the message.
      const annotation = synced.checkRun?.annotations[0]?.message ?? '';
      expect(annotation).toMatch(/evil\/passwd/);
      expect(annotation).not.toMatch(/plumbline-source-|\/tmp\//);
    },
  },
  {
    name: '1. a plain-YAML folder with a symlinked manifest names the file and applies nothing',
    files: (c) => ({
      [`${c.folder}/app.yaml`]: `${namespaceYaml(c.namespace)}---\n${configMapYaml('ok', c.namespace)}`,
    }),
    prepare: async (c, dir) => {
      await symlinkEtc(c, dir);
      await symlink('/etc/passwd', join(dir, c.folder, 'passwd.yaml'));
    },
    description: () => /^clusters\/[\w-]+\/passwd\.yaml points outside the repository/,
    file: (c) => `${c.folder}/passwd.yaml`,
  },

  // 2. Remote bases and remote files.
  remoteBase('github.com/org/repo//path?ref=v1'),
  remoteBase('https://example.com/x.yaml'),
  remoteBase('git::https://github.com/org/repo//path?ref=v1'),
  remoteBase('git@github.com:org/repo'),
  remoteFile('patches[].path', 4, (c) => `patches:\n  - path: ${c.origin}/patch/${c.namespace}.yaml\n`),
  remoteFile(
    'configMapGenerator files',
    5,
    (c) => `configMapGenerator:\n  - name: leak\n    files: [${c.origin}/token]\n`,
  ),
  remoteFile(
    'an inline generator config',
    8,
    (c) =>
      `generators:\n  - |-\n    apiVersion: builtin\n    kind: ConfigMapGenerator\n    metadata: {name: leak}\n    files: [creds=${c.origin}/latest/meta-data]\n`,
  ),
  {
    name: '2. a transformer config file whose patch path is an http URL is refused, naming that file and line',
    files: (c) => ({
      [kustomization(c)]:
        `namespace: ${c.namespace}\nresources: [ns.yaml, app.yaml]\ntransformers: [transformers/patch.yaml]\n`,
      [`${c.folder}/transformers/patch.yaml`]: `apiVersion: builtin\nkind: PatchTransformer\nmetadata: {name: p}\npath: ${c.origin}/patch/${c.namespace}.yaml\n`,
      [`${c.folder}/ns.yaml`]: namespaceYaml(c.namespace),
      [`${c.folder}/app.yaml`]: configMapYaml('app', c.namespace),
    }),
    // (The description is cut at 140 characters; the annotation carries the file and line.)
    description: () => /^remote file http:\/\/127\.0\.0\.1:\d+\/patch\/[\w-]+\.yaml is not allowed/,
    file: (c) => `${c.folder}/transformers/patch.yaml`,
    line: 4,
  },

  // 3. YAML alias bombs.
  {
    name: '3. a billion laughs in a plain-YAML folder is refused, not expanded',
    files: (c) => ({
      [`${c.folder}/a-namespace.yaml`]: namespaceYaml(c.namespace),
      [`${c.folder}/bomb.yaml`]: aliasBomb('lol', c.namespace, 9),
    }),
    maxSeconds: 30,
    description: () => /^invalid YAML: Excessive alias count .* \(clusters\/[\w-]+\/bomb\.yaml:1\)$/,
    file: (c) => `${c.folder}/bomb.yaml`,
    line: 1,
  },
  // kustomize expands aliases without a limit: measured with kubectl kustomize v5.5.0,
  // 10^5 leaves take 0.2 GB and 1.6 s, 10^6 take 1.5 GB and 16 s, 10^7 passed 15 GB before the
  // 60 s render timeout killed it (a 9-level bomb would OOM-kill a worker pod well before its timeout).
  // These rows use 5 levels (bounded cost) — well above what the plain-YAML path refuses.
  {
    name: '3. a bomb listed as a kustomize resource is refused before kustomize expands it',
    files: (c) => ({
      [kustomization(c)]: 'resources: [ns.yaml, bomb.yaml]\n',
      [`${c.folder}/ns.yaml`]: namespaceYaml(c.namespace),
      [`${c.folder}/bomb.yaml`]: aliasBomb('lol', c.namespace, 5),
    }),
    description: () => /alias/i,
    file: (c) => `${c.folder}/bomb.yaml`,
  },
  {
    name: '3. a bomb in a patch file only a transformer config names (any extension) is refused before kustomize',
    files: (c) => ({
      [kustomization(c)]: 'resources: [ns.yaml, app.yaml]\ntransformers: [patch.yaml]\n',
      [`${c.folder}/ns.yaml`]: namespaceYaml(c.namespace),
      [`${c.folder}/app.yaml`]: configMapYaml('lol', c.namespace),
      [`${c.folder}/patch.yaml`]:
        'apiVersion: builtin\nkind: PatchTransformer\nmetadata: {name: p}\npath: lol.txt\ntarget: {kind: ConfigMap}\n',
      [`${c.folder}/lol.txt`]: aliasBomb('lol', c.namespace, 5),
    }),
    description: () => /alias/i,
    file: (c) => `${c.folder}/lol.txt`,
  },

  // 4. and 5. Sheer size.
  // 20,000 ConfigMaps in a namespace that neither exists nor is created by the commit: nothing can defer
  // them (apply-objects only waits for a Namespace *of the same commit*), so every dry-run is rejected
  // with "namespace … does not exist" and the commit fails before any write. That is a render Plumbline
  // must refuse, through the real apiserver, so it is used as is (no need for 20,000 duplicates).
  {
    name: '4. 20,000 documents in one file: refused within a bounded time, every object named, nothing written',
    files: (c) => ({
      [`${c.folder}/many.yaml`]: Array.from({ length: 20_000 }, (_, i) =>
        configMapYaml(`cm-${i}`, c.namespace, String(i)),
      ).join('---\n'),
    }),
    // Once the apiserver says the namespace is missing, the other 19,999 objects are not sent: ~7 s.
    maxSeconds: 90,
    description: (c) =>
      new RegExp(`^20000 rejected \\(${c.folder}/many\\.yaml:1\\): namespace ${c.namespace} does not exist$`),
    file: (c) => `${c.folder}/many.yaml`,
    line: 1,
    also: async (synced, c) => {
      const outcome = synced.result.outcomes[0];
      expect(outcome?.status === 'failed' && outcome.problems.length).toBe(20_000);
      // Annotations are capped (three requests' worth), each on its own object's line (8 lines apart);
      // the summary says how many more there are.
      expect(synced.checkRun?.annotations).toHaveLength(150);
      expect(synced.checkRun?.annotations[149]).toMatchObject({
        path: `${c.folder}/many.yaml`,
        start_line: 149 * 8 + 1,
      });
      expect(synced.checkRun?.output.summary).toContain('19850 more problem(s) are not annotated');
    },
  },
  {
    name: '5. a 50 MB ConfigMap: a clear refusal from the apiserver, no crash, nothing written',
    files: (c) => {
      const huge = `${namespaceYaml(c.namespace)}---\n${configMapYaml('huge', c.namespace, 'x'.repeat(FIFTY_MB))}`;
      expect(huge.length).toBeGreaterThan(FIFTY_MB);
      return { [`${c.folder}/huge.yaml`]: huge };
    },
    maxSeconds: 60,
    description: (c) =>
      new RegExp(`^1 rejected \\(${c.folder}/huge\\.yaml:\\d+\\): .*(too large|Too long|at most)`, 'i'),
    file: (c) => `${c.folder}/huge.yaml`,
  },
  {
    name: '5b. kustomize output over PLUMBLINE_RENDER_MAX_BYTES fails the cluster, naming the limit and the folder; nothing written',
    // Four ConfigMaps of 300 KiB from one 300 KiB file: every input is small, the output is not.
    files: (c) => ({
      [kustomization(c)]: `namespace: ${c.namespace}\nresources: [ns.yaml]\nconfigMapGenerator:\n${[1, 2, 3, 4]
        .map((i) => `  - {name: part-${i}, files: [data.txt]}`)
        .join('\n')}\n`,
      [`${c.folder}/ns.yaml`]: namespaceYaml(c.namespace),
      [`${c.folder}/data.txt`]: 'x'.repeat(300 * 1024),
    }),
    render: (treeDir, path) =>
      renderCluster(treeDir, path, { kustomize: KUBECTL_KUSTOMIZE, timeoutMs: 60_000, maxOutputBytes: 1024 * 1024 }),
    description: (c) =>
      new RegExp(
        `^the render of ${c.folder} is larger than the limit of 1 MiB \\(PLUMBLINE_RENDER_MAX_BYTES\\): nothing is applied`,
      ),
    file: kustomization,
  },
];

const APPLIED: readonly AppliedRow[] = [
  // Under the render limit Plumbline limits no file size, only the apiserver limits objects: 50 MB of
  // comments around a small valid object is a legitimate (if odd) commit, and is applied.
  {
    name: 'a 50 MB file of comments around one small ConfigMap is legitimate: applied',
    files: (c) => {
      const comment = `# ${'c'.repeat(100)}\n`.repeat(250_000);
      const text = `${comment}${namespaceYaml(c.namespace)}---\n${comment}${configMapYaml('small', c.namespace)}`;
      expect(text.length).toBeGreaterThan(50_000_000);
      expect(text.length).toBeLessThan(64 * 1024 * 1024);
      return { [`${c.folder}/commented.yaml`]: text };
    },
    configMaps: ['small'],
    maxSeconds: 60,
  },
  // 6. Shell metacharacters in names are just names.
  {
    name: 'a plain-YAML cluster folder named `$(touch pwned);x` with files `id`.yaml and ;rm -rf x;.yaml',
    folder: () => 'clusters/$(touch pwned);x',
    files: (c) => ({
      [`${c.folder}/${BACKTICKS}`]: `${namespaceYaml(c.namespace)}---\n${configMapYaml('backticks', c.namespace)}`,
      [`${c.folder}/${SEMICOLONS}`]: configMapYaml('semicolons', c.namespace),
    }),
    configMaps: ['backticks', 'semicolons'],
    summaryIncludes: (c) => `${c.folder}/${SEMICOLONS}`,
  },
  {
    name: `a kustomize cluster folder named a b'" listing \`id\`.yaml and ;rm -rf x;.yaml`,
    folder: () => `clusters/a b'"`,
    files: (c) => ({
      [kustomization(c)]: `resources:\n  - ns.yaml\n${WEIRD_FILES.map((w) => `  - '${w}'\n`).join('')}`,
      [`${c.folder}/ns.yaml`]: namespaceYaml(c.namespace),
      [`${c.folder}/${BACKTICKS}`]: configMapYaml('backticks', c.namespace),
      [`${c.folder}/${SEMICOLONS}`]: configMapYaml('semicolons', c.namespace),
    }),
    configMaps: ['backticks', 'semicolons'],
    // kustomize's output is traced back to the oddly named files.
    summaryIncludes: (c) => `${c.folder}/${BACKTICKS}:1`,
  },
  {
    name: 'a branch named feature/$(id) is registered, pushed and processed as any branch',
    branch: 'feature/$(id)',
    files: (c) => ({
      [`${c.folder}/app.yaml`]: `${namespaceYaml(c.namespace)}---\n${configMapYaml('on-branch', c.namespace)}`,
    }),
    configMaps: ['on-branch'],
    also: async (synced) => {
      expect(await f.work.git('ls-remote', 'origin', 'refs/heads/feature/$(id)')).toContain(synced.sha);
    },
  },
];

let f: SourceFixture;

describe('hostile repositories: a real sync job refuses them and writes nothing to the cluster', () => {
  let redis: Redis;
  const prefix = uniqueName('hostile');
  /** Namespaces and clusters a commit did reach (legitimately, or through a bug): removed afterwards. */
  const createdNamespaces: string[] = [];
  const appliedClusters: string[] = [];
  /** Every GET the loopback server answered: kustomize fetching a URL from a commit would show here. */
  let server: Server;
  const fetched: string[] = [];
  let origin = '';

  beforeAll(async () => {
    f = await createSourceFixture('acme/hostile-gitops');
    redis = new Redis(env.redisUrl, { maxRetriesPerRequest: null });
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
    await new Promise((resolve) => server?.close(resolve));
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

  /** A fresh cluster and namespace, recorded for clean-up should the commit reach the cluster. */
  function newCase(kind: string, folder?: (cluster: string) => string): Case {
    const cluster = uniqueName(kind);
    const namespace = uniqueName(kind);
    createdNamespaces.push(namespace);
    appliedClusters.push(cluster);
    return { cluster, namespace, folder: folder?.(cluster) ?? `clusters/${cluster}`, origin };
  }

  /**
   * Commits `files` (plus whatever `prepare` does in the working tree, such as symlinks), pushes it to
   * `branch`, registers `c.cluster` rendering `c.folder` from that branch, and runs its sync job.
   */
  async function sync(
    c: Case,
    options: {
      readonly files: Readonly<Record<string, string | null>>;
      readonly branch?: string | undefined;
      readonly prepare?: ((workDir: string) => Promise<void>) | undefined;
      readonly wrap?: ((deps: SyncDependencies) => SyncDependencies) | undefined;
    },
  ): Promise<Synced> {
    const { cluster, folder: path } = c;
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

  /** Files a shell running `rm -rf x` (in the tree or in the cluster folder) would delete. */
  const sentinels = (folder: string) => ({ x: 'sentinel\n', [`${folder}/x`]: 'sentinel\n' });
  /** Each render is checked right away, before its tree is removed: no `pwned`, the `x` sentinels intact. */
  const watchRender =
    (traces: string[]) =>
    (deps: SyncDependencies): SyncDependencies => ({
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

  /** Removes a row's files from the work tree, so the next commits stay small. */
  const removeFiles = (files: Readonly<Record<string, string>>) =>
    f.work.write(Object.fromEntries(Object.keys(files).map((file) => [file, null])));

  it.each(REFUSED)(
    '$name',
    async (row) => {
      const c = newCase('hostile');
      const files = row.files(c);
      const before = fetched.length;
      const synced = await sync(c, {
        files,
        prepare: row.prepare && ((dir) => row.prepare!(c, dir)),
        wrap: row.render && ((deps) => ({ ...deps, render: row.render! })),
      });
      if (row.maxSeconds !== undefined) expect(synced.seconds).toBeLessThan(row.maxSeconds);
      expect(fetched.slice(before)).toEqual([]);

      // The commit failed, said why, blamed the file (at its line), and left no trace in the cluster.
      expect(synced.result.outcomes).toEqual([expect.objectContaining({ cluster: synced.cluster, status: 'failed' })]);
      expect(synced.status?.state).toBe('failure');
      expect(synced.status?.description).toMatch(row.description(c));
      if (row.descriptionIncludes) expect(synced.status?.description).toContain(row.descriptionIncludes);
      expect(synced.status?.description?.length ?? 0).toBeLessThanOrEqual(140);
      expect(synced.rollUp).toMatchObject({ state: 'failure', description: `1 failed — see ${synced.cluster}` });
      expect(synced.checkRun).toMatchObject({ status: 'completed', conclusion: 'failure' });
      expect(synced.checkRun?.annotations).toContainEqual(
        expect.objectContaining({
          path: row.file(c),
          annotation_level: 'failure',
          ...(row.line ? { start_line: row.line } : {}),
        }),
      );
      await expect(kube.core.readNamespace({ name: c.namespace })).rejects.toMatchObject({ code: 404 });
      expect(await readInventory(client, c.cluster)).toBeUndefined();
      expect(f.github.violations).toEqual([]);
      // Nothing read through a symlink (or otherwise) from the worker's /etc reached GitHub.
      expect(JSON.stringify(f.github.calls)).not.toMatch(/root:x:0:0/);
      await row.also?.(synced, c);
      await removeFiles(files);
    },
    150_000,
  );

  it.each(APPLIED)(
    '$name',
    async (row) => {
      const c = newCase('odd', row.folder);
      const files = { ...sentinels(c.folder), ...row.files(c) };
      const traces: string[] = [];
      const synced = await sync(c, { files, branch: row.branch, wrap: watchRender(traces) });
      if (row.maxSeconds !== undefined) expect(synced.seconds).toBeLessThan(row.maxSeconds);

      // Applied as any commit: the Namespace and every ConfigMap created, the inventory at this commit.
      expect(synced.result.outcomes).toEqual([expect.objectContaining({ cluster: synced.cluster, status: 'applied' })]);
      expect(synced.status).toMatchObject({
        state: 'success',
        description: expect.stringMatching(new RegExp(`^${row.configMaps.length + 1} created in [\\d.]+ s$`)),
      });
      expect(synced.checkRun).toMatchObject({ status: 'completed', conclusion: 'success' });
      for (const name of row.configMaps) {
        const live = await kube.core.readNamespacedConfigMap({ name, namespace: c.namespace });
        expect({ name, data: live.data }).toEqual({ name, data: { value: 'v' } });
      }
      expect((await readInventory(client, synced.cluster))?.revision).toBe(synced.sha);
      expect(f.github.violations).toEqual([]);
      if (row.summaryIncludes) expect(synced.checkRun?.output.summary).toContain(row.summaryIncludes(c));

      // Nothing was executed: no `pwned` anywhere, no sentinel removed.
      expect(traces).toEqual([]);
      for (const dir of [f.dir, f.work.dir]) expect(await findNamed(dir, 'pwned')).toEqual([]);
      for (const dir of [process.cwd(), homedir()]) expect(await exists(join(dir, 'pwned'))).toBe(false);
      await row.also?.(synced, c);
      await removeFiles(files);
    },
    120_000,
  );
});
