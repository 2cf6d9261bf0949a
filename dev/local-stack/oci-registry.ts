import { randomBytes } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import bcrypt from 'bcryptjs';
import { stringify } from 'yaml';
import { type ProcessRecord, startDaemon } from './processes.ts';
import type { PinnedBinary } from './toolchain.ts';

export interface BasicCredentials {
  readonly username: string;
  readonly password: string;
}

export interface OciRegistryRecord extends ProcessRecord {
  readonly version: string;
  /** `127.0.0.1:<port>`: what `helm push … oci://<host>/…` and `helm registry login <host>` take. Plain HTTP. */
  readonly host: string;
  readonly credentials: BasicCredentials;
}

/** Test credentials: a fixed user and a password drawn per start, so a wrong password is a real test. */
export function newCredentials(username: string): BasicCredentials {
  return { username, password: randomBytes(18).toString('hex') };
}

/**
 * One `user:bcrypt-hash` line, the only hash Distribution's htpasswd auth accepts. Cost 5 keeps every
 * request cheap: the registry checks the password on each one, and these are loopback test credentials.
 */
export function htpasswdLine(credentials: BasicCredentials): string {
  return `${credentials.username}:${bcrypt.hashSync(credentials.password, 5)}\n`;
}

/** Distribution's configuration: loopback only, filesystem storage, htpasswd auth, quiet logs. */
export function registryConfig(options: { port: number; dataDir: string; htpasswd: string }): string {
  return stringify({
    version: 0.1,
    log: { level: 'warn', accesslog: { disabled: true } },
    storage: {
      filesystem: { rootdirectory: options.dataDir },
      delete: { enabled: true },
      maintenance: { uploadpurging: { enabled: false } },
    },
    http: { addr: `127.0.0.1:${options.port}`, secret: randomBytes(16).toString('hex') },
    auth: { htpasswd: { realm: 'plumbline-local', path: options.htpasswd } },
  });
}

/** Starts the registry and waits until `/v2/` asks for credentials (401), which is its ready state. */
export async function startOciRegistry(binary: PinnedBinary, dir: string, port: number): Promise<OciRegistryRecord> {
  await mkdir(join(dir, 'data'), { recursive: true });
  const credentials = newCredentials('plumbline');
  const htpasswd = join(dir, 'htpasswd');
  await writeFile(htpasswd, htpasswdLine(credentials), { mode: 0o600 });
  const configFile = join(dir, 'config.yml');
  await writeFile(configFile, registryConfig({ port, dataDir: join(dir, 'data'), htpasswd }), { mode: 0o600 });
  const host = `127.0.0.1:${port}`;
  const record = await startDaemon({
    what: `OCI registry ${binary.version} on ${host}`,
    timeoutMs: 30_000,
    ready: async () => (await fetch(`http://${host}/v2/`)).status === 401,
    logFile: join(dir, 'registry.log'),
    command: binary.path,
    args: ['serve', configFile],
    // No tracing exporter: nothing listens for it here, and it would only log connection errors.
    env: { ...process.env, OTEL_TRACES_EXPORTER: 'none', OTEL_SDK_DISABLED: 'true' },
  });
  return { ...record, version: binary.version, host, credentials };
}
