/**
 * Writes the JSON Schema of plumbline.yaml (docs/schema/plumbline-apps.schema.json) from its zod schema,
 * so editors validate the file (`# yaml-language-server: $schema=…`). Run after changing
 * src/apps/apps-schema.ts — test/apps/apps-schema.test.ts fails while the committed file is out of date:
 *   npx tsx dev/scripts/write-apps-schema.ts
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { APPS_JSON_SCHEMA_FILE, appsJsonSchema } from '../../src/apps/apps-schema.ts';
import { packageRoot } from '../../src/support/package-root.ts';

const target = join(packageRoot(), APPS_JSON_SCHEMA_FILE);
mkdirSync(dirname(target), { recursive: true });
writeFileSync(target, `${JSON.stringify(appsJsonSchema(), null, 2)}\n`);
process.stdout.write(`wrote ${APPS_JSON_SCHEMA_FILE}\n`);
