import { spawn } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { basename } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

export interface DaemonSpec {
  readonly command: string;
  readonly args: readonly string[];
  /** stdout and stderr go here, never to the parent: a daemon must not hold the caller's pipes open. */
  readonly logFile: string;
  readonly env?: NodeJS.ProcessEnv;
}

/** Starts a process that outlives the caller (its own session, detached stdio) and returns its pid. */
export function spawnDaemon(spec: DaemonSpec): number {
  const log = openSync(spec.logFile, 'a');
  try {
    const child = spawn(spec.command, [...spec.args], {
      detached: true,
      stdio: ['ignore', log, log],
      env: spec.env ?? process.env,
    });
    if (child.pid === undefined) throw new Error(`could not start ${spec.command}`);
    child.unref();
    return child.pid;
  } finally {
    closeSync(log);
  }
}

/** True when `pid` is alive and still runs `command` (guards against a recycled pid). */
export async function isRunning(pid: number, command: string): Promise<boolean> {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    // Some servers rewrite their title (redis-server shows "redis-server 127.0.0.1:6379"), so match the name.
    const argv0 = (await readFile(`/proc/${pid}/cmdline`, 'utf8')).split('\0')[0] ?? '';
    return argv0.includes(basename(command));
  } catch {
    return false;
  }
}

/** SIGTERM, then SIGKILL after `graceMs`; resolves once the process is gone. */
export async function stopProcess(pid: number, command: string, graceMs = 10_000): Promise<void> {
  if (!(await isRunning(pid, command))) return;
  signal(pid, 'SIGTERM');
  const deadline = Date.now() + graceMs;
  while (Date.now() < deadline) {
    if (!(await isRunning(pid, command)) || (await isZombie(pid))) return;
    await sleep(100);
  }
  signal(pid, 'SIGKILL');
  while ((await isRunning(pid, command)) && !(await isZombie(pid))) await sleep(50);
}

function signal(pid: number, name: NodeJS.Signals): void {
  try {
    process.kill(pid, name);
  } catch {
    // Already gone.
  }
}

async function isZombie(pid: number): Promise<boolean> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z');
  } catch {
    return true;
  }
}

export interface ProcessRecord {
  readonly pid: number;
  readonly command: string;
  readonly logFile: string;
}

export interface ReadyDaemonSpec extends DaemonSpec {
  readonly what: string;
  readonly timeoutMs: number;
  readonly ready: () => Promise<boolean>;
}

/** Starts a daemon and waits until `ready`; a daemon that never gets ready is stopped, not leaked. */
export async function startDaemon(spec: ReadyDaemonSpec): Promise<ProcessRecord> {
  const pid = spawnDaemon(spec);
  try {
    await waitUntilReady(spec.ready, {
      what: spec.what,
      timeoutMs: spec.timeoutMs,
      stillAlive: () => isRunning(pid, spec.command),
      logFile: spec.logFile,
    });
  } catch (error) {
    await stopProcess(pid, spec.command);
    throw error;
  }
  return { pid, command: spec.command, logFile: spec.logFile };
}

export interface WaitOptions {
  readonly what: string;
  readonly timeoutMs: number;
  /** Checked on every round so a crashed process fails fast instead of waiting out the timeout. */
  readonly stillAlive?: () => Promise<boolean>;
  readonly logFile?: string;
}

/** Polls `ready` until it returns true; fails with the tail of the process log when it never does. */
export async function waitUntilReady(ready: () => Promise<boolean>, options: WaitOptions): Promise<void> {
  const deadline = Date.now() + options.timeoutMs;
  for (;;) {
    if (await ready().catch(() => false)) return;
    if (options.stillAlive && !(await options.stillAlive())) {
      throw new Error(`${options.what} exited during start-up${await logTail(options.logFile)}`);
    }
    if (Date.now() > deadline) {
      throw new Error(
        `${options.what} was not ready after ${options.timeoutMs / 1000} s${await logTail(options.logFile)}`,
      );
    }
    await sleep(250);
  }
}

async function logTail(logFile: string | undefined): Promise<string> {
  if (!logFile) return '';
  const text = await readFile(logFile, 'utf8').catch(() => '');
  const tail = text.trimEnd().split('\n').slice(-15).join('\n');
  return tail ? `; last lines of ${logFile}:\n${tail}` : '';
}
