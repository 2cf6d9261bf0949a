import { describe, expect, it } from '@jest/globals';
import { KubeError } from '../../src/engine/cluster-client.ts';
import { LockLostError } from '../../src/engine/cluster-lock.ts';
import { MASK } from '../../src/engine/object-diff.ts';
import { describeInfrastructureError } from '../../src/reporting/describe-infrastructure-error.ts';
import { maskLiveText, publishableChangeSet, stringsOf, withoutAddresses } from '../../src/reporting/mask-live-text.ts';
import { GitError } from '../../src/source/git-mirror.ts';

/** The shape of the apiserver's answer to a Pod update that changes more than the image (abridged). */
const POD_UPDATE_ERROR =
  'Pod "api" is invalid: spec: Forbidden: pod updates may not change fields other than `spec.containers[*].image`\n' +
  '  core.PodSpec{\n    Containers: []core.Container{\n      {\n        Name: "api",\n        Env: []core.EnvVar{\n' +
  '          {\n            Name:      "API_KEY",\n-           Value:     "sk_live_4eC39HqLyjWDarjtT1zdp7dc",\n+           Value:     "from-the-fork",\n';

describe('maskLiveText: apiserver text on its way to GitHub (invariant 9)', () => {
  const manifest = {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: 'api', namespace: 'apps' },
    spec: { containers: [{ name: 'api', image: 'api:1', env: [{ name: 'API_KEY', value: 'from-the-fork' }] }] },
  };

  it('masks every quoted value the commit does not hold, and keeps the ones it does', () => {
    const masked = maskLiveText(POD_UPDATE_ERROR, stringsOf(manifest));
    expect(masked).not.toContain('sk_live_');
    expect(masked).toContain(`Value:     "${MASK}"`);
    expect(masked).toContain('"from-the-fork"');
    expect(masked).toContain('Pod "api" is invalid');
    expect(masked).toContain('Name:      "API_KEY"');
  });

  it('masks everything quoted when it knows nothing of the commit', () => {
    expect(maskLiveText('configmaps "settings" is forbidden: "Winter2024!"')).toBe(
      `configmaps "${MASK}" is forbidden: "${MASK}"`,
    );
  });

  it('handles escaped quotes inside a quoted value', () => {
    expect(maskLiveText('value "a \\"quoted\\" secret" rejected')).toBe(`value "${MASK}" rejected`);
  });

  it('removes addresses: URLs, IPs with ports, host:port', () => {
    const text =
      'request to https://10.0.3.4:6443/api/v1 failed, reason: connect ECONNREFUSED 10.0.3.4:6443; api.internal.example:443 down';
    expect(withoutAddresses(text)).toBe(
      'request to (address) failed, reason: connect ECONNREFUSED (address); (address) down',
    );
    expect(maskLiveText('dial tcp [fd00::1]:6443: i/o timeout')).toBe('dial tcp (address): i/o timeout');
  });

  it('leaves plain prose and field paths alone', () => {
    const text = 'spec.replicas: Invalid value: -1: must be greater than or equal to 0';
    expect(maskLiveText(text)).toBe(text);
  });
});

describe('describeInfrastructureError: a category for public output, never the transport text', () => {
  it.each([
    [
      new KubeError('unavailable', 'x: cluster unreachable: connect ECONNREFUSED 127.0.0.1:1', undefined),
      'cluster unreachable',
    ],
    [new KubeError('unavailable', 'x: Unauthorized', 401), "the cluster refused Plumbline's credentials"],
    [Object.assign(new Error('connect ECONNREFUSED 10.1.1.1:443'), { code: 'ECONNREFUSED' }), 'cluster unreachable'],
    // Node's fetch: a code-less TypeError whose cause carries the code.
    [
      new TypeError('fetch failed', {
        cause: Object.assign(new Error('getaddrinfo ENOTFOUND k8s.internal'), {
          code: 'ENOTFOUND',
          syscall: 'getaddrinfo',
        }),
      }),
      'cluster unreachable',
    ],
    [
      new TypeError('fetch failed', {
        cause: Object.assign(new Error('Connect Timeout Error'), { code: 'UND_ERR_CONNECT_TIMEOUT' }),
      }),
      'cluster unreachable',
    ],
    // Read from the code, not the text: a message that merely names a network error is not one.
    [new Error('ConfigMap "ECONNREFUSED" rejected: fetch failed'), "internal error (details in the worker's log)"],
    [new GitError('git fetch of abc failed: https://github.example/x.git: 502'), 'could not fetch the commit'],
    [new LockLostError('lock lost'), 'another worker took the cluster over'],
    [new Error('something at https://10.0.0.1/secret-path'), "internal error (details in the worker's log)"],
  ])('%s → %s', (error, expected) => {
    const described = describeInfrastructureError(error);
    expect(described).toBe(expected);
    expect(described).not.toMatch(/\d+\.\d+\.\d+\.\d+|https?:|ECONN/);
  });
});

describe('publishableChangeSet: a change set as GitHub may see it', () => {
  it('masks messages against the object’s own manifest and names no live field manager', () => {
    const manifest = {
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: 'mail', namespace: 'apps' },
      data: { a: 'b' },
    };
    const published = publishableChangeSet(
      {
        changes: [
          {
            object: 'ConfigMap/apps/mail',
            action: 'configured',
            tookOwnershipFrom: ['mallory-was-here', 'kubectl-edit'],
          },
          { object: 'ConfigMap/apps/mail', action: 'failed', message: 'ConfigMap "mail" rejected: "live-secret"' },
        ],
      },
      [{ manifest, source: { file: 'x.yaml', line: 1 } }],
    );
    expect(published.changes[0]?.tookOwnershipFrom).toEqual(['2 other field managers']);
    expect(published.changes[1]?.message).toBe(`ConfigMap "mail" rejected: "${MASK}"`);
    expect(JSON.stringify(published)).not.toMatch(/mallory|kubectl-edit|live-secret/);
  });
});
