import { runCommand } from '../support/run-command.ts';

/**
 * Where a renderer (kustomize, helm) runs. Repository content is data, never a network client: the
 * references a renderer would fetch are refused before it runs, and this is the second wall in case one
 * slips through.
 */
export interface NetworkSandbox {
  /** A program (and its arguments) that runs the renderer without a network, such as `unshare --net --`. */
  readonly wrapper: readonly string[];
  readonly env: Readonly<Record<string, string>>;
}

/**
 * Every proxy variable points at port 0 of loopback, where nothing can listen: a Go HTTP client (kustomize,
 * helm, and git over HTTP) fails at once instead of reaching a host. Go never proxies loopback addresses,
 * so this stops everything but them; the network namespace stops those too. git may use no transport at all.
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
/** How long a sandboxed tool may run and how much it may print; both runners (kustomize, helm) take these. */
export interface SandboxedRunLimits {
  readonly timeoutMs: number;
  /** Most bytes the tool may print; past it the tool is stopped and the run fails. */
  readonly maxOutputBytes: number;
  /** Default: what resolveNetworkSandbox finds. */
  readonly sandbox?: NetworkSandbox;
}

export const PROXY_ONLY_SANDBOX: NetworkSandbox = Object.freeze({ wrapper: [], env: NO_NETWORK_ENV });

/**
 * Ways to give a renderer a network namespace of its own (only a loopback that is down), best first:
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

/**
 * `command args…` as the sandbox runs it: the wrapper's program first (when there is one), the command
 * and its arguments after it. Environment variables of the sandbox go with it (`sandbox.env`).
 */
export function sandboxedArgv(
  sandbox: NetworkSandbox,
  command: string,
  args: readonly string[],
): { readonly command: string; readonly args: readonly string[] } {
  const [first, ...rest] = [...sandbox.wrapper, command, ...args];
  return { command: first ?? command, args: rest };
}
