import { isMap, isSeq, parseDocument } from 'yaml';

export interface PinnedDependency {
  readonly name: string;
  readonly repository: string;
  readonly version: string;
}

/**
 * `Chart.yaml` text with the dependency called `pin.name` pointed at `pin.repository`, at exactly
 * `pin.version`; comments and every other field as they were. Pure; throws when the chart has no such
 * dependency (the sample repository and the demo disagree).
 */
export function pinChartDependency(chartYaml: string, pin: PinnedDependency): string {
  const document = parseDocument(chartYaml);
  const dependencies = document.get('dependencies');
  const entry = isSeq(dependencies)
    ? dependencies.items.find((item) => isMap(item) && item.get('name') === pin.name)
    : undefined;
  if (!isMap(entry)) throw new Error(`Chart.yaml has no dependency named ${pin.name}`);
  entry.set('repository', pin.repository);
  entry.set('version', pin.version);
  return document.toString();
}
