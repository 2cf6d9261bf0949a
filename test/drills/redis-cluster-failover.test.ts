import { describeFailoverDrill } from '../helpers/failover-drill-suite.ts';
import { startClusterTarget } from '../helpers/failover-targets.ts';

/** A private Redis Cluster: the primary owning Plumbline's slot is SIGKILLed. */
describeFailoverDrill(
  'drill: the Redis Cluster primary of the queue’s slot killed under a stream of webhooks',
  'cluster',
  startClusterTarget,
);
