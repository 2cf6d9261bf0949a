import { createHash } from 'node:crypto';

/**
 * The `digest` Helm writes in `Chart.lock` and checks in `helm dependency build` (`resolver.HashReq`):
 * `"sha256:" + hex(sha256(json.Marshal([2][]*chart.Dependency{Chart.yaml dependencies, Chart.lock dependencies})))`.
 * It covers both lists — every field of each `chart.Dependency` as Go marshals it: struct field order
 * (name, version, repository, condition, tags, enabled, import-values, alias), `omitempty` for all but
 * name and repository, Go's string escaping (`<`, `>`, `&` as \u00XX), map keys sorted. It does not cover
 * the charts' contents: a lock pins versions, the repository's index digest verifies the bytes.
 */
export function helmLockDigest(
  requirements: readonly unknown[] | undefined,
  locked: readonly unknown[] | undefined,
): string {
  const json = `[${marshalList(requirements)},${marshalList(locked)}]`;
  return `sha256:${createHash('sha256').update(json, 'utf8').digest('hex')}`;
}

function marshalList(list: readonly unknown[] | undefined): string {
  if (list === undefined || list === null) return 'null';
  return `[${list.map(marshalDependency).join(',')}]`;
}

function marshalDependency(value: unknown): string {
  if (value === null || typeof value !== 'object') return 'null';
  const d = value as Record<string, unknown>;
  const fields: string[] = [`"name":${goString(sanitize(text(d.name)))}`];
  const version = sanitize(text(d.version));
  if (version !== '') fields.push(`"version":${goString(version)}`);
  fields.push(`"repository":${goString(sanitize(text(d.repository)))}`);
  const condition = sanitize(text(d.condition));
  if (condition !== '') fields.push(`"condition":${goString(condition)}`);
  if (Array.isArray(d.tags) && d.tags.length > 0) {
    fields.push(`"tags":[${d.tags.map((t) => goString(sanitize(text(t)))).join(',')}]`);
  }
  if (d.enabled === true) fields.push('"enabled":true');
  const importValues = d['import-values'];
  if (Array.isArray(importValues) && importValues.length > 0) fields.push(`"import-values":${goJson(importValues)}`);
  const alias = text(d.alias);
  if (alias !== '') fields.push(`"alias":${goString(alias)}`);
  return `{${fields.join(',')}}`;
}

function text(value: unknown): string {
  return typeof value === 'string' ? value : '';
}

/** Helm's `sanitizeString` (run by chart validation on load): whitespace → space, unprintable dropped. */
function sanitize(value: string): string {
  return value.replace(/\s/gu, ' ').replace(/[\p{Cc}\p{Cf}\p{Co}\p{Cn}\p{Zl}\p{Zp}]/gu, '');
}

/** `encoding/json` of a decoded YAML value: maps with sorted keys, Go's string escaping. */
function goJson(value: unknown): string {
  if (value === null || value === undefined) return 'null';
  if (typeof value === 'string') return goString(value);
  if (typeof value === 'number' || typeof value === 'boolean') return JSON.stringify(value);
  if (Array.isArray(value)) return `[${value.map(goJson).join(',')}]`;
  if (typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${goString(k)}:${goJson(v)}`).join(',')}}`;
  }
  return 'null';
}

function goString(value: string): string {
  let out = '"';
  for (const char of value) {
    const code = char.codePointAt(0) ?? 0;
    if (char === '"') out += '\\"';
    else if (char === '\\') out += '\\\\';
    else if (char === '\n') out += '\\n';
    else if (char === '\r') out += '\\r';
    else if (char === '\t') out += '\\t';
    else if (char === '\b') out += '\\b';
    else if (char === '\f') out += '\\f';
    else if (code < 0x20 || char === '<' || char === '>' || char === '&' || code === 0x2028 || code === 0x2029) {
      out += `\\u${code.toString(16).padStart(4, '0')}`;
    } else out += char;
  }
  return `${out}"`;
}
