import { KubeError } from '../engine/cluster-client.ts';
import { LockBusyError, LockLostError } from '../engine/cluster-lock.ts';
import { InventoryUnreadableError } from '../engine/inventory.ts';
import { RenderUnavailableError } from '../engine/render-cluster.ts';
import { CommitNotFoundError, GitError } from '../source/git-mirror.ts';
import { CommandTimeoutError } from '../support/run-command.ts';

/**
 * What an infrastructure failure is called where the public can read it (commit statuses, the public
 * status page): a category, never the transport's text, which names internal addresses ("https://10.0.3.4:6443
 * … ECONNREFUSED"). The full error goes to the worker's log. Pure.
 */
export function describeInfrastructureError(error: unknown): string {
  if (error instanceof KubeError) {
    if (error.status === 401 || error.status === 403) return "the cluster refused Plumbline's credentials";
    if (error.kind === 'unavailable') return 'cluster unreachable';
    return 'the cluster answered with an error';
  }
  if (error instanceof LockLostError) return 'another worker took the cluster over';
  if (error instanceof InventoryUnreadableError) return "the cluster's inventory is unreadable: repair or delete it";
  if (error instanceof LockBusyError) return 'the cluster was busy with another job';
  if (error instanceof CommitNotFoundError) return 'the commit no longer exists';
  if (error instanceof GitError) return 'could not fetch the commit';
  if (error instanceof CommandTimeoutError) return 'timed out';
  if (error instanceof RenderUnavailableError)
    return 'the render could not finish (a chart source unavailable, or a render timeout)';
  if (isNetworkError(error)) return 'cluster unreachable';
  return "internal error (details in the worker's log)";
}

/**
 * Transport failures by their `code`, as Node's sockets and DNS (`ECONNREFUSED`, `ENOTFOUND`, … with
 * `syscall`) and undici's fetch (`UND_ERR_*`, under a `TypeError('fetch failed')` that has no code of its
 * own) set it on the error or on one of its causes.
 */
const NETWORK_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'EPIPE',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_BODY_TIMEOUT',
  'UND_ERR_SOCKET',
  'UND_ERR_CLOSED',
]);

function isNetworkError(error: unknown): boolean {
  for (let e: unknown = error, depth = 0; e instanceof Error && depth < 5; e = e.cause, depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && NETWORK_CODES.has(code)) return true;
  }
  return false;
}
