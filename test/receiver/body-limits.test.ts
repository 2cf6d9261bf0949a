import { connect, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { MAX_WEBHOOK_BYTES } from '../../src/receiver/create-receiver-app.ts';
import { testEnvironment } from '../helpers/environment.ts';
import { fakeSha, githubDelivery, pushPayload, send, signature } from '../helpers/github-delivery.ts';
import { type ReceiverHarness, startReceiverHarness, WEBHOOK_SECRET } from '../helpers/receiver-harness.ts';

const env = testEnvironment();
const MB = 1024 * 1024;
/** Every socket a test opened, destroyed at the end whatever happened (an open one would keep the server up). */
const sockets: Socket[] = [];

/** A POST over a raw socket whose body is written by the caller; `answer` resolves with the status line's code. */
function openDelivery(port: number, headers: Record<string, string>) {
  const socket: Socket = connect(port, '127.0.0.1');
  sockets.push(socket);
  let received = '';
  const answer = new Promise<{ status: number; head: string }>((resolve) => {
    const settle = () => {
      const head = received.split('\r\n\r\n')[0] ?? '';
      resolve({ status: Number(/^HTTP\/1\.1 (\d{3})/.exec(head)?.[1] ?? 0), head });
    };
    socket.on('data', (data: Buffer) => {
      received += data.toString('latin1');
      if (received.includes('\r\n\r\n')) settle();
    });
    socket.on('close', settle);
  });
  socket.on('error', () => {});
  const lines = Object.entries({ host: `127.0.0.1:${port}`, connection: 'close', ...headers }).map(
    ([name, value]) => `${name}: ${value}\r\n`,
  );
  socket.write(`POST /api/github/webhooks HTTP/1.1\r\n${lines.join('')}\r\n`);
  return {
    answer,
    /** Writes `bytes` of body, resolving once the kernel took them. */
    write: (bytes: Buffer) =>
      new Promise<void>((resolve) => (socket.write(bytes) ? resolve() : socket.once('drain', resolve))),
    destroy: () => socket.destroy(),
  };
}

async function gauge(harness: ReceiverHarness, name: string): Promise<number> {
  const text = await (await fetch(`${harness.baseUrl}/metrics`)).text();
  return Number(new RegExp(`^${name} (\\d+)$`, 'm').exec(text)?.[1] ?? Number.NaN);
}

async function until(predicate: () => Promise<boolean>, what: string, ms = 30_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await predicate())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

describe('how much of a webhook body the receiver holds', () => {
  let harness: ReceiverHarness;

  beforeAll(async () => {
    // Room for one full-size body at a time.
    harness = await startReceiverHarness(env.redisUrl, { PLUMBLINE_MAX_INFLIGHT_BODIES: '1' });
  });
  afterAll(async () => {
    for (const socket of sockets) socket.destroy();
    await harness.close();
  });

  it('answers 401 to a header that cannot be a signature before reading the body', async () => {
    const { headers } = githubDelivery('push', pushPayload({ after: fakeSha(1), repositoryId: 9101 }), WEBHOOK_SECRET);
    const delivery = openDelivery(harness.receiver.port, {
      ...headers,
      'x-hub-signature-256': 'sha256=',
      'content-length': String(20 * MB),
    });
    await delivery.write(Buffer.from('{"ref":')); // the rest never comes: the answer must not wait for it
    let timer: NodeJS.Timeout | undefined;
    const answered = await Promise.race([
      delivery.answer,
      new Promise<{ status: number }>((resolve) => {
        timer = setTimeout(() => resolve({ status: 0 }), 20_000);
      }),
    ]);
    clearTimeout(timer);
    delivery.destroy();
    expect(answered.status).toBe(401);
  });

  it('refuses with 503 and Retry-After a body that would pass the in-flight budget, and takes it once there is room', async () => {
    // A stranger's 20 MB body, nearly all sent, its last byte held back: the receiver keeps it (it cannot
    // know the signature is wrong before the end).
    const stranger = githubDelivery('push', null, 'not-the-secret', { body: '' });
    const big = openDelivery(harness.receiver.port, {
      ...stranger.headers,
      'x-hub-signature-256': signature('not-the-secret', 'x'),
      'content-length': String(20 * MB),
    });
    for (let sent = 0; sent < 20 * MB - 1; sent += MB)
      await big.write(Buffer.alloc(Math.min(MB, 20 * MB - 1 - sent), 0x20));
    await until(
      async () => (await gauge(harness, 'plumbline_webhook_body_bytes_in_flight')) >= 20 * MB - 1,
      'the receiver holds the 20 MB body',
    );

    // GitHub's 6 MB delivery (well-formed, correctly signed) no longer fits beside it.
    const payload = pushPayload({ after: fakeSha(2), repositoryId: 9102 });
    const padded = `${JSON.stringify(payload)}${' '.repeat(6 * MB)}`;
    const genuine = githubDelivery('push', payload, WEBHOOK_SECRET, { body: padded });
    const refused = openDelivery(harness.receiver.port, {
      ...genuine.headers,
      'content-length': String(Buffer.byteLength(padded)),
    });
    void refused.write(Buffer.from(padded));
    const answer = await refused.answer;
    refused.destroy();
    expect(answer.status).toBe(503);
    expect(answer.head).toMatch(/^retry-after: \d+$/im);

    // The stranger's last byte: 401, and its 20 MB are given back.
    await big.write(Buffer.from(' '));
    expect((await big.answer).status).toBe(401);
    big.destroy();
    await until(
      async () => (await gauge(harness, 'plumbline_webhook_body_bytes_in_flight')) === 0,
      'the budget is given back',
    );
    expect(await send(harness.baseUrl, genuine)).toEqual({ status: 202, body: { queued: 1 } });

    const metrics = await (await fetch(`${harness.baseUrl}/metrics`)).text();
    expect(metrics).toMatch(/plumbline_webhook_deliveries_total\{event="push",outcome="busy"\} 1/);
  }, 90_000);

  it('still takes a full-size (25 MB) delivery when nothing else is in flight', async () => {
    const payload = pushPayload({ after: fakeSha(3), repositoryId: 9103 });
    const text = JSON.stringify(payload);
    const padded = `${text}${' '.repeat(MAX_WEBHOOK_BYTES - Buffer.byteLength(text))}`;
    const response = await send(harness.baseUrl, githubDelivery('push', payload, WEBHOOK_SECRET, { body: padded }));
    expect(response).toEqual({ status: 202, body: { queued: 1 } });
  }, 60_000);
});
