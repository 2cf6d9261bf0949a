/**
 * Reading kustomization fields as kustomize does. Go's encoding/json — which kustomize decodes
 * kustomizations and plugin configs with — matches keys case-insensitively, with Unicode simple folding
 * (`ſ` is an `s`, the Kelvin sign a `k`).
 */
export const foldKey = (key: string): string => key.toLowerCase().replaceAll('ſ', 's');

export const isRecord = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value) && !ArrayBuffer.isView(value);

/** Every value under a key that folds to `name` (a document may spell it twice, in two cases). */
export function fieldValues(record: Record<string, unknown>, name: string): unknown[] {
  return Object.entries(record)
    .filter(([key]) => foldKey(key) === foldKey(name))
    .map(([, value]) => value);
}

/** The items of a list field (a lone value counts as one item, null as none). */
export const listItems = (record: Record<string, unknown>, name: string): unknown[] =>
  fieldValues(record, name).flatMap((value) => (Array.isArray(value) ? value : value == null ? [] : [value]));

export const scalarItems = (record: Record<string, unknown>, name: string): unknown[] =>
  fieldValues(record, name).filter((value) => value != null);

export const recordItems = (record: Record<string, unknown>, name: string): Record<string, unknown>[] =>
  listItems(record, name).filter(isRecord);

/** kustomize's default `helmGlobals.chartHome`, relative to the kustomization. */
export const DEFAULT_CHART_HOME = 'charts';

/**
 * The folder, relative to the kustomization, that kustomize 5.5's helm generator reads a chart from —
 * and pulls it into when it is missing: `<chartHome>/<name>-<version>/<name>` when the entry has a repo
 * and a version, `<chartHome>/<name>` otherwise (HelmChartInflationGenerator's absChartHome).
 */
export function kustomizeChartFolder(chart: {
  readonly chartHome: string;
  readonly name: string;
  readonly version: string | undefined;
  readonly repo: string | undefined;
}): string {
  // kustomize takes an empty chartHome as the default.
  const home = chart.chartHome === '' ? DEFAULT_CHART_HOME : chart.chartHome;
  const folder = chart.version && chart.repo ? `${chart.name}-${chart.version}/${chart.name}` : chart.name;
  return home.endsWith('/') ? `${home}${folder}` : `${home}/${folder}`;
}
