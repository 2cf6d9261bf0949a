import { readFile } from 'node:fs/promises';
import { isNode, LineCounter, parseDocument } from 'yaml';
import { z } from 'zod';
import { type ChartSources, parseChartSources } from '../charts/chart-sources.ts';
import { normalizeFolder } from '../source/render-inputs.ts';

/** One cluster as the operator registered it (`PLUMBLINE_CLUSTERS`); credentials never come from Git. */
export interface ClusterEntry {
  /** Status context `plumbline/<name>`. */
  readonly name: string;
  /** `owner/name` of the only repository that may target this cluster. */
  readonly repo: string;
  /**
   * GitHub's id of that repository, when the operator pins it: then only that id matches (a rename keeps
   * working, a new repository under the old name does not). Without it, the name GitHub reports is compared.
   */
  readonly repoId: number | undefined;
  /** Folder rendered for this cluster, relative to the repository root. */
  readonly path: string;
  /** Pushes to this branch are applied. */
  readonly branch: string;
  readonly kubeconfig: string | undefined;
  readonly inCluster: boolean;
  readonly prune: boolean;
  /** Full resync period in milliseconds. */
  readonly intervalMs: number;
  readonly suspend: boolean;
  readonly selfHeal: boolean;
  /** Apply force-pushed and non-descendant commits instead of refusing them. */
  readonly allowHistoryRewrite: boolean;
  /** Fields another field manager owns: take them over (and say so), or fail the commit. */
  readonly onConflict: 'takeOwnership' | 'fail';
  /** Largest share of the inventory one commit may prune (0–1); raise it on purpose for a big removal. */
  readonly maxPruneShare: number;
  /** Tenancy limits: what the repository may write on this cluster. Operator-owned, never from Git. */
  readonly limits: TenancyLimits;
  /** Dry-run previews for pull requests whose head lives in a fork (default off: a fork reaches no cluster). */
  readonly previewForks: boolean;
}

/** What one registry entry lets its repository write; an object outside them fails the commit before any write. */
export interface TenancyLimits {
  /** The only namespaces namespaced objects may be in; undefined = any. */
  readonly namespaces: readonly string[] | undefined;
  /** The only cluster-scoped kinds allowed; undefined = any. */
  readonly clusterScoped: readonly string[] | undefined;
  /** Kinds never written, whatever the repository says. */
  readonly deniedKinds: readonly string[];
  /** Every request for this cluster impersonates this ServiceAccount (`namespace/name`, or `name` in plumbline-system). */
  readonly serviceAccount: string | undefined;
}

export interface ClusterRegistry {
  readonly clusters: readonly ClusterEntry[];
  /** Where charts may come from, with what credentials and mirrors (product.md, "Chart sources"). */
  readonly charts: ChartSources;
}

export class RegistryError extends Error {
  override readonly name = 'RegistryError';
}

const DURATION = /^(\d+)(ms|s|m|h)$/;
const UNIT_MS = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000 } as const;

/** `30s`, `5m`, `1h` → milliseconds. */
export function parseDuration(text: string): number | undefined {
  const match = DURATION.exec(text);
  if (!match?.[1] || !match[2]) return undefined;
  return Number(match[1]) * UNIT_MS[match[2] as keyof typeof UNIT_MS];
}

const relativePath = z
  .string()
  .min(1)
  .refine((p) => !p.startsWith('/') && !p.split('/').includes('..'), 'must be a path inside the repository')
  .transform(normalizeFolder);

const dnsLabel = z.string().regex(/^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/, 'must be a namespace name');
const kindName = z.string().regex(/^[A-Z][A-Za-z0-9]*$/, 'must be a kind such as ClusterRole');

const clusterSchema = z
  .object({
    name: z.string().regex(/^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/, 'must be lowercase letters, digits and dashes'),
    repo: z.string().regex(/^[\w.-]+\/[\w.-]+$/, 'must be owner/name'),
    repoId: z.number().int().positive().optional(),
    path: relativePath,
    branch: z
      .string()
      .min(1)
      .refine((b) => !b.startsWith('refs/') && !b.includes('..'), 'must be a branch name without refs/heads/')
      .default('main'),
    kubeconfig: z.string().min(1).optional(),
    inCluster: z.boolean().default(false),
    prune: z.boolean().default(true),
    interval: z
      .string()
      .refine((d) => (parseDuration(d) ?? 0) >= 10_000, 'must be a duration of at least 10s, such as 30s, 5m or 1h')
      .default('5m'),
    suspend: z.boolean().default(false),
    selfHeal: z.boolean().default(true),
    allowHistoryRewrite: z.boolean().default(false),
    onConflict: z.enum(['takeOwnership', 'fail']).default('takeOwnership'),
    maxPruneShare: z.number().min(0).max(1).default(0.5),
    namespaces: z.array(dnsLabel).min(1, 'list at least one namespace, or leave the field out for all').optional(),
    clusterScoped: z.array(kindName).optional(),
    deniedKinds: z.array(kindName).default([]),
    serviceAccount: z
      .string()
      .regex(
        /^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\/)?[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?$/,
        'must be name or namespace/name',
      )
      .optional(),
    previewForks: z.boolean().default(false),
  })
  .strict()
  .refine((c) => (c.kubeconfig !== undefined) !== c.inCluster, {
    message: 'set exactly one of kubeconfig or inCluster: true',
    path: ['kubeconfig'],
  });

const registrySchema = z
  .object({
    clusters: z.array(clusterSchema).min(1, 'must list at least one cluster'),
    /** Chart sources (operator-owned: credentials, mirrors, private addresses); checked by `parseChartSources`. */
    charts: z.unknown().optional(),
  })
  .strict();

/**
 * Parses the registry. Errors name the field and its line (`clusters[1].path (line 9): …`) so an operator
 * can fix the file without guessing; the process refuses to start on any of them.
 */
export function parseClusterRegistry(text: string, source = 'cluster registry'): ClusterRegistry {
  const lineCounter = new LineCounter();
  const document = parseDocument(text, { lineCounter, prettyErrors: false });
  const [error] = document.errors;
  if (error) {
    const line = lineCounter.linePos(error.pos[0]).line;
    throw new RegistryError(`${source}: invalid YAML at line ${line}: ${error.message.split('\n')[0]}`);
  }
  const parsed = registrySchema.safeParse(document.toJS());
  if (!parsed.success) {
    const problems = parsed.error.issues.map((issue) => {
      const path = issue.path as (string | number)[];
      const node = document.getIn(path, true) ?? document.getIn(path.slice(0, -1), true);
      const offset = isNode(node) ? node.range?.[0] : undefined;
      const where = offset === undefined ? '' : ` (line ${lineCounter.linePos(offset).line})`;
      return `${formatPath(path)}${where}: ${issue.message}`;
    });
    throw new RegistryError(`${source}: ${problems.join('; ')}`);
  }
  const charts = parseChartSources(parsed.data.charts);
  if (!charts.ok) throw new RegistryError(`${source}: ${charts.problems.join('; ')}`);
  const clusters = parsed.data.clusters.map(
    (c): ClusterEntry => ({
      name: c.name,
      repo: c.repo,
      repoId: c.repoId,
      path: c.path,
      branch: c.branch,
      kubeconfig: c.kubeconfig,
      inCluster: c.inCluster,
      prune: c.prune,
      intervalMs: parseDuration(c.interval) ?? 300_000,
      suspend: c.suspend,
      selfHeal: c.selfHeal,
      allowHistoryRewrite: c.allowHistoryRewrite,
      onConflict: c.onConflict,
      maxPruneShare: c.maxPruneShare,
      limits: Object.freeze({
        namespaces: c.namespaces ? Object.freeze([...c.namespaces]) : undefined,
        clusterScoped: c.clusterScoped ? Object.freeze([...c.clusterScoped]) : undefined,
        deniedKinds: Object.freeze([...c.deniedKinds]),
        serviceAccount: c.serviceAccount,
      }),
      previewForks: c.previewForks,
    }),
  );
  const seen = new Set<string>();
  for (const [index, cluster] of clusters.entries()) {
    if (seen.has(cluster.name)) {
      throw new RegistryError(`${source}: clusters[${index}].name: "${cluster.name}" is registered twice`);
    }
    seen.add(cluster.name);
  }
  return Object.freeze({ clusters: Object.freeze(clusters), charts: charts.sources });
}

function formatPath(path: readonly (string | number)[]): string {
  return path.reduce<string>(
    (text, part) => (typeof part === 'number' ? `${text}[${part}]` : text ? `${text}.${part}` : part),
    '',
  );
}

export async function loadClusterRegistry(file: string): Promise<ClusterRegistry> {
  return parseClusterRegistry(await readFile(file, 'utf8'), file);
}

/** Whether a repository, as GitHub reports it, is the one a cluster entry registered: by id when pinned, else by name. */
export function matchesRepository(
  cluster: ClusterEntry,
  repository: { readonly id: number; readonly fullName: string },
) {
  if (cluster.repoId !== undefined) return cluster.repoId === repository.id;
  return cluster.repo.toLowerCase() === repository.fullName.toLowerCase();
}

/**
 * The clusters a repository may reach: names are compared case-insensitively, as GitHub treats them;
 * entries that pin `repoId` match that id only. With `branch`, only the clusters that deploy from that branch.
 */
export function clustersForRepository(
  registry: ClusterRegistry,
  repository: { readonly id: number; readonly fullName: string },
  branch?: string,
): ClusterEntry[] {
  return registry.clusters.filter(
    (c) => matchesRepository(c, repository) && (branch === undefined || c.branch === branch),
  );
}
