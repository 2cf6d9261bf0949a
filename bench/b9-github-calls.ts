/**
 * B9 (docs/performance.md): GitHub calls per push and per no-op repeat, counted by the GitHub stand-in
 * (which validates each against GitHub's OpenAPI description). Budget: at most one `pending` and one
 * final status per (commit, context), and no write at all when nothing changed.
 */
import { Redis } from 'ioredis';
import type { RecordedCall } from '../dev/github-stand-in/github-stand-in.ts';
import { parseClusterRegistry } from '../src/clusters/cluster-registry.ts';
import type { SyncJob } from '../src/queue/jobs.ts';
import { createSourceFixture, pushJob } from '../test/helpers/source-fixture.ts';
import { workerDependencies } from '../test/helpers/worker-deps.ts';
import { processSyncJob } from '../workers/process-sync-job.ts';

export interface B9Scenario {
  readonly scenario: string;
  readonly contexts: number;
  /** Most `pending` / final statuses written for any one (commit, context). */
  readonly maxPendingPerContext: number;
  readonly maxFinalPerContext: number;
  readonly statusWrites: number;
  readonly checkRunWrites: number;
  readonly otherCalls: number;
  readonly withinBudget: boolean;
}

const CLUSTERS = 3;

export async function runB9(redisUrl: string, kubeconfig: string, log: (line: string) => void): Promise<B9Scenario[]> {
  const f = await createSourceFixture('bench/b9');
  const redis = new Redis(redisUrl, { maxRetriesPerRequest: null });
  const run = Date.now().toString(36);
  const names = Array.from({ length: CLUSTERS }, (_, i) => `b9-${run}-${i}`);
  const registry = parseClusterRegistry(
    `clusters:\n${names
      .map(
        (name, i) =>
          `  - {name: ${name}, repo: ${f.repository.fullName}, path: clusters/c${i}, kubeconfig: ${kubeconfig}}`,
      )
      .join('\n')}\n`,
  );
  const deps = workerDependencies(f, { registry, redis, prefix: `b9-${run}` });
  const files = (version: Record<number, string>) =>
    Object.fromEntries(
      names.map((name, i) => [
        `clusters/c${i}/app.yaml`,
        `apiVersion: v1\nkind: Namespace\nmetadata:\n  name: ${name}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\n  namespace: ${name}\ndata:\n  version: "${version[i] ?? '1'}"\n`,
      ]),
    );
  const job = (after: string): SyncJob => pushJob(f, after, { deliveryId: `b9-${after}` });
  const measure = async (scenario: string, sha: string): Promise<B9Scenario> => {
    const from = f.github.calls.length;
    await processSyncJob(job(sha), deps);
    const calls = f.github.calls.slice(from).filter((c) => c.operation !== 'git');
    return summarize(scenario, calls);
  };
  try {
    const results: B9Scenario[] = [];
    const first = await f.work.commit('first', files({}));
    await f.work.push();
    results.push(await measure(`push affecting all ${CLUSTERS} clusters (first apply)`, first));
    const one = await f.work.commit('one', files({ 1: '2' }));
    await f.work.push();
    results.push(await measure(`push affecting 1 of ${CLUSTERS} clusters`, one));
    results.push(await measure('the same commit again (no-op repeat)', one));
    const none = await f.work.commit('docs', { 'README.md': 'no cluster reads this\n' });
    await f.work.push();
    results.push(await measure('push affecting no cluster', none));
    log('B9 GitHub calls per push');
    log(
      '| scenario | contexts | max pending / final per context | status writes | check-run writes | other calls | budget |',
    );
    log('|---|---|---|---|---|---|---|');
    for (const r of results) {
      log(
        `| ${r.scenario} | ${r.contexts} | ${r.maxPendingPerContext} / ${r.maxFinalPerContext} | ${r.statusWrites} | ${r.checkRunWrites} | ${r.otherCalls} | ${r.withinBudget ? 'met' : 'NOT met'} |`,
      );
    }
    if (f.github.violations.length > 0) throw new Error(`stand-in violations: ${f.github.violations.join('; ')}`);
    return results;
  } finally {
    redis.disconnect();
    await f.close();
  }
}

function summarize(scenario: string, calls: readonly RecordedCall[]): B9Scenario {
  const statuses = calls.filter((c) => c.operation === 'POST /repos/{owner}/{repo}/statuses/{sha}');
  const perContext = new Map<string, { pending: number; final: number }>();
  for (const call of statuses) {
    const body = call.body as { context: string; state: string };
    const counts = perContext.get(body.context) ?? { pending: 0, final: 0 };
    if (body.state === 'pending') counts.pending += 1;
    else counts.final += 1;
    perContext.set(body.context, counts);
  }
  const checkRunWrites = calls.filter((c) => c.operation?.includes('/check-runs')).length;
  const values = [...perContext.values()];
  const maxPendingPerContext = Math.max(0, ...values.map((v) => v.pending));
  const maxFinalPerContext = Math.max(0, ...values.map((v) => v.final));
  const repeat = scenario.includes('no-op');
  return {
    scenario,
    contexts: perContext.size,
    maxPendingPerContext,
    maxFinalPerContext,
    statusWrites: statuses.length,
    checkRunWrites,
    otherCalls: calls.length - statuses.length - checkRunWrites,
    withinBudget: repeat
      ? statuses.length + checkRunWrites === 0
      : maxPendingPerContext <= 1 && maxFinalPerContext <= 1,
  };
}
