import { request } from 'node:http';
import { describe, expect, it } from '@jest/globals';
import { deadlineIn } from '../../src/support/close-within.ts';
import { testEnvironment } from '../helpers/environment.ts';
import { fakeSha, githubDelivery, pushPayload } from '../helpers/github-delivery.ts';
import { startReceiverHarness, WEBHOOK_SECRET } from '../helpers/receiver-harness.ts';

describe('receiver shutdown', () => {
  it('finishes a delivery that is in flight, then stops accepting', async () => {
    const harness = await startReceiverHarness(testEnvironment().redisUrl);
    const delivery = githubDelivery('push', pushPayload({ after: fakeSha(1), repositoryId: 1 }), WEBHOOK_SECRET);
    const half = Math.floor(delivery.body.length / 2);

    const req = request(`${harness.baseUrl}/api/github/webhooks`, {
      method: 'POST',
      headers: { ...delivery.headers, 'content-length': String(Buffer.byteLength(delivery.body)) },
    });
    const answered = new Promise<number>((resolve, reject) => {
      req.on('response', (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on('error', reject);
    });
    const connected = new Promise((resolve) => req.once('socket', (socket) => socket.once('connect', resolve)));
    req.write(delivery.body.slice(0, half));
    // The delivery is under way (connected, headers and half the body sent) before shutdown starts.
    await connected;
    await new Promise((resolve) => setTimeout(resolve, 200));

    const closing = harness.close();
    req.end(delivery.body.slice(half));
    expect(await answered).toBe(202);
    await closing;
    await expect(fetch(`${harness.baseUrl}/healthz`)).rejects.toThrow();
  });

  it('cuts a delivery that is still unfinished when the grace runs out, and reports what it gave up on', async () => {
    const harness = await startReceiverHarness(testEnvironment().redisUrl);
    const delivery = githubDelivery('push', pushPayload({ after: fakeSha(2), repositoryId: 2 }), WEBHOOK_SECRET);
    const req = request(`${harness.baseUrl}/api/github/webhooks`, {
      method: 'POST',
      headers: { ...delivery.headers, 'content-length': String(Buffer.byteLength(delivery.body)) },
    });
    const ended = new Promise<string>((resolve) => {
      req.on('response', (res) => resolve(`answered ${res.statusCode}`));
      req.on('error', (error) => resolve(`cut: ${error.message}`));
    });
    const connected = new Promise((resolve) => req.once('socket', (socket) => socket.once('connect', resolve)));
    // A sender that stalls with half its body sent: without a bound, it holds the shutdown until the
    // request timeout (30 s).
    req.write(delivery.body.slice(0, Math.floor(delivery.body.length / 2)));
    await connected;
    await new Promise((resolve) => setTimeout(resolve, 200));

    const report = await harness.receiver.shutdown(deadlineIn(2_000));
    expect(report.gaveUp).toEqual(['receiver: requests in flight']);
    expect(report.failed).toEqual([]);
    expect(await ended).toMatch(/^cut: /);
    await expect(fetch(`${harness.baseUrl}/healthz`)).rejects.toThrow();
    await harness.close();
  });
});

describe('the receiver process', () => {
  it('starts from the CLI and exits cleanly on SIGTERM', async () => {
    const { spawn } = await import('node:child_process');
    const { createInterface } = await import('node:readline');
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli.ts', 'receiver'], {
      env: {
        ...process.env,
        PORT: '0',
        REDIS_URL: testEnvironment().redisUrl,
        GITHUB_WEBHOOK_SECRET: 's',
        LOG_LEVEL: 'info',
      },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const lines: string[] = [];
    const listening = new Promise<void>((resolve) => {
      createInterface({ input: child.stdout }).on('line', (line) => {
        lines.push(line);
        if (line.includes('receiver listening')) resolve();
      });
    });
    await listening;
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
    expect(lines.some((line) => line.includes('receiver stopped'))).toBe(true);
  });

  it('refuses to start without a webhook secret, naming the variable', async () => {
    const { spawnSync } = await import('node:child_process');
    const result = spawnSync(process.execPath, ['--import', 'tsx', 'src/cli.ts', 'receiver'], {
      env: { PATH: process.env.PATH ?? '', PORT: '0' },
      encoding: 'utf8',
      timeout: 30_000,
    });
    expect(result.status).toBe(1);
    expect(result.stderr).toContain('GITHUB_WEBHOOK_SECRET is required');
  });
});
