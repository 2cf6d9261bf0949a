import { CommandOutputLimitError, CommandTimeoutError, formatBytes, runCommand } from '../support/run-command.ts';

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

/**
 * Where kustomize runs. Repository content is data, never a network client: the references kustomize
 * would fetch are refused before it runs, and this is the second wall in case one slips through.
 */
export interface NetworkSandbox {
  /** A program (and its arguments) that runs kustomize without a network, such as `unshare --net --`. */
  readonly wrapper: readonly string[];
  readonly env: Readonly<Record<string, string>>;
}

/**
 * Every proxy variable points at port 0 of loopback, where nothing can listen: kustomize's HTTP client
 * (and git over HTTP) fail at once instead of reaching a host. Go never proxies loopback addresses, so
 * this stops everything but them; the network namespace stops those too. git may use no transport at all.
 */
const NO_NETWORK_ENV: Readonly<Record<string, string>> = Object.freeze({
  HTTP_PROXY: 'http://127.0.0.1:0',
  HTTPS_PROXY: 'http://127.0.0.1:0',
  ALL_PROXY: 'http://127.0.0.1:0',
  http_proxy: 'http://127.0.0.1:0',
  https_proxy: 'http://127.0.0.1:0',
  all_proxy: 'http://127.0.0.1:0',
  NO_PROXY: '',
  no_proxy: '',
  GIT_ALLOW_PROTOCOL: 'none',
  GIT_CONFIG_NOSYSTEM: '1',
  GIT_CONFIG_GLOBAL: '/dev/null',
  GIT_TERMINAL_PROMPT: '0',
});

/** The proxy wall alone, for systems that cannot create a network namespace. */
export const PROXY_ONLY_SANDBOX: NetworkSandbox = Object.freeze({ wrapper: [], env: NO_NETWORK_ENV });

/**
 * Ways to give kustomize a network namespace of its own (only a loopback that is down), best first:
 * as root, a plain new namespace; otherwise, inside a new user namespace (rootless, where the kernel
 * and the container's seccomp profile allow it).
 */
const NAMESPACE_WRAPPERS: readonly (readonly string[])[] = [
  ['unshare', '--net', '--'],
  ['unshare', '--user', '--map-root-user', '--net', '--'],
];

let resolved: Promise<NetworkSandbox> | undefined;

/**
 * The sandbox this machine allows, found once per process by trying each namespace wrapper on `true`:
 * a network namespace where one can be made, else the proxy wall alone.
 */
export function resolveNetworkSandbox(): Promise<NetworkSandbox> {
  resolved ??= (async () => {
    const asRoot = process.getuid?.() === 0;
    for (const wrapper of NAMESPACE_WRAPPERS.filter((w) => asRoot || w.includes('--user'))) {
      const [command, ...args] = wrapper;
      if (command === undefined) continue;
      const works = await runCommand(command, [...args, 'true'], { timeoutMs: 10_000 }).then(
        (result) => result.code === 0,
        () => false,
      );
      if (works) return Object.freeze({ wrapper, env: NO_NETWORK_ENV });
    }
    return PROXY_ONLY_SANDBOX;
  })();
  return resolved;
}

export interface KustomizeRunOptions {
  readonly kustomize: KustomizeCommand;
  readonly timeoutMs: number;
  /** Most bytes kustomize may print; past it the build is stopped and fails. */
  readonly maxOutputBytes: number;
  /** Default: what resolveNetworkSandbox finds. */
  readonly sandbox?: NetworkSandbox;
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
  try {
    const result = await runCommand(command, [...wrapperArgs, ...options.kustomize.args(clusterPath || '.')], {
      cwd: treeDir,
      env: sandbox.env,
      timeoutMs: options.timeoutMs,
      maxOutputBytes: options.maxOutputBytes,
    });
    if (result.code === 0) return { ok: true, output: result.stdout.toString('utf8') };
    // kustomize names the file it failed on; paths are relative to the tree, so they read as repository paths.
    const message = cleanKustomizeError(result.stderr)
      .replace(new RegExp(escapeRegExp(`${treeDir}/`), 'g'), '')
      .trim()
      .split('\n')
      .slice(-3)
      .join(' ');
    return { ok: false, reason: 'failed', message };
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
  }
}

/** kubectl's klog prefix (`E1128 12:14:33.1 123 run.go:72] "command failed" err="…"`) says nothing to a user. */
export function cleanKustomizeError(stderr: string): string {
  return stderr
    .replace(/^[EWIF]\d{4} [\d:.]+\s+\d+ [\w.]+:\d+\] "command failed" err="(.*)"$/gm, (_line, error: string) =>
      error.replace(/\\"/g, '"'),
    )
    .replace(/^error: /gm, '');
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
