/**
 * `npm run bench`: every benchmark in one bounded run on loopback. Starts its own Redis, writes
 * bench/results/<date>.json and prints a table. Ratios measured side by side are what count.
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from '../dev/local-stack/free-port.ts';
import { stopProcess } from '../dev/local-stack/processes.ts';
import { startRedisServer } from '../dev/local-stack/redis-server.ts';
import { runB1 } from './b1-webhook-ingest.ts';
import { runB4 } from './b4-apply.ts';
import { runB6 } from './b6-drift-scan.ts';
import { runB8 } from './b8-end-to-end.ts';
import { runB9 } from './b9-github-calls.ts';
import { runB10 } from './b10-warm-fetch.ts';
import { runB15 } from './b15-helm-apps.ts';

const reps = Number(process.env.BENCH_REPS ?? 5);
/** `BENCH_ONLY=b10` runs one benchmark. */
const only = process.env.BENCH_ONLY?.toLowerCase();
const wanted = (name: string) => only === undefined || only === name;
const log = (line: string) => process.stdout.write(`${line}\n`);

const dir = await mkdtemp(join(tmpdir(), 'plumbline-bench-'));
const redis = await startRedisServer(dir, await freePort(), { name: 'bench' });
// Interrupted (Ctrl-C, a CI timeout): the Redis this run started must not outlive it.
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    void stopProcess(redis.pid, redis.command).finally(() => process.exit(130));
  });
}
try {
  const b1 = wanted('b1') ? await runB1(redis.url, reps, log) : undefined;
  const kubeconfig = process.env.PLUMBLINE_BENCH_KUBECONFIG ?? process.env.KUBECONFIG;
  if (wanted('b4') && !kubeconfig) throw new Error('B4 needs a cluster: run `npm run local:up && . .local/env` first');
  const sizes = (process.env.BENCH_SIZES_B4 ?? '100,1000,5000').split(',').map(Number);
  const b4 =
    wanted('b4') && kubeconfig ? await runB4(kubeconfig, sizes, Math.max(3, Math.ceil(reps / 2)), log) : undefined;
  if (wanted('b6') && !kubeconfig) throw new Error('B6 needs a cluster: run `npm run local:up && . .local/env` first');
  const sizesB6 = (process.env.BENCH_SIZES_B6 ?? '1000,5000').split(',').map(Number);
  const kubectlMax = Number(process.env.BENCH_KUBECTL_MAX ?? 1000);
  const b6 = wanted('b6') && kubeconfig ? await runB6(kubeconfig, sizesB6, reps, kubectlMax, log) : undefined;
  if (wanted('b8') && !kubeconfig) throw new Error('B8 needs a cluster: run `npm run local:up && . .local/env` first');
  const sizesB8 = (process.env.BENCH_SIZES_B8 ?? '10,100,1000').split(',').map(Number);
  const b8 = wanted('b8') && kubeconfig ? await runB8(redis.url, kubeconfig, sizesB8, reps, log) : undefined;
  if (wanted('b9') && !kubeconfig) throw new Error('B9 needs a cluster: run `npm run local:up && . .local/env` first');
  const b9 = wanted('b9') && kubeconfig ? await runB9(redis.url, kubeconfig, log) : undefined;
  const b10 = wanted('b10') ? await runB10(reps * 2, log) : undefined;
  if (wanted('b15') && !kubeconfig)
    throw new Error('B15 needs a cluster: run `npm run local:up && . .local/env` first');
  const b15 = wanted('b15') && kubeconfig ? await runB15(kubeconfig, reps, log) : undefined;
  await mkdir('bench/results', { recursive: true });
  const file = join('bench/results', `${new Date().toISOString().slice(0, 19).replace(/:/g, '')}.json`);
  await writeFile(
    file,
    `${JSON.stringify({ machine: { cpus: (await import('node:os')).cpus().length }, reps, b1, b4, b6, b8, b9, b10, b15 }, null, 2)}\n`,
  );
  log(`results written to ${file}`);
} finally {
  await stopProcess(redis.pid, redis.command);
  await rm(dir, { recursive: true, force: true });
}
