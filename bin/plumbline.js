#!/usr/bin/env node
// Entry point of `npx plumbline`: runs the compiled CLI (`npm ci` builds it through the `prepare` script).
import { existsSync } from 'node:fs';

const cli = new URL('../dist/src/cli.js', import.meta.url);
if (!existsSync(cli)) {
  process.stderr.write('plumbline: the compiled CLI is missing; run `npm run build` (npm ci does it for you)\n');
  process.exit(1);
}
await import(cli.href);
