import { readFile } from 'node:fs/promises';
import { join } from 'node:path';

/** The control-plane versions the local stack builds. The Go modules under `go/` are the only pin. */
export interface ControlPlanePins {
  readonly kubernetes: string;
  readonly etcd: string;
}

/** Reads the version of `module` from a go.mod's `require` line (single-line or block form). */
export function parseRequiredVersion(goMod: string, module: string): string {
  const escaped = module.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const match = new RegExp(`^\\s*(?:require\\s+)?${escaped}\\s+(v\\S+)`, 'm').exec(goMod);
  if (!match?.[1]) throw new Error(`go.mod does not require ${module}`);
  return match[1];
}

export async function readControlPlanePins(goDir: string): Promise<ControlPlanePins> {
  const [kubernetesMod, etcdMod] = await Promise.all([
    readFile(join(goDir, 'kubernetes', 'go.mod'), 'utf8'),
    readFile(join(goDir, 'etcd', 'go.mod'), 'utf8'),
  ]);
  return {
    kubernetes: parseRequiredVersion(kubernetesMod, 'k8s.io/kubernetes'),
    etcd: parseRequiredVersion(etcdMod, 'go.etcd.io/etcd/server/v3'),
  };
}

/** The helm version the chart tests use (`go/helm/go.mod`). */
export async function readHelmPin(goDir: string): Promise<string> {
  return parseRequiredVersion(await readFile(join(goDir, 'helm', 'go.mod'), 'utf8'), 'helm.sh/helm/v3');
}

/** `-X` flags that make the binaries report the pinned version, as Kubernetes' own release build does. */
export function kubernetesVersionLdflags(version: string): string {
  const [major, minor] = version.replace(/^v/, '').split('.');
  return [
    `-X k8s.io/component-base/version.gitVersion=${version}`,
    `-X k8s.io/component-base/version.gitMajor=${major ?? ''}`,
    `-X k8s.io/component-base/version.gitMinor=${minor ?? ''}`,
  ].join(' ');
}
