/**
 * Every Redis key Plumbline writes itself, in one place (BullMQ names its own, under `<prefix>:<queue>:`).
 * Nothing else builds a key by hand: a key's shape, its owner and what it holds are read here.
 */
export interface RedisKeys {
  /** Delivery ledger (receiver): one record per `X-GitHub-Delivery`, `accepted` or `queued`. */
  delivery(deliveryId: string): string;
  /** The newest job seen for a branch or pull request (`coalescingKey`), JSON (ADR 2). */
  latestJob(coalescingKey: string): string;
  /** A cluster's lock lease (holder id, PX) and the counter its fencing tokens come from. */
  clusterLease(cluster: string): string;
  clusterFence(cluster: string): string;
  /** Status-page state: hash of cluster name → JSON `ClusterState`. */
  readonly clusterStates: string;
  /** A registered repository's id and installation, by lower-cased full name (for the resync). */
  repository(fullName: string): string;
  /** GitHub reporting of one commit: the statuses and check runs written (the write ledger). */
  commitStatuses(repositoryId: number, sha: string): string;
  commitChecks(repositoryId: number, sha: string): string;
  /** Commits of one coalescing scope with statuses still open (hash sha → JSON target). */
  openCommits(scope: string): string;
  /** Set while an installation lacks the Checks permission: statuses only. */
  checksOff(installationId: number): string;
  /** The installation's shared token bucket for GitHub writes. */
  writeBudget(installationId: number): string;
  /** A branch head found by the resync without a webhook: counted once. */
  missedPush(repositoryId: number, branch: string, head: string): string;
  /** A head the resync re-queued (its job gave up): at most once per three intervals. */
  requeuedHead(cluster: string, head: string): string;
  /** The last drift episode's signature, and whether the cluster matches its applied commit. */
  driftEpisode(cluster: string): string;
  driftStatus(cluster: string): string;
}

export function redisKeys(prefix: string): RedisKeys {
  return Object.freeze({
    delivery: (deliveryId: string) => `${prefix}:delivery:${deliveryId}`,
    latestJob: (coalescingKey: string) => `${prefix}:latest:${coalescingKey}`,
    clusterLease: (cluster: string) => `${prefix}:lock:${cluster}`,
    clusterFence: (cluster: string) => `${prefix}:fence:${cluster}`,
    clusterStates: `${prefix}:clusters:state`,
    repository: (fullName: string) => `${prefix}:repository:${fullName.toLowerCase()}`,
    commitStatuses: (repositoryId: number, sha: string) => `${prefix}:github:${repositoryId}:${sha}:statuses`,
    commitChecks: (repositoryId: number, sha: string) => `${prefix}:github:${repositoryId}:${sha}:checks`,
    openCommits: (scope: string) => `${prefix}:github:open:${scope}`,
    checksOff: (installationId: number) => `${prefix}:github:checks-off:${installationId}`,
    writeBudget: (installationId: number) => `${prefix}:github:budget:${installationId}`,
    missedPush: (repositoryId: number, branch: string, head: string) =>
      `${prefix}:missed:${repositoryId}:${branch}:${head}`,
    requeuedHead: (cluster: string, head: string) => `${prefix}:requeued:${cluster}:${head}`,
    driftEpisode: (cluster: string) => `${prefix}:drift:${cluster}`,
    driftStatus: (cluster: string) => `${prefix}:drift-status:${cluster}`,
  });
}
