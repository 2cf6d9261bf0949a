import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parse } from 'yaml';
import { z } from 'zod';
import { runCommand } from '../../src/support/run-command.ts';

/**
 * Test helpers for the chart services of the local stack: push a chart to its OCI registry, publish one
 * to its chart repository. Helm runs with its own throw-away config, cache and registry-login files, so
 * nothing reads or writes `~/.config/helm` or `~/.docker`.
 */
export interface ChartServices {
  /** Helm 4 (`PLUMBLINE_TEST_HELM`). */
  readonly helm: string;
  readonly registry: { readonly host: string; readonly username: string; readonly password: string };
  readonly repository: {
    readonly url: string;
    readonly username: string;
    readonly password: string;
    readonly dir: string;
  };
}

const servicesEnv = z.object({
  PLUMBLINE_TEST_HELM: z.string().min(1),
  PLUMBLINE_TEST_OCI_REGISTRY: z.string().min(1),
  PLUMBLINE_TEST_OCI_USERNAME: z.string().min(1),
  PLUMBLINE_TEST_OCI_PASSWORD: z.string().min(1),
  PLUMBLINE_TEST_CHART_REPOSITORY_URL: z.string().url(),
  PLUMBLINE_TEST_CHART_REPOSITORY_USERNAME: z.string().min(1),
  PLUMBLINE_TEST_CHART_REPOSITORY_PASSWORD: z.string().min(1),
  PLUMBLINE_TEST_CHART_REPOSITORY_DIR: z.string().min(1),
});

/** The chart services global-setup passes to the tests; a clear error when they are missing. */
export function chartServicesFromEnv(env: NodeJS.ProcessEnv = process.env): ChartServices {
  const parsed = servicesEnv.safeParse(env);
  if (!parsed.success) {
    const missing = parsed.error.issues.map((issue) => issue.path.join('.')).join(', ');
    throw new Error(
      `the chart services are not configured (${missing}): run the tests through jest's global setup with the local stack`,
    );
  }
  const e = parsed.data;
  return {
    helm: e.PLUMBLINE_TEST_HELM,
    registry: {
      host: e.PLUMBLINE_TEST_OCI_REGISTRY,
      username: e.PLUMBLINE_TEST_OCI_USERNAME,
      password: e.PLUMBLINE_TEST_OCI_PASSWORD,
    },
    repository: {
      url: e.PLUMBLINE_TEST_CHART_REPOSITORY_URL,
      username: e.PLUMBLINE_TEST_CHART_REPOSITORY_USERNAME,
      password: e.PLUMBLINE_TEST_CHART_REPOSITORY_PASSWORD,
      dir: e.PLUMBLINE_TEST_CHART_REPOSITORY_DIR,
    },
  };
}

export interface HelmResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** A throw-away Helm home (config, cache, data, registry logins) for one helper call. */
export async function withHelmHome<T>(use: (env: Readonly<Record<string, string>>) => Promise<T>): Promise<T> {
  const home = await mkdtemp(join(tmpdir(), 'plumbline-helm-'));
  try {
    return await use({
      HOME: home,
      HELM_CONFIG_HOME: join(home, 'config'),
      HELM_CACHE_HOME: join(home, 'cache'),
      HELM_DATA_HOME: join(home, 'data'),
      HELM_REGISTRY_CONFIG: join(home, 'registry.json'),
      HELM_REPOSITORY_CONFIG: join(home, 'repositories.yaml'),
      HELM_REPOSITORY_CACHE: join(home, 'repository-cache'),
    });
  } finally {
    await rm(home, { recursive: true, force: true });
  }
}

/** Runs helm in `env` (see withHelmHome); `input` goes to its stdin (passwords, never arguments). */
export async function runHelm(
  helm: string,
  args: readonly string[],
  env: Readonly<Record<string, string>>,
  input?: string,
): Promise<HelmResult> {
  const result = await runCommand(helm, [...args], { env, timeoutMs: 120_000, ...(input ? { input } : {}) });
  return { code: result.code, stdout: result.stdout.toString(), stderr: result.stderr };
}

async function helmOrThrow(
  helm: string,
  args: readonly string[],
  env: Readonly<Record<string, string>>,
  input?: string,
): Promise<string> {
  const result = await runHelm(helm, args, env, input);
  if (result.code !== 0) throw new Error(`helm ${args[0]} failed (exit ${result.code}): ${result.stderr.trim()}`);
  return `${result.stdout}\n${result.stderr}`;
}

/** `helm registry login` into the test registry, within `env` (plain HTTP: the registry is on loopback). */
export async function loginToRegistry(services: ChartServices, env: Readonly<Record<string, string>>): Promise<void> {
  const { host, username, password } = services.registry;
  await helmOrThrow(
    services.helm,
    ['registry', 'login', host, '--username', username, '--password-stdin', '--plain-http'],
    env,
    password,
  );
}

export interface PushedChart {
  /** `oci://<host>/<ref>`: what a `dependencies[].repository` or an app's `repository` names. */
  readonly repository: string;
  /** `oci://<host>/<ref>/<name>`: what `helm pull` / `helm template` take, with `--version`. */
  readonly chartUrl: string;
  readonly name: string;
  readonly version: string;
  /** The manifest digest the registry returned (`sha256:…`). */
  readonly digest: string;
}

const chartYaml = z.object({ name: z.string().min(1), version: z.string().min(1) });

/** Name and version from the chart's own `Chart.yaml` (`helm show chart`). */
async function chartMetadata(helm: string, chart: string, env: Readonly<Record<string, string>>) {
  const result = await runHelm(helm, ['show', 'chart', chart], env);
  if (result.code !== 0) throw new Error(`helm show chart ${chart} failed: ${result.stderr.trim()}`);
  return chartYaml.parse(parse(result.stdout));
}

/** `helm package` when given a folder; a `.tgz` is pushed as it is. Returns the archive path. */
async function packageChart(helm: string, chart: string, outDir: string, env: Readonly<Record<string, string>>) {
  if ((await stat(chart)).isFile()) return chart;
  const output = await helmOrThrow(helm, ['package', chart, '--destination', outDir], env);
  const match = /saved it to: (\S+\.tgz)/.exec(output);
  if (!match?.[1]) throw new Error(`helm package did not say where it saved ${chart}: ${output.trim()}`);
  return match[1];
}

/**
 * Pushes a chart (a folder, packaged first, or a `.tgz`) to the test registry under `ref`
 * (e.g. `tests/abc123` → `oci://<host>/tests/abc123/<chart name>:<version>`), with `helm push`.
 */
export async function pushChartToRegistry(
  chart: string,
  ref: string,
  services: ChartServices = chartServicesFromEnv(),
): Promise<PushedChart> {
  return withHelmHome(async (env) => {
    const archive = await packageChart(services.helm, chart, env.HELM_DATA_HOME ?? tmpdir(), env);
    await loginToRegistry(services, env);
    const repository = `oci://${services.registry.host}/${ref.replace(/^\/+|\/+$/g, '')}`;
    const output = await helmOrThrow(services.helm, ['push', archive, repository, '--plain-http'], env);
    const pushed = /Pushed: \S+\/([^/:\s]+):(\S+)/.exec(output);
    const digest = /Digest: (sha256:[0-9a-f]{64})/.exec(output);
    if (!pushed?.[1] || !pushed[2] || !digest?.[1]) throw new Error(`unexpected helm push output: ${output.trim()}`);
    return {
      repository,
      chartUrl: `${repository}/${pushed[1]}`,
      name: pushed[1],
      version: pushed[2],
      digest: digest[1],
    };
  });
}

export interface PublishedChart {
  /** The repository URL (`helm repo add`, a `dependencies[].repository`). */
  readonly repository: string;
  readonly name: string;
  readonly version: string;
  /** `sha256` of the archive, hex, as `index.yaml` lists it. */
  readonly digest: string;
  readonly archive: string;
}

/**
 * Packages a chart folder into the test chart repository and regenerates its `index.yaml`
 * (`helm package` + `helm repo index`). Safe when several test files publish at once: one at a time,
 * under a lock folder, so no publication is left out of the index.
 */
export async function publishToChartRepository(
  chartDir: string,
  services: ChartServices = chartServicesFromEnv(),
): Promise<PublishedChart> {
  const { dir, url } = services.repository;
  return withHelmHome((env) =>
    withLock(join(dir, '.publish.lock'), async () => {
      const archive = await packageChart(services.helm, chartDir, dir, env);
      await helmOrThrow(services.helm, ['repo', 'index', dir], env);
      const { name, version } = await chartMetadata(services.helm, archive, env);
      const digest = createHash('sha256')
        .update(await readFile(archive))
        .digest('hex');
      return { repository: url, name, version, digest, archive };
    }),
  );
}

/** Runs `work` while holding a lock folder (mkdir is atomic); a lock older than a minute is stale. */
async function withLock<T>(lock: string, work: () => Promise<T>): Promise<T> {
  const deadline = Date.now() + 120_000;
  for (;;) {
    try {
      await mkdir(lock);
      break;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      const age = await stat(lock).then(
        (info) => Date.now() - info.mtimeMs,
        () => 0,
      );
      if (age > 60_000) await rm(lock, { recursive: true, force: true });
      else if (Date.now() > deadline) throw new Error(`${lock} is still held after 2 minutes`);
      else await sleep(50);
    }
  }
  try {
    return await work();
  } finally {
    await rm(lock, { recursive: true, force: true });
  }
}
