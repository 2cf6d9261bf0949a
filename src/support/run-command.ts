import { spawn } from 'node:child_process';

export interface CommandResult {
  readonly code: number;
  readonly stdout: Buffer;
  readonly stderr: string;
}

export interface RunOptions {
  readonly cwd?: string;
  /** Added to a minimal inherited environment; secrets go here, never into `args`. */
  readonly env?: Readonly<Record<string, string>>;
  readonly timeoutMs: number;
  readonly input?: Buffer | string;
  /**
   * Most bytes the command may print (stdout and stderr together) before it is killed and the run
   * rejected with a CommandOutputLimitError. Default: 256 MiB, far above what git prints here, and
   * below what one Node string can hold.
   */
  readonly maxOutputBytes?: number;
}

export class CommandTimeoutError extends Error {
  override readonly name = 'CommandTimeoutError';
}

export class CommandOutputLimitError extends Error {
  override readonly name = 'CommandOutputLimitError';
  constructor(
    readonly command: string,
    readonly limitBytes: number,
  ) {
    super(`${command} printed more than ${formatBytes(limitBytes)}: stopped`);
  }
}

const DEFAULT_MAX_OUTPUT_BYTES = 256 * 1024 * 1024;

/** `67108864` → `64 MiB`, `1500` → `1500 bytes`: limits as people set them. */
export function formatBytes(bytes: number): string {
  for (const [unit, size] of [
    ['GiB', 1024 ** 3],
    ['MiB', 1024 ** 2],
    ['KiB', 1024],
  ] as const) {
    if (bytes >= size && bytes % size === 0) return `${bytes / size} ${unit}`;
  }
  return bytes >= 1024 ** 2 ? `${(bytes / 1024 ** 2).toFixed(1)} MiB` : `${bytes} bytes`;
}

/** Keep stderr bounded: a failing command can print a lot, and only its tail explains the failure. */
const STDERR_LIMIT = 16 * 1024;

/**
 * Runs a program directly (no shell, so nothing from a webhook or a repository is ever interpreted),
 * with a hard timeout and a bound on its output. Never throws for a non-zero exit: the caller decides
 * what the code means.
 */
export function runCommand(command: string, args: readonly string[], options: RunOptions): Promise<CommandResult> {
  const maxOutputBytes = options.maxOutputBytes ?? DEFAULT_MAX_OUTPUT_BYTES;
  return new Promise((resolve, reject) => {
    const child = spawn(command, [...args], {
      cwd: options.cwd,
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? '/tmp', ...options.env },
      stdio: ['pipe', 'pipe', 'pipe'],
      // A process group of its own, so a kill reaches what it started too (git's helpers, a shell's children).
      detached: true,
    });
    const killGroup = () => {
      try {
        if (child.pid !== undefined) process.kill(-child.pid, 'SIGKILL');
      } catch {
        child.kill('SIGKILL');
      }
    };
    const stdout: Buffer[] = [];
    let stderr = '';
    let printed = 0;
    let settled = false;
    const fail = (error: Error) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      killGroup();
      child.stdout.destroy();
      child.stderr.destroy();
      reject(error);
    };
    const timer = setTimeout(() => {
      fail(new CommandTimeoutError(`${command} ${args[0] ?? ''} timed out after ${options.timeoutMs} ms`));
    }, options.timeoutMs);
    const count = (chunk: Buffer) => {
      printed += chunk.length;
      if (printed > maxOutputBytes) fail(new CommandOutputLimitError(command, maxOutputBytes));
      return !settled;
    };
    child.stdout.on('data', (chunk: Buffer) => {
      if (count(chunk)) stdout.push(chunk);
    });
    child.stderr.on('data', (chunk: Buffer) => {
      if (count(chunk)) stderr = (stderr + chunk.toString('utf8')).slice(-STDERR_LIMIT);
    });
    child.once('error', (error) => fail(error));
    child.once('close', (code) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve({ code: code ?? -1, stdout: Buffer.concat(stdout), stderr });
    });
    child.stdin.on('error', () => {});
    child.stdin.end(options.input);
  });
}
