import { CommandOutputLimitError, CommandTimeoutError, formatBytes, runCommand } from '../support/run-command.ts';
import { createKustomizeHelmGate, type KustomizeHelmGate } from './kustomize-helm-gate.ts';
import { resolveNetworkSandbox, type SandboxedRunLimits } from './sandboxed-command.ts';

/** How to run kustomize: the standalone binary, or the copy built into kubectl. */
export interface KustomizeCommand {
  readonly command: string;
  readonly args: (dir: string) => string[];
}

export const KUBECTL_KUSTOMIZE: KustomizeCommand = { command: 'kubectl', args: (dir) => ['kustomize', dir] };
export const STANDALONE_KUSTOMIZE: KustomizeCommand = { command: 'kustomize', args: (dir) => ['build', dir] };

/** The standalone `kustomize` when installed (as in the image), else the one built into kubectl. */
export async function resolveKustomize(): Promise<KustomizeCommand> {
  const standalone = await runCommand('kustomize', ['version'], { timeoutMs: 10_000 }).then(
    (result) => result.code === 0,
    () => false,
  );
  return standalone ? STANDALONE_KUSTOMIZE : KUBECTL_KUSTOMIZE;
}

/** Charts a kustomization inflates (`helmCharts:`), made ready by prepareKustomizeHelmCharts. */
export interface KustomizeHelm {
  /** Plumbline's helm binary (Helm 3 or 4). */
  readonly command: string;
  /** The absolute chart folders kustomize may template: the ones prepareKustomizeHelmCharts checked. */
  readonly charts: readonly string[];
}

/** The network sandbox is shared with helm (sandboxed-command.ts). */
export interface KustomizeRunOptions extends SandboxedRunLimits {
  readonly kustomize: KustomizeCommand;
  /**
   * Set when the kustomization uses helmCharts: kustomize runs with `--enable-helm`, its helm being
   * Plumbline's behind a gate (kustomize-helm-gate.ts) that allows `helm template` of the listed charts
   * only. Without it, kustomize refuses helmCharts ("must specify --enable-helm").
   */
  readonly helm?: KustomizeHelm | undefined;
}

export type KustomizeRun =
  | { readonly ok: true; readonly output: string }
  | {
      readonly ok: false;
      readonly reason: 'failed' | 'too-large' | 'timeout';
      /** What went wrong, with the tree's own paths made repository-relative. */
      readonly message: string;
    };

/**
 * Runs `kustomize build` on one folder of an exported tree, without a network, without a shell
 * (every argument is passed as is), with a timeout and a bound on its output. This is the lower
 * level: it checks no reference itself — collectRenderInputs does that before a render calls it.
 */
export async function runKustomize(
  treeDir: string,
  clusterPath: string,
  options: KustomizeRunOptions,
): Promise<KustomizeRun> {
  const sandbox = options.sandbox ?? (await resolveNetworkSandbox());
  const [command, ...wrapperArgs] = [...sandbox.wrapper, options.kustomize.command];
  if (command === undefined) throw new Error('no kustomize command');
  const gate = options.helm
    ? await createKustomizeHelmGate({ helm: options.helm.command, charts: options.helm.charts })
    : undefined;
  try {
    const helmArgs = gate ? ['--enable-helm', `--helm-command=${gate.command}`] : [];
    const result = await runCommand(
      command,
      [...wrapperArgs, ...options.kustomize.args(clusterPath || '.'), ...helmArgs],
      {
        cwd: treeDir,
        env: { ...sandbox.env, ...gate?.env },
        timeoutMs: options.timeoutMs,
        maxOutputBytes: options.maxOutputBytes,
      },
    );
    if (result.code === 0) return { ok: true, output: result.stdout.toString('utf8') };
    return { ok: false, reason: 'failed', message: kustomizeFailure(result.stderr, treeDir, gate) };
  } catch (error) {
    // kustomize missing or the machine out of processes is the worker's problem: thrown, so the job retries.
    if (error instanceof CommandOutputLimitError) {
      return {
        ok: false,
        reason: 'too-large',
        message: `kustomize printed more than ${formatBytes(error.limitBytes)}`,
      };
    }
    if (!(error instanceof CommandTimeoutError)) throw error;
    return {
      ok: false,
      reason: 'timeout',
      message: `kustomize build did not finish within ${options.timeoutMs / 1000} s`,
    };
  } finally {
    await gate?.remove();
  }
}

/**
 * kustomize names the file it failed on; paths are relative to the tree, so they read as repository
 * paths. A helm failure comes wrapped in `unable to run: '<helm> template …' with env=[…] (is '<helm>'
 * installed?)`, which names only Plumbline's scratch folders: helm's (or the gate's) own words are kept.
 */
function kustomizeFailure(stderr: string, treeDir: string, gate: KustomizeHelmGate | undefined): string {
  let message = cleanKustomizeError(stderr);
  if (gate) {
    message = message
      .replace(/:? ?unable to run: '[^']*' with env=\[[^\]]*\] \(is '[^']*' installed\?\)(: exit status \d+)?/g, '')
      .replace(new RegExp(`${escapeRegExp(gate.dir)}/tmp/kustomize-helm-\\d+/`, 'g'), '')
      .replace(new RegExp(escapeRegExp(`${gate.dir}/`), 'g'), '');
  }
  return message
    .replace(new RegExp(escapeRegExp(`${treeDir}/`), 'g'), '')
    .trim()
    .split('\n')
    .slice(-3)
    .join(' ');
}

/**
 * kubectl's klog prefix says nothing to a user: `E1128 12:14:33.1 123 run.go:72] "command failed" err="…"`
 * for a one-line error, and for a longer one `… err=<` then the error's lines, each after a tab, then ` >`.
 */
export function cleanKustomizeError(stderr: string): string {
  return stderr
    .replace(/^[EWIF]\d{4} [\d:.]+\s+\d+ [\w.]+:\d+\] "command failed" err="(.*)"$/gm, (_line, error: string) =>
      error.replace(/\\"/g, '"'),
    )
    .replace(
      /^[EWIF]\d{4} [\d:.]+\s+\d+ [\w.]+:\d+\] "command failed" err=<\n([\s\S]*?)\n >$/gm,
      (_block, lines: string) => lines.replace(/^\t/gm, ''),
    )
    .replace(/^error: /gm, '');
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
