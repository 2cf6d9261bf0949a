/**
 * B8 (docs/performance.md): a signed push → the final commit status, end to end on loopback — the
 * GitHub stand-in (git over smart HTTP, REST validated against GitHub's OpenAPI), Plumbline's receiver
 * and worker, a local apiserver — against the shell pipeline a team might script instead: `git fetch
 * --depth 1` + `kubectl apply --server-side` + one status POST. Interleaved A/B at 10, 100 and 1,000
 * changed objects; then a burst of 20 pushes to one branch, counting the commits applied.
 */
import { createHmac, randomBytes, randomUUID } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GitHubStandIn } from '../dev/github-stand-in/github-stand-in.ts';
import { readEnvOptions } from '../src/config/read-env-options.ts';
import { createLogger } from '../src/logging/create-logger.ts';
import { startReceiver } from '../src/receiver/start-receiver.ts';
import { credentialEnv } from '../src/source/git-mirror.ts';
import { runCommand } from '../src/support/run-command.ts';
import { WorkingRepo } from '../test/helpers/working-repo.ts';
import { startWorker } from '../workers/start-worker.ts';
import { median, spread } from './stats.ts';

export interface B8Result {
  readonly objects: number;
  readonly oursMs: number[];
  readonly shellMs: number[];
  readonly ratio: number;
}

export interface B8Burst {
  readonly pushes: number;
  readonly applied: number;
  readonly finalMs: number;
}

const INSTALLATION_ID = 8;
const REPOSITORY = 'bench/b8';

function configMaps(namespace: string, n: number, version: number): string {
  const docs = [`apiVersion: v1\nkind: Namespace\nmetadata:\n  name: ${namespace}\n`];
  for (let i = 0; i < n; i += 1) {
    docs.push(
      `apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm-${i}\n  namespace: ${namespace}\ndata:\n  version: "${version}"\n  index: "${i}"\n`,
    );
  }
  return docs.join('---\n');
}

async function waitFor(probe: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!probe()) {
    if (Date.now() > deadline) throw new Error(`B8 timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

export async function runB8(
  redisUrl: string,
  kubeconfig: string,
  sizes: readonly number[],
  reps: number,
  log: (line: string) => void,
): Promise<{ runs: B8Result[]; burst: B8Burst }> {
  const dir = await mkdtemp(join(tmpdir(), 'plumbline-b8-'));
  const github = await new GitHubStandIn({ rootDir: join(dir, 'github') }).start();
  const repository = await github.createRepository(REPOSITORY, INSTALLATION_ID);
  const work = await WorkingRepo.create(repository.bareDir);
  const run = Date.now().toString(36);
  const cluster = `b8-${run}`;
  const registry = join(dir, 'clusters.yaml');
  await writeFile(
    registry,
    `clusters:\n  - {name: ${cluster}, repo: ${REPOSITORY}, path: clusters/ours, kubeconfig: ${JSON.stringify(kubeconfig)}}\n`,
  );
  const secret = randomBytes(16).toString('hex');
  const options = readEnvOptions({
    PORT: '0',
    REDIS_URL: redisUrl,
    PLUMBLINE_QUEUE_PREFIX: `b8-${run}`,
    GITHUB_WEBHOOK_SECRET: secret,
    GITHUB_APP_ID: String(github.appId),
    GITHUB_PRIVATE_KEY: github.privateKeyPem,
    GITHUB_API_URL: github.apiUrl,
    PLUMBLINE_CLUSTERS: registry,
    PLUMBLINE_CACHE_DIR: join(dir, 'cache'),
    PLUMBLINE_GITHUB_WRITES_PER_MINUTE: '5000',
    LOG_LEVEL: 'silent',
  });
  const logger = createLogger('silent');
  const worker = await startWorker(options, logger);
  const receiver = await startReceiver(options, logger);
  const base = `http://127.0.0.1:${receiver.port}`;
  // The shell pipeline's state: a persistent bare repository and a token, as a CI job would keep them.
  const shellRepo = join(dir, 'shell.git');
  await runCommand('git', ['init', '--bare', '--quiet', shellRepo], { timeoutMs: 10_000 });
  const gitEnv = { GIT_CONFIG_NOSYSTEM: '1', GIT_CONFIG_GLOBAL: '/dev/null', GIT_TERMINAL_PROMPT: '0' };
  const kubeEnv = { KUBECONFIG: kubeconfig };

  let before = '0'.repeat(40);
  const deliver = async (after: string) => {
    const body = JSON.stringify({
      ref: 'refs/heads/main',
      before,
      after,
      forced: false,
      repository: { id: repository.id, full_name: repository.fullName, clone_url: repository.cloneUrl },
      installation: { id: INSTALLATION_ID },
    });
    before = after;
    const response = await fetch(`${base}/api/github/webhooks`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        'x-github-event': 'push',
        'x-github-delivery': randomUUID(),
        'x-hub-signature-256': `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`,
      },
      body,
    });
    await response.arrayBuffer();
    if (response.status !== 202) throw new Error(`webhook answered ${response.status}`);
  };
  // The roll-up and the cluster's status are written concurrently (lanes per context): both must be final.
  const finalRollUp = (sha: string) =>
    ['plumbline', `plumbline/${cluster}`].every((context) => {
      const status = github.latestStatus(REPOSITORY, sha, context);
      return status !== undefined && status.state !== 'pending';
    });

  const ours = async (n: number, version: number): Promise<number> => {
    const sha = await work.commit(`ours ${n} v${version}`, {
      'clusters/ours/objects.yaml': configMaps(`b8-ours-${run}`, n, version),
    });
    await work.push();
    const started = performance.now();
    await deliver(sha);
    await waitFor(() => finalRollUp(sha), 300_000, `the final status of ${sha.slice(0, 7)}`);
    const elapsed = performance.now() - started;
    const state = github.latestStatus(REPOSITORY, sha, `plumbline/${cluster}`);
    if (state?.state !== 'success') throw new Error(`B8: ours ended ${state?.state}: ${state?.description}`);
    return elapsed;
  };
  const shell = async (n: number, version: number): Promise<number> => {
    const sha = await work.commit(`shell ${n} v${version}`, {
      'clusters/shell/objects.yaml': configMaps(`b8-shell-${run}`, n, version),
    });
    await work.push();
    const started = performance.now();
    const token = github.issuedTokens().at(-1) ?? '';
    const auth = credentialEnv({ repositoryId: 0, cloneUrl: repository.cloneUrl, token });
    const fetched = await runCommand(
      'git',
      ['-C', shellRepo, 'fetch', '--quiet', '--depth=1', repository.cloneUrl, sha],
      {
        env: { ...gitEnv, ...auth },
        timeoutMs: 120_000,
      },
    );
    if (fetched.code !== 0) throw new Error(`git fetch failed: ${fetched.stderr}`);
    const tree = await mkdtemp(join(dir, 'tree-'));
    await runCommand('git', ['--git-dir', shellRepo, '--work-tree', tree, 'checkout', sha, '--', 'clusters/shell'], {
      env: gitEnv,
      timeoutMs: 60_000,
    });
    const applied = await runCommand(
      'kubectl',
      ['apply', '--server-side', '--force-conflicts', '--field-manager=shell', '-f', join(tree, 'clusters', 'shell')],
      { env: kubeEnv, timeoutMs: 600_000 },
    );
    if (applied.code !== 0) throw new Error(`kubectl apply failed: ${applied.stderr}`);
    const posted = await fetch(`${github.apiUrl}/repos/${REPOSITORY}/statuses/${sha}`, {
      method: 'POST',
      headers: { authorization: `token ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ state: 'success', context: 'shell', description: 'applied' }),
    });
    await posted.arrayBuffer();
    const elapsed = performance.now() - started;
    await rm(tree, { recursive: true, force: true });
    return elapsed;
  };

  try {
    const runs: B8Result[] = [];
    let version = 0;
    for (const n of sizes) {
      // Warm-up: the first apply creates the namespace and objects, and warms discovery and connections.
      version += 1;
      await ours(n, version);
      await shell(n, version);
      const oursMs: number[] = [];
      const shellMs: number[] = [];
      for (let rep = 0; rep < reps; rep += 1) {
        version += 1;
        oursMs.push(await ours(n, version));
        shellMs.push(await shell(n, version));
      }
      runs.push({ objects: n, oursMs, shellMs, ratio: median(oursMs) / median(shellMs) });
    }

    // A burst: 20 commits pushed and announced back to back.
    const shas: string[] = [];
    const burstStarted = performance.now();
    for (let i = 0; i < 20; i += 1) {
      version += 1;
      const sha = await work.commit(`burst ${i}`, {
        'clusters/ours/objects.yaml': configMaps(`b8-ours-${run}`, 10, version),
      });
      await work.push();
      await deliver(sha);
      shas.push(sha);
    }
    const last = shas.at(-1) ?? '';
    await waitFor(() => finalRollUp(last), 300_000, 'the final status of the burst');
    const finalMs = performance.now() - burstStarted;
    const applied = shas.filter((sha) => {
      const status = github.latestStatus(REPOSITORY, sha, `plumbline/${cluster}`);
      return status !== undefined && !/superseded/.test(status.description ?? '');
    }).length;
    const burst = { pushes: shas.length, applied, finalMs };

    log('B8 push → final status, end to end (interleaved; ours includes the 250 ms push coalescing window)');
    log('| Changed objects | Ours (median ± spread) | Shell pipeline | Ratio (target ≤ 1.2 at 10, ≤ 0.5 at 1,000) |');
    log('|---|---|---|---|');
    for (const r of runs) {
      log(
        `| ${r.objects} | ${median(r.oursMs).toFixed(0)} ± ${spread(r.oursMs).toFixed(0)} ms | ${median(r.shellMs).toFixed(0)} ± ${spread(r.shellMs).toFixed(0)} ms | ${r.ratio.toFixed(2)} |`,
      );
    }
    log(
      `burst of ${burst.pushes} pushes: ${burst.applied} commit(s) applied (target ≤ 2), final status after ${burst.finalMs.toFixed(0)} ms`,
    );
    if (github.violations.length > 0) throw new Error(`stand-in violations: ${github.violations.join('; ')}`);
    return { runs, burst };
  } finally {
    await receiver.close();
    await worker.close();
    await github.stop();
    await work.remove();
    await rm(dir, { recursive: true, force: true });
  }
}
