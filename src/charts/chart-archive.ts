import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, join, posix } from 'node:path';
import { gunzipSync } from 'node:zlib';

/** One regular file of a packaged chart, its path relative to the chart's folder. */
export interface ChartArchiveFile {
  readonly path: string;
  readonly data: Buffer;
}

export class ChartArchiveError extends Error {
  override readonly name = 'ChartArchiveError';
}

/** Helm's own limit on a decompressed chart (`MaxDecompressedChartSize`). */
export const MAX_DECOMPRESSED_CHART_BYTES = 100 * 1024 * 1024;
const BLOCK = 512;

/**
 * The files of a chart `.tgz`, read the way Helm's loader reads them: the first path component (the
 * chart's folder) stripped, directories and pax headers skipped, absolute paths and `..` refused. Links
 * are skipped (Helm would read them as empty files; writing them could point outside the scratch folder).
 */
export function readChartArchive(archive: Buffer): ChartArchiveFile[] {
  let tar: Buffer;
  try {
    tar = gunzipSync(archive, { maxOutputLength: MAX_DECOMPRESSED_CHART_BYTES });
  } catch (error) {
    throw new ChartArchiveError(
      `not a gzip archive, or larger than ${MAX_DECOMPRESSED_CHART_BYTES} bytes decompressed: ${(error as Error).message}`,
    );
  }
  const files: ChartArchiveFile[] = [];
  let offset = 0;
  let longName: string | undefined;
  while (offset + BLOCK <= tar.length) {
    const header = tar.subarray(offset, offset + BLOCK);
    if (header.every((byte) => byte === 0)) break;
    const size = readSize(header.subarray(124, 136));
    const type = String.fromCharCode(header[156] ?? 0);
    const dataStart = offset + BLOCK;
    if (dataStart + size > tar.length) throw new ChartArchiveError('truncated tar archive');
    const data = tar.subarray(dataStart, dataStart + size);
    offset = dataStart + Math.ceil(size / BLOCK) * BLOCK;
    if (type === 'x') {
      longName = paxPath(data) ?? longName;
      continue;
    }
    if (type === 'L') {
      longName = cString(data);
      continue;
    }
    if (type === 'g') continue;
    const prefix = header.subarray(257, 263).toString('latin1').startsWith('ustar')
      ? cString(header.subarray(345, 500))
      : '';
    const name =
      longName ?? (prefix ? `${prefix}/${cString(header.subarray(0, 100))}` : cString(header.subarray(0, 100)));
    longName = undefined;
    if (type !== '0' && type !== '\0' && type !== '7') continue;
    files.push({ path: chartRelativePath(name), data: Buffer.from(data) });
  }
  if (files.length === 0) throw new ChartArchiveError('no files in chart archive');
  return files;
}

/** Writes an archive's files under `folder` (which becomes the chart's folder). */
export async function extractChartArchive(archive: Buffer, folder: string): Promise<void> {
  const files = readChartArchive(archive);
  await mkdir(folder, { recursive: true });
  for (const file of files) {
    const target = join(folder, file.path);
    await mkdir(dirname(target), { recursive: true });
    await writeFile(target, file.data);
  }
}

function chartRelativePath(name: string): string {
  const normalized = name.replaceAll('\\', '/');
  const parts = normalized.split('/');
  if (parts[0] === 'Chart.yaml') throw new ChartArchiveError('chart yaml not in base directory');
  const rest = parts.slice(1).join('/');
  if (rest.startsWith('/') || /^[A-Za-z]:/.test(rest))
    throw new ChartArchiveError(`chart illegally contains absolute paths: ${name}`);
  const clean = posix.normalize(rest);
  if (clean === '.' || clean === '' || clean === '..' || clean.startsWith('../')) {
    throw new ChartArchiveError(`chart illegally contains content outside the base directory: ${name}`);
  }
  return clean;
}

function readSize(field: Buffer): number {
  const first = field[0] ?? 0;
  if (first & 0x80) {
    // base-256 (GNU) for sizes beyond 8 GiB; bounded by the decompressed size anyway
    let value = 0;
    for (const [index, byte] of field.entries()) value = value * 256 + (index === 0 ? byte & 0x7f : byte);
    return value;
  }
  const text = cString(field).trim();
  const value = text === '' ? 0 : Number.parseInt(text, 8);
  if (!Number.isFinite(value) || value < 0) throw new ChartArchiveError('bad tar header');
  return value;
}

function cString(field: Buffer): string {
  const end = field.indexOf(0);
  return field.subarray(0, end === -1 ? field.length : end).toString('utf8');
}

/** `path=` of a pax extended header (`<length> path=<value>\n` records). */
function paxPath(data: Buffer): string | undefined {
  let offset = 0;
  let path: string | undefined;
  while (offset < data.length) {
    const space = data.indexOf(0x20, offset);
    if (space === -1) break;
    const length = Number.parseInt(data.subarray(offset, space).toString('latin1'), 10);
    if (!Number.isFinite(length) || length <= 0) break;
    const record = data.subarray(space + 1, offset + length - 1).toString('utf8');
    if (record.startsWith('path=')) path = record.slice(5);
    offset += length;
  }
  return path;
}
