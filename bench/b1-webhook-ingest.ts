/**
 * B1 (docs/performance.md): signed push deliveries through verify → dedupe → enqueue → 202, Plumbline's
 * receiver against a raw node:http + HMAC + Queue.add floor, interleaved A/B in one run.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { createHmac, randomUUID } from 'node:crypto';
import { Agent, request } from 'node:http';
import { createRequire } from 'node:module';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { median, percentile, spread } from './stats.ts';

const SECRET = 'bench-secret';
export const SIZES = (process.env.BENCH_SIZES ?? '8192,65536,1048576').split(',').map(Number);

interface Side {
  readonly name: 'ours' | 'floor';
  readonly port: number;
  readonly prefix: string;
  readonly child: ChildProcess;
}

const REPOSITORY_ID_SENTINEL = 987_654_321_987;

/**
 * A real push payload (from @octokit/webhooks-examples) grown to `bytes` with realistic commit entries,
 * returned as a function giving the body for a repository id: every delivery of the run targets its own
 * repository, so each one must become exactly one job (no coalescing helps ours, and loss is countable).
 */
export function pushBodies(bytes: number): (repositoryId: number) => string {
  const examples = createRequire(import.meta.url)('@octokit/webhooks-examples') as {
    name: string;
    examples: Record<string, unknown>[];
  }[];
  const base = examples.find((e) => e.name === 'push')!.examples.find((p) => String(p.ref).startsWith('refs/heads/'))!;
  const payload = { ...base, repository: { ...(base.repository as object), id: REPOSITORY_ID_SENTINEL } };
  const commit = {
    id: 'f'.repeat(40),
    message: 'Bump chart version for observability stack',
    author: { name: 'Octo Cat', email: 'octocat@example.com' },
    added: ['stacks/observability/prometheus/values.yaml'],
    modified: ['clusters/gcp/production/kustomization.yaml'],
    removed: [],
  };
  const commits: unknown[] = [];
  const perCommit = JSON.stringify(commit).length + 1;
  while (JSON.stringify({ ...payload, commits }).length + perCommit <= bytes) commits.push(commit);
  const [head, tail] = JSON.stringify({ ...payload, commits }).split(String(REPOSITORY_ID_SENTINEL)) as [
    string,
    string,
  ];
  return (repositoryId) => `${head}${repositoryId}${tail}`;
}

async function startSide(name: Side['name'], redisUrl: string): Promise<Side> {
  const prefix = `bench-${name}-${randomUUID().slice(0, 8)}`;
  const child = spawn(process.execPath, ['--import', 'tsx', 'bench/b1-server.ts', name, redisUrl, SECRET, prefix], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const line = await new Promise<string>((resolve, reject) => {
    createInterface({ input: child.stdout! }).once('line', resolve);
    child.once('exit', (code) => reject(new Error(`${name} server exited with ${code}`)));
  });
  return { name, port: (JSON.parse(line) as { port: number }).port, prefix, child };
}

const agent = new Agent({ keepAlive: true, maxSockets: 64 });

function post(port: number, body: string, retry = true): Promise<{ status: number; ms: number }> {
  const started = performance.now();
  const headers = {
    'content-type': 'application/json',
    'content-length': String(Buffer.byteLength(body)),
    'user-agent': 'GitHub-Hookshot/bench',
    'x-github-event': 'push',
    'x-github-delivery': randomUUID(),
    'x-hub-signature-256': `sha256=${createHmac('sha256', SECRET).update(body).digest('hex')}`,
    'x-github-hook-id': '1',
    'x-github-hook-installation-target-id': '1',
    'x-github-hook-installation-target-type': 'integration',
  };
  return new Promise((resolve) => {
    const req = request({ host: '127.0.0.1', port, path: '/api/github/webhooks', method: 'POST', headers, agent });
    req.on('response', (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode ?? 0, ms: performance.now() - started }));
    });
    req.on('error', (error: NodeJS.ErrnoException) => {
      // A kept-alive socket the server closed while idle: the documented race, retried once on a new socket.
      if (retry && req.reusedSocket && (error.code === 'ECONNRESET' || error.code === 'EPIPE')) {
        void post(port, body, false).then(resolve);
      } else {
        // Counted as not acknowledged (status 0): GitHub would show the delivery as failed.
        resolve({ status: 0, ms: performance.now() - started });
      }
    });
    req.end(body);
  });
}

/** Closed loop: `concurrency` senders for `ms`; returns requests per second and status counts. */
let nextRepositoryId = 1;

async function throughput(side: Side, body: (id: number) => string, concurrency: number, ms: number) {
  const deadline = performance.now() + ms;
  let done = 0;
  let accepted = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() < deadline) {
        const response = await post(side.port, body(nextRepositoryId++));
        done += 1;
        if (response.status === 202) accepted += 1;
      }
    }),
  );
  return { rps: done / (ms / 1000), done, accepted };
}

/** Open loop at a fixed rate: acknowledgement latencies as GitHub would see them. */
async function latencyAtRate(side: Side, body: (id: number) => string, rate: number, ms: number) {
  const count = Math.round((rate * ms) / 1000);
  const started = performance.now();
  const pending: Promise<{ status: number; ms: number }>[] = [];
  for (let i = 0; i < count; i += 1) {
    const due = started + (i * 1000) / rate;
    const wait = due - performance.now();
    if (wait > 1) await sleep(wait);
    pending.push(post(side.port, body(nextRepositoryId++)));
  }
  const results = await Promise.all(pending);
  return {
    p50: percentile(
      results.map((r) => r.ms),
      50,
    ),
    p99: percentile(
      results.map((r) => r.ms),
      99,
    ),
    accepted: results.filter((r) => r.status === 202).length,
    sent: count,
  };
}

async function jobsIn(redis: Redis, prefix: string): Promise<number> {
  const [waiting, delayed] = await Promise.all([
    redis.llen(`${prefix}:sync:wait`),
    redis.zcard(`${prefix}:sync:delayed`),
  ]);
  return waiting + delayed;
}

export interface B1Result {
  readonly size: number;
  readonly oursRps: number[];
  readonly floorRps: number[];
  readonly ratio: number;
  readonly oursP99Ms: number;
  readonly floorP99Ms: number;
  readonly rate: number;
  readonly lost: number;
  readonly doubleEnqueued: number;
}

export async function runB1(redisUrl: string, reps: number, log: (line: string) => void): Promise<B1Result[]> {
  const sides = [await startSide('ours', redisUrl), await startSide('floor', redisUrl)];
  log(`B1 servers: ours on port ${sides[0]!.port}, floor on port ${sides[1]!.port}`);
  const redis = new Redis(redisUrl);
  const clear = () =>
    Promise.all(sides.map((side) => redis.del(`${side.prefix}:sync:wait`, `${side.prefix}:sync:delayed`)));
  const results: B1Result[] = [];
  try {
    for (const size of SIZES) {
      const body = pushBodies(size);
      const rate = size >= 1024 * 1024 ? 20 : 200;
      const rps: Record<Side['name'], number[]> = { ours: [], floor: [] };
      const p99: Record<Side['name'], number[]> = { ours: [], floor: [] };
      for (const side of sides) await throughput(side, body, 8, 500); // warm-up
      await clear();
      let acknowledged = 0;
      for (let rep = 0; rep < reps; rep += 1) {
        for (const side of rep % 2 === 0 ? sides : [...sides].reverse()) {
          const t = await throughput(side, body, 16, 1_500);
          const l = await latencyAtRate(side, body, rate, 1_000);
          rps[side.name].push(t.rps);
          p99[side.name].push(l.p99);
          if (side.name === 'ours') acknowledged += t.accepted + l.accepted;
        }
      }
      const jobs = await jobsIn(redis, sides[0]!.prefix);
      const result: B1Result = {
        size,
        oursRps: rps.ours,
        floorRps: rps.floor,
        ratio: median(rps.ours) / median(rps.floor),
        oursP99Ms: median(p99.ours),
        floorP99Ms: median(p99.floor),
        rate,
        lost: Math.max(0, acknowledged - jobs),
        doubleEnqueued: Math.max(0, jobs - acknowledged),
      };
      results.push(result);
      log(
        `B1 ${size / 1024} KB: ours ${median(rps.ours).toFixed(0)} req/s (±${spread(rps.ours).toFixed(0)}), ` +
          `floor ${median(rps.floor).toFixed(0)} req/s (±${spread(rps.floor).toFixed(0)}), ratio ${result.ratio.toFixed(2)}; ` +
          `p99 at ${rate} req/s ours ${result.oursP99Ms.toFixed(1)} ms, floor ${result.floorP99Ms.toFixed(1)} ms; ` +
          `${acknowledged} acknowledged, lost ${result.lost}, double ${result.doubleEnqueued}`,
      );
      await clear();
    }
  } finally {
    for (const side of sides) side.child.kill('SIGTERM');
    redis.disconnect();
    agent.destroy();
  }
  return results;
}
