import { describe, expect, it } from '@jest/globals';
import { parseManifests } from '../../src/engine/parse-manifests.ts';
import { parseManifestsOffThread } from '../../src/engine/parse-manifests-off-thread.ts';

/** `count` ConfigMaps of about 1 KiB each, with YAML 1.1 values and a line per document. */
function manyConfigMaps(count: number): string {
  const padding = 'p'.repeat(900);
  return Array.from(
    { length: count },
    (_, i) =>
      `apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm-${i}\n  namespace: team\ndata:\n  mode: 0755\n  padding: ${padding}\n`,
  ).join('---\n');
}

describe('parsing manifests off the event loop', () => {
  it('keeps the event loop turning while a multi-MiB file is parsed: a timer set meanwhile fires first', async () => {
    const text = manyConfigMaps(5_000);
    expect(text.length).toBeGreaterThan(4 * 1024 * 1024);
    let timerFired = false;
    const parsing = parseManifestsOffThread(text, 'big.yaml').then((result) => ({ result, timerFired }));
    setTimeout(() => {
      timerFired = true;
    }, 0);
    const { result, timerFired: firedBeforeParseEnded } = await parsing;
    expect(firedBeforeParseEnded).toBe(true);
    expect(result.problems).toEqual([]);
    expect(result.objects).toHaveLength(5_000);
  });

  it('gives exactly what the synchronous parser gives: YAML 1.1 numbers, lists expanded, file and line', async () => {
    const text = [
      manyConfigMaps(200),
      'apiVersion: v1\nkind: ConfigMapList\nitems:\n  - {apiVersion: v1, kind: ConfigMap, metadata: {name: a}}\n',
      'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x, namespace: n}\n',
      'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: bad\n',
    ].join('---\n');
    expect(text.length).toBeGreaterThan(128 * 1024);
    const offThread = await parseManifestsOffThread(text, 'mixed.yaml');
    expect(offThread).toEqual(parseManifests(text, 'mixed.yaml'));
    expect(offThread.objects[0]).toMatchObject({
      manifest: { data: { mode: 493 } },
      source: { file: 'mixed.yaml', line: 1 },
    });
    expect(offThread.problems.map((p) => p.message)).toEqual([
      expect.stringMatching(/namespace that is not a string/),
      expect.stringMatching(/^invalid YAML/),
    ]);
  });

  it('refuses an alias bomb off the thread as on it', async () => {
    const levels = ['a: &a ["x","x","x","x","x","x","x","x","x","x"]'];
    for (let i = 1; i < 9; i += 1) {
      const anchor = String.fromCharCode(97 + i);
      levels.push(
        `${anchor}: &${anchor} [${Array(10)
          .fill(`*${String.fromCharCode(96 + i)}`)
          .join(',')}]`,
      );
    }
    const bomb = `apiVersion: v1\nkind: ConfigMap\nmetadata: {name: bomb}\ndata:\n${levels.map((l) => `  ${l}`).join('\n')}\n# ${'c'.repeat(200 * 1024)}\n`;
    const result = await parseManifestsOffThread(bomb, 'bomb.yaml');
    expect(result).toEqual({
      objects: [],
      problems: [{ message: expect.stringMatching(/alias/i), source: { file: 'bomb.yaml', line: 1 } }],
    });
  });
});
