import { z } from 'zod';

/** One operator-listed chart source: matched by URL prefix, first match wins. */
export interface ChartSource {
  /** `oci://…` or `https://…` (or `http://…`, allowed only because the operator listed it), no trailing slash. */
  readonly url: string;
  /** Fetch from here instead: the mirror replaces the matched prefix (air-gapped installs). */
  readonly mirror: string | undefined;
  /** A file holding `{"username": …, "password": …}`, read at use time; never from Git, never logged. */
  readonly credentials: string | undefined;
  /** A PEM file of CAs trusted for the source and its mirror (besides the system's). */
  readonly caFile: string | undefined;
  /** An oci:// registry (the mirror's, when there is one) served over plain http: only for a listed source. */
  readonly plainHttp: boolean;
}

/** The operator's chart sources policy (`charts:` at the top of the cluster registry). */
export interface ChartSources {
  readonly repositories: readonly ChartSource[];
  /** Charts from loopback/private/link-local addresses for every source, not only the listed ones. */
  readonly allowPrivateAddresses: boolean;
}

/** What a chart URL turns into under the policy: where to fetch, with what, and whether the operator listed it. */
export interface ChartSourceMatch {
  /** The URL as the repository wrote it (normalized): the cache key. */
  readonly sourceUrl: string;
  /** The URL fetched: the mirror's when the matched entry has one. */
  readonly fetchUrl: string;
  /** The matched entry; undefined when the operator did not list the source. */
  readonly source: ChartSource | undefined;
  /** Private addresses are allowed for this fetch (listed source, or `allowPrivateAddresses`). */
  readonly allowPrivateAddresses: boolean;
  /** Plain http is allowed for this fetch (only for a listed source: the operator chose it). */
  readonly allowPlainHttp: boolean;
}

export const NO_CHART_SOURCES: ChartSources = Object.freeze({
  repositories: Object.freeze([]),
  allowPrivateAddresses: false,
});

const sourceUrl = z
  .string()
  .regex(/^(oci|https|http):\/\/[^/\s]+/, 'must be an oci://, https:// or http:// URL with a host')
  .refine((u) => !/^[a-z]+:\/\/[^/]*@/.test(u), 'must not carry credentials: use the credentials file')
  .transform(trimSlashes);

const repositorySchema = z
  .object({
    url: sourceUrl,
    mirror: sourceUrl.optional(),
    credentials: z.string().startsWith('/', 'must be an absolute file path').optional(),
    caFile: z.string().startsWith('/', 'must be an absolute file path').optional(),
    plainHttp: z.boolean().default(false),
  })
  .strict()
  .refine((r) => r.mirror === undefined || (scheme(r.mirror) === 'oci') === (scheme(r.url) === 'oci'), {
    message: 'a mirror must be of the same kind as its source: oci:// for oci://, https:// (or http://) for https://',
    path: ['mirror'],
  });

const sourcesSchema = z
  .object({
    repositories: z.array(repositorySchema).default([]),
    allowPrivateAddresses: z.boolean().default(false),
  })
  .strict();

export type ParsedChartSources =
  | { readonly ok: true; readonly sources: ChartSources }
  | { readonly ok: false; readonly problems: readonly string[] };

/**
 * Parses the registry's top-level `charts:` value (already YAML-decoded; undefined = no policy: only
 * public https and oci sources). Problems name the field (`charts.repositories[0].mirror: …`).
 */
export function parseChartSources(value: unknown): ParsedChartSources {
  if (value === undefined || value === null) return { ok: true, sources: NO_CHART_SOURCES };
  const parsed = sourcesSchema.safeParse(value);
  if (!parsed.success) {
    return {
      ok: false,
      problems: parsed.error.issues.map((issue) => `${formatPath(['charts', ...issue.path])}: ${issue.message}`),
    };
  }
  const repositories = parsed.data.repositories.map(
    (r): ChartSource =>
      Object.freeze({
        url: r.url,
        mirror: r.mirror,
        credentials: r.credentials,
        caFile: r.caFile,
        plainHttp: r.plainHttp,
      }),
  );
  return {
    ok: true,
    sources: Object.freeze({
      repositories: Object.freeze(repositories),
      allowPrivateAddresses: parsed.data.allowPrivateAddresses,
    }),
  };
}

/**
 * The policy applied to one chart URL: the first listed prefix that matches at a path boundary
 * (`oci://r/charts` matches `oci://r/charts/x`, not `oci://r/chartsx`); its mirror replaces that prefix.
 */
export function matchChartSource(sources: ChartSources, url: string): ChartSourceMatch {
  const normalized = trimSlashes(url);
  const source = sources.repositories.find(
    (r) => normalized === r.url || normalized.startsWith(`${r.url}/`) || normalized.startsWith(`${r.url}?`),
  );
  const fetchUrl = source?.mirror === undefined ? normalized : `${source.mirror}${normalized.slice(source.url.length)}`;
  return {
    sourceUrl: normalized,
    fetchUrl,
    source,
    allowPrivateAddresses: source !== undefined || sources.allowPrivateAddresses,
    allowPlainHttp: source !== undefined,
  };
}

function scheme(url: string): string {
  return url.slice(0, url.indexOf(':'));
}

function trimSlashes(url: string): string {
  return url.replace(/\/+$/, '');
}

function formatPath(path: readonly PropertyKey[]): string {
  return path.reduce<string>(
    (text, part) => (typeof part === 'number' ? `${text}[${part}]` : text ? `${text}.${String(part)}` : String(part)),
    '',
  );
}
