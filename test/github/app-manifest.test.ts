import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from '@jest/globals';
import { routeDelivery } from '../../src/github/route-delivery.ts';
import { packageRoot } from '../../src/support/package-root.ts';

const manifest = JSON.parse(readFileSync(join(packageRoot(), 'deploy', 'github-app-manifest.json'), 'utf8')) as {
  default_permissions: Record<string, string>;
  default_events: string[];
  hook_attributes: { url: string };
  public: boolean;
};

describe('the GitHub App manifest', () => {
  it('asks for the least: read code and pull requests, write statuses and check runs, nothing else', () => {
    expect(manifest.default_permissions).toEqual({
      contents: 'read',
      metadata: 'read',
      statuses: 'write',
      checks: 'write',
      pull_requests: 'read',
    });
    expect(manifest.public).toBe(false);
    expect(manifest.hook_attributes.url).toMatch(/\/api\/github\/webhooks$/);
  });

  it('subscribes only to events Plumbline acts on', () => {
    for (const event of manifest.default_events) {
      const route = (() => {
        try {
          return routeDelivery(event, {}, { deliveryId: 'd', receivedAt: new Date().toISOString() });
        } catch {
          // A payload error means the event is routed (and its payload checked): it is handled.
          return { kind: 'handled' };
        }
      })();
      expect({ event, kind: route.kind }).not.toEqual({ event, kind: 'ignore' });
    }
    expect(manifest.default_events.sort()).toEqual(['check_run', 'check_suite', 'pull_request', 'push']);
  });
});
