#!/usr/bin/env node
// Entry point of `npx plumbline`: runs the compiled CLI (`npm ci` builds it through the `prepare` script).
// `demo` is development tooling (dev/demo/), not part of the product or the image: it has its own entry.
import { existsSync } from 'node:fs';

const demo = process.argv[2] === 'demo';
const cli = new URL(demo ? '../dist/dev/demo/cli.js' : '../dist/src/cli.js', import.meta.url);
if (!existsSync(cli)) {
  process.stderr.write(
    demo
      ? 'plumbline: the demo is not built (the container image leaves it out); from a clone, run `npm run build`\n'
      : 'plumbline: the compiled CLI is missing; run `npm run build` (npm ci does it for you)\n',
  );
  process.exit(1);
}
if (demo) process.argv.splice(2, 1);
await import(cli.href);
