import type { ClusterState, DriftSummary, ReconcileRecord } from '../status/cluster-state.ts';
import { scrubAddresses } from './scrub-addresses.ts';

/** Results whose description is an error's text (a cluster's address, a transport error, a file): never public. */
const FAILING = new Set(['failed', 'error']);

/** Repository links the public may follow: GitHub.com's. An Enterprise Server's address stays private. */
const PUBLIC_REPOSITORY = /^https:\/\/github\.com\/[\w.-]+\/[\w.-]+$/;

function publicRecord(r: ReconcileRecord): ReconcileRecord {
  return {
    sha: r.sha,
    status: r.status,
    description: FAILING.has(r.status) ? '' : scrubAddresses(r.description),
    at: r.at,
  };
}

function publicDrift(o: DriftSummary): DriftSummary {
  return {
    object: scrubAddresses(o.object),
    kind: o.kind,
    fields: o.fields.map((f) => ({ path: scrubAddresses(f.path), changedBy: f.changedBy.map(scrubAddresses) })),
  };
}

/**
 * What the public status page and `/api/clusters` may show of a cluster: a failure or error only as its
 * status word, and no text that names an address (see scrubAddresses). Built field by field, so a field
 * added to ClusterState later stays private until it is added here. Pure.
 */
export function publicClusterState(state: ClusterState): ClusterState {
  const optional = <K extends keyof ClusterState>(key: K, value: ClusterState[K] | undefined) =>
    value === undefined ? {} : { [key]: value };
  return {
    name: state.name,
    repo: scrubAddresses(state.repo),
    branch: scrubAddresses(state.branch),
    path: scrubAddresses(state.path),
    suspended: state.suspended,
    selfHeal: state.selfHeal,
    intervalMs: state.intervalMs,
    ...optional('repoUrl', state.repoUrl && PUBLIC_REPOSITORY.test(state.repoUrl) ? state.repoUrl : undefined),
    ...optional('appliedRevision', state.appliedRevision),
    ...optional('appliedAt', state.appliedAt),
    ...optional('lastSync', state.lastSync && publicRecord(state.lastSync)),
    ...optional('recent', state.recent?.map(publicRecord)),
    ...optional('lastResyncAt', state.lastResyncAt),
    ...optional('lastResyncResult', state.lastResyncResult && scrubAddresses(state.lastResyncResult)),
    ...optional('nextResyncAt', state.nextResyncAt),
    ...optional(
      'drift',
      state.drift && {
        objects: state.drift.objects.map(publicDrift),
        detectedAt: state.drift.detectedAt,
        ...(state.drift.correctedAt === undefined ? {} : { correctedAt: state.drift.correctedAt }),
      },
    ),
    totals: {
      driftDetected: state.totals.driftDetected,
      driftCorrected: state.totals.driftCorrected,
      missedPushes: state.totals.missedPushes,
    },
  };
}
