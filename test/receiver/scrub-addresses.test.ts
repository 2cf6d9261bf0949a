import { describe, expect, it } from '@jest/globals';
import { HIDDEN_ADDRESS, scrubAddresses } from '../../src/receiver/scrub-addresses.ts';

describe('scrubAddresses (the second wall of the public status page)', () => {
  it.each([
    ['request to https://10.0.0.5:6443/apis/apps/v1 failed', `request to ${HIDDEN_ADDRESS} failed`],
    ['connect ECONNREFUSED 10.96.0.1:443', `connect ECONNREFUSED ${HIDDEN_ADDRESS}`],
    ['no route to 192.168.1.20', `no route to ${HIDDEN_ADDRESS}`],
    ['dial tcp [fd00::1]:6443: i/o timeout', `dial tcp ${HIDDEN_ADDRESS}: i/o timeout`],
    ['dial tcp fd00::1 refused', `dial tcp ${HIDDEN_ADDRESS} refused`],
    ['peer 2001:db8:85a3:0:0:8a2e:370:7334 reset', `peer ${HIDDEN_ADDRESS} reset`],
    ['lookup kubernetes.default.svc on 10.0.0.10:53', `lookup ${HIDDEN_ADDRESS} on ${HIDDEN_ADDRESS}`],
    ['timeout from api.prod.example.com:6443', `timeout from ${HIDDEN_ADDRESS}`],
    ['redis at localhost:6379 down', `redis at ${HIDDEN_ADDRESS} down`],
    ['vault.corp.internal answered 503', `${HIDDEN_ADDRESS} answered 503`],
    ['see oci://registry.internal:5000/charts', `see ${HIDDEN_ADDRESS}`],
  ])('hides the address in %j', (text, expected) => {
    expect(scrubAddresses(text)).toBe(expected);
  });

  it.each([
    '3 created, 5 configured, 1 pruned in 4.2s',
    'would create 2, configure 1, prune 1',
    'Deployment/web/api: 2 of 3 replicas ready',
    'corrected 2',
    '1 rejected (apps/x.yaml:12): bad',
    'not applied: a newer commit (abc1234) is applied',
    'chart podinfo 6.9.2 rendered',
    'in sync since 12:30:45',
  ])('leaves %j as it is', (text) => {
    expect(scrubAddresses(text)).toBe(text);
  });
});
