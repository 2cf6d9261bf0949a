/** How the worker drives the engine: request concurrency, waits and the cluster lock's lease. */
export interface EngineSettings {
  readonly applyConcurrency: number;
  readonly establishTimeoutMs: number;
  readonly healthTimeoutMs: number;
  readonly lockLeaseMs: number;
  readonly lockWaitMs: number;
}

export const DEFAULT_ENGINE_SETTINGS: EngineSettings = {
  applyConcurrency: 32,
  establishTimeoutMs: 60_000,
  healthTimeoutMs: 120_000,
  lockLeaseMs: 30_000,
  lockWaitMs: 60_000,
};
