import { describe, expect, it } from '@jest/globals';
import type { ClusterOutcome } from '../../src/engine/cluster-outcome.ts';
import { clusterStatusText, fitDescription, MAX_DESCRIPTION, rollUpText } from '../../src/reporting/status-text.ts';

const emptyChangeSet = { changes: [] };

describe('fitDescription', () => {
  it('leaves short text alone', () => {
    expect(fitDescription('3 created, 1 configured')).toBe('3 created, 1 configured');
  });

  it('keeps text of exactly the limit as it is', () => {
    const text = 'a'.repeat(MAX_DESCRIPTION);
    expect(fitDescription(text)).toBe(text);
  });

  it('never exceeds 140 characters for a 500-character string', () => {
    const words = Array.from({ length: 100 }, (_, i) => `word${i}`).join(' ');
    const text = `${words} ${'x'.repeat(500)}`.slice(0, 500);
    expect(text).toHaveLength(500);
    const fitted = fitDescription(text);
    expect(fitted.length).toBeLessThanOrEqual(140);
    expect(fitted.endsWith('…')).toBe(true);
  });

  it('never exceeds 140 characters for a 500-character string without spaces', () => {
    const fitted = fitDescription('y'.repeat(500));
    expect(fitted.length).toBeLessThanOrEqual(140);
    expect(fitted).toBe(`${'y'.repeat(139)}…`);
  });

  it('cuts on a word boundary and marks the cut with an ellipsis', () => {
    const words = Array.from({ length: 60 }, (_, i) => `w${String(i).padStart(3, '0')}`);
    const fitted = fitDescription(words.join(' '));
    expect(fitted.length).toBeLessThanOrEqual(140);
    expect(fitted.endsWith('…')).toBe(true);
    const kept = fitted.slice(0, -1);
    expect(kept.endsWith(' ')).toBe(false);
    // Every kept word is a whole word of the input, in order.
    const keptWords = kept.split(' ');
    expect(keptWords).toEqual(words.slice(0, keptWords.length));
    expect(keptWords.length).toBeGreaterThan(20);
  });

  it('joins multi-line input onto one line and stays within the limit', () => {
    const text = Array.from({ length: 40 }, (_, i) => `line ${i} of the message`).join('\n\r\n\t');
    const fitted = fitDescription(text);
    expect(fitted).not.toMatch(/[\r\n\t]/);
    expect(fitted).not.toMatch(/ {2}/);
    expect(fitted.length).toBeLessThanOrEqual(140);
    expect(fitted.startsWith('line 0 of the message line 1 of the message')).toBe(true);
    expect(fitDescription('  first\n  second  ')).toBe('first second');
  });

  it('honours a smaller limit', () => {
    const fitted = fitDescription('alpha beta gamma delta epsilon zeta eta theta', 20);
    expect(fitted.length).toBeLessThanOrEqual(20);
    expect(fitted).toBe('alpha beta gamma…');
  });
});

describe('clusterStatusText', () => {
  const applied = (unhealthy: Extract<ClusterOutcome, { status: 'applied' }>['unhealthy']): ClusterOutcome => ({
    cluster: 'prod',
    status: 'applied',
    changeSet: emptyChangeSet,
    unhealthy,
    description: '2 created',
  });

  it('reports an applied, healthy commit as success', () => {
    expect(clusterStatusText(applied([]))).toEqual({ state: 'success', description: '2 created' });
  });

  it('reports an applied commit with a failed rollout as failure', () => {
    const text = clusterStatusText(
      applied([
        { object: 'Deployment/web/api', health: { state: 'progressing', message: '1/2 replicas available' } },
        { object: 'Deployment/web/front', health: { state: 'failed', message: 'progress deadline exceeded' } },
      ]),
    );
    expect(text?.state).toBe('failure');
  });

  it('reports an applied commit with objects only still progressing as success', () => {
    const text = clusterStatusText(
      applied([{ object: 'Deployment/web/api', health: { state: 'progressing', message: '1/2 replicas available' } }]),
    );
    expect(text?.state).toBe('success');
  });

  it('maps every other status', () => {
    const outcomes: [ClusterOutcome, string | undefined][] = [
      [{ cluster: 'a', status: 'previewed', changeSet: emptyChangeSet, description: 'would create 1' }, 'success'],
      [{ cluster: 'a', status: 'failed', description: 'invalid manifest', problems: [] }, 'failure'],
      [{ cluster: 'a', status: 'error', description: 'cluster unreachable' }, 'error'],
      [{ cluster: 'a', status: 'superseded', description: 'superseded by abc1234' }, 'success'],
      [{ cluster: 'a', status: 'suspended', description: 'cluster suspended' }, 'error'],
      [{ cluster: 'a', status: 'unchanged', description: 'nothing to do' }, undefined],
    ];
    for (const [outcome, state] of outcomes) {
      const text = clusterStatusText(outcome);
      expect([outcome.status, text?.state]).toEqual([outcome.status, state]);
      if (text) expect(text.description).toBe(outcome.description);
    }
  });

  it('fits a long outcome description', () => {
    const text = clusterStatusText({ cluster: 'a', status: 'error', description: `boom ${'detail '.repeat(100)}` });
    expect(text?.description.length).toBeLessThanOrEqual(140);
    expect(text?.description.endsWith('…')).toBe(true);
  });
});

describe('rollUpText', () => {
  it('succeeds and says so when no cluster deploys the branch', () => {
    expect(rollUpText([], 'sync')).toEqual({
      state: 'success',
      description: 'no registered cluster deploys this branch',
    });
  });

  it('succeeds when every cluster is unchanged', () => {
    const outcomes: ClusterOutcome[] = [
      { cluster: 'a', status: 'unchanged', description: 'no changes' },
      { cluster: 'b', status: 'unchanged', description: 'no changes' },
    ];
    expect(rollUpText(outcomes, 'sync')).toEqual({
      state: 'success',
      description: 'no change for any of 2 cluster(s)',
    });
  });

  it('fails when one cluster failed and another errored, naming both', () => {
    const outcomes: ClusterOutcome[] = [
      { cluster: 'ok', status: 'applied', changeSet: emptyChangeSet, unhealthy: [], description: '1 created' },
      { cluster: 'down', status: 'error', description: 'unreachable' },
      { cluster: 'broken', status: 'failed', description: 'invalid', problems: [] },
      { cluster: 'quiet', status: 'unchanged', description: 'no changes' },
    ];
    const text = rollUpText(outcomes, 'sync');
    expect(text.state).toBe('failure');
    expect(text.description).toMatch(/see broken, down$/);
    expect(text.description).toContain('1 applied');
    expect(text.description).toContain('1 failed');
    expect(text.description).toContain('1 unreachable');
    expect(text.description).toContain('1 unaffected');
    expect(text.description).not.toMatch(/^dry-run/);
  });

  it('is an error when a cluster errored and none failed', () => {
    const text = rollUpText(
      [
        { cluster: 'ok', status: 'applied', changeSet: emptyChangeSet, unhealthy: [], description: '1 created' },
        { cluster: 'paused', status: 'suspended', description: 'suspended' },
      ],
      'sync',
    );
    expect(text.state).toBe('error');
    expect(text.description).toMatch(/see paused$/);
  });

  it('succeeds without naming anyone when every cluster succeeded', () => {
    const text = rollUpText(
      [
        { cluster: 'a', status: 'applied', changeSet: emptyChangeSet, unhealthy: [], description: '1 created' },
        { cluster: 'b', status: 'superseded', description: 'superseded' },
      ],
      'sync',
    );
    expect(text).toEqual({ state: 'success', description: '1 applied, 1 superseded' });
  });

  it('prefixes a preview with "dry-run: "', () => {
    const text = rollUpText(
      [
        { cluster: 'a', status: 'previewed', changeSet: emptyChangeSet, description: 'would create 1' },
        { cluster: 'b', status: 'previewed', changeSet: emptyChangeSet, description: 'would create 2' },
      ],
      'preview',
    );
    expect(text).toEqual({ state: 'success', description: 'dry-run: 2 previewed' });
  });

  it('stays within 140 characters with 50 long cluster names', () => {
    const outcomes: ClusterOutcome[] = Array.from({ length: 50 }, (_, i) => ({
      cluster: `a-rather-long-cluster-name-in-region-europe-west-${i}`,
      status: i % 2 === 0 ? ('failed' as const) : ('error' as const),
      description: 'broken',
      problems: [],
    }));
    const text = rollUpText(outcomes, 'preview');
    expect(text.state).toBe('failure');
    expect(text.description.length).toBeLessThanOrEqual(140);
    expect(text.description.startsWith('dry-run: 25 failed, 25 unreachable — see ')).toBe(true);
    expect(text.description.endsWith('…')).toBe(true);
  });
});
