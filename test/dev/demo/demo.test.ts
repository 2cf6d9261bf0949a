import { type ChildProcess, spawn } from 'node:child_process';
import { afterEach, describe, expect, it } from '@jest/globals';
import { packageRoot } from '../../../src/support/package-root.ts';

const running: ChildProcess[] = [];
/** A demo left running by a failed test must not overlap the next one. */
afterEach(() => {
  for (const child of running.splice(0)) if (child.exitCode === null) child.kill('SIGKILL');
});

/** `plumbline demo` as a user runs it (through the CLI), with its output collected. */
function startDemo(args: string[]): { child: ChildProcess; output: () => string; exited: Promise<number | null> } {
  const child = spawn(process.execPath, ['--import', 'tsx', 'dev/demo/cli.ts', ...args], {
    cwd: packageRoot(),
    env: { ...process.env, PORT: '' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let text = '';
  child.stdout?.on('data', (chunk: Buffer) => {
    text += chunk.toString();
  });
  child.stderr?.on('data', (chunk: Buffer) => {
    text += chunk.toString();
  });
  running.push(child);
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { child, output: () => text, exited };
}

describe('plumbline demo', () => {
  it('tells the whole story through real webhooks, then exits cleanly (--exit)', async () => {
    const demo = startDemo(['--exit']);
    const code = await demo.exited;
    const output = demo.output();
    expect({ code, tail: output.slice(-2000) }).toMatchObject({ code: 0 });
    expect(output).toMatch(/signed push webhook answered 202/);
    expect(output).toMatch(/plumbline\/gcp-production +success +5 created/);
    expect(output).toMatch(
      /plumbline\/aws-staging +failure +1 rejected \(stacks\/security\/registry-settings\.yaml:1\)/,
    );
    expect(output).toMatch(/annotation on stacks\/security\/registry-settings\.yaml:1/);
    expect(output).toMatch(/plumbline +success +1 applied, 1 unaffected/);
    expect(output).toMatch(
      /drift: ConfigMap\/monitoring\/grafana-settings data\.theme, changed by kubectl-edit → corrected/,
    );
    expect(output).toMatch(/live value again: theme: dark/);
    expect(output).toMatch(/demo stopped\.\n$/);
  }, 300_000);

  it('keeps running until Ctrl-C, then stops everything it started', async () => {
    const demo = startDemo([]);
    const deadline = Date.now() + 200_000;
    while (!/Press Ctrl-C/.test(demo.output()) && Date.now() < deadline) {
      if (demo.child.exitCode !== null) break;
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    expect(demo.output()).toMatch(/Press Ctrl-C/);
    const page = /status page at (http:\/\/127\.0\.0\.1:\d+)\//.exec(demo.output())?.[1];
    expect(page).toBeDefined();
    const html = await (await fetch(`${page}/`)).text();
    expect(html).toContain('id="cluster-gcp-production"');
    demo.child.kill('SIGINT');
    expect(await demo.exited).toBe(0);
    expect(demo.output()).toMatch(/demo stopped\.\n$/);
    // Nothing listens on its port any more.
    await expect(fetch(`${page}/healthz`)).rejects.toThrow();
  }, 300_000);
});
