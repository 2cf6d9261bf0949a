import { createHash } from 'node:crypto';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { collectRenderInputs } from '../source/render-inputs.ts';
import { fsTreeReader } from '../source/tree-reader.ts';
import { type RenderOptions, type RenderResult, renderCluster } from './render-cluster.ts';

export interface RenderCache {
  render(treeDir: string, clusterPath: string): Promise<RenderResult>;
  readonly stats: { hits: number; misses: number };
}

/**
 * Renders keyed by the content of every file the render reads (not by commit): a commit that changes
 * nothing a cluster reads — or two clusters sharing a folder — reuse one render. Least recently used
 * entries are dropped past `maxEntries`.
 */
export function createRenderCache(options: RenderOptions, maxEntries = 64): RenderCache {
  const entries = new Map<string, RenderResult>();
  const stats = { hits: 0, misses: 0 };
  return {
    stats,
    async render(treeDir, clusterPath) {
      const key = await inputDigest(treeDir, clusterPath, options);
      const cached = entries.get(key);
      if (cached) {
        stats.hits += 1;
        entries.delete(key);
        entries.set(key, cached);
        return cached;
      }
      stats.misses += 1;
      const result = await renderCluster(treeDir, clusterPath, options);
      if (!result.ok && result.transient) return result;
      entries.set(key, result);
      if (entries.size > maxEntries) entries.delete(entries.keys().next().value as string);
      return result;
    },
  };
}

async function inputDigest(treeDir: string, clusterPath: string, options: RenderOptions): Promise<string> {
  const tree = fsTreeReader(treeDir);
  const inputs = await collectRenderInputs(tree, clusterPath);
  const files = new Set(inputs.files);
  for (const subtree of inputs.subtrees) for (const file of await listTree(treeDir, subtree)) files.add(file);
  const hash = createHash('sha256').update(`${options.kustomize.command}\0${clusterPath}\0`);
  for (const file of [...files].sort()) {
    const content = await tree.readText(file);
    hash.update(`${file}\0${content === undefined ? '-' : createHash('sha256').update(content).digest('hex')}\0`);
  }
  return hash.digest('hex');
}

async function listTree(treeDir: string, dir: string): Promise<string[]> {
  const entries = await readdir(join(treeDir, dir), { recursive: true, withFileTypes: true }).catch(() => []);
  return entries
    .filter((e) => e.isFile() || e.isSymbolicLink())
    .map((e) => join(e.parentPath, e.name).slice(treeDir.length + 1));
}
