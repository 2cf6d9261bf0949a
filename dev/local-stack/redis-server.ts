import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Redis } from 'ioredis';
import { type ProcessRecord, startDaemon } from './processes.ts';

export interface RedisRecord extends ProcessRecord {
  readonly url: string;
  readonly port: number;
}

/** Absolute path of Debian's `redis-server`, or a clear error saying how to get it. */
export async function findRedisServer(): Promise<string> {
  const candidates = ['/usr/bin/redis-server', '/usr/local/bin/redis-server'];
  for (const candidate of candidates) {
    if (await canRun(candidate)) return candidate;
  }
  throw new Error(
    'redis-server was not found: install it (`apt-get install -y redis-server`) ' +
      'or point PLUMBLINE_TEST_REDIS_URL at an existing Redis',
  );
}

async function canRun(path: string): Promise<boolean> {
  return promisify(execFile)(path, ['--version']).then(
    () => true,
    () => false,
  );
}

export interface RedisServerOptions {
  /** Keeps the log files of several servers (the stack's, a test's own) apart. */
  readonly name?: string;
  /** Append-only file with fsync on every write, as production Redis for BullMQ should run. */
  readonly durable?: boolean;
}

/** A Redis on loopback with `noeviction`, as BullMQ requires; without persistence unless `durable`. */
export async function startRedisServer(
  dir: string,
  port: number,
  options: RedisServerOptions = {},
): Promise<RedisRecord> {
  const name = options.name ?? 'redis';
  const command = await findRedisServer();
  const url = `redis://127.0.0.1:${port}`;
  const redis = await startDaemon({
    what: `redis-server on port ${port}`,
    timeoutMs: 15_000,
    ready: () => pingRedis(url),
    logFile: join(dir, `${name}.log`),
    command,
    args: [
      '--port',
      String(port),
      '--bind',
      '127.0.0.1',
      '--save',
      '',
      '--appendonly',
      options.durable ? 'yes' : 'no',
      '--appendfsync',
      'always',
      '--appendfilename',
      `${name}.aof`,
      '--appenddirname',
      `${name}-aof`,
      '--maxmemory-policy',
      'noeviction',
      '--dir',
      dir,
    ],
  });
  return { ...redis, url, port };
}

export async function pingRedis(url: string): Promise<boolean> {
  const client = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
  client.on('error', () => {});
  try {
    await client.connect();
    return (await client.ping()) === 'PONG';
  } catch {
    return false;
  } finally {
    client.disconnect();
  }
}
