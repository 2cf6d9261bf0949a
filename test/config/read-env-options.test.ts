import { describe, expect, it } from '@jest/globals';
import { ConfigError, readEnvOptions } from '../../src/config/read-env-options.ts';

describe('readEnvOptions', () => {
  it('applies the documented defaults', () => {
    const options = readEnvOptions({});
    expect(options).toMatchObject({
      port: 3000,
      redisUrl: 'redis://127.0.0.1:6379',
      githubApiUrl: 'https://api.github.com',
      logLevel: 'info',
      queuePrefix: 'plumbline',
    });
    expect(Object.isFrozen(options)).toBe(true);
  });

  it('names the variable that is wrong and never echoes values', () => {
    const read = () => readEnvOptions({ PORT: 'eighty', REDIS_URL: 'http://hunter2@x', GITHUB_WEBHOOK_SECRET: 's' });
    expect(read).toThrow(ConfigError);
    expect(read).toThrow(/PORT: must be a whole number; REDIS_URL: must start with redis:\/\//);
    // Neither wrong value is echoed, the password in the URL nor the port.
    expect(read).not.toThrow(/hunter2/);
    expect(read).not.toThrow(/eighty/);
  });

  it('holds 4 full-size webhook bodies at once by default, configurable with PLUMBLINE_MAX_INFLIGHT_BODIES', () => {
    expect(readEnvOptions({}).maxInflightBodies).toBe(4);
    expect(readEnvOptions({ PLUMBLINE_MAX_INFLIGHT_BODIES: '3' }).maxInflightBodies).toBe(3);
    expect(() => readEnvOptions({ PLUMBLINE_MAX_INFLIGHT_BODIES: '0' })).toThrow(/PLUMBLINE_MAX_INFLIGHT_BODIES/);
  });

  it('treats an empty variable as unset', () => {
    expect(readEnvOptions({ PORT: '' }).port).toBe(3000);
  });
});
