import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * What kustomize runs as helm (`kustomize build --enable-helm --helm-command <gate>`). It is a fixed
 * POSIX sh program: it interprets nothing it is given — every argument is compared, never evaluated, and
 * passed on to helm as is ("$@") — and it lets kustomize do only what a render needs:
 *
 * - `helm version`: answered here. kustomize 5.5 (kubectl 1.32's, and the image's) asks
 *   `helm version -c --short` and accepts only a major version 3; Helm 4 has no `-c`. kustomize 5.8 drops
 *   the flag and accepts 4 (kubernetes-sigs/kustomize 54848c1); the `template` flags kustomize passes are
 *   the same for Helm 3 and 4.
 * - `helm template`: only with the flags kustomize 5.5–5.8 passes (`-f` with a local file), a release name
 *   that cannot be read as anything else, and exactly one chart folder from the list Plumbline checked
 *   (PLUMBLINE_GATE_CHARTS) — nothing a kustomization writes can become `--set-file /etc/…`, `--repo`,
 *   `--post-renderer` or an unchecked chart. helm's homes are put back to Plumbline's empty ones (kustomize
 *   points HELM_CONFIG_HOME, HELM_CACHE_HOME and HELM_DATA_HOME at `helmGlobals.configHome`).
 * - anything else, `helm pull` first of all, is refused: charts are fetched by Plumbline, under the
 *   operator's chart sources, before kustomize runs.
 */
const GATE_SCRIPT = `#!/bin/sh
# Plumbline's helm for kustomize: see src/engine/kustomize-helm-gate.ts.
set -u
refuse() {
  printf 'plumbline: %s\\n' "$1" >&2
  exit 1
}
case "\${1-}" in
version)
  printf 'v3.99.99+plumbline.gate\\n'
  exit 0
  ;;
template) shift ;;
pull) refuse "kustomize asked helm to pull a chart that is not in its chartHome: Plumbline fetches charts itself (helmCharts entries with a repo and an exact version, from the operator's chart sources), helm never does" ;;
*) refuse "kustomize may only run helm template" ;;
esac
listed() {
  while IFS= read -r chart; do
    [ "$chart" = "$1" ] && return 0
  done < "$PLUMBLINE_GATE_CHARTS"
  return 1
}
expect=
charts=0
names=0
for arg do
  if [ -n "$expect" ]; then
    if [ "$expect" = file ]; then
      case "$arg" in
      /*) ;;
      *) refuse "helm template -f takes a local file here" ;;
      esac
    fi
    expect=
    continue
  fi
  case "$arg" in
  -f) expect=file ;;
  --namespace | --name-template | --api-versions | --kube-version) expect=value ;;
  --generate-name | --include-crds | --skip-tests | --no-hooks | --debug | --devel) ;;
  -*) refuse "helm template $arg is not a flag kustomize passes" ;;
  *)
    if listed "$arg"; then
      charts=$((charts + 1))
    else
      case "$arg" in
      */*) refuse "chart folder $arg was not checked by Plumbline" ;;
      '' | -* | *[!a-z0-9.-]*) refuse "release name $arg is not a Helm release name" ;;
      esac
      [ "\${#arg}" -le 53 ] || refuse "release name $arg is longer than 53 characters"
      [ "$charts" -eq 0 ] && [ "$names" -eq 0 ] || refuse "helm template takes one release name, before the chart"
      names=1
    fi
    ;;
  esac
done
[ "$charts" -eq 1 ] || refuse "helm template needs exactly one chart folder Plumbline checked"
HELM_CONFIG_HOME="$PLUMBLINE_GATE_HOME/config"
HELM_CACHE_HOME="$PLUMBLINE_GATE_HOME/cache"
HELM_DATA_HOME="$PLUMBLINE_GATE_HOME/data"
export HELM_CONFIG_HOME HELM_CACHE_HOME HELM_DATA_HOME
exec "$PLUMBLINE_GATE_HELM" template "$@"
`;

export interface KustomizeHelmGate {
  /** The program to give kustomize as `--helm-command`. */
  readonly command: string;
  /**
   * For kustomize's environment (which helm inherits): the gate's settings, an empty HOME and helm homes
   * (no plugin, repository, registry login or cluster of the machine's user), and TMPDIR, where kustomize
   * writes the values it hands helm — all inside the gate's folder.
   */
  readonly env: Readonly<Record<string, string>>;
  /** The folder holding all of it: removed by `remove`. */
  readonly dir: string;
  remove(): Promise<void>;
}

/**
 * Writes a gate for one kustomize run into a folder of its own under the system's temp folder: `helm`
 * the given binary (Helm 3 or 4), `charts` the absolute chart folders kustomize may template (as
 * kustomize names them: `<kustomization folder>/<chartHome>/…`).
 */
export async function createKustomizeHelmGate(options: {
  readonly helm: string;
  readonly charts: readonly string[];
}): Promise<KustomizeHelmGate> {
  // One folder a line: a name with a line break (or any control character) could not be listed exactly.
  const unlistable = options.charts.find(
    (chart) => [...chart].some((c) => (c.codePointAt(0) ?? 0) < 0x20) || !chart.startsWith('/'),
  );
  if (unlistable !== undefined) throw new Error(`not an absolute chart folder for the helm gate: ${unlistable}`);
  const dir = await mkdtemp(join(tmpdir(), 'plumbline-kustomize-helm-'));
  const home = join(dir, 'home');
  const command = join(dir, 'helm');
  const list = join(dir, 'charts');
  await Promise.all([mkdir(join(home, 'plugins'), { recursive: true }), mkdir(join(dir, 'tmp'))]);
  await writeFile(list, options.charts.map((chart) => `${chart}\n`).join(''), { mode: 0o600 });
  await writeFile(command, GATE_SCRIPT, { mode: 0o700 });
  await chmod(command, 0o700);
  return {
    command,
    dir,
    env: {
      PLUMBLINE_GATE_HELM: options.helm,
      PLUMBLINE_GATE_CHARTS: list,
      PLUMBLINE_GATE_HOME: home,
      HOME: home,
      HELM_CACHE_HOME: join(home, 'cache'),
      HELM_CONFIG_HOME: join(home, 'config'),
      HELM_CONTENT_CACHE: join(home, 'content'),
      HELM_DATA_HOME: join(home, 'data'),
      HELM_PLUGINS: join(home, 'plugins'),
      HELM_REGISTRY_CONFIG: join(home, 'registry.json'),
      HELM_REPOSITORY_CONFIG: join(home, 'repositories.yaml'),
      HELM_REPOSITORY_CACHE: join(home, 'repository'),
      KUBECONFIG: join(home, 'no-kubeconfig'),
      TMPDIR: join(dir, 'tmp'),
    },
    remove: () => rm(dir, { recursive: true, force: true }),
  };
}
