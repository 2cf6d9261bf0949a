import { createHash } from 'node:crypto';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { RenderInputs } from './render-inputs.ts';
import { fsTreeReader } from './tree-reader.ts';

/**
 * A digest of the content of every file a render reads — its files, and every file below its subtrees —
 * so that equal digests mean equal renders, whatever commit the tree is of.
 */
export async function digestInputs(treeDir: string, inputs: RenderInputs): Promise<string> {
  const tree = fsTreeReader(treeDir);
  const files = new Set(inputs.files);
  for (const subtree of inputs.subtrees) for (const file of await listTree(treeDir, subtree)) files.add(file);
  const hash = createHash('sha256');
  for (const file of [...files].sort()) {
    const content = await tree.readText(file);
    hash.update(`${file}\0${content === undefined ? '-' : createHash('sha256').update(content).digest('hex')}\0`);
  }
  return hash.digest('hex');
}

async function listTree(treeDir: string, dir: string): Promise<string[]> {
  const entries = await readdir(join(treeDir, dir), { recursive: true, withFileTypes: true }).catch(() => []);
  return (
    entries
      .filter((e) => e.isFile() || e.isSymbolicLink())
      .map((e) => join(e.parentPath, e.name).slice(treeDir.length + 1))
      // Scratch folders of a render in progress (charts completed in the tree) are not the commit's.
      .filter((path) => !/(^|\/)\.plumbline-chart-/.test(path))
  );
}
