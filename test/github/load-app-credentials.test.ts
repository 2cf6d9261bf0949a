import { generateKeyPairSync } from 'node:crypto';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from '@jest/globals';
import { ConfigError, readEnvOptions } from '../../src/config/read-env-options.ts';
import { loadAppCredentials } from '../../src/github/load-app-credentials.ts';

const pem = generateKeyPairSync('rsa', { modulusLength: 2048 })
  .privateKey.export({ type: 'pkcs1', format: 'pem' })
  .toString();

describe('loading the App credentials', () => {
  it('accepts a key with flattened newlines and points at GitHub Enterprise Server', async () => {
    const options = readEnvOptions({
      GITHUB_APP_ID: '123',
      GITHUB_PRIVATE_KEY: pem.replace(/\n/g, '\\n'),
      GITHUB_API_URL: 'https://ghe.example.com/api/v3/',
    });
    await expect(loadAppCredentials(options)).resolves.toEqual({
      appId: '123',
      privateKey: pem,
      baseUrl: 'https://ghe.example.com/api/v3',
    });
  });

  it('reads the key from a file', async () => {
    const file = join(await mkdtemp(join(tmpdir(), 'plumbline-key-')), 'app.pem');
    await writeFile(file, pem);
    const credentials = await loadAppCredentials(readEnvOptions({ GITHUB_APP_ID: '1', GITHUB_PRIVATE_KEY_PATH: file }));
    expect(credentials.privateKey).toBe(pem);
  });

  it.each([
    [{ GITHUB_PRIVATE_KEY: pem }, 'GITHUB_APP_ID is required'],
    [{ GITHUB_APP_ID: '1' }, 'GITHUB_PRIVATE_KEY or GITHUB_PRIVATE_KEY_PATH is required'],
    [{ GITHUB_APP_ID: '1', GITHUB_PRIVATE_KEY: 'hunter2' }, 'GITHUB_PRIVATE_KEY: not an RSA private key'],
    [{ GITHUB_APP_ID: '1', GITHUB_PRIVATE_KEY_PATH: '/nonexistent/key.pem' }, 'GITHUB_PRIVATE_KEY_PATH: cannot read'],
  ])('refuses %o with a message naming the variable', async (env, message) => {
    const loading = loadAppCredentials(readEnvOptions(env));
    await expect(loading).rejects.toThrow(ConfigError);
    await expect(loadAppCredentials(readEnvOptions(env))).rejects.toThrow(message);
    await expect(loadAppCredentials(readEnvOptions(env))).rejects.not.toThrow('hunter2');
  });
});
