import { describe, expect, it } from '@jest/globals';
import type { ObjectChange } from '../../src/engine/change-set.ts';
import type { ClusterOutcome } from '../../src/engine/cluster-outcome.ts';
import type { ManifestProblem } from '../../src/engine/manifest.ts';
import { type FieldChange, formatDiff } from '../../src/engine/object-diff.ts';
import {
  ANNOTATIONS_PER_REQUEST,
  annotationBatches,
  type CheckAnnotation,
  completedCheckRun,
  MAX_ANNOTATIONS,
} from '../../src/reporting/check-run-report.ts';

const SHA = '0123456789abcdef0123456789abcdef01234567';

const diff: FieldChange[] = [
  { path: 'spec.replicas', change: 'changed', before: '2', after: '3' },
  { path: 'metadata.labels.team', change: 'added', after: '"platform"' },
  { path: 'spec.template.spec.containers[api].args[1]', change: 'removed', before: '"--debug"' },
];

const changes: ObjectChange[] = [
  { object: 'Namespace/web', action: 'created', source: { file: 'clusters/prod/ns.yaml', line: 1 } },
  {
    object: 'Deployment/web/api',
    action: 'configured',
    source: { file: 'clusters/prod/api.yaml', line: 12 },
    diff,
    diffTruncated: 4,
    tookOwnershipFrom: ['kubectl-edit'],
  },
  { object: 'ConfigMap/web/old', action: 'deleted' },
  { object: 'Service/web/api', action: 'unchanged', source: { file: 'clusters/prod/api.yaml', line: 40 } },
  { object: 'ServiceAccount/web/api', action: 'unchanged' },
];

/** The table rows of a summary: the lines that start with `| ` after the header and separator. */
function tableRows(summary: string): string[] {
  const lines = summary.split('\n');
  const header = lines.indexOf('| Action | Object | Source | Note |');
  expect(header).toBeGreaterThanOrEqual(0);
  expect(lines[header + 1]).toBe('|---|---|---|---|');
  const rows: string[] = [];
  for (const line of lines.slice(header + 2)) {
    if (!line.startsWith('|')) break;
    rows.push(line);
  }
  return rows;
}

/** Cells of a GFM table row, splitting on pipes that are not escaped. */
function cells(row: string): string[] {
  return row
    .replace(/^\|/, '')
    .replace(/\|$/, '')
    .split(/(?<!\\)\|/)
    .map((cell) => cell.trim());
}

describe('completedCheckRun', () => {
  it('is undefined for a cluster the commit does not concern', () => {
    expect(completedCheckRun({ cluster: 'prod', status: 'unchanged', description: 'no changes' }, SHA)).toBeUndefined();
  });

  it('reports an applied commit: title, table, unchanged count and diff text', () => {
    const outcome: ClusterOutcome = {
      cluster: 'prod',
      status: 'applied',
      changeSet: { changes },
      unhealthy: [],
      description: '1 created, 1 configured, 1 pruned',
    };
    const run = completedCheckRun(outcome, SHA);
    expect(run).toMatchObject({
      status: 'completed',
      conclusion: 'success',
      title: '1 created, 1 configured, 1 pruned',
      annotations: [],
    });
    if (!run) return;
    expect(run.summary).toContain('`0123456`');
    expect(run.summary).not.toContain(SHA);
    expect(run.summary).toContain('`prod`');

    const rows = tableRows(run.summary).map(cells);
    expect(rows).toEqual([
      ['created', '`Namespace/web`', 'clusters/prod/ns.yaml:1', ''],
      ['configured', '`Deployment/web/api`', 'clusters/prod/api.yaml:12', 'took fields from kubectl-edit'],
      ['pruned', '`ConfigMap/web/old`', '', ''],
    ]);
    expect(run.summary).toContain('2 object(s) unchanged.');
    expect(run.summary).not.toContain('Service/web/api');

    // One section per change with a diff, in the change set's order: only the configured Deployment has one.
    expect(run.text).toBe(
      ['#### `Deployment/web/api`', '```diff', ...formatDiff(diff), '  … 4 more field(s)', '```'].join('\n'),
    );
    expect(run.text).toContain('~ spec.replicas: 2 → 3');
  });

  it('leaves out the text when no change has a diff', () => {
    const run = completedCheckRun(
      {
        cluster: 'prod',
        status: 'applied',
        changeSet: { changes: [{ object: 'Namespace/web', action: 'created' }] },
        unhealthy: [],
        description: '1 created',
      },
      SHA,
    );
    expect(run?.text).toBeUndefined();
    expect(run && 'text' in run).toBe(false);
  });

  it('says so when every object is unchanged', () => {
    const run = completedCheckRun(
      {
        cluster: 'prod',
        status: 'applied',
        changeSet: { changes: [{ object: 'Namespace/web', action: 'unchanged' }] },
        unhealthy: [],
        description: 'no changes',
      },
      SHA,
    );
    expect(run?.summary).toContain('All 1 object(s) unchanged.');
    expect(run?.summary).not.toContain('| Action |');
  });

  it('fails an applied commit with a failed rollout and lists what is not healthy', () => {
    const run = completedCheckRun(
      {
        cluster: 'prod',
        status: 'applied',
        changeSet: { changes: [] },
        unhealthy: [
          { object: 'Deployment/web/api', health: { state: 'failed', message: 'progress deadline exceeded' } },
        ],
        description: '1 configured',
      },
      SHA,
    );
    expect(run?.conclusion).toBe('failure');
    expect(run?.summary).toContain('**Not healthy:**');
    expect(run?.summary).toContain('- `Deployment/web/api`: failed: progress deadline exceeded');
  });

  it('uses preview verbs for a dry-run', () => {
    const run = completedCheckRun(
      {
        cluster: 'staging',
        status: 'previewed',
        changeSet: { changes },
        description: 'would create 1, configure 1, prune 1',
      },
      SHA,
    );
    expect(run?.conclusion).toBe('success');
    expect(run?.summary).toMatch(/^\*\*Dry-run of `0123456` on `staging`:\*\*/);
    const rows = tableRows(run?.summary ?? '').map(cells);
    expect(rows.map((row) => row[0])).toEqual(['would create', 'would configure', 'would prune']);
    expect(run?.summary).not.toMatch(/\| pruned \|/);
  });

  it('annotates the problems of a failed commit that name a file, and lists all of them', () => {
    const problems: ManifestProblem[] = [
      {
        message: 'spec.replicas: Invalid value: "three"',
        source: { file: 'clusters/prod/api.yaml', line: 7 },
        object: 'Deployment/web/api',
      },
      { message: 'kustomization.yaml: missing resource', source: { file: 'clusters/prod/kustomization.yaml' } },
      { message: 'the cluster rejected the whole commit', source: undefined },
    ];
    const run = completedCheckRun(
      { cluster: 'prod', status: 'failed', description: '2 invalid manifests', problems },
      SHA,
    );
    expect(run?.conclusion).toBe('failure');
    expect(run?.annotations).toEqual([
      {
        path: 'clusters/prod/api.yaml',
        start_line: 7,
        end_line: 7,
        annotation_level: 'failure',
        title: 'Deployment/web/api',
        message: 'spec.replicas: Invalid value: "three"',
      },
      {
        path: 'clusters/prod/kustomization.yaml',
        start_line: 1,
        end_line: 1,
        annotation_level: 'failure',
        title: 'Plumbline',
        message: 'kustomization.yaml: missing resource',
      },
    ]);
    const summary = run?.summary ?? '';
    expect(summary).toContain('**Problems:**');
    expect(summary).toContain('- spec.replicas: Invalid value: "three" (`clusters/prod/api.yaml:7`)');
    expect(summary).toContain('- kustomization.yaml: missing resource (`clusters/prod/kustomization.yaml`)');
    expect(summary).toContain('- the cluster rejected the whole commit');
  });

  it('is neutral for a superseded or suspended cluster', () => {
    const superseded = completedCheckRun({ cluster: 'prod', status: 'superseded', description: 'superseded' }, SHA);
    const suspended = completedCheckRun({ cluster: 'prod', status: 'suspended', description: 'suspended' }, SHA);
    expect(superseded?.conclusion).toBe('neutral');
    expect(suspended?.conclusion).toBe('neutral');
  });

  it('is a failure for a cluster that could not be reached', () => {
    const run = completedCheckRun({ cluster: 'prod', status: 'error', description: 'unreachable' }, SHA);
    expect(run?.conclusion).toBe('failure');
  });

  it('keeps a pipe or a line break in a message from breaking the table row', () => {
    const run = completedCheckRun(
      {
        cluster: 'prod',
        status: 'failed',
        description: 'rejected',
        problems: [{ message: 'a | b\nc', source: undefined }],
        changeSet: {
          changes: [
            {
              object: 'Deployment/web/api',
              action: 'failed',
              source: { file: 'clusters/prod/api.yaml', line: 3 },
              message: 'field is immutable | see docs\nline two\r\nline three',
            },
            { object: 'Deployment/web/other', action: 'created' },
          ],
        },
      },
      SHA,
    );
    const summary = run?.summary ?? '';
    const rows = tableRows(summary);
    expect(rows).toHaveLength(2);
    const first = cells(rows[0] ?? '');
    expect(first).toHaveLength(4);
    expect(first[0]).toBe('failed');
    expect(first[3]).toBe('field is immutable \\| see docs line two line three');
    expect(cells(rows[1] ?? '')).toEqual(['created', '`Deployment/web/other`', '', '']);
    expect(summary).toContain('- a \\| b c');
  });

  it('treats a lone carriage return as the line break it is in Markdown', () => {
    // CommonMark: "a carriage return (U+000D) not followed by a line feed" is a line ending too.
    const run = completedCheckRun(
      {
        cluster: 'prod',
        status: 'previewed',
        description: 'would be rejected',
        changeSet: { changes: [{ object: 'Deployment/web/api', action: 'failed', message: 'first\rsecond' }] },
      },
      SHA,
    );
    const rows = tableRows(run?.summary ?? '');
    expect(rows).toHaveLength(1);
    expect(rows[0]).not.toMatch(/\r/);
  });

  it('keeps the summary and text within GitHub limits for 5,000 changes', () => {
    const many: ObjectChange[] = Array.from({ length: 5_000 }, (_, i) => ({
      object: `ConfigMap/namespace-with-a-long-name/config-map-number-${i}`,
      action: i % 3 === 0 ? 'created' : i % 3 === 1 ? 'configured' : 'deleted',
      source: { file: `clusters/prod/a/deeply/nested/directory/config-map-number-${i}.yaml`, line: i + 1 },
      message: 'x'.repeat(200),
      diff: Array.from({ length: 20 }, (_, j) => ({
        path: `data.key-${j}`,
        change: 'changed' as const,
        before: `"${'b'.repeat(70)}"`,
        after: `"${'a'.repeat(70)}"`,
      })),
    }));
    const run = completedCheckRun(
      { cluster: 'prod', status: 'applied', changeSet: { changes: many }, unhealthy: [], description: 'many' },
      SHA,
    );
    expect(run).toMatchObject({ status: 'completed', conclusion: 'success', title: 'many' });
    expect(run?.summary.length).toBeLessThanOrEqual(65_535);
    expect(run?.text?.length).toBeLessThanOrEqual(65_535);
    // Truncated at the end: what is kept starts with the first change, in the summary and in the text.
    expect(run?.summary).toContain('| created | `ConfigMap/namespace-with-a-long-name/config-map-number-0` |');
    expect(run?.summary.endsWith('…(truncated)')).toBe(true);
    expect(run?.text?.startsWith('#### `ConfigMap/namespace-with-a-long-name/config-map-number-0`\n```diff\n')).toBe(
      true,
    );
  });

  it('keeps the summary within the limit for thousands of long problems', () => {
    const problems: ManifestProblem[] = Array.from({ length: 5_000 }, (_, i) => ({
      message: `problem ${i}: ${'y'.repeat(1_000)}`,
      source: { file: `f${i}.yaml`, line: 1 },
    }));
    const run = completedCheckRun({ cluster: 'prod', status: 'failed', description: 'broken', problems }, SHA);
    expect(run?.summary.length).toBeLessThanOrEqual(65_535);
    // Annotations are capped at three requests' worth; the summary says how many were left out.
    expect(run?.annotations).toHaveLength(MAX_ANNOTATIONS);
    expect(run?.annotations.at(-1)?.path).toBe(`f${MAX_ANNOTATIONS - 1}.yaml`);
  });

  it('says how many problems are not annotated when there are more than the cap', () => {
    const problems: ManifestProblem[] = Array.from({ length: MAX_ANNOTATIONS + 7 }, (_, i) => ({
      message: `problem ${i}`,
      source: { file: 'f.yaml', line: i + 1 },
    }));
    const run = completedCheckRun({ cluster: 'prod', status: 'failed', description: 'broken', problems }, SHA);
    expect(run?.summary).toContain(`7 more problem(s) are not annotated: the first ${MAX_ANNOTATIONS} are.`);
  });
});

describe('annotationBatches', () => {
  const annotations = (n: number): CheckAnnotation[] =>
    Array.from({ length: n }, (_, i) => ({
      path: `f${i}.yaml`,
      start_line: 1,
      end_line: 1,
      annotation_level: 'failure' as const,
      title: 'Plumbline',
      message: `problem ${i}`,
    }));

  it('gives one empty batch for no annotations', () => {
    expect(annotationBatches([])).toEqual([[]]);
  });

  it('gives one batch for 50', () => {
    const all = annotations(50);
    const batches = annotationBatches(all);
    expect(ANNOTATIONS_PER_REQUEST).toBe(50);
    expect(batches).toHaveLength(1);
    expect(batches[0]).toEqual(all);
  });

  it('splits 120 into 50, 50 and 20, in order', () => {
    const all = annotations(120);
    const batches = annotationBatches(all);
    expect(batches.map((b) => b.length)).toEqual([50, 50, 20]);
    expect(batches.flat()).toEqual(all);
  });
});

describe('a cluster of apps in the check run', () => {
  const app = (name: string, wave: number, chart: boolean) => ({
    name,
    wave,
    dependsOn: [],
    chart,
    source: { file: 'clusters/a/plumbline.yaml', line: 4 },
    objects: 2,
  });
  const appChanges: ObjectChange[] = [
    { object: 'Namespace/base', action: 'created', app: 'base' },
    { object: 'ConfigMap/base/settings', action: 'unchanged', app: 'base' },
    { object: 'ConfigMap/cache/redis', action: 'configured', app: 'cache' },
    { object: 'Deployment/cache/redis', action: 'configured', app: 'cache' },
    {
      object: 'ConfigMap/web/api',
      action: 'skipped',
      app: 'web',
      message: 'not applied: app cache it depends on is not healthy',
    },
  ];

  it('lists every app in order with its source, wave, changes and health', () => {
    const outcome: ClusterOutcome = {
      cluster: 'homelab',
      status: 'applied',
      changeSet: { changes: appChanges },
      unhealthy: [
        { object: 'Deployment/cache/redis', health: { state: 'progressing', message: '0/1 replicas available' } },
      ],
      description: '1 created, 2 configured in 1.0 s',
      apps: [app('base', 0, false), app('cache', 1, true), app('web', 2, false), app('idle', 0, true)],
    };
    const summary = completedCheckRun(outcome, SHA)?.summary ?? '';
    expect(summary).toContain(
      [
        '| App | Source | Wave | Changes | Health |',
        '| --- | --- | --- | --- | --- |',
        '| `base` | path | 1 | 1 created | ✓ healthy |',
        '| `cache` | chart | 2 | 2 configured | … 1 progressing |',
        '| `web` | path | 3 | not applied | — |',
        '| `idle` | chart | 1 | no changes | ✓ healthy |',
      ].join('\n'),
    );
  });

  it("notes what a chart's render left out, as notice annotations on the template", () => {
    const notice: ManifestProblem = {
      message:
        'app cache: ConfigMap/cleanup: a pre-delete hook never runs: Plumbline never deletes or rolls back a release (left out)',
      source: { file: 'charts/cache/templates/cleanup.yaml' },
      object: 'ConfigMap/cleanup',
    };
    const outcome: ClusterOutcome = {
      cluster: 'homelab',
      status: 'applied',
      changeSet: { changes: appChanges },
      unhealthy: [],
      description: 'done',
      notices: [notice],
    };
    const run = completedCheckRun(outcome, SHA);
    expect(run?.summary).toContain('**Notes:**\n- app cache: ConfigMap/cleanup: a pre-delete hook never runs');
    expect(run?.annotations).toEqual([
      expect.objectContaining({ path: 'charts/cache/templates/cleanup.yaml', annotation_level: 'notice' }),
    ]);
  });
});
