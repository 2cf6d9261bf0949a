import { describeFailoverDrill } from '../helpers/failover-drill-suite.ts';
import { startSentinelTarget } from '../helpers/failover-targets.ts';

/** A private primary, two replicas and three sentinels: the primary is SIGKILLed. */
describeFailoverDrill(
  'drill: the Sentinel-managed primary killed under a stream of webhooks',
  'sentinel',
  startSentinelTarget,
);
