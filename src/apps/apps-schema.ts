import { z } from 'zod';

/** The `apiVersion` of a `plumbline.yaml`. */
export const APPS_API_VERSION = 'plumbline.dev/v1alpha1';

/** An app's name: lowercase letters, digits and dashes, starting and ending with a letter or digit. */
export const APP_NAME = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
/** Helm's limit for a release name, which an app's name is by default. */
export const MAX_RELEASE_NAME = 53;
/** A namespace: an RFC 1123 label. */
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
/** Helm's release-name rule (`ValidateReleaseName`): RFC 1123 subdomain, at most 53 characters. */
const RELEASE_NAME = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
/**
 * An exact SemVer 2 version, as semver.org gives it; Helm also accepts a leading `v` (cert-manager
 * publishes `v1.16.2`), matched as written. No ranges, no wildcards.
 */
export const EXACT_VERSION =
  /^v?(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(-(0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(\.(0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*)?(\+[0-9a-zA-Z-]+(\.[0-9a-zA-Z-]+)*)?$/;
/** `oci://host/path` or `https://host/path`: where a remote chart comes from. */
const CHART_REPOSITORY = /^(oci|https):\/\/[^\s/?#@]+(\/[^\s?#]*)?$/;
/** A chart's name within its repository: one path segment. */
const CHART_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;

const quoted = (input: unknown) => JSON.stringify(input)?.slice(0, 80) ?? String(input);

const repositoryPath = (description: string) => z.string().min(1, 'must not be empty').meta({ description });

const remoteChart = z
  .strictObject({
    repository: z
      .string()
      .regex(CHART_REPOSITORY, {
        error: (issue) =>
          `${quoted(issue.input)} must be an oci:// or https:// URL without credentials, query or fragment (credentials come from the operator's chart sources, never from Git)`,
      })
      .meta({ description: 'oci://registry/path or https://helm-repository: where the chart is published' }),
    name: z
      .string()
      .regex(CHART_NAME, { error: (issue) => `${quoted(issue.input)} must be a chart name (no slashes)` })
      .meta({ description: "the chart's name in that repository" }),
    version: z
      .string()
      .regex(EXACT_VERSION, {
        error: (issue) => `${quoted(issue.input)} is not an exact version: pin an exact version, such as 1.2.3`,
      })
      .meta({ description: 'an exact SemVer version (no ranges): the same commit always renders the same chart' }),
  })
  .meta({ description: 'a remote chart, by repository, name and exact version' });

/** One app of the file. */
export const appSchema = z
  .strictObject({
    name: z
      .string()
      .max(MAX_RELEASE_NAME, `must be at most ${MAX_RELEASE_NAME} characters`)
      .regex(APP_NAME, {
        error: (issue) =>
          `${quoted(issue.input)} must be lowercase letters, digits and dashes, starting and ending with a letter or digit`,
      })
      .meta({
        description: `unique in the file; lowercase letters, digits, dashes; at most ${MAX_RELEASE_NAME} characters`,
      }),
    path: repositoryPath('a kustomize or plain-YAML folder, relative to this file').optional(),
    chart: z
      .union([repositoryPath('a chart folder in the repository, relative to this file'), remoteChart], {
        error: 'must be a chart folder (a path) or a remote chart { repository, name, version }',
      })
      .meta({ description: 'a chart folder in the repository, or a remote chart { repository, name, version }' })
      .optional(),
    namespace: z
      .string()
      .max(63, 'must be at most 63 characters')
      .regex(DNS_LABEL, {
        error: (issue) => `${quoted(issue.input)} must be a namespace name (lowercase letters, digits and dashes)`,
      })
      .meta({ description: 'the release namespace: namespaced objects without one land here' })
      .optional(),
    releaseName: z
      .string()
      .max(MAX_RELEASE_NAME, `must be at most ${MAX_RELEASE_NAME} characters (Helm's limit)`)
      .regex(RELEASE_NAME, {
        error: (issue) =>
          `${quoted(issue.input)} must be a Helm release name (lowercase letters, digits, dashes and dots)`,
      })
      .meta({ description: "Helm's release name (default: name)" })
      .optional(),
    values: z
      .array(repositoryPath('a values file, relative to this file'))
      .meta({ description: "values files layered over the chart's values.yaml, in order" })
      .optional(),
    valuesInline: z
      .record(z.string(), z.unknown())
      .meta({ description: 'values layered last, over the values files' })
      .optional(),
    prune: z
      .boolean()
      .meta({ description: "prune this app's objects when they leave Git (default: the cluster's prune)" })
      .optional(),
    dependsOn: z
      .array(z.string().regex(APP_NAME, { error: (issue) => `${quoted(issue.input)} is not an app name` }))
      .meta({ description: 'names of apps applied, and healthy, before this one' })
      .optional(),
  })
  .meta({ description: 'one app: exactly one of path or chart' });

/** The shape of a `plumbline.yaml`; rules that need more than one field (paths, names) are checked apart. */
export const appsFileSchema = z
  .strictObject({
    apiVersion: z.literal(APPS_API_VERSION, { error: `must be ${APPS_API_VERSION}` }),
    kind: z.literal('Apps', { error: 'must be Apps' }),
    apps: z.array(appSchema).meta({ description: 'the apps of this cluster, in the order they are listed' }),
  })
  .meta({
    title: 'Plumbline Apps',
    description: "The apps of a cluster (plumbline.yaml in the cluster's folder); all paths are relative to the file.",
  });

export type AppInput = z.infer<typeof appSchema>;

/** The fields each object of the file allows, for naming them when an unknown one is used. */
export const APPS_FILE_FIELDS = {
  file: Object.keys(appsFileSchema.shape),
  app: Object.keys(appSchema.shape),
  remoteChart: Object.keys(remoteChart.shape),
} as const;

/** Where the JSON Schema is published, relative to the package root (written by dev/scripts/write-apps-schema.ts). */
export const APPS_JSON_SCHEMA_FILE = 'docs/schema/plumbline-apps.schema.json';

/**
 * The file's JSON Schema, for editors (`# yaml-language-server: $schema=…`). It adds what the zod schema
 * checks in code: an app is exactly one of `path` or `chart`.
 */
export function appsJsonSchema(): Record<string, unknown> {
  return z.toJSONSchema(appsFileSchema, {
    io: 'input',
    override: ({ zodSchema, jsonSchema }) => {
      if (zodSchema === appSchema) {
        jsonSchema.oneOf = [{ required: ['path'] }, { required: ['chart'] }];
      }
    },
  });
}
