import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from '@jest/globals';
import { type AppSpec, parseAppsFile } from '../../src/apps/apps-file.ts';
import { orderApps } from '../../src/apps/order-apps.ts';
import { packageRoot } from '../../src/support/package-root.ts';

const FILE = 'clusters/talos/homelab/plumbline.yaml';

/** Apps as `parseAppsFile` gives them, from `name: dependsOn…` pairs, one line each (from line 4). */
function apps(graph: Record<string, string[]>): AppSpec[] {
  return Object.entries(graph).map(([name, dependsOn], index) => ({
    name,
    releaseName: name,
    source: { kind: 'path', path: `stacks/${name}` },
    values: [],
    dependsOn,
    line: 4 + index * 2,
  }));
}

function waveNames(graph: Record<string, string[]>): string[][] {
  const result = orderApps(apps(graph), FILE);
  if (!result.ok) throw new Error(`expected waves, got ${JSON.stringify(result.problems)}`);
  return result.waves.map((wave) => wave.map((app) => app.name));
}

function problemsOf(graph: Record<string, string[]>) {
  const result = orderApps(apps(graph), FILE);
  if (result.ok) throw new Error('expected problems');
  return result.problems;
}

describe('orderApps', () => {
  it('orders the Portefaix homelab into waves, each depending only on earlier ones', async () => {
    const path = 'test/fixtures/apps/portefaix/clusters/talos/homelab/plumbline.yaml';
    const parsed = parseAppsFile(await readFile(join(packageRoot(), path), 'utf8'), FILE);
    if (!parsed.ok) throw new Error(JSON.stringify(parsed.problems));

    const result = orderApps(parsed.apps, FILE);

    expect(result.ok && result.waves.map((wave) => wave.map((app) => app.name))).toEqual([
      ['crds'],
      ['external-secrets', 'cert-manager'],
      ['secret-stores', 'kube-prometheus-stack'],
      ['podinfo'],
    ]);
  });

  it('puts apps without dependencies in one wave, in the order of the file', () => {
    expect(waveNames({ c: [], a: [], b: [] })).toEqual([['c', 'a', 'b']]);
  });

  it('keeps the order of the file within a wave, whatever the order of the dependencies', () => {
    expect(waveNames({ z: ['base'], base: [], y: ['base'], x: ['z', 'y'], w: [] })).toEqual([
      ['base', 'w'],
      ['z', 'y'],
      ['x'],
    ]);
  });

  it('places an app after the latest of its dependencies, not beside an app of its own wave', () => {
    expect(waveNames({ a: [], b: ['a'], c: ['a', 'b'] })).toEqual([['a'], ['b'], ['c']]);
  });

  it('orders no apps into no waves', () => {
    expect(waveNames({})).toEqual([]);
  });

  it('refuses a dependency on a name that is no app, naming the app, the name and the line', () => {
    expect(problemsOf({ crds: [], web: ['crds', 'databse'], api: ['cache'] })).toEqual([
      { message: 'app web depends on databse, which is not an app of this file', source: { file: FILE, line: 6 } },
      { message: 'app api depends on cache, which is not an app of this file', source: { file: FILE, line: 8 } },
    ]);
  });

  it('refuses a cycle, naming it from the app listed first', () => {
    expect(problemsOf({ base: [], b: ['c'], a: ['b'], c: ['a', 'base'] })).toEqual([
      { message: 'dependsOn makes a cycle: b → c → a → b', source: { file: FILE, line: 6 } },
    ]);
  });

  it('refuses an app that depends on itself', () => {
    expect(problemsOf({ a: ['a'] })).toEqual([
      { message: 'dependsOn makes a cycle: a → a', source: { file: FILE, line: 4 } },
    ]);
  });

  it('names each separate cycle once, and not the apps that only wait on one', () => {
    const graph = { waits: ['a'], a: ['b'], b: ['a'], ok: [], c: ['d', 'ok'], d: ['c'], 'also-waits': ['waits', 'd'] };

    expect(problemsOf(graph).map((problem) => problem.message)).toEqual([
      'dependsOn makes a cycle: a → b → a',
      'dependsOn makes a cycle: c → d → c',
    ]);
  });

  it('orders a chain of 20,000 apps, one per wave, and names the cycle when the chain is closed', () => {
    const chain = Object.fromEntries(Array.from({ length: 20_000 }, (_, i) => [`a${i}`, i === 0 ? [] : [`a${i - 1}`]]));

    expect(waveNames(chain).map((wave) => wave.join())).toEqual(Object.keys(chain));
    const closed = problemsOf({ ...chain, a0: ['a19999'] });
    expect(closed).toHaveLength(1);
    // Each depends on the next: a0 on a19999, a19999 on a19998, … a1 on a0.
    const first = ['a0', 'a19999', 'a19998', 'a19997', 'a19996', 'a19995', 'a19994', 'a19993', 'a19992', 'a19991'];
    const last = ['a9', 'a8', 'a7', 'a6', 'a5', 'a4', 'a3', 'a2', 'a1', 'a0'];
    expect(closed[0]?.message).toBe(`dependsOn makes a cycle: ${[...first, '…', ...last].join(' → ')} (20000 apps)`);
  });

  it('puts 20,000 apps that depend on one app in one wave', () => {
    const star = { hub: [], ...Object.fromEntries(Array.from({ length: 20_000 }, (_, i) => [`s${i}`, ['hub']])) };

    expect(waveNames(star).map((wave) => wave.length)).toEqual([1, 20_000]);
  });

  it('names every app of a cycle of up to twenty apps', () => {
    const ring = Object.fromEntries(Array.from({ length: 20 }, (_, i) => [`r${i}`, [`r${(i + 1) % 20}`]]));

    expect(problemsOf(ring)[0]?.message).toBe(`dependsOn makes a cycle: ${[...Object.keys(ring), 'r0'].join(' → ')}`);
  });

  it('names a cycle reached through an app that waits on it', () => {
    expect(problemsOf({ top: ['x'], x: ['y'], y: ['z'], z: ['x'] }).map((problem) => problem.message)).toEqual([
      'dependsOn makes a cycle: x → y → z → x',
    ]);
  });
});
