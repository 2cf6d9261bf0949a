import {
  CoreV1Api,
  KubeConfig,
  type KubernetesObject,
  KubernetesObjectApi,
  PatchStrategy,
} from '@kubernetes/client-node';
import { uniqueName } from './environment.ts';

export interface KubeClients {
  readonly config: KubeConfig;
  readonly core: CoreV1Api;
  readonly objects: KubernetesObjectApi;
}

export function kubeClients(kubeconfigPath: string): KubeClients {
  const config = new KubeConfig();
  config.loadFromFile(kubeconfigPath);
  return {
    config,
    core: config.makeApiClient(CoreV1Api),
    objects: KubernetesObjectApi.makeApiClient(config),
  };
}

/** Creates a namespace with a unique name; the returned function deletes it (test cleanup). */
export async function createTestNamespace(core: CoreV1Api, prefix = 'test'): Promise<[string, () => Promise<void>]> {
  const name = uniqueName(prefix);
  await core.createNamespace({ body: { metadata: { name, labels: { 'plumbline.dev/test': 'true' } } } });
  return [name, () => core.deleteNamespace({ name }).then(() => undefined)];
}

/** A server-side apply under another field manager: how tests play `kubectl edit`, a controller, or us. */
export function applyAsManager<T extends KubernetesObject>(
  clients: KubeClients,
  manager: string,
  object: T,
): Promise<T> {
  return clients.objects.patch<T>(object, undefined, undefined, manager, true, PatchStrategy.ServerSideApply);
}

/** A kubeconfig for a cluster nobody answers for (a free loopback port): "the cluster is down". */
export async function deadClusterKubeconfig(dir: string): Promise<string> {
  const { writeFile } = await import('node:fs/promises');
  const { join } = await import('node:path');
  const { freePort } = await import('../../dev/local-stack/free-port.ts');
  const file = join(dir, `dead-${await freePort()}.kubeconfig`);
  const port = await freePort();
  await writeFile(
    file,
    `apiVersion: v1\nkind: Config\nclusters: [{name: dead, cluster: {server: "https://127.0.0.1:${port}", insecure-skip-tls-verify: true}}]\nusers: [{name: u, user: {token: t}}]\ncontexts: [{name: dead, context: {cluster: dead, user: u}}]\ncurrent-context: dead\n`,
  );
  return file;
}
