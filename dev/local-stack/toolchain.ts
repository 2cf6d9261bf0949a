import { spawn } from 'node:child_process';
import { constants } from 'node:fs';
import { access, mkdir, mkdtemp, rename, rm } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import {
  HELM4_MODULE,
  helm4VersionLdflags,
  kubernetesVersionLdflags,
  REGISTRY_MODULE,
  readControlPlanePins,
  readHelm4Pin,
  readRegistryPin,
  registryVersionLdflags,
} from './versions.ts';

export interface ControlPlaneBinaries {
  readonly kubernetesVersion: string;
  readonly etcdVersion: string;
  readonly etcd: string;
  readonly kubeApiserver: string;
  readonly kubeControllerManager: string;
}

export interface ToolchainOptions {
  /** Folder with the pinning Go modules (`kubernetes/`, `etcd/`, `helm4/`, `registry/`). */
  readonly goDir: string;
  /** Binaries are cached here, one folder per pinned version, so they build once per machine. */
  readonly cacheDir: string;
  readonly log: (line: string) => void;
}

/** Where binaries are cached unless `PLUMBLINE_CACHE_DIR` says otherwise (see ADR 0001). */
export function defaultCacheDir(env: NodeJS.ProcessEnv): string {
  return env.PLUMBLINE_CACHE_DIR ?? join(env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'plumbline');
}

/** Returns the pinned control-plane binaries, building them from Go modules the first time. */
export async function ensureControlPlaneBinaries(options: ToolchainOptions): Promise<ControlPlaneBinaries> {
  const pins = await readControlPlanePins(options.goDir);
  const kubernetesDir = join(options.cacheDir, `kubernetes-${pins.kubernetes}`);
  const etcdDir = join(options.cacheDir, `etcd-${pins.etcd}`);
  const binaries: ControlPlaneBinaries = {
    kubernetesVersion: pins.kubernetes,
    etcdVersion: pins.etcd,
    etcd: join(etcdDir, 'etcd'),
    kubeApiserver: join(kubernetesDir, 'kube-apiserver'),
    kubeControllerManager: join(kubernetesDir, 'kube-controller-manager'),
  };
  if (!(await isExecutable(binaries.etcd))) {
    await goBuild({
      ...options,
      label: `etcd ${pins.etcd}`,
      moduleDir: join(options.goDir, 'etcd'),
      packages: ['go.etcd.io/etcd/server/v3'],
      outputs: ['server'],
      renames: { server: 'etcd' },
      targetDir: etcdDir,
      ldflags: '-s -w',
    });
  }
  if (!(await isExecutable(binaries.kubeApiserver)) || !(await isExecutable(binaries.kubeControllerManager))) {
    await goBuild({
      ...options,
      label: `kube-apiserver and kube-controller-manager ${pins.kubernetes}`,
      moduleDir: join(options.goDir, 'kubernetes'),
      packages: ['k8s.io/kubernetes/cmd/kube-apiserver', 'k8s.io/kubernetes/cmd/kube-controller-manager'],
      outputs: ['kube-apiserver', 'kube-controller-manager'],
      renames: {},
      targetDir: kubernetesDir,
      ldflags: `-s -w ${kubernetesVersionLdflags(pins.kubernetes)}`,
    });
  }
  return binaries;
}

export interface PinnedBinary {
  readonly version: string;
  readonly path: string;
}

/** Helm 4 (`go/helm4`), which renders charts and pushes them to the test registry; built once per machine. */
export async function ensureHelm4(options: ToolchainOptions): Promise<PinnedBinary> {
  const version = await readHelm4Pin(options.goDir);
  const dir = join(options.cacheDir, `helm-${version}`);
  const path = join(dir, 'helm');
  if (!(await isExecutable(path))) {
    await goBuild({
      ...options,
      label: `helm ${version}`,
      moduleDir: join(options.goDir, 'helm4'),
      packages: [`${HELM4_MODULE}/cmd/helm`],
      outputs: ['helm'],
      renames: {},
      targetDir: dir,
      ldflags: `-s -w ${helm4VersionLdflags(version)}`,
    });
  }
  return { version, path };
}

/** The OCI registry (CNCF Distribution, `go/registry`) the chart tests push to; built once per machine. */
export async function ensureRegistry(options: ToolchainOptions): Promise<PinnedBinary> {
  const version = await readRegistryPin(options.goDir);
  const dir = join(options.cacheDir, `registry-${version}`);
  const path = join(dir, 'registry');
  if (!(await isExecutable(path))) {
    await goBuild({
      ...options,
      label: `registry ${version}`,
      moduleDir: join(options.goDir, 'registry'),
      packages: [`${REGISTRY_MODULE}/cmd/registry`],
      outputs: ['registry'],
      renames: {},
      targetDir: dir,
      ldflags: `-s -w ${registryVersionLdflags(version)}`,
    });
  }
  return { version, path };
}

interface GoBuild extends ToolchainOptions {
  readonly label: string;
  readonly moduleDir: string;
  readonly packages: readonly string[];
  /** File names `go build -o <dir>/` writes (the last element of each package path). */
  readonly outputs: readonly string[];
  readonly renames: Readonly<Record<string, string>>;
  readonly targetDir: string;
  readonly ldflags: string;
}

/** Builds into a scratch folder and renames into place, so a crash or a concurrent build never leaves half a binary. */
async function goBuild(build: GoBuild): Promise<void> {
  await mkdir(build.cacheDir, { recursive: true });
  const scratch = await mkdtemp(join(build.cacheDir, '.build-'));
  build.log(`building ${build.label} from Go modules (first run on this machine; several minutes on 2 cores)`);
  const started = Date.now();
  try {
    await runGo(build, ['build', '-v', '-trimpath', '-ldflags', build.ldflags, '-o', `${scratch}/`, ...build.packages]);
    await mkdir(build.targetDir, { recursive: true });
    for (const output of build.outputs) {
      await rename(join(scratch, output), join(build.targetDir, build.renames[output] ?? output));
    }
    build.log(`built ${build.label} in ${Math.round((Date.now() - started) / 1000)} s → ${build.targetDir}`);
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
}

const GO_MISSING =
  'the `go` command was not found: install Go ≥ 1.26 to build the local control plane, ' +
  'or point PLUMBLINE_TEST_KUBECONFIG at an existing cluster';

function runGo(build: GoBuild, args: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    // At low priority: the machines have 2 cores, shared with the tests that may be running meanwhile.
    const child = spawn('nice', ['-n', '10', 'go', ...args], {
      cwd: build.moduleDir,
      stdio: ['ignore', 'ignore', 'pipe'],
      env: { ...process.env, CGO_ENABLED: '0', GOFLAGS: '-mod=readonly' },
    });
    const errors: string[] = [];
    let compiled = 0;
    let lastReport = Date.now();
    createInterface({ input: child.stderr }).on('line', (line) => {
      // `go build -v` names each package as it compiles it; anything else is a diagnostic worth keeping.
      if (/^[\w.-]+(\/[\w.~+-]+)+$|^[\w-]+$/.test(line)) compiled += 1;
      else errors.push(line);
      if (Date.now() - lastReport > 15_000) {
        lastReport = Date.now();
        build.log(`  … ${build.label}: ${compiled} packages compiled so far`);
      }
    });
    child.once('error', reject);
    child.once('close', (code) => {
      if (code === 0) resolve();
      // 127: `nice` found no `go` to run.
      else if (code === 127) reject(new Error(GO_MISSING));
      else reject(new Error(`go ${args[0]} of ${build.label} failed (exit ${code}):\n${errors.slice(-30).join('\n')}`));
    });
  });
}

async function isExecutable(path: string): Promise<boolean> {
  return access(path, constants.X_OK).then(
    () => true,
    () => false,
  );
}
