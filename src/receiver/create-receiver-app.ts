import express, { type ErrorRequestHandler, type RequestHandler } from 'express';
import type { Logger } from '../logging/create-logger.ts';
import type { ClusterStateStore } from '../status/cluster-state.ts';
import type { BodyBudget } from './body-budget.ts';
import { mountStatusPage, type StatusPageSettings } from './mount-status-page.ts';
import { readSignedBody } from './read-signed-body.ts';
import { eventLabel, type ReceiverMetrics } from './receiver-metrics.ts';
import type { WebhookSecrets } from './signature-check.ts';
import { createWebhookHandler, type WebhookDependencies } from './webhook-handler.ts';

export const WEBHOOK_PATH = '/api/github/webhooks';
/** GitHub caps payloads at 25 MB; anything larger is refused before it is read. */
export const MAX_WEBHOOK_BYTES = 25 * 1024 * 1024;

export interface ReceiverAppDependencies extends WebhookDependencies {
  readonly metrics: ReceiverMetrics;
  readonly logger: Logger;
  /** True when Redis answers; drives /readyz. */
  readonly isRedisReady: () => Promise<boolean>;
  /** What workers published about each cluster: the status page and /api/clusters. */
  readonly clusters: Pick<ClusterStateStore, 'get' | 'list'>;
  /** `X-Hub-Signature-256` is checked against these while the body streams in. */
  readonly secrets: WebhookSecrets;
  /** Bytes of bodies held at once, shared by every delivery in flight. */
  readonly bodyBudget: BodyBudget;
  /** Who may see the status page and /api/clusters, and how much of it. */
  readonly statusPage: StatusPageSettings;
}

const REQUIRED_HEADERS = ['x-github-event', 'x-github-delivery', 'x-hub-signature-256'] as const;

/** Checks what can be checked before reading a byte of the body. */
const checkDeliveryHeaders =
  (metrics: ReceiverMetrics): RequestHandler =>
  (req, res, next) => {
    const reject = (status: number, error: string) => {
      metrics.deliveries.inc({ event: eventLabel(req.get('x-github-event')), outcome: 'rejected' });
      res.status(status).json({ error });
    };
    const missing = REQUIRED_HEADERS.filter((name) => !req.get(name));
    if (missing.length > 0) return reject(400, `missing required header(s): ${missing.join(', ')}`);
    if (!req.is('application/json')) {
      return reject(415, 'content type must be application/json (set it in the webhook settings)');
    }
    next();
  };

/** Anything thrown past the handlers: a short answer, no stack, no echo of the input. */
const lastResort =
  (logger: Logger): ErrorRequestHandler =>
  (error: Error, req, res, _next) => {
    logger.error({ error: error.message, path: req.path }, 'request failed');
    res.status(500).json({ error: 'internal error' });
  };

export function createReceiverApp(deps: ReceiverAppDependencies): express.Express {
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);

  app.post(
    WEBHOOK_PATH,
    checkDeliveryHeaders(deps.metrics),
    readSignedBody({
      limit: MAX_WEBHOOK_BYTES,
      secrets: deps.secrets,
      budget: deps.bodyBudget,
      logger: deps.logger,
      onRefused: (req, outcome) =>
        deps.metrics.deliveries.inc({ event: eventLabel(req.get('x-github-event')), outcome }),
    }),
    createWebhookHandler(deps),
  );

  app.get('/healthz', (_req, res) => {
    res.json({ status: 'ok' });
  });
  app.get('/readyz', async (_req, res) => {
    const ready = await deps.isRedisReady().catch(() => false);
    res.status(ready ? 200 : 503).json({ status: ready ? 'ready' : 'redis unavailable' });
  });
  app.get('/metrics', async (_req, res) => {
    res.type(deps.metrics.registry.contentType).send(await deps.metrics.registry.metrics());
  });

  mountStatusPage(app, deps.clusters, deps.statusPage);

  app.use((_req, res) => {
    res.status(404).json({ error: 'not found' });
  });
  app.use(lastResort(deps.logger));
  return app;
}
