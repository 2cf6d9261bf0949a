import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from '@jest/globals';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { parse } from 'yaml';
import { APPS_JSON_SCHEMA_FILE, appsJsonSchema } from '../../src/apps/apps-schema.ts';
import { packageRoot } from '../../src/support/package-root.ts';

const FIXTURE = 'test/fixtures/apps/portefaix/clusters/talos/homelab/plumbline.yaml';

async function editorValidator() {
  const schema = JSON.parse(await readFile(join(packageRoot(), APPS_JSON_SCHEMA_FILE), 'utf8'));
  return new Ajv2020({ allErrors: true }).compile(schema);
}

const app = (fields: Record<string, unknown>) => ({
  apiVersion: 'plumbline.dev/v1alpha1',
  kind: 'Apps',
  apps: [{ name: 'web', ...fields }],
});

describe('the JSON Schema of plumbline.yaml', () => {
  it('is the one the zod schema gives (run `npx tsx dev/scripts/write-apps-schema.ts` after changing it)', async () => {
    const committed = JSON.parse(await readFile(join(packageRoot(), APPS_JSON_SCHEMA_FILE), 'utf8'));

    expect(committed).toEqual(appsJsonSchema());
  });

  it('lets an editor accept the Portefaix homelab example', async () => {
    const validate = await editorValidator();
    const example = parse(await readFile(join(packageRoot(), FIXTURE), 'utf8'));

    expect(validate(example) ? [] : validate.errors).toEqual([]);
  });

  it('lets an editor accept a minimal app, so that each case below is flagged for its own mistake', async () => {
    const validate = await editorValidator();

    expect(validate(app({ path: 'a' })) ? [] : validate.errors).toEqual([]);
  });

  it.each([
    ['an unknown field', { path: 'a', colour: 'red' }],
    ['both path and chart', { path: 'a', chart: 'b' }],
    ['neither path nor chart', { namespace: 'web' }],
    ['a version range', { chart: { repository: 'oci://ghcr.io/x', name: 'x', version: '^1.0.0' } }],
    ['an http repository', { chart: { repository: 'http://charts.example.com', name: 'x', version: '1.0.0' } }],
    ['a name with capitals', { name: 'Web', path: 'a' }],
  ])('lets an editor flag %s', async (_case, fields) => {
    const validate = await editorValidator();

    expect(validate(app(fields))).toBe(false);
  });
});
