import type { ManifestProblem } from '../engine/manifest.ts';
import type { AppSpec } from './apps-file.ts';

export type OrderAppsResult =
  | { readonly ok: true; readonly waves: readonly (readonly AppSpec[])[] }
  | { readonly ok: false; readonly problems: readonly ManifestProblem[] };

/**
 * Orders the apps of one `plumbline.yaml` (`file`, for messages) by `dependsOn` into waves: each app of a
 * wave depends only on apps of earlier waves (it sits one wave after the latest of its dependencies), and
 * a wave keeps the file's order. Pure, and linear in apps and dependencies (a file may hold thousands). An
 * unknown name or a cycle is a problem — before anything is written. Names are unique, as
 * `parseAppsFile` makes them.
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

  // Kahn's algorithm: an app's wave is one more than the latest wave among its dependencies.
  const waiting = new Map(apps.map((app) => [app.name, new Set(app.dependsOn).size]));
  const dependents = new Map<string, AppSpec[]>(apps.map((app) => [app.name, []]));
  for (const app of apps) for (const name of new Set(app.dependsOn)) dependents.get(name)?.push(app);
  const wave = new Map<string, number>();
  const ready = apps.filter((app) => waiting.get(app.name) === 0);
  for (const app of ready) wave.set(app.name, 0);
  for (let next = 0; next < ready.length; next++) {
    const app = ready[next];
    if (!app) break;
    const level = (wave.get(app.name) ?? 0) + 1;
    for (const dependent of dependents.get(app.name) ?? []) {
      wave.set(dependent.name, Math.max(wave.get(dependent.name) ?? 0, level));
      const left = (waiting.get(dependent.name) ?? 0) - 1;
      waiting.set(dependent.name, left);
      if (left === 0) ready.push(dependent);
    }
  }
  if (ready.length < apps.length) {
    const unplaced = apps.filter((app) => (waiting.get(app.name) ?? 0) > 0);
    return { ok: false, problems: Object.freeze(findCycles(unplaced, byName, file)) };
  }
  let depth = 0;
  for (const level of wave.values()) depth = Math.max(depth, level + 1);
  const waves: AppSpec[][] = Array.from({ length: depth }, () => []);
  for (const app of apps) waves[wave.get(app.name) ?? 0]?.push(app);
  return { ok: true, waves: Object.freeze(waves.map((apps) => Object.freeze(apps))) };
}

/**
 * One cycle of each group of apps that depend on each other (a strongly connected component), as
 * `a → b → a` (each depends on the next) starting at the app listed first; in the file's order. Apps that
 * only wait on a cycle are not named.
 */
function findCycles(
  unplaced: readonly AppSpec[],
  byName: ReadonlyMap<string, AppSpec>,
  file: string,
): ManifestProblem[] {
  const position = new Map(unplaced.map((app, index) => [app.name, index]));
  const order = (app: AppSpec) => position.get(app.name) ?? 0;
  return stronglyConnected(unplaced, byName)
    .filter((group) => group.length > 1 || group.some((app) => app.dependsOn.includes(app.name)))
    .map((group) => [...group].sort((a, b) => order(a) - order(b)))
    .sort((a, b) => order(a[0] as AppSpec) - order(b[0] as AppSpec))
    .map((group) => {
      const members = new Set(group.map((app) => app.name));
      // Every app of the group depends on another of it: following those dependencies must close a cycle.
      const path: AppSpec[] = [];
      const seen = new Map<string, number>();
      let app: AppSpec | undefined = group[0];
      while (app && !seen.has(app.name)) {
        seen.set(app.name, path.length);
        path.push(app);
        const next: string | undefined = app.dependsOn.find((name) => members.has(name));
        app = next === undefined ? undefined : byName.get(next);
      }
      const walked = path.slice(app ? seen.get(app.name) : 0);
      const head = walked.reduce((best, a) => (order(a) < order(best) ? a : best));
      const first = walked.indexOf(head);
      const cycle = [...walked.slice(first), ...walked.slice(0, first), head];
      return {
        message: `dependsOn makes a cycle: ${describeCycle(cycle.map((a) => a.name))}`,
        source: { file, line: head.line },
      };
    });
}

/** `a → b → a`; a long cycle keeps its first and last ten names, so that a message stays readable. */
function describeCycle(names: readonly string[]): string {
  if (names.length <= 21) return names.join(' → ');
  return `${[...names.slice(0, 10), '…', ...names.slice(-10)].join(' → ')} (${names.length - 1} apps)`;
}

/** Tarjan's strongly connected components of the dependsOn graph among `apps`, without recursion. */
function stronglyConnected(apps: readonly AppSpec[], byName: ReadonlyMap<string, AppSpec>): AppSpec[][] {
  const members = new Set(apps.map((app) => app.name));
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: AppSpec[] = [];
  const onStack = new Set<string>();
  const components: AppSpec[][] = [];
  const indexOf = (app: AppSpec) => index.get(app.name) ?? 0;
  const lowOf = (app: AppSpec) => low.get(app.name) ?? 0;
  for (const root of apps) {
    if (index.has(root.name)) continue;
    const frames: { app: AppSpec; deps: AppSpec[]; next: number }[] = [];
    const open = (app: AppSpec) => {
      index.set(app.name, index.size);
      low.set(app.name, indexOf(app));
      stack.push(app);
      onStack.add(app.name);
      const deps = app.dependsOn.flatMap((name) => {
        const dep = members.has(name) ? byName.get(name) : undefined;
        return dep ? [dep] : [];
      });
      frames.push({ app, deps, next: 0 });
    };
    open(root);
    for (let frame = frames.at(-1); frame; frame = frames.at(-1)) {
      const dep = frame.deps[frame.next];
      if (dep) {
        frame.next += 1;
        if (!index.has(dep.name)) open(dep);
        else if (onStack.has(dep.name)) low.set(frame.app.name, Math.min(lowOf(frame.app), indexOf(dep)));
        continue;
      }
      frames.pop();
      const parent = frames.at(-1);
      if (parent) low.set(parent.app.name, Math.min(lowOf(parent.app), lowOf(frame.app)));
      if (lowOf(frame.app) !== indexOf(frame.app)) continue;
      const component: AppSpec[] = [];
      for (let member = stack.pop(); member; member = stack.pop()) {
        onStack.delete(member.name);
        component.push(member);
        if (member === frame.app) break;
      }
      components.push(component);
    }
  }
  return components;
}
