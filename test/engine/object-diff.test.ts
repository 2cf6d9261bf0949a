import { describe, expect, it } from '@jest/globals';
import { diffObjects, type FieldChange, formatDiff, MASK } from '../../src/engine/object-diff.ts';

const GITHUB_TOKEN = `ghp_${'A1b2C3d4E5'.repeat(4)}`;
const JWT = 'eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJwbHVtYmxpbmUifQ.c2lnbmF0dXJlLXZhbHVl';
const DB_PASSWORD = 'hunter2-correct-horse';

const deployment = (
  overrides: { replicas?: number; env?: unknown[]; args?: string[]; containers?: unknown[] } = {},
) => ({
  apiVersion: 'apps/v1',
  kind: 'Deployment',
  metadata: { name: 'podinfo', namespace: 'apps', labels: { app: 'podinfo' } },
  spec: {
    replicas: overrides.replicas ?? 2,
    template: {
      spec: {
        containers: overrides.containers ?? [
          {
            name: 'podinfo',
            image: 'ghcr.io/stefanprodan/podinfo:6.5.0',
            args: overrides.args ?? ['--port=9898', '--level=info'],
            env: overrides.env ?? [{ name: 'LOG_LEVEL', value: 'info' }],
            ports: [{ containerPort: 9898, name: 'http' }],
          },
        ],
      },
    },
  },
});

const byPath = (changes: readonly FieldChange[]) => Object.fromEntries(changes.map((c) => [c.path, c]));

describe('diffObjects', () => {
  it('finds no changes between identical objects', () => {
    expect(diffObjects(deployment(), deployment())).toEqual({ changes: [], truncated: 0 });
    expect(diffObjects(structuredClone(deployment()), deployment()).changes).toHaveLength(0);
  });

  it('reports a changed scalar at its full path with both display values', () => {
    const { changes } = diffObjects(deployment({ replicas: 2 }), deployment({ replicas: 3 }));
    expect(changes).toEqual([{ path: 'spec.replicas', change: 'changed', before: '2', after: '3' }]);
  });

  it('reports nested added and removed keys, a whole added subtree as one change, in sorted order', () => {
    const before = {
      kind: 'ConfigMap',
      metadata: { name: 'cfg', labels: { old: 'x', app: 'a' } },
      data: { keep: '1', gone: 'bye' },
    };
    const after = {
      kind: 'ConfigMap',
      metadata: { name: 'cfg', labels: { app: 'a', team: 'platform', 'app.kubernetes.io/part-of': 'shop' } },
      data: { keep: '1' },
      spec: { nested: { deep: [1, 2], flag: true } },
    };
    const { changes } = diffObjects(before, after);
    expect(changes).toEqual([
      { path: 'data.gone', change: 'removed', before: '"bye"' },
      { path: 'metadata.labels["app.kubernetes.io/part-of"]', change: 'added', after: '"shop"' },
      { path: 'metadata.labels.old', change: 'removed', before: '"x"' },
      { path: 'metadata.labels.team', change: 'added', after: '"platform"' },
      { path: 'spec', change: 'added', after: '{"nested":{"deep":[1,2],"flag":true}}' },
    ]);
  });

  it('truncates long display values to about 80 characters', () => {
    const { changes } = diffObjects({ data: { text: 'a' } }, { data: { text: 'word '.repeat(40) } });
    const after = changes[0]?.after ?? '';
    expect(after.length).toBeLessThanOrEqual(80);
    expect(after.endsWith('…')).toBe(true);
    expect(after.startsWith('"word word')).toBe(true);
  });

  it('matches name-keyed lists by name (order is not a change) and index lists by index', () => {
    const sidecar = { name: 'sidecar', image: 'busybox:1.36' };
    const app = deployment().spec.template.spec.containers[0] as Record<string, unknown>;
    const reordered = diffObjects(
      deployment({ containers: [app, sidecar] }),
      deployment({ containers: [sidecar, { ...app, image: 'ghcr.io/stefanprodan/podinfo:6.6.0' }] }),
    );
    expect(reordered.changes).toEqual([
      {
        path: 'spec.template.spec.containers[podinfo].image',
        change: 'changed',
        before: '"ghcr.io/stefanprodan/podinfo:6.5.0"',
        after: '"ghcr.io/stefanprodan/podinfo:6.6.0"',
      },
    ]);

    const args = diffObjects(
      deployment({ args: ['--port=9898', '--debug', '--level=info'] }),
      deployment({ args: ['--port=9898', '--level=info'] }),
    );
    expect(args.changes).toEqual([
      {
        path: 'spec.template.spec.containers[podinfo].args[1]',
        change: 'changed',
        before: '"--debug"',
        after: '"--level=info"',
      },
      { path: 'spec.template.spec.containers[podinfo].args[2]', change: 'removed', before: '"--level=info"' },
    ]);
  });

  it('matches ports by number and other keyed items by key', () => {
    const service = (ports: unknown[], tolerations: unknown[]) => ({ kind: 'Service', spec: { ports, tolerations } });
    const { changes } = diffObjects(
      service([{ port: 80, targetPort: 8080 }, { port: 443 }], [{ key: 'gpu', effect: 'NoSchedule' }]),
      service([{ port: 443 }, { port: 80, targetPort: 9090 }], [{ key: 'gpu', effect: 'NoExecute' }]),
    );
    expect(changes.map((c) => c.path)).toEqual(['spec.ports[80].targetPort', 'spec.tolerations[gpu].effect']);
  });

  it('masks both sides of every Secret data and stringData change, but still reports it', () => {
    const secret = (data: Record<string, string>, stringData?: Record<string, string>) => ({
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name: 'db' },
      type: 'Opaque',
      data,
      ...(stringData && { stringData }),
    });
    const result = diffObjects(
      secret({ username: 'YWRtaW4=', host: 'ZGIuaW50ZXJuYWw=' }),
      secret({ username: 'cm9vdA==', extra: 'c2hvcnQ=' }, { note: 'plain-text-value' }),
    );
    expect(result.changes).toEqual([
      { path: 'data.extra', change: 'added', after: MASK },
      { path: 'data.host', change: 'removed', before: MASK },
      { path: 'data.username', change: 'changed', before: MASK, after: MASK },
      { path: 'stringData', change: 'added', after: MASK },
    ]);
    const json = JSON.stringify(result);
    for (const value of ['YWRtaW4=', 'cm9vdA==', 'ZGIuaW50ZXJuYWw=', 'c2hvcnQ=', 'plain-text-value']) {
      expect(json).not.toContain(value);
    }
  });

  it('masks Secret data when the kind is only given as an option', () => {
    const result = diffObjects({ data: { a: 'b2xk' } }, { data: { a: 'bmV3' } }, { kind: 'Secret' });
    expect(result.changes).toEqual([{ path: 'data.a', change: 'changed', before: MASK, after: MASK }]);
    expect(diffObjects({ data: { a: 'b2xk' } }, { data: { a: 'bmV3' } }).changes[0]?.after).toBe('"bmV3"');
  });

  it('masks an env var named like a password while showing its innocent sibling', () => {
    const result = diffObjects(
      deployment({
        env: [
          { name: 'LOG_LEVEL', value: 'info' },
          { name: 'DB_PASSWORD', value: 'old-password-value' },
        ],
      }),
      deployment({
        env: [
          { name: 'LOG_LEVEL', value: 'debug' },
          { name: 'DB_PASSWORD', value: DB_PASSWORD },
          { name: 'API_TOKEN', value: 'new-token-value' },
        ],
      }),
    );
    expect(byPath(result.changes)).toEqual({
      'spec.template.spec.containers[podinfo].env[API_TOKEN]': {
        path: 'spec.template.spec.containers[podinfo].env[API_TOKEN]',
        change: 'added',
        after: MASK,
      },
      'spec.template.spec.containers[podinfo].env[DB_PASSWORD].value': {
        path: 'spec.template.spec.containers[podinfo].env[DB_PASSWORD].value',
        change: 'changed',
        before: MASK,
        after: MASK,
      },
      'spec.template.spec.containers[podinfo].env[LOG_LEVEL].value': {
        path: 'spec.template.spec.containers[podinfo].env[LOG_LEVEL].value',
        change: 'changed',
        before: '"info"',
        after: '"debug"',
      },
    });
    const json = JSON.stringify(result);
    for (const value of [DB_PASSWORD, 'old-password-value', 'new-token-value']) expect(json).not.toContain(value);
  });

  it('masks a name-identified item in an index-matched list', () => {
    const result = diffObjects(
      { spec: { items: [{ name: 'SESSION_SECRET', value: 's1' }, 'plain'] } },
      { spec: { items: [{ name: 'SESSION_SECRET', value: 'classified-value' }, 'plain'] } },
    );
    expect(result.changes).toEqual([{ path: 'spec.items[0].value', change: 'changed', before: MASK, after: MASK }]);
  });

  it('masks a ConfigMap key that looks like a secret, but not its neighbours', () => {
    const configMap = (data: Record<string, string>) => ({ apiVersion: 'v1', kind: 'ConfigMap', data });
    const result = diffObjects(
      configMap({ api_key: 'k-123', region: 'eu-west-1' }),
      configMap({ api_key: 'k-456-new', region: 'eu-central-1' }),
    );
    expect(result.changes).toEqual([
      { path: 'data.api_key', change: 'changed', before: MASK, after: MASK },
      { path: 'data.region', change: 'changed', before: '"eu-west-1"', after: '"eu-central-1"' },
    ]);
    expect(JSON.stringify(result)).not.toContain('k-456-new');
  });

  it('masks credential-looking values under innocent keys, and subtrees that contain them', () => {
    const result = diffObjects(
      { data: { note: 'hello', banner: JWT, cfg: 'x' } },
      {
        data: { note: GITHUB_TOKEN, banner: 'plain', cfg: 'url: postgres://app:s3cr3t-pw@db:5432/app' },
        spec: { nested: { value: `Bearer ${'Zx9Qk2LmP4rT8vWy'.repeat(2)}` }, other: 'fine' },
        extra: { env: [{ name: 'STRIPE_API_KEY', value: 'plain-looking' }] },
      },
    );
    expect(result.changes).toEqual([
      { path: 'data.banner', change: 'changed', before: MASK, after: MASK },
      { path: 'data.cfg', change: 'changed', before: MASK, after: MASK },
      { path: 'data.note', change: 'changed', before: MASK, after: MASK },
      { path: 'extra', change: 'added', after: MASK },
      { path: 'spec', change: 'added', after: MASK },
    ]);
    const json = JSON.stringify(result);
    for (const value of [GITHUB_TOKEN, JWT, 's3cr3t-pw', 'Zx9Qk2LmP4rT8vWy', 'plain-looking', 'hello']) {
      expect(json).not.toContain(value);
    }
  });

  it('ignores server bookkeeping, status and the last-applied annotation (which may hold secrets)', () => {
    const live = {
      ...deployment(),
      metadata: {
        ...deployment().metadata,
        uid: 'abc',
        resourceVersion: '41',
        generation: 3,
        creationTimestamp: '2024-01-01T00:00:00Z',
        managedFields: [{ manager: 'kubectl', operation: 'Apply' }],
        annotations: { 'kubectl.kubernetes.io/last-applied-configuration': `{"data":{"pw":"${DB_PASSWORD}"}}` },
      },
      status: { replicas: 2, readyReplicas: 2 },
    };
    const dryRun = {
      ...deployment(),
      metadata: {
        ...deployment().metadata,
        uid: 'abc',
        resourceVersion: '42',
        generation: 4,
        managedFields: [{ manager: 'plumbline', operation: 'Apply' }],
      },
      status: { replicas: 1 },
    };
    const result = diffObjects(live, dryRun);
    expect(result).toEqual({ changes: [], truncated: 0 });

    const withOther = diffObjects(live, {
      ...dryRun,
      metadata: { ...dryRun.metadata, annotations: { owner: 'team-a' } },
    });
    expect(withOther.changes).toEqual([{ path: 'metadata.annotations', change: 'added', after: '{"owner":"team-a"}' }]);
    expect(JSON.stringify(withOther)).not.toContain(DB_PASSWORD);
  });

  it('drops only the last-applied annotation from the display, keeping its sibling annotations', () => {
    const withAnnotations = (annotations: Record<string, string>) => ({
      ...deployment(),
      metadata: { ...deployment().metadata, annotations },
    });
    const lastApplied = { 'kubectl.kubernetes.io/last-applied-configuration': `{"pw":"${DB_PASSWORD}"}` };
    const result = diffObjects(
      withAnnotations({ ...lastApplied, owner: 'team-a' }),
      withAnnotations({ ...lastApplied, owner: 'team-b', 'last-applied': 'kept' }),
    );
    expect(result.changes).toEqual([
      { path: 'metadata.annotations.last-applied', change: 'added', after: '"kept"' },
      { path: 'metadata.annotations.owner', change: 'changed', before: '"team-a"', after: '"team-b"' },
    ]);
    expect(JSON.stringify(result)).not.toContain(DB_PASSWORD);
  });

  it('masks a value by what it holds, with the detectors of secret-masking', () => {
    const token = 'q8Zr2LmP4tW9xK3nB7vC1dF6gH0jS5aE';
    const { changes } = diffObjects({ spec: { a: 'one', b: 'one' } }, { spec: { a: token, b: 'plain-value' } });
    expect(changes.map((c) => c.after)).toEqual([MASK, '"plain-value"']);
  });

  it('returns at most maxChanges in sorted path order and counts the rest', () => {
    const data = (value: string) =>
      Object.fromEntries(Array.from({ length: 30 }, (_, i) => [`key-${String(i).padStart(2, '0')}`, value]));
    const before = { kind: 'ConfigMap', data: data('a') };
    const after = { kind: 'ConfigMap', data: data('b') };

    const defaults = diffObjects(before, after);
    expect(defaults.changes).toHaveLength(20);
    expect(defaults.truncated).toBe(10);
    expect(defaults.changes[0]?.path).toBe('data.key-00');
    expect(defaults.changes[19]?.path).toBe('data.key-19');

    const five = diffObjects(before, after, { maxChanges: 5 });
    expect(five.changes.map((c) => c.path)).toEqual([
      'data.key-00',
      'data.key-01',
      'data.key-02',
      'data.key-03',
      'data.key-04',
    ]);
    expect(five.truncated).toBe(25);

    expect(diffObjects(before, after, { maxChanges: 50 }).truncated).toBe(0);
  });
});

describe('formatDiff', () => {
  it('renders one line per change with ~, + and - markers', () => {
    const lines = formatDiff([
      { path: 'spec.replicas', change: 'changed', before: '2', after: '3' },
      { path: 'metadata.labels.team', change: 'added', after: '"platform"' },
      { path: 'spec.template.spec.containers[podinfo].args[1]', change: 'removed', before: '"--debug"' },
      { path: 'data.password', change: 'changed', before: MASK, after: MASK },
    ]);
    expect(lines).toEqual([
      '~ spec.replicas: 2 → 3',
      '+ metadata.labels.team: "platform"',
      '- spec.template.spec.containers[podinfo].args[1]: "--debug"',
      `~ data.password: ${MASK} → ${MASK}`,
    ]);
  });

  it('formats the output of diffObjects end to end', () => {
    const { changes } = diffObjects(deployment({ replicas: 2 }), deployment({ replicas: 3, args: ['--port=9898'] }));
    expect(formatDiff(changes)).toEqual([
      '~ spec.replicas: 2 → 3',
      '- spec.template.spec.containers[podinfo].args[1]: "--level=info"',
    ]);
  });
});

describe('diffObjects for GitHub (`desired` given): no live value, ever', () => {
  it('never shows the live side, and shows the new side only where the commit holds exactly that value', () => {
    const live = { kind: 'ConfigMap', metadata: { name: 'mail' }, data: { SMTP_PW: 'Winter2024!', host: 'old' } };
    const dryRun = {
      kind: 'ConfigMap',
      metadata: { name: 'mail' },
      data: { SMTP_PW: 'guess', host: 'new', extra: 'x' },
    };
    const desired = { kind: 'ConfigMap', metadata: { name: 'mail' }, data: { SMTP_PW: 'guess', host: 'new' } };
    const { changes } = diffObjects(live, dryRun, { desired });
    expect(changes).toEqual([
      { path: 'data.SMTP_PW', change: 'changed', after: '"guess"' },
      // Set by the server or another manager, not by the commit: named, not shown.
      { path: 'data.extra', change: 'added' },
      { path: 'data.host', change: 'changed', after: '"new"' },
    ]);
    expect(JSON.stringify(changes)).not.toContain('Winter2024!');
    expect(formatDiff(changes)).toEqual(['~ data.SMTP_PW → "guess"', '+ data.extra', '~ data.host → "new"']);
  });

  it('a value the server normalised is named without a value; removed fields carry no value', () => {
    const live = deployment({ replicas: 2 });
    const dryRun = { ...deployment({ replicas: 3 }), metadata: { name: 'podinfo', namespace: 'apps' } };
    const desired = { ...deployment({ replicas: 3 }), metadata: { name: 'podinfo', namespace: 'apps' } };
    (desired.spec as { replicas: unknown }).replicas = '3';
    const { changes } = diffObjects(live, dryRun, { desired });
    expect(byPath(changes)['spec.replicas']).toEqual({ path: 'spec.replicas', change: 'changed' });
    expect(byPath(changes)['metadata.labels']).toEqual({ path: 'metadata.labels', change: 'removed' });
  });

  it('follows list items by identity into the commit', () => {
    const env = (value: string) => [{ name: 'LOG_LEVEL', value }];
    const { changes } = diffObjects(deployment({ env: env('info') }), deployment({ env: env('debug') }), {
      desired: deployment({ env: env('debug') }),
    });
    expect(changes).toEqual([
      { path: 'spec.template.spec.containers[podinfo].env[LOG_LEVEL].value', change: 'changed', after: '"debug"' },
    ]);
  });

  it('still masks secret-looking values from the commit', () => {
    const { changes } = diffObjects(
      deployment({ env: [{ name: 'DB_PASSWORD', value: 'a' }] }),
      deployment({ env: [{ name: 'DB_PASSWORD', value: DB_PASSWORD }] }),
      { desired: deployment({ env: [{ name: 'DB_PASSWORD', value: DB_PASSWORD }] }) },
    );
    expect(changes).toEqual([
      { path: 'spec.template.spec.containers[podinfo].env[DB_PASSWORD].value', change: 'changed' },
    ]);
  });
});
