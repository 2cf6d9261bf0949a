import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from '@jest/globals';
import { CommandOutputLimitError, runCommand } from '../../src/support/run-command.ts';

describe('runCommand', () => {
  it('kills a command whose output passes the limit, and says so', async () => {
    // `yes` prints forever: only the limit (not the timeout) can end it.
    const run = runCommand('yes', [], { timeoutMs: 60_000, maxOutputBytes: 1024 * 1024 });
    await expect(run).rejects.toThrow(CommandOutputLimitError);
    await expect(run).rejects.toThrow('yes printed more than 1 MiB: stopped');
  });

  it('counts standard error too, and stops the children the command started', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'plumbline-run-'));
    const pidFile = join(dir, 'pid');
    // The shell starts `yes` as a child of its own (and waits): killing only the shell would leave it printing.
    const run = runCommand('sh', ['-c', `yes >&2 & echo $! > "$0"; wait`, pidFile], {
      timeoutMs: 60_000,
      maxOutputBytes: 64 * 1024,
    });
    await expect(run).rejects.toThrow(CommandOutputLimitError);
    const pid = Number(await readFile(pidFile, 'utf8'));
    const alive = () => {
      try {
        process.kill(pid, 0);
        return true;
      } catch {
        return false;
      }
    };
    for (let i = 0; i < 100 && alive(); i += 1) await new Promise((resolve) => setTimeout(resolve, 100));
    const survived = alive();
    if (survived) process.kill(pid, 'SIGKILL');
    expect(survived).toBe(false);
    await rm(dir, { recursive: true, force: true });
  });

  it('returns output under the limit whole', async () => {
    const result = await runCommand('head', ['-c', String(512 * 1024), '/dev/zero'], {
      timeoutMs: 60_000,
      maxOutputBytes: 1024 * 1024,
    });
    expect(result).toMatchObject({ code: 0 });
    expect(result.stdout.length).toBe(512 * 1024);
  });

  it('allows large outputs by default (git lists of a big commit)', async () => {
    const result = await runCommand('head', ['-c', String(64 * 1024 * 1024), '/dev/zero'], { timeoutMs: 60_000 });
    expect(result.stdout.length).toBe(64 * 1024 * 1024);
  });
});
