import { type ChartLayout, chartFileOf } from './chart-layout.ts';
import type { ManifestProblem, SourceLocation } from './manifest.ts';

export interface HelmErrorContext {
  readonly chartPath: string;
  /** Undefined when the chart's Chart.yaml could not be read: helm's paths are then left as they are. */
  readonly layout: ChartLayout | undefined;
  /** Machine paths in helm's message and what a person reads instead (the tree's root → ``, a temp values file → `valuesInline`). */
  readonly paths: readonly { readonly path: string; readonly as: string }[];
}

/**
 * Locations in helm's messages, innermost last: `template: c/templates/x.yaml:7:12:` (Helm 3), a line
 * `c/templates/x.yaml:7:12` of its own (Helm 4), `parse error at (c/templates/x.yaml:3)`,
 * `execution error at (c/templates/x.yaml:3:4)`.
 */
const TEMPLATE_LOCATION =
  /(?:template: |(?:parse|execution) error at \(|^(?:Error: )?)([^\s:()"]+\/[^\s:()"]+):(\d+)(?::\d+)?/gm;
const YAML_ERROR = /YAML parse error on ([^\s:()"]+):/;
const VALUES_ERROR = /failed to parse (\S+): .*?yaml: line (\d+):/;
const KUBE_VERSION = /chart requires kubeVersion: (.+?) which is incompatible with Kubernetes (\S+)/;

const MAX_MESSAGE = 2_000;

/**
 * The problem a failed `helm template` is, read from what helm printed: the repository file (and line,
 * where helm gives one) of the template, values file or Chart.yaml at fault, and helm's message with the
 * chart's paths made repository paths and no path of this machine left in it.
 */
export function helmErrorProblem(stderr: string, context: HelmErrorContext): ManifestProblem {
  const raw = errorText(stderr);
  const chartYaml = `${context.chartPath}/Chart.yaml`;
  const kube = KUBE_VERSION.exec(raw);
  if (kube) {
    const line = context.layout?.kubeVersionLine;
    return {
      message: `the chart requires Kubernetes ${kube[1]} (kubeVersion in Chart.yaml) and the cluster runs ${kube[2]}: nothing is applied`,
      source: line === undefined ? { file: chartYaml } : { file: chartYaml, line },
    };
  }
  const message = readable(raw, context);
  return { message: `helm template failed: ${message}`, source: locate(raw, message, context) ?? { file: chartYaml } };
}

/** From helm's `Error:` line on, without its hint to use --debug (a person cannot pass flags here). */
function errorText(stderr: string): string {
  const lines = stderr.split('\n');
  const first = lines.findIndex((line) => line.startsWith('Error: '));
  return (first < 0 ? lines.slice(-3) : lines.slice(first))
    .filter((line) => line.trim() !== '' && !line.startsWith('Use --debug flag'))
    .join('\n')
    .replace(/^Error: /, '')
    .trim();
}

function readable(raw: string, context: HelmErrorContext): string {
  let text = raw;
  const { layout } = context;
  if (layout) {
    // A path helm prints starts with the chart's name, after a space, a quote, a parenthesis or the start.
    const helmPath = new RegExp(`(^|[\\s"'(<])(${escapeRegExp(layout.name)}/[^\\s:()"'<>,]+)`, 'g');
    text = text.replace(helmPath, (_match, before: string, path: string) => before + chartFileOf(layout, path).file);
  }
  for (const { path, as } of context.paths) {
    text = text.split(`${path}/`).join(as === '' ? '' : `${as}/`);
    text = text.split(path).join(as);
  }
  text = text
    .split('\n')
    .map((line) => line.trim())
    .join(' ');
  return text.length > MAX_MESSAGE ? `${text.slice(0, MAX_MESSAGE)}…` : text;
}

function locate(raw: string, message: string, context: HelmErrorContext): SourceLocation | undefined {
  const { layout } = context;
  const file = (helmPath: string) => (layout ? chartFileOf(layout, helmPath).file : helmPath);
  const template = [...raw.matchAll(TEMPLATE_LOCATION)].at(-1);
  if (template?.[1] !== undefined) return { file: file(template[1]), line: Number(template[2]) };
  const yaml = YAML_ERROR.exec(raw);
  if (yaml?.[1] !== undefined) return { file: file(yaml[1]) };
  // The values file as the message names it, once the machine's paths are gone from it.
  const values = VALUES_ERROR.exec(message);
  if (values?.[1] !== undefined) return { file: values[1], line: Number(values[2]) };
  return undefined;
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
