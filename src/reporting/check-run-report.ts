import type { ObjectChange } from '../engine/change-set.ts';
import type { ClusterOutcome } from '../engine/cluster-outcome.ts';
import type { HealthReport } from '../engine/health.ts';
import type { ManifestProblem, RenderedApp } from '../engine/manifest.ts';
import { formatDiff } from '../engine/object-diff.ts';
import { describeChangeSet, describePreview } from './describe-outcome.ts';
import { clusterStatusText } from './status-text.ts';

export type CheckConclusion = 'success' | 'failure' | 'neutral';

/** GitHub's annotation, as the Checks API takes it. */
export interface CheckAnnotation {
  readonly path: string;
  readonly start_line: number;
  readonly end_line: number;
  readonly annotation_level: 'notice' | 'warning' | 'failure';
  readonly title: string;
  readonly message: string;
}

export interface CheckRunContent {
  readonly status: 'in_progress' | 'completed';
  readonly conclusion?: CheckConclusion;
  readonly title: string;
  readonly summary: string;
  readonly text?: string;
  readonly annotations: readonly CheckAnnotation[];
}

/** GitHub takes at most 50 annotations per request. */
export const ANNOTATIONS_PER_REQUEST = 50;
/**
 * Annotations per check run: three requests' worth. A commit with 20,000 broken objects must not spend
 * the installation's write budget for minutes; the summary lists the rest.
 */
export const MAX_ANNOTATIONS = 150;
/** GitHub's limit for `summary` and `text` is 65,535 characters; stay well below it. */
const MAX_OUTPUT = 60_000;
const MAX_ROWS = 200;

export function inProgressCheckRun(cluster: string, sha: string, preview: boolean): CheckRunContent {
  return {
    status: 'in_progress',
    title: preview ? 'Dry-run in progress' : 'Applying',
    summary: `${preview ? 'Dry-run of' : 'Applying'} \`${sha.slice(0, 7)}\` on \`${cluster}\`.`,
    annotations: [],
  };
}

/**
 * The completed check run for an outcome: the status text as title, a Markdown table of the change
 * set as summary, field diffs (already masked by the engine) as text, and one annotation per problem
 * that names a file. Undefined when the commit does not concern the cluster. Pure.
 */
export function completedCheckRun(outcome: ClusterOutcome, sha: string): CheckRunContent | undefined {
  const status = clusterStatusText(outcome);
  if (!status) return undefined;
  const conclusion: CheckConclusion =
    outcome.status === 'superseded' || outcome.status === 'suspended' || outcome.status === 'not-previewed'
      ? 'neutral'
      : status.state === 'success'
        ? 'success'
        : 'failure';
  const preview = outcome.status === 'previewed';
  const changes = 'changeSet' in outcome ? (outcome.changeSet?.changes ?? []) : [];
  const problems = outcome.status === 'failed' ? outcome.problems : [];
  const heading = `**${preview ? 'Dry-run of' : 'Commit'} \`${sha.slice(0, 7)}\` on \`${outcome.cluster}\`:** ${markdownInline(outcome.description)}`;
  const sections = [heading];
  if (outcome.status === 'applied' && outcome.unhealthy.length > 0) {
    sections.push(
      ['**Not healthy:**', ...outcome.unhealthy.map((u) => `- \`${u.object}\`: ${describeHealth(u.health)}`)].join(
        '\n',
      ),
    );
  }
  if (problems.length > 0) sections.push(problemList(problems));
  const apps = 'apps' in outcome ? outcome.apps : undefined;
  if (apps && apps.length > 0)
    sections.push(appTable(apps, changes, outcome.status === 'applied' ? outcome.unhealthy : [], preview));
  const notices = 'notices' in outcome ? (outcome.notices ?? []) : [];
  if (notices.length > 0)
    sections.push(['**Notes:**', ...notices.map((n) => `- ${markdownInline(n.message)}`)].join('\n'));
  const annotations = [...annotationsFor(problems), ...annotationsFor(notices, 'notice')];
  if (annotations.length > MAX_ANNOTATIONS)
    sections.push(
      `${annotations.length - MAX_ANNOTATIONS} more problem(s) are not annotated: the first ${MAX_ANNOTATIONS} are.`,
    );
  if (changes.length > 0) sections.push(changeTable(changes, preview));
  const text = diffText(changes);
  return {
    status: 'completed',
    conclusion,
    title: status.description,
    summary: clip(sections.join('\n\n')),
    ...(text ? { text } : {}),
    annotations: annotations.slice(0, MAX_ANNOTATIONS),
  };
}

/** One annotation per problem that points at a file of the repository. */
export function annotationsFor(
  problems: readonly ManifestProblem[],
  level: CheckAnnotation['annotation_level'] = 'failure',
): CheckAnnotation[] {
  return problems.flatMap((problem) =>
    problem.source
      ? [
          {
            path: problem.source.file,
            start_line: problem.source.line ?? 1,
            end_line: problem.source.line ?? 1,
            annotation_level: level,
            title: problem.object ?? 'Plumbline',
            message: problem.message.slice(0, 64_000),
          },
        ]
      : [],
  );
}

/** Splits annotations into GitHub-sized requests; always at least one (possibly empty) batch. */
export function annotationBatches(annotations: readonly CheckAnnotation[]): CheckAnnotation[][] {
  const batches: CheckAnnotation[][] = [];
  for (let i = 0; i < annotations.length; i += ANNOTATIONS_PER_REQUEST)
    batches.push(annotations.slice(i, i + ANNOTATIONS_PER_REQUEST));
  return batches.length > 0 ? batches : [[]];
}

const PREVIEW_VERBS: Partial<Record<ObjectChange['action'], string>> = {
  created: 'would create',
  configured: 'would configure',
  deleted: 'would prune',
};

function changeTable(changes: readonly ObjectChange[], preview: boolean): string {
  const shown = changes.filter((c) => c.action !== 'unchanged');
  const unchanged = changes.length - shown.length;
  const rows = shown.slice(0, MAX_ROWS).map((c) => {
    const action = (preview ? PREVIEW_VERBS[c.action] : undefined) ?? (c.action === 'deleted' ? 'pruned' : c.action);
    const where = c.source ? `${c.source.file}${c.source.line ? `:${c.source.line}` : ''}` : '';
    const note = [c.message ?? '', c.tookOwnershipFrom ? `took fields from ${c.tookOwnershipFrom.join(', ')}` : '']
      .filter(Boolean)
      .join('; ');
    return `| ${action} | \`${c.object}\` | ${markdownInline(where)} | ${markdownInline(note)} |`;
  });
  const more = shown.length > MAX_ROWS ? [`\n…and ${shown.length - MAX_ROWS} more changes.`] : [];
  const tail = unchanged > 0 ? [`\n${unchanged} object(s) unchanged.`] : [];
  if (rows.length === 0) return `All ${unchanged} object(s) unchanged.`;
  return ['| Action | Object | Source | Note |', '|---|---|---|---|', ...rows, ...more, ...tail].join('\n');
}

function problemList(problems: readonly ManifestProblem[]): string {
  const lines = problems.slice(0, MAX_ROWS).map((p) => {
    const where = p.source ? ` (\`${p.source.file}${p.source.line ? `:${p.source.line}` : ''}\`)` : '';
    return `- ${markdownInline(p.message)}${where}`;
  });
  return ['**Problems:**', ...lines].join('\n');
}

function diffText(changes: readonly ObjectChange[]): string | undefined {
  const blocks = changes
    .filter((c) => c.diff && c.diff.length > 0)
    .map((c) => {
      const more = c.diffTruncated ? [`  … ${c.diffTruncated} more field(s)`] : [];
      return `#### \`${c.object}\`\n\`\`\`diff\n${[...formatDiff(c.diff ?? []), ...more].join('\n')}\n\`\`\``;
    });
  return blocks.length > 0 ? clip(blocks.join('\n\n')) : undefined;
}

function describeHealth(health: { readonly state: string; readonly message?: string }): string {
  return health.message ? `${health.state}: ${markdownInline(health.message)}` : health.state;
}

/** Table cells and messages come from the repository and the apiserver: keep them from breaking Markdown. */
function markdownInline(text: string): string {
  return text.replace(/\|/g, '\\|').replace(/\r\n?|\n/g, ' ');
}

function clip(text: string): string {
  return text.length <= MAX_OUTPUT ? text : `${text.slice(0, MAX_OUTPUT)}\n\n…(truncated)`;
}

/**
 * One row per app of plumbline.yaml, in its order: the wave it was applied in, its changes, its health
 * (from the health wait after the apply; a preview has none). Pure.
 */
export function appTable(
  apps: readonly RenderedApp[],
  changes: readonly ObjectChange[],
  unhealthy: readonly HealthReport[],
  preview: boolean,
): string {
  const rows = apps.map((app) => {
    const own = changes.filter((change) => change.app === app.name);
    const skipped = own.length > 0 && own.every((change) => change.action === 'skipped');
    const changeText = skipped
      ? 'not applied'
      : preview
        ? describePreview({ changes: own })
        : describeChangeSet({ changes: own });
    const objects = new Set(own.map((change) => change.object));
    const sick = unhealthy.filter((report) => objects.has(report.object));
    const failing = sick.filter((report) => report.health.state === 'failed').length;
    const health = preview
      ? '—'
      : skipped
        ? '—'
        : failing > 0
          ? `✗ ${failing} failing`
          : sick.length > 0
            ? `… ${sick.length} progressing`
            : '✓ healthy';
    const kind = app.chart ? 'chart' : 'path';
    return `| \`${app.name}\` | ${kind} | ${app.wave + 1} | ${markdownInline(changeText)} | ${health} |`;
  });
  return ['| App | Source | Wave | Changes | Health |', '| --- | --- | --- | --- | --- |', ...rows].join('\n');
}
