import { readFile, realpath, stat } from 'node:fs/promises';
import { join, relative, sep } from 'node:path';
import type { TreeReader } from './render-inputs.ts';

/**
 * Reads an exported commit tree. A path (or a symlink) that resolves outside the tree reads as missing:
 * a repository must never make Plumbline read the worker's own files.
 */
export function fsTreeReader(root: string): TreeReader {
  let rootReal: Promise<string> | undefined;
  /** The real path and its repository-relative form, when the path exists inside the tree. */
  const inside = async (path: string): Promise<{ real: string; relative: string } | undefined> => {
    try {
      const real = await realpath(join(root, path));
      rootReal ??= realpath(root);
      const rel = relative(await rootReal, real);
      return rel === '' || (!rel.startsWith(`..${sep}`) && rel !== '..')
        ? { real, relative: rel.split(sep).join('/') }
        : undefined;
    } catch {
      return undefined;
    }
  };
  return {
    async readText(path) {
      const found = await inside(path);
      if (!found || !(await stat(found.real)).isFile()) return undefined;
      return readFile(found.real, 'utf8');
    },
    async isDirectory(path) {
      const found = await inside(path);
      return found !== undefined && (await stat(found.real)).isDirectory();
    },
    async realPath(path) {
      return (await inside(path))?.relative;
    },
    async fileSize(path) {
      const found = await inside(path);
      const stats = found && (await stat(found.real));
      return stats?.isFile() ? stats.size : undefined;
    },
  };
}
