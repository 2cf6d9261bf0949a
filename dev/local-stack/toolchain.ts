import { spawn } from 'node:child_process';
import { constants } from 'node:fs';
import { access, mkdir, mkdtemp, rename, rm } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { kubernetesVersionLdflags, readControlPlanePins, readHelmPin } from './versions.ts';

export interface ControlPlaneBinaries {
  readonly kubernetesVersion: string;
  readonly etcdVersion: string;
  readonly etcd: string;
  readonly kubeApiserver: string;
  readonly kubeControllerManager: string;
}

export interface ToolchainOptions {
  /** Folder with the pinning Go modules (`kubernetes/`, `etcd/`). */
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

/** The pinned `helm` (chart tests), built from its Go module the first time like the control plane. */
export async function ensureHelm(options: ToolchainOptions): Promise<string> {
  const version = await readHelmPin(options.goDir);
  const dir = join(options.cacheDir, `helm-${version}`);
  const helm = join(dir, 'helm');
  if (!(await isExecutable(helm))) {
    await goBuild({
      ...options,
      label: `helm ${version}`,
      moduleDir: join(options.goDir, 'helm'),
      packages: ['helm.sh/helm/v3/cmd/helm'],
      outputs: ['helm'],
      renames: {},
      targetDir: dir,
      ldflags: `-s -w -X helm.sh/helm/v3/internal/version.version=${version}`,
    });
  }
  return helm;
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

function runGo(build: GoBuild, args: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn('go', args, {
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
    child.once('error', (error: NodeJS.ErrnoException) => {
      reject(
        error.code === 'ENOENT'
          ? new Error(
              'the `go` command was not found: install Go ≥ 1.26 to build the local control plane, ' +
                'or point PLUMBLINE_TEST_KUBECONFIG at an existing cluster',
            )
          : error,
      );
    });
    child.once('close', (code) => {
      if (code === 0) resolve();
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
