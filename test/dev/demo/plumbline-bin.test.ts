import { copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from '@jest/globals';
import { packageRoot } from '../../../src/support/package-root.ts';
import { runCommand } from '../../../src/support/run-command.ts';

/**
 * `bin/plumbline.js` sends `demo` (development tooling, left out of the image) to the demo's own compiled
 * entry and every other command to the product's CLI. Run here against entries that print what they were
 * given, in a copy of the package layout, so the dispatch is checked without building dist/.
 */
describe('bin/plumbline.js', () => {
  const dirs: string[] = [];
  const entry = (name: string) =>
    `process.stdout.write(JSON.stringify({ entry: ${JSON.stringify(name)}, args: process.argv.slice(2) }));\n`;

  /** A package with bin/plumbline.js and a dist/ holding the product's entry and, if asked, the demo's. */
  async function layout(withDemo: boolean): Promise<string> {
    const dir = await mkdtemp(join(tmpdir(), 'plumbline-bin-'));
    dirs.push(dir);
    await mkdir(join(dir, 'bin'));
    await copyFile(join(packageRoot(), 'bin', 'plumbline.js'), join(dir, 'bin', 'plumbline.js'));
    await writeFile(join(dir, 'package.json'), '{ "type": "module" }\n');
    await mkdir(join(dir, 'dist', 'src'), { recursive: true });
    await writeFile(join(dir, 'dist', 'src', 'cli.js'), entry('product'));
    if (withDemo) {
      await mkdir(join(dir, 'dist', 'dev', 'demo'), { recursive: true });
      await writeFile(join(dir, 'dist', 'dev', 'demo', 'cli.js'), entry('demo'));
    }
    return dir;
  }
  afterAll(async () => {
    await Promise.all(dirs.map((dir) => rm(dir, { recursive: true, force: true })));
  });

  const plumbline = (dir: string, ...args: string[]) =>
    runCommand(process.execPath, [join(dir, 'bin', 'plumbline.js'), ...args], { timeoutMs: 30_000 });

  it('runs the product CLI for every command but demo', async () => {
    const result = await plumbline(await layout(true), 'worker', '--flag');
    expect(result.code).toBe(0);
    expect(JSON.parse(result.stdout.toString())).toEqual({ entry: 'product', args: ['worker', '--flag'] });
  });

  it('sends demo to the compiled dev/demo/cli.ts, with `demo` taken off the arguments', async () => {
    const result = await plumbline(await layout(true), 'demo', '--exit', '--kubeconfig', '/k');
    expect(result.code).toBe(0);
    expect(JSON.parse(result.stdout.toString())).toEqual({ entry: 'demo', args: ['--exit', '--kubeconfig', '/k'] });
  });

  it('says the demo is not built where dist/ lacks it (as in the image), and fails', async () => {
    const result = await plumbline(await layout(false), 'demo', '--exit');
    expect(result.code).toBe(1);
    expect(result.stdout.toString()).toBe('');
    expect(result.stderr).toMatch(/the demo is not built/);
  });

  it('finds that entry where `npm run build` puts it: the build compiles dev/ into dist/dev/', async () => {
    const build = JSON.parse(await readFile(join(packageRoot(), 'tsconfig.build.json'), 'utf8')) as {
      include: string[];
    };
    const base = JSON.parse(await readFile(join(packageRoot(), 'tsconfig.json'), 'utf8')) as {
      compilerOptions: { rootDir: string; outDir: string };
    };
    expect(build.include).toContain('dev');
    expect(base.compilerOptions).toMatchObject({ rootDir: '.', outDir: 'dist' });
  });
});
