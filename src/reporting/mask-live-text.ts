import type { ChangeSet } from '../engine/change-set.ts';
import type { HealthReport } from '../engine/health.ts';
import { objectRef, type RenderedObject } from '../engine/manifest.ts';
import { MASK } from '../engine/secret-masking.ts';

/** A double-quoted string as Go and JSON print them, escapes included. */
const QUOTED = /"(?:[^"\\]|\\.)*"/g;
/** URLs, IPv4 addresses (with a port or not), `host:port` and bracketed IPv6: where a cluster lives. */
const ADDRESSES = [
  /\b[a-z][a-z0-9+.-]*:\/\/[^\s"'<>]+/gi,
  /\[[0-9a-f:]+\](?::\d+)?/gi,
  /\b\d{1,3}(?:\.\d{1,3}){3}(?::\d+)?\b/g,
  /\b[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)+:\d{2,5}\b/gi,
];
/** Quoted strings this long or longer are never kept, even when the commit has them. */
const MAX_KEPT = 200;

/**
 * Text read from a cluster (an apiserver's rejection, a health condition), made fit for GitHub
 * (invariant 9): every quoted value is masked unless the commit itself holds it — a Pod-update error
 * prints the live spec, a webhook may echo live data — and addresses are removed. `fromCommit` are the
 * strings of the object's manifest (see {@link stringsOf}). Pure.
 */
export function maskLiveText(text: string, fromCommit: ReadonlySet<string> = new Set()): string {
  const masked = text.replace(QUOTED, (quoted) => {
    const inner = unquote(quoted);
    return inner !== undefined && inner.length <= MAX_KEPT && fromCommit.has(inner) ? quoted : `"${MASK}"`;
  });
  return withoutAddresses(masked);
}

/** Addresses replaced by a word: internal endpoints stay in the logs, never on GitHub or a public page. Pure. */
export function withoutAddresses(text: string): string {
  return ADDRESSES.reduce((out, pattern) => out.replace(pattern, '(address)'), text);
}

/** Every key and scalar of a manifest, as strings: what a message may quote because the commit says it. */
export function stringsOf(value: unknown, into = new Set<string>()): Set<string> {
  if (value === null || value === undefined) return into;
  if (Array.isArray(value)) for (const item of value) stringsOf(item, into);
  else if (typeof value === 'object')
    for (const [key, child] of Object.entries(value)) {
      into.add(key);
      stringsOf(child, into);
    }
  else into.add(String(value));
  return into;
}

function unquote(quoted: string): string | undefined {
  try {
    const parsed: unknown = JSON.parse(quoted);
    return typeof parsed === 'string' ? parsed : undefined;
  } catch {
    return quoted.slice(1, -1);
  }
}

/**
 * A change set fit for GitHub: every message masked against the strings of the object's own manifest (a
 * rejection may quote the commit's values, never the cluster's), and the live field managers whose fields
 * were taken over not named. Logs keep the original. Pure.
 */
export function publishableChangeSet(changeSet: ChangeSet, objects: readonly RenderedObject[]): ChangeSet {
  const manifests = new Map(objects.map((o) => [objectRef(o.manifest), o.manifest]));
  return {
    changes: changeSet.changes.map(({ tookOwnershipFrom, ...change }) => ({
      ...change,
      // Who held the fields is read from the cluster: GitHub learns only that fields were taken over.
      ...(tookOwnershipFrom
        ? {
            tookOwnershipFrom: [
              tookOwnershipFrom.length === 1
                ? 'another field manager'
                : `${tookOwnershipFrom.length} other field managers`,
            ],
          }
        : {}),
      ...(change.message === undefined
        ? {}
        : { message: maskLiveText(change.message, stringsOf(manifests.get(change.object))) }),
    })),
  };
}

/** Health reports whose messages (a controller's live conditions) are fit for GitHub. Pure. */
export function publishableHealth(
  reports: readonly HealthReport[],
  objects: readonly RenderedObject[],
): HealthReport[] {
  const manifests = new Map(objects.map((o) => [objectRef(o.manifest), o.manifest]));
  return reports.map((report) =>
    report.health.state === 'healthy'
      ? report
      : {
          ...report,
          health: {
            ...report.health,
            message: maskLiveText(report.health.message, stringsOf(manifests.get(report.object))),
          },
        },
  );
}
