import { readFile, realpath, stat } from 'node:fs/promises';
import { join, relative, sep } from 'node:path';
import type { TreeReader } from './render-inputs.ts';

/**
 * Reads an exported commit tree. A path (or a symlink) that resolves outside the tree reads as missing:
 * a repository must never make Plumbline read the worker's own files.
 */
export function fsTreeReader(root: string): TreeReader {
  const inside = async (path: string): Promise<string | undefined> => {
    try {
      const real = await realpath(join(root, path));
      const rootReal = await realpath(root);
      const rel = relative(rootReal, real);
      return rel === '' || (!rel.startsWith(`..${sep}`) && rel !== '..') ? real : undefined;
    } catch {
      return undefined;
    }
  };
  return {
    async readText(path) {
      const real = await inside(path);
      if (!real || !(await stat(real)).isFile()) return undefined;
      return readFile(real, 'utf8');
    },
    async isDirectory(path) {
      const real = await inside(path);
      return real !== undefined && (await stat(real)).isDirectory();
    },
  };
}
