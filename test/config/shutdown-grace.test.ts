import { describe, expect, it } from '@jest/globals';
import { readEnvOptions } from '../../src/config/read-env-options.ts';

describe('PLUMBLINE_SHUTDOWN_GRACE_MS', () => {
  it('defaults to 20 s, below Kubernetes’ default terminationGracePeriodSeconds (30 s)', () => {
    expect(readEnvOptions({}).shutdownGraceMs).toBe(20_000);
    expect(readEnvOptions({}).shutdownGraceMs).toBeLessThan(30_000);
  });

  it('takes whole milliseconds, and names itself when wrong', () => {
    expect(readEnvOptions({ PLUMBLINE_SHUTDOWN_GRACE_MS: '110000' }).shutdownGraceMs).toBe(110_000);
    expect(readEnvOptions({ PLUMBLINE_SHUTDOWN_GRACE_MS: '0' }).shutdownGraceMs).toBe(0);
    expect(() => readEnvOptions({ PLUMBLINE_SHUTDOWN_GRACE_MS: '20s' })).toThrow(/PLUMBLINE_SHUTDOWN_GRACE_MS/);
    expect(() => readEnvOptions({ PLUMBLINE_SHUTDOWN_GRACE_MS: '3600001' })).toThrow(/PLUMBLINE_SHUTDOWN_GRACE_MS/);
  });
});
