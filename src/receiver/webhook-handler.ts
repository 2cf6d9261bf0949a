import type { Request, Response } from 'express';
import { PayloadError, type Route, routeDelivery } from '../github/route-delivery.ts';
import type { Logger } from '../logging/create-logger.ts';
import type { JobProducer } from '../queue/job-producer.ts';
import type { DeliveryLedger } from './delivery-ledger.ts';
import { signedBody } from './read-signed-body.ts';
import { eventLabel, type ReceiverMetrics } from './receiver-metrics.ts';

export interface WebhookDependencies {
  readonly producer: JobProducer;
  readonly ledger: DeliveryLedger;
  readonly metrics: ReceiverMetrics;
  readonly logger: Logger;
  /** GitHub fails a delivery after 10 s; answering 503 before that lets it show as failed and be redelivered. */
  readonly enqueueTimeoutMs: number;
  /**
   * Answer 2xx only once this many replicas have the delivery (Redis' `WAIT`, up to `timeoutMs`); 503 when
   * fewer do. Replication is asynchronous: without it a 202 means the primary alone has the work, and a
   * failover before its replica caught up loses it (docs/reliability.md, "Redis failover").
   */
  readonly replication?: { readonly replicas: number; readonly timeoutMs: number } | undefined;
}

/**
 * Handles a delivery whose headers, content type, size and signature the middleware before it
 * (`readSignedBody`) already checked. Answers 2xx only once the work is in Redis.
 */
export function createWebhookHandler(deps: WebhookDependencies) {
  return async (req: Request, res: Response): Promise<void> => {
    const event = req.get('x-github-event') ?? '';
    const deliveryId = req.get('x-github-delivery') ?? '';
    const label = eventLabel(event);
    const body = signedBody(req);
    if (!body) throw new Error('webhook handler mounted without readSignedBody');
    // Which secret matched, never the secret: tells an operator when a rotation's old secret is unused.
    const log = deps.logger.child({ deliveryId, event: label, signedWith: body.signedWith });
    deps.metrics.signatures.inc({ secret: body.signedWith });
    const reply = (status: number, outcome: string, answer: Record<string, unknown>) => {
      deps.metrics.deliveries.inc({ event: label, outcome });
      res.status(status).json(answer);
    };

    let route: Route;
    try {
      route = routeDelivery(event, JSON.parse(body.text) as unknown, {
        deliveryId,
        receivedAt: new Date().toISOString(),
      });
    } catch (error) {
      const message = error instanceof PayloadError ? error.message : 'body is not valid JSON';
      log.warn({ reason: message }, 'delivery rejected: malformed payload');
      return reply(400, 'rejected', { error: message });
    }

    if (route.kind === 'ignore') {
      deps.metrics.ignored.inc({ event: label, reason: route.reason });
      log.info({ reason: route.reason }, 'delivery acknowledged without work');
      return reply(200, 'ignored', { ignored: route.reason });
    }

    const stopTimer = deps.metrics.enqueueSeconds.startTimer({ event: label });
    try {
      // A re-run names an older commit on purpose; it must not pass for the newest push of its branch.
      const records =
        route.kind === 'enqueue'
          ? route.jobs.filter((job) => job.trigger !== 'rerun').map((job) => deps.producer.latestRecord(job))
          : [];
      const claim = await withTimeout(deps.ledger.claim(deliveryId, records), deps.enqueueTimeoutMs);
      if (claim === 'duplicate') {
        // Its first answer may never have been sent: this one, too, only once replicas have it (and its
        // entry is kept whatever happens: it is done).
        if (deps.replication && !(await replicated(deliveryId, deps, deps.replication).catch(() => false)))
          return unreplicated(log, reply, deps.replication);
        log.info('redelivery acknowledged; its job was queued before');
        return reply(200, 'duplicate', { duplicate: true });
      }
      if (claim === 'in-flight') {
        log.warn('the same delivery is being queued by another request');
        return reply(409, 'conflict', { error: 'this delivery is being processed; redeliver it if it fails' });
      }
      try {
        await withTimeout(perform(route, deps), deps.enqueueTimeoutMs);
      } catch (error) {
        await deps.ledger.release(deliveryId).catch(() => undefined);
        throw error;
      }
      if (deps.replication) {
        if (!(await replicated(deliveryId, deps, deps.replication))) {
          // Queued on the primary, which will likely run it; released, so that a redelivery is queued (a no-op
          // for a job that exists) and waited for again rather than answered "duplicate".
          await deps.ledger.release(deliveryId).catch(() => undefined);
          return unreplicated(log, reply, deps.replication);
        }
      } else {
        // The work is in Redis: answer now. If marking the delivery done fails, its claim lapses and a
        // redelivery queues the same commit again, which the worker treats as a no-op.
        deps.ledger.confirm(deliveryId).catch((error: unknown) => {
          log.warn({ error: errorSummary(error) }, 'delivery queued but not marked done');
        });
      }
      stopTimer();
      log.info(describe(route), 'delivery queued');
      return reply(202, 'queued', { queued: route.kind === 'enqueue' ? route.jobs.length : 0 });
    } catch (error) {
      // The claim may have reached Redis even if its answer did not: free it so a redelivery is not refused.
      await deps.ledger.release(deliveryId).catch(() => undefined);
      log.error({ error: errorSummary(error) }, 'delivery not queued: Redis unavailable');
      return reply(503, 'unavailable', { error: 'queue unavailable; GitHub will show this delivery as failed' });
    }
  };
}

/** Marks the delivery done and waits for `replicas` to have it; throws (→ 503) when Redis does not answer. */
async function replicated(
  deliveryId: string,
  deps: WebhookDependencies,
  replication: NonNullable<WebhookDependencies['replication']>,
): Promise<boolean> {
  const confirmed = deps.ledger.confirmReplicated(deliveryId, replication.replicas, replication.timeoutMs);
  const acknowledged = await withTimeout(confirmed, replication.timeoutMs + deps.enqueueTimeoutMs);
  return acknowledged >= replication.replicas;
}

function unreplicated(
  log: Logger,
  reply: (status: number, outcome: string, answer: Record<string, unknown>) => void,
  replication: NonNullable<WebhookDependencies['replication']>,
): void {
  log.warn(replication, 'delivery not acknowledged: too few replicas have it in time');
  reply(503, 'unreplicated', {
    error: 'queue not replicated in time; GitHub will show this delivery as failed',
  });
}

async function perform(route: Exclude<Route, { kind: 'ignore' }>, deps: WebhookDependencies): Promise<void> {
  switch (route.kind) {
    case 'enqueue':
      await Promise.all(route.jobs.map((job) => deps.producer.add(job)));
      return;
    case 'cancel-previews':
      await deps.producer.cancelPreviews(route.repository.id, route.number);
      return;
    case 'installation':
      // Nothing is kept: the resync looks a registered repository up by name (repository-directory.ts), and
      // a job's repository is resolved by id from GitHub (repository-resolver.ts). The change is only logged.
      return;
  }
}

function describe(route: Exclude<Route, { kind: 'ignore' }>): Record<string, unknown> {
  switch (route.kind) {
    case 'enqueue':
      return { jobs: route.jobs.map((job) => ({ type: job.type, repo: job.repository.fullName })) };
    case 'cancel-previews':
      return { cancelled: { repo: route.repository.fullName, pullRequest: route.number } };
    case 'installation':
      return { installation: route.change.installationId, operation: route.change.operation };
  }
}

/** Message and code only: a Redis error can quote the command, and commands carry job data. */
function errorSummary(error: unknown): { message: string; code?: string } {
  if (!(error instanceof Error)) return { message: String(error) };
  const code = (error as NodeJS.ErrnoException).code;
  return code ? { message: error.message.slice(0, 200), code } : { message: error.message.slice(0, 200) };
}

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
