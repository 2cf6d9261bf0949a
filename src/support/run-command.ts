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
}

export class CommandTimeoutError extends Error {
  override readonly name = 'CommandTimeoutError';
}

/** Keep stderr bounded: a failing command can print a lot, and only its tail explains the failure. */
const STDERR_LIMIT = 16 * 1024;

/**
 * Runs a program directly (no shell, so nothing from a webhook or a repository is ever interpreted),
 * with a hard timeout. Never throws for a non-zero exit: the caller decides what the code means.
 */
export function runCommand(command: string, args: readonly string[], options: RunOptions): Promise<CommandResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, [...args], {
      cwd: options.cwd,
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? '/tmp', ...options.env },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    const stdout: Buffer[] = [];
    let stderr = '';
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new CommandTimeoutError(`${command} ${args[0] ?? ''} timed out after ${options.timeoutMs} ms`));
    }, options.timeoutMs);
    child.stdout.on('data', (chunk: Buffer) => stdout.push(chunk));
    child.stderr.on('data', (chunk: Buffer) => {
      stderr = (stderr + chunk.toString('utf8')).slice(-STDERR_LIMIT);
    });
    child.once('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code: code ?? -1, stdout: Buffer.concat(stdout), stderr });
    });
    child.stdin.on('error', () => {});
    child.stdin.end(options.input);
  });
}
