import { createPrivateKey } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { ConfigError, type EnvOptions } from '../config/read-env-options.ts';

export interface AppCredentials {
  readonly appId: string;
  readonly privateKey: string;
  readonly baseUrl: string;
}

/**
 * The App's identity from `GITHUB_APP_ID` and `GITHUB_PRIVATE_KEY` (PEM, `\n` escapes allowed, as
 * secret stores often flatten it) or `GITHUB_PRIVATE_KEY_PATH`. The key is checked here, at start,
 * so a bad key stops the process with the variable named instead of failing every job later.
 */
export async function loadAppCredentials(options: EnvOptions): Promise<AppCredentials> {
  if (!options.githubAppId) throw new ConfigError('GITHUB_APP_ID is required in GitHub mode');
  if (options.githubPrivateKey && options.githubPrivateKeyPath) {
    throw new ConfigError('set only one of GITHUB_PRIVATE_KEY and GITHUB_PRIVATE_KEY_PATH');
  }
  const variable = options.githubPrivateKeyPath ? 'GITHUB_PRIVATE_KEY_PATH' : 'GITHUB_PRIVATE_KEY';
  let pem: string | undefined = options.githubPrivateKey?.replace(/\\n/g, '\n');
  if (options.githubPrivateKeyPath) {
    pem = await readFile(options.githubPrivateKeyPath, 'utf8').catch(() => {
      throw new ConfigError(`GITHUB_PRIVATE_KEY_PATH: cannot read ${options.githubPrivateKeyPath}`);
    });
  }
  if (!pem) throw new ConfigError('GITHUB_PRIVATE_KEY or GITHUB_PRIVATE_KEY_PATH is required in GitHub mode');
  try {
    const key = createPrivateKey(pem);
    if (key.asymmetricKeyType !== 'rsa') throw new Error('not RSA');
  } catch {
    throw new ConfigError(`${variable}: not an RSA private key in PEM format (download it from the App's settings)`);
  }
  return { appId: options.githubAppId, privateKey: pem, baseUrl: options.githubApiUrl };
}
