/**
 * One side of benchmark B1, in its own process so the load generator does not share its event loop.
 * `ours`: Plumbline's receiver. `floor`: the least a correct receiver must do — node:http, HMAC check,
 * JSON.parse, Queue.add — with none of Plumbline's routing, ledger, coalescing or metrics.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { createServer } from 'node:http';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { readEnvOptions } from '../src/config/read-env-options.ts';
import { createLogger } from '../src/logging/create-logger.ts';
import { startReceiver } from '../src/receiver/start-receiver.ts';

const [mode, redisUrl, secret, prefix] = process.argv.slice(2) as [string, string, string, string];

async function startFloor(): Promise<number> {
  const connection = new Redis(redisUrl, { enableOfflineQueue: false, maxRetriesPerRequest: 1 });
  const queue = new Queue('sync', { connection, prefix });
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', async () => {
      const body = Buffer.concat(chunks);
      const expected = Buffer.from(`sha256=${createHmac('sha256', secret).update(body).digest('hex')}`);
      const given = Buffer.from(String(req.headers['x-hub-signature-256'] ?? ''));
      if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
        res.writeHead(401).end();
        return;
      }
      try {
        const payload = JSON.parse(body.toString('utf8')) as { after: string };
        await queue.add('sync', { after: payload.after });
        res.writeHead(202).end();
      } catch {
        res.writeHead(503).end();
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  return typeof address === 'object' && address ? address.port : 0;
}

async function startOurs(): Promise<number> {
  const options = readEnvOptions({
    PORT: '0',
    REDIS_URL: redisUrl,
    GITHUB_WEBHOOK_SECRET: secret,
    PLUMBLINE_QUEUE_PREFIX: prefix,
    LOG_LEVEL: 'info',
  });
  // Production logs one line per delivery; the bench writes them to /dev/null-equivalent via a quiet level.
  const receiver = await startReceiver(options, createLogger('warn'));
  return receiver.port;
}

const port = mode === 'ours' ? await startOurs() : await startFloor();
process.stdout.write(`${JSON.stringify({ port })}\n`);
process.once('SIGINT', () => process.exit(0));
