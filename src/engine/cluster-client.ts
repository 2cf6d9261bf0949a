import { KubeConfig, type KubernetesObject, KubernetesObjectApi, PatchStrategy } from '@kubernetes/client-node';
import type { Manifest } from './manifest.ts';

export const FIELD_MANAGER = 'plumbline';

/** What went wrong talking to the apiserver, classified by what the engine can do about it. */
export type KubeErrorKind =
  /** The object is invalid or refused by admission: the commit is wrong. */
  | 'rejected'
  /** Its namespace does not exist (yet). */
  | 'missing-namespace'
  /** Its kind is not served (yet): a CRD is missing or not established. */
  | 'missing-kind'
  /** Another field manager owns fields this apply sets. */
  | 'conflict'
  | 'not-found'
  /** Network, timeouts, 5xx, throttling: retry later. */
  | 'unavailable';

export class KubeError extends Error {
  override readonly name = 'KubeError';
  constructor(
    readonly kind: KubeErrorKind,
    message: string,
    readonly status: number | undefined,
  ) {
    super(message);
  }

  get retryable(): boolean {
    return this.kind === 'unavailable';
  }
}

export type LiveObject = KubernetesObject & Record<string, unknown>;

/** The few calls the engine makes; one implementation talks to a real apiserver, tests may use others. */
export interface ClusterClient {
  /** Server-side apply with field manager `plumbline`. */
  apply(manifest: Manifest, options: { readonly dryRun: boolean; readonly force: boolean }): Promise<LiveObject>;
  get(manifest: Pick<Manifest, 'apiVersion' | 'kind' | 'metadata'>): Promise<LiveObject | undefined>;
  delete(manifest: Pick<Manifest, 'apiVersion' | 'kind' | 'metadata'>): Promise<void>;
}

export function loadKubeConfig(source: { kubeconfig?: string | undefined; inCluster?: boolean }): KubeConfig {
  const config = new KubeConfig();
  if (source.inCluster) config.loadFromCluster();
  else if (source.kubeconfig) config.loadFromFile(source.kubeconfig);
  else throw new Error('a cluster needs a kubeconfig or inCluster: true');
  return config;
}

export function createClusterClient(config: KubeConfig): ClusterClient {
  const api = KubernetesObjectApi.makeApiClient(config);
  const call = async <T>(what: Pick<Manifest, 'kind' | 'metadata'>, request: () => Promise<T>): Promise<T> => {
    try {
      return await request();
    } catch (error) {
      throw classify(error, what);
    }
  };
  return {
    apply: (manifest, options) =>
      call(manifest, () =>
        api.patch<LiveObject>(
          manifest as LiveObject,
          undefined,
          options.dryRun ? 'All' : undefined,
          FIELD_MANAGER,
          options.force,
          PatchStrategy.ServerSideApply,
        ),
      ),
    get: async (manifest) => {
      try {
        return await call(manifest, () =>
          api.read<LiveObject>(manifest as LiveObject & { metadata: { name: string } }),
        );
      } catch (error) {
        if (error instanceof KubeError && (error.kind === 'not-found' || error.kind === 'missing-namespace'))
          return undefined;
        throw error;
      }
    },
    delete: async (manifest) => {
      await call(manifest, () =>
        api.delete(manifest as LiveObject, undefined, undefined, undefined, undefined, 'Background'),
      );
    },
  };
}

/** Maps client-node errors (ApiException with a Status body, or plain network errors) to KubeError. */
export function classify(error: unknown, what: Pick<Manifest, 'kind' | 'metadata'>): KubeError {
  const ref = what.metadata.namespace
    ? `${what.kind}/${what.metadata.namespace}/${what.metadata.name}`
    : `${what.kind}/${what.metadata.name}`;
  const status =
    typeof (error as { code?: unknown }).code === 'number' ? ((error as { code: number }).code as number) : undefined;
  const body = parseStatusBody((error as { body?: unknown }).body);
  const message = body?.message ?? (error instanceof Error ? error.message : String(error));
  if (
    /Unrecognized API version and kind|Failed to fetch resource metadata|no matches for kind|the server could not find the requested resource/i.test(
      message,
    ) &&
    status !== 422
  ) {
    return new KubeError('missing-kind', `${ref}: kind ${what.kind} is not served by the cluster`, status);
  }
  if (status === 404) {
    if (body?.details?.kind === 'namespaces' || /namespaces? "[^"]+" not found/.test(message)) {
      return new KubeError(
        'missing-namespace',
        `${ref}: namespace ${what.metadata.namespace ?? ''} does not exist`,
        status,
      );
    }
    return new KubeError('not-found', `${ref}: not found`, status);
  }
  if (status === 409) return new KubeError('conflict', `${ref}: ${message}`, status);
  if (status !== undefined && status >= 400 && status < 500 && status !== 408 && status !== 429) {
    return new KubeError('rejected', `${ref}: ${message}`, status);
  }
  return new KubeError('unavailable', `${ref}: ${message}`, status);
}

function parseStatusBody(body: unknown): { message?: string; details?: { kind?: string } } | undefined {
  if (typeof body === 'object' && body !== null) return body as { message?: string };
  if (typeof body !== 'string') return undefined;
  try {
    return JSON.parse(body) as { message?: string; details?: { kind?: string } };
  } catch {
    return undefined;
  }
}
