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

/** The Helm 4 version that renders charts (`go/helm4/go.mod`). */
export async function readHelm4Pin(goDir: string): Promise<string> {
  return parseRequiredVersion(await readFile(join(goDir, 'helm4', 'go.mod'), 'utf8'), HELM4_MODULE);
}

/** The OCI registry (CNCF Distribution) version the chart tests push to (`go/registry/go.mod`). */
export async function readRegistryPin(goDir: string): Promise<string> {
  return parseRequiredVersion(await readFile(join(goDir, 'registry', 'go.mod'), 'utf8'), REGISTRY_MODULE);
}

export const HELM4_MODULE = 'helm.sh/helm/v4';
export const REGISTRY_MODULE = 'github.com/distribution/distribution/v3';

/** `-X` flag that makes `helm version` report the pinned version, as Helm's own Makefile does. */
export function helm4VersionLdflags(version: string): string {
  return `-X ${HELM4_MODULE}/internal/version.version=${version}`;
}

/** `-X` flags that make `registry --version` report the pinned version, as Distribution's Makefile does. */
export function registryVersionLdflags(version: string): string {
  return [
    `-X ${REGISTRY_MODULE}/version.version=${version}`,
    `-X ${REGISTRY_MODULE}/version.mainpkg=${REGISTRY_MODULE}`,
  ].join(' ');
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
