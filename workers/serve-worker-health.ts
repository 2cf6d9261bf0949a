import { createServer, type Server } from 'node:http';
import type { Registry } from 'prom-client';

export interface WorkerHealthHandlers {
  /** Redis answers and every consumer runs. */
  readonly ready: () => Promise<boolean>;
  /** This process's metrics, served as Prometheus text on `/metrics`. */
  readonly metrics?: Registry | undefined;
}

/**
 * The worker's health port: `/healthz` (the process runs) and `/readyz` for Kubernetes probes, and
 * `/metrics` for Prometheus. `port` 0 picks a free port (read it from the server's address).
 */
export async function serveWorkerHealth(port: number, handlers: WorkerHealthHandlers): Promise<Server> {
  const server = createServer((req, res) => {
    const answer = (status: number, body: string) =>
      res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify({ status: body }));
    const path = (req.url ?? '').split('?', 1)[0];
    if (path === '/healthz') answer(200, 'ok');
    else if (path === '/readyz')
      handlers.ready().then(
        (ok) => answer(ok ? 200 : 503, ok ? 'ready' : 'not ready'),
        () => answer(503, 'not ready'),
      );
    else if (path === '/metrics' && handlers.metrics) {
      const registry = handlers.metrics;
      registry.metrics().then(
        (text) => res.writeHead(200, { 'content-type': registry.contentType }).end(text),
        () => answer(500, 'metrics unavailable'),
      );
    } else answer(404, 'not found');
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '0.0.0.0', () => resolve());
  });
  return server;
}
