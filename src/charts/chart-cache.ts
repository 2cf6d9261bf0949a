import { createHash, randomBytes } from 'node:crypto';
import { mkdir, open, readdir, readFile, rename, stat, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { PulledChart } from './pull-from-https-repository.ts';

/** What identifies a fetched chart: versions are immutable, so source, name and version name its bytes. */
export interface ChartCacheKey {
  /** The source URL as the repository names it (not the mirror's): the same chart wherever it is fetched from. */
  readonly sourceUrl: string;
  readonly name: string;
  readonly version: string;
}

export interface CachedChart {
  /** `<cacheDir>/charts/<sha256(source)>/<name>-<version>-<sha256 hex>.tgz` */
  readonly file: string;
  readonly archive: Buffer;
  /** sha256 (hex) of the archive. */
  readonly digest: string;
  /** Whether this call fetched it (false: it came from the cache, or from a fetch another caller ran). */
  readonly fetched: boolean;
}

export interface ChartCacheOptions {
  /** A lock file older than this is a crashed fetcher's: taken over (default 5 minutes). */
  readonly staleLockMs?: number;
  /** How often a waiting process looks again (default 100 ms). */
  readonly pollMs?: number;
}

const NAME = /^[A-Za-z0-9._-]+$/;
const VERSION = /^[A-Za-z0-9.+_-]+$/;

/**
 * Fetched charts shared by every render and worker on the machine. A version is fetched once: a hit
 * makes no network request; concurrent callers in one process share one fetch (single flight), callers
 * in other processes wait on an exclusive lock file (`O_EXCL`; a stale one is taken over). Files are
 * written to a temporary name and renamed, so a reader never sees half a chart; a hit is re-hashed
 * against the digest in its name, so a corrupted file is fetched again instead of rendered.
 */
export class ChartCache {
  private readonly inFlight = new Map<string, Promise<CachedChart>>();
  private readonly staleLockMs: number;
  private readonly pollMs: number;

  constructor(
    readonly cacheDir: string,
    options: ChartCacheOptions = {},
  ) {
    this.staleLockMs = options.staleLockMs ?? 300_000;
    this.pollMs = options.pollMs ?? 100;
  }

  /** The cached chart, or the one `fetch` returns (stored before it is handed out). */
  get(key: ChartCacheKey, fetch: () => Promise<PulledChart>): Promise<CachedChart> {
    if (!NAME.test(key.name) || !VERSION.test(key.version)) {
      return Promise.reject(new Error(`chart ${key.name} ${key.version}: not a chart name and version`));
    }
    const id = `${key.sourceUrl}\n${key.name}\n${key.version}`;
    const running = this.inFlight.get(id);
    if (running) return running.then((chart) => ({ ...chart, fetched: false }));
    const started = this.lookupOrFetch(key, fetch).finally(() => this.inFlight.delete(id));
    this.inFlight.set(id, started);
    return started;
  }

  /** The folder of one source's charts. */
  folderOf(sourceUrl: string): string {
    return join(this.cacheDir, 'charts', createHash('sha256').update(sourceUrl).digest('hex'));
  }

  private async lookupOrFetch(key: ChartCacheKey, fetch: () => Promise<PulledChart>): Promise<CachedChart> {
    const folder = this.folderOf(key.sourceUrl);
    const hit = await this.lookup(folder, key);
    if (hit) return hit;
    await mkdir(folder, { recursive: true });
    const lock = join(folder, `${key.name}-${key.version}.lock`);
    const waited = await this.acquire(lock, folder, key);
    if (waited !== 'locked') return waited;
    try {
      const other = await this.lookup(folder, key);
      if (other) return other;
      const pulled = await fetch();
      const file = join(folder, `${key.name}-${key.version}-${pulled.digest}.tgz`);
      const temporary = `${file}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
      await writeFile(temporary, pulled.archive);
      await rename(temporary, file);
      return { file, archive: pulled.archive, digest: pulled.digest, fetched: true };
    } finally {
      await unlink(lock).catch(() => undefined);
    }
  }

  /** Waits for the lock file (another process fetching the same version), or for that process's result. */
  private async acquire(lock: string, folder: string, key: ChartCacheKey): Promise<'locked' | CachedChart> {
    for (;;) {
      try {
        const handle = await open(lock, 'wx');
        await handle.writeFile(`${process.pid}\n`);
        await handle.close();
        return 'locked';
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      }
      const age = await stat(lock).then(
        (s) => Date.now() - s.mtimeMs,
        () => 0,
      );
      if (age > this.staleLockMs) {
        await unlink(lock).catch(() => undefined);
        continue;
      }
      const done = await this.lookup(folder, key);
      if (done) return done;
      await new Promise((resolve) => setTimeout(resolve, this.pollMs));
    }
  }

  private async lookup(folder: string, key: ChartCacheKey): Promise<CachedChart | undefined> {
    const prefix = `${key.name}-${key.version}-`;
    const names = await readdir(folder).catch(() => [] as string[]);
    for (const name of names) {
      const digest = name.startsWith(prefix) && name.endsWith('.tgz') ? name.slice(prefix.length, -4) : undefined;
      if (digest === undefined || !/^[0-9a-f]{64}$/.test(digest)) continue;
      const file = join(folder, name);
      const archive = await readFile(file).catch(() => undefined);
      if (archive === undefined) continue;
      if (createHash('sha256').update(archive).digest('hex') === digest)
        return { file, archive, digest, fetched: false };
      await unlink(file).catch(() => undefined);
    }
    return undefined;
  }
}
