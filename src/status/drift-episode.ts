import { type DriftedObject, describeDrift } from '../engine/drift.ts';
import { fitDescription } from '../reporting/status-text.ts';
import type { DriftSummary } from './cluster-state.ts';

/** What one resync found, and what the previous resyncs left recorded. */
export interface DriftObservation {
  readonly drifted: readonly DriftedObject[];
  /** How many of the drifted objects were put back (selfHeal). */
  readonly corrected: number;
  /** The open episode's signature, as recorded ('' or undefined when none is open). */
  readonly previousSignature: string | undefined;
  /** Whether the last commit status said the cluster matches its applied commit (true unless it said otherwise). */
  readonly wasMatching: boolean;
  readonly selfHeal: boolean;
  /** Whether there is a commit to write a status on: the applied revision and its repository are known. */
  readonly commitKnown: boolean;
}

/** What to report about drift, decided from an observation alone. */
export interface DriftEpisodeDecision {
  /** A new episode, for the log, the metrics and the status page; absent when it is the one already reported. */
  readonly episode?: {
    readonly objects: readonly DriftSummary[];
    readonly detected: number;
    readonly corrected: number;
    /** Every drifted object was put back: the episode is over as soon as it is reported. */
    readonly settled: boolean;
  };
  /** The signature to record as the open episode: '' once settled, so the same drift later is a new episode. */
  readonly signature: string;
  /** The status to write on the applied commit, only when whether the cluster matches it changed. */
  readonly commitStatus?: {
    readonly matching: boolean;
    readonly state: 'success' | 'error';
    readonly description: string;
  };
}

/** The set of drifted fields, which tells one episode from the next. Pure. */
export function driftSignature(drifted: readonly DriftedObject[]): string {
  return JSON.stringify(drifted.map((d) => [d.object, d.kind, d.fields.map((f) => f.path)]));
}

/**
 * A drift episode is reported once: when the set of drifted fields differs from the open episode's. A status
 * on the applied commit is written only when whether the cluster matches it changes. Pure.
 */
export function decideDriftEpisode(observation: DriftObservation): DriftEpisodeDecision {
  const { drifted, corrected } = observation;
  const settled = drifted.length === 0 || corrected === drifted.length;
  const signature = driftSignature(drifted);
  const isNew = drifted.length > 0 && signature !== observation.previousSignature;
  const matching = settled;
  const changed = matching !== observation.wasMatching && observation.commitKnown;
  return {
    ...(isNew
      ? {
          episode: {
            objects: drifted.map((d) => ({
              object: d.object,
              kind: d.kind,
              fields: d.fields.map((f) => ({ path: f.path, changedBy: f.changedBy })),
            })),
            detected: drifted.length,
            corrected,
            settled,
          },
        }
      : {}),
    signature: settled ? '' : signature,
    ...(changed ? { commitStatus: driftCommitStatus({ matching, drifted, selfHeal: observation.selfHeal }) } : {}),
  };
}

function driftCommitStatus(input: {
  readonly matching: boolean;
  readonly drifted: readonly DriftedObject[];
  readonly selfHeal: boolean;
}): NonNullable<DriftEpisodeDecision['commitStatus']> {
  if (input.matching)
    return {
      matching: true,
      state: 'success',
      description: fitDescription('applied; the cluster matches this commit again'),
    };
  // Who changed it is read from the cluster: the status page says, GitHub does not (invariant 9's spirit).
  const drift = describeDrift(input.drifted, { managers: false });
  return {
    matching: false,
    state: 'error',
    description: fitDescription(`not what this commit says: ${drift}${input.selfHeal ? '' : ' (selfHeal off)'}`),
  };
}

/** The status page's one-line result of a resync. Pure. */
export function resyncResultText(input: { readonly drifted: number; readonly corrected: number }): string {
  if (input.drifted === 0) return 'in sync';
  return input.corrected === input.drifted ? `corrected ${input.corrected}` : `${input.drifted} drifted`;
}
