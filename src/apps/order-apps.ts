import type { ManifestProblem } from '../engine/manifest.ts';
import type { AppSpec } from './apps-file.ts';

export type OrderAppsResult =
  | { readonly ok: true; readonly waves: readonly (readonly AppSpec[])[] }
  | { readonly ok: false; readonly problems: readonly ManifestProblem[] };

/**
 * Orders the apps of one `plumbline.yaml` (`file`, for messages) by `dependsOn` into waves: each app of a
 * wave depends only on apps of earlier waves, and a wave keeps the file's order. Pure. An unknown name
 * or a cycle is a problem — before anything is written. Names are unique, as `parseAppsFile` makes them.
 */
export function orderApps(apps: readonly AppSpec[], file: string): OrderAppsResult {
  const byName = new Map(apps.map((app) => [app.name, app]));
  const unknown = apps.flatMap((app) =>
    app.dependsOn
      .filter((name) => !byName.has(name))
      .map(
        (name): ManifestProblem => ({
          message: `app ${app.name} depends on ${name}, which is not an app of this file`,
          source: { file, line: app.line },
        }),
      ),
  );
  if (unknown.length > 0) return { ok: false, problems: Object.freeze(unknown) };

  const placed = new Set<string>();
  const waves: (readonly AppSpec[])[] = [];
  let remaining = apps;
  while (remaining.length > 0) {
    const wave = remaining.filter((app) => app.dependsOn.every((name) => placed.has(name)));
    if (wave.length === 0) break;
    for (const app of wave) placed.add(app.name);
    waves.push(Object.freeze(wave));
    remaining = remaining.filter((app) => !placed.has(app.name));
  }
  if (remaining.length === 0) return { ok: true, waves: Object.freeze(waves) };
  return { ok: false, problems: Object.freeze(findCycles(remaining, byName, apps, file)) };
}

/**
 * The cycles among apps that could not be placed, each once, as `a → b → a` (each depends on the next),
 * starting at the app listed first. Every one of these apps depends on another of them, so following
 * dependencies from any of them ends in a cycle; apps that only wait on a reported cycle are not one.
 */
function findCycles(
  unplaced: readonly AppSpec[],
  byName: ReadonlyMap<string, AppSpec>,
  apps: readonly AppSpec[],
  file: string,
): ManifestProblem[] {
  const position = new Map(apps.map((app, index) => [app.name, index]));
  const problems: ManifestProblem[] = [];
  let rest = unplaced;
  for (;;) {
    // Apps whose remaining dependencies are all in reported cycles are blocked, not cyclic.
    for (let before = -1; before !== rest.length; ) {
      before = rest.length;
      const names = new Set(rest.map((app) => app.name));
      rest = rest.filter((app) => app.dependsOn.some((name) => names.has(name)));
    }
    const [start] = rest;
    if (!start) return problems;
    const names = new Set(rest.map((app) => app.name));
    const path: AppSpec[] = [];
    const seen = new Map<string, number>();
    let app: AppSpec | undefined = start;
    while (app && !seen.has(app.name)) {
      seen.set(app.name, path.length);
      path.push(app);
      const next: string | undefined = app.dependsOn.find((name) => names.has(name));
      app = next === undefined ? undefined : byName.get(next);
    }
    if (!app) return problems;
    const walked = path.slice(seen.get(app.name));
    const order = (a: AppSpec) => position.get(a.name) ?? 0;
    const head = walked.reduce((best, a) => (order(a) < order(best) ? a : best));
    const first = walked.indexOf(head);
    const cycle = [...walked.slice(first), ...walked.slice(0, first)];
    problems.push({
      message: `dependsOn makes a cycle: ${[...cycle, head].map((a) => a.name).join(' → ')}`,
      source: { file, line: head.line },
    });
    const inCycle = new Set(cycle.map((a) => a.name));
    rest = rest.filter((a) => !inCycle.has(a.name));
  }
}
