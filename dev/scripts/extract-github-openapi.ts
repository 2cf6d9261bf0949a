/**
 * Extracts the REST operations Plumbline calls from GitHub's official OpenAPI description
 * (@octokit/openapi, ~385 MB unpacked) into dev/github-stand-in/openapi-subset.json, with every schema
 * they reference. The GitHub stand-in validates each request against it. Run after changing OPERATIONS:
 *   npx tsx dev/scripts/extract-github-openapi.ts
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const VERSION = '23.0.2';
export const OPERATIONS = [
  ['post', '/app/installations/{installation_id}/access_tokens'],
  ['get', '/app'],
  ['get', '/installation/repositories'],
  ['get', '/repos/{owner}/{repo}'],
  ['get', '/repos/{owner}/{repo}/installation'],
  ['get', '/repos/{owner}/{repo}/branches/{branch}'],
  ['post', '/repos/{owner}/{repo}/statuses/{sha}'],
  ['get', '/repos/{owner}/{repo}/commits/{ref}/statuses'],
  ['post', '/repos/{owner}/{repo}/check-runs'],
  ['patch', '/repos/{owner}/{repo}/check-runs/{check_run_id}'],
] as const;

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

const dir = mkdtempSync(join(tmpdir(), 'github-openapi-'));
try {
  execFileSync('npm', ['pack', `@octokit/openapi@${VERSION}`, '--silent'], { cwd: dir });
  execFileSync('tar', ['-xzf', `octokit-openapi-${VERSION}.tgz`, 'package/generated/api.github.com.json'], {
    cwd: dir,
  });
  const spec = JSON.parse(readFileSync(join(dir, 'package/generated/api.github.com.json'), 'utf8')) as {
    openapi: string;
    info: Json;
    paths: Record<string, Record<string, Json>>;
    components: Record<string, Record<string, Json>>;
  };
  const paths: Record<string, Record<string, Json>> = {};
  for (const [method, path] of OPERATIONS) {
    const operation = spec.paths[path]?.[method];
    if (!operation) throw new Error(`${method.toUpperCase()} ${path} is not in @octokit/openapi ${VERSION}`);
    paths[path] = { ...paths[path], [method]: operation };
  }
  // Copy every component reachable from the chosen operations, following $ref transitively.
  const components: Record<string, Record<string, Json>> = {};
  const pending: Json[] = Object.values(paths);
  while (pending.length > 0) {
    const node = pending.pop();
    if (Array.isArray(node)) pending.push(...node);
    else if (node && typeof node === 'object') {
      const ref = node.$ref;
      if (typeof ref === 'string') {
        const [, , kind, name] = ref.split('/') as [string, string, string, string];
        if (!components[kind]?.[name]) {
          const target = spec.components[kind]?.[name];
          if (target === undefined) throw new Error(`dangling ${ref}`);
          components[kind] = { ...components[kind], [name]: target };
          pending.push(target);
        }
      }
      pending.push(...Object.values(node));
    }
  }
  const subset = {
    openapi: spec.openapi,
    info: spec.info,
    'x-source': `@octokit/openapi@${VERSION}`,
    paths,
    components,
  };
  writeFileSync('dev/github-stand-in/openapi-subset.json', `${JSON.stringify(subset)}\n`);
  process.stdout.write(
    `wrote ${OPERATIONS.length} operations and ${Object.values(components).reduce((n, c) => n + Object.keys(c).length, 0)} components\n`,
  );
} finally {
  rmSync(dir, { recursive: true, force: true });
}
