import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CommandOutputLimitError, CommandTimeoutError, formatBytes, runCommand } from '../support/run-command.ts';
import { resolveNetworkSandbox, type SandboxedRunLimits, sandboxedArgv } from './sandboxed-command.ts';

export interface HelmRunOptions extends SandboxedRunLimits {
  /** The helm binary (Helm 3 or 4: the flags used are common to both). */
  readonly helm: string;
  readonly cwd: string;
}

export type HelmRun =
  | { readonly ok: true; readonly output: string }
  | { readonly ok: false; readonly reason: 'failed' | 'too-large' | 'timeout'; readonly stderr: string };

/**
 * Runs helm without a network (the same sandbox as kustomize), without a shell, with a timeout and a
 * bound on its output, and with nothing of the machine's user: HOME and every helm home (cache, config,
 * data, plugins, registry and repository files) are an empty folder made for this run and removed after
 * it, and KUBECONFIG names a file that does not exist — no plugin, no repository, no registry login, no
 * cluster. This is the lower level: renderChart checks the chart before it calls it.
 */
export async function runHelm(args: readonly string[], options: HelmRunOptions): Promise<HelmRun> {
  const sandbox = options.sandbox ?? (await resolveNetworkSandbox());
  const home = await mkdtemp(join(tmpdir(), 'plumbline-helm-'));
  try {
    const plugins = join(home, 'plugins');
    await mkdir(plugins);
    const argv = sandboxedArgv(sandbox, options.helm, args);
    const result = await runCommand(argv.command, argv.args, {
      cwd: options.cwd,
      env: {
        ...sandbox.env,
        HOME: home,
        HELM_CACHE_HOME: join(home, 'cache'),
        HELM_CONFIG_HOME: join(home, 'config'),
        HELM_CONTENT_CACHE: join(home, 'content'),
        HELM_DATA_HOME: join(home, 'data'),
        HELM_PLUGINS: plugins,
        HELM_REGISTRY_CONFIG: join(home, 'registry.json'),
        HELM_REPOSITORY_CONFIG: join(home, 'repositories.yaml'),
        HELM_REPOSITORY_CACHE: join(home, 'repository'),
        KUBECONFIG: join(home, 'no-kubeconfig'),
      },
      timeoutMs: options.timeoutMs,
      maxOutputBytes: options.maxOutputBytes,
    });
    if (result.code === 0) return { ok: true, output: result.stdout.toString('utf8') };
    return { ok: false, reason: 'failed', stderr: result.stderr };
  } catch (error) {
    // helm missing, or the machine out of processes, is the worker's problem: thrown, so the job retries.
    if (error instanceof CommandOutputLimitError) {
      return { ok: false, reason: 'too-large', stderr: `helm printed more than ${formatBytes(error.limitBytes)}` };
    }
    if (!(error instanceof CommandTimeoutError)) throw error;
    return {
      ok: false,
      reason: 'timeout',
      stderr: `helm template did not finish within ${options.timeoutMs / 1000} s`,
    };
  } finally {
    await rm(home, { recursive: true, force: true });
  }
}
