import { describe, expect, it } from '@jest/globals';
import { ConfigError, readEnvOptions } from '../../src/config/read-env-options.ts';

describe('readEnvOptions', () => {
  it('applies the documented defaults', () => {
    const options = readEnvOptions({});
    expect(options).toMatchObject({
      port: 3000,
      redis: { kind: 'single', url: 'redis://127.0.0.1:6379' },
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

  it('reads the Redis topology: one Redis, Sentinel or Redis Cluster, with the prefix hash-tagged on a cluster', () => {
    expect(
      readEnvOptions({ REDIS_SENTINELS: '127.0.0.1:26379, 127.0.0.1:26380', REDIS_SENTINEL_NAME: 'main' }),
    ).toMatchObject({
      redis: {
        kind: 'sentinel',
        name: 'main',
        sentinels: [
          { host: '127.0.0.1', port: 26379 },
          { host: '127.0.0.1', port: 26380 },
        ],
      },
      queuePrefix: 'plumbline',
    });
    expect(readEnvOptions({ REDIS_CLUSTER_NODES: '[::1]:7000,redis-0.redis:7001' })).toMatchObject({
      redis: {
        kind: 'cluster',
        nodes: [
          { host: '::1', port: 7000 },
          { host: 'redis-0.redis', port: 7001 },
        ],
      },
      queuePrefix: '{plumbline}',
    });
    // A prefix that already holds a tag is kept as the operator wrote it.
    expect(readEnvOptions({ REDIS_CLUSTER_NODES: 'r:7000', PLUMBLINE_QUEUE_PREFIX: 'pl-{prod}' }).queuePrefix).toBe(
      'pl-{prod}',
    );
  });

  it.each([
    [
      { REDIS_URL: 'redis://a:1', REDIS_CLUSTER_NODES: 'b:2' },
      /exactly one of REDIS_URL, REDIS_SENTINELS, REDIS_CLUSTER_NODES \(found REDIS_URL and REDIS_CLUSTER_NODES\)/,
    ],
    [{ REDIS_SENTINELS: 'a:1' }, /REDIS_SENTINELS needs REDIS_SENTINEL_NAME/],
    [{ REDIS_SENTINEL_NAME: 'main' }, /REDIS_SENTINEL_NAME is set without REDIS_SENTINELS/],
    [{ REDIS_CLUSTER_NODES: 'a:1,b' }, /REDIS_CLUSTER_NODES: "b" is not host:port/],
    [{ REDIS_CLUSTER_NODES: 'a:99999' }, /REDIS_CLUSTER_NODES: "a:99999" is not host:port/],
  ])('refuses a wrong mix or form of Redis variables, naming them: %j', (env, message) => {
    expect(() => readEnvOptions(env)).toThrow(message);
  });

  it('treats an empty variable as unset', () => {
    expect(readEnvOptions({ PORT: '' }).port).toBe(3000);
  });
});
