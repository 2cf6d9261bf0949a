import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import {
  drillFindings,
  drillSummary,
  expectFailoverPromisesKept,
  probeReplication,
  runFailoverDrill,
  writeDrillReport,
} from './failover-drill.ts';
import type { FailoverTarget } from './failover-targets.ts';

/**
 * The failover drill's tests for one topology, started privately by `start` (never the shared stack's).
 * Each topology keeps a test file of its own, so that jest runs the two drills side by side.
 */
export function describeFailoverDrill(
  title: string,
  name: string,
  start: (dir: string) => Promise<FailoverTarget>,
): void {
  describe(title, () => {
    let dir: string;
    let target: FailoverTarget;

    beforeAll(async () => {
      dir = await mkdtemp(join(tmpdir(), `plumbline-${name}-failover-`));
      target = await start(dir);
    }, 120_000);
    afterAll(async () => {
      await target?.stop();
      await rm(dir, { recursive: true, force: true });
    });

    it('an acknowledged delivery is lost when the primary dies before its replica has it; its redelivery is accepted again', async () => {
      const probe = await probeReplication(target);
      expect(probe.newPrimaryPort).toEqual(expect.any(Number));
      // Replicated before the failover: kept, and its redelivery is a duplicate.
      expect(probe.inSync).toEqual(expect.objectContaining({ status: 202, survived: true, redelivered: 200 }));
      // Acknowledged by the primary alone (replication is asynchronous): gone with it.
      expect(probe.whilePaused).toEqual({ status: 202, onReplicaAtAnswer: false, survived: false, redelivered: 202 });
      expect(probe.pausedJobAfterRedelivery).toBe(true);
    }, 120_000);

    it('with PLUMBLINE_REDIS_WAIT_REPLICAS=1 a 202 means a replica has the delivery; one the replicas miss is answered 503', async () => {
      const probe = await probeReplication(target, {
        PLUMBLINE_REDIS_WAIT_REPLICAS: '1',
        PLUMBLINE_REDIS_WAIT_TIMEOUT_MS: '500',
      });
      expect(probe.newPrimaryPort).toEqual(expect.any(Number));
      // On a replica by the time GitHub has its answer, so it outlives the primary.
      expect(probe.inSync).toEqual({ status: 202, onReplicaAtAnswer: true, survived: true, redelivered: 200 });
      // Never acknowledged: GitHub shows it failed; its redelivery after the failover is queued.
      expect(probe.whilePaused).toEqual({ status: 503, onReplicaAtAnswer: false, survived: false, redelivered: 202 });
      expect(probe.pausedJobAfterRedelivery).toBe(true);
    }, 120_000);

    it('every 2xx’d delivery is applied or superseded by a newer commit of its branch, no job runs twice, one lock holder per token', async () => {
      const report = await runFailoverDrill(target, { deliveries: 150, branches: 5, killAfter: 40 });
      const findings = drillFindings(report);
      console.log(drillSummary(report, findings));
      await writeDrillReport(report, findings);
      expectFailoverPromisesKept(report, findings);
    }, 300_000);
  });
}
