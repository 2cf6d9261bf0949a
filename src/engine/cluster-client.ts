import { request as httpRequest } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest, type RequestOptions } from 'node:https';
import { KubeConfig, type KubernetesObject, KubernetesObjectApi } from '@kubernetes/client-node';
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
  /**
   * Every object of a kind in a namespace (`undefined`: a cluster-scoped kind, or with `allNamespaces`
   * every namespace), optionally label-selected, with apiVersion and kind filled in.
   */
  list(
    apiVersion: string,
    kind: string,
    namespace: string | undefined,
    options?: { readonly labelSelector?: string; readonly allNamespaces?: boolean },
  ): Promise<LiveObject[]>;
}

export function loadKubeConfig(source: { kubeconfig?: string | undefined; inCluster?: boolean }): KubeConfig {
  const config = new KubeConfig();
  if (source.inCluster) config.loadFromCluster();
  else if (source.kubeconfig) config.loadFromFile(source.kubeconfig);
  else throw new Error('a cluster needs a kubeconfig or inCluster: true');
  return config;
}

/**
 * Talks to the apiserver with raw JSON. client-node's typed serializers rename or drop fields they do not
 * model (a CRD's `x-kubernetes-preserve-unknown-fields`, for one), so manifests from Git are sent exactly
 * as rendered, and live objects read exactly as served. client-node still provides authentication and
 * discovery (kind → resource, namespaced or not).
 */
export function createClusterClient(config: KubeConfig): ClusterClient {
  const discovery = config.makeApiClient(Discovery);
  const server = config.getCurrentCluster()?.server;
  if (!server) throw new Error('the kubeconfig has no current cluster');
  const agent = new HttpsAgent({ keepAlive: true, maxSockets: 256 });

  /** The object's URL path; with `collection`, the path of its kind in its namespace. */
  const pathOf = async (
    manifest: Pick<Manifest, 'apiVersion' | 'kind' | 'metadata'>,
    collection: false | 'namespace' | 'all-namespaces' = false,
  ): Promise<string> => {
    let resource: { name: string; namespaced: boolean } | undefined;
    try {
      resource = await discovery.lookup(manifest.apiVersion, manifest.kind);
    } catch (error) {
      throw classify(error, manifest);
    }
    if (!resource)
      throw new KubeError(
        'missing-kind',
        `${refOf(manifest)}: kind ${manifest.kind} is not served by the cluster`,
        404,
      );
    const base = manifest.apiVersion.includes('/') ? `/apis/${manifest.apiVersion}` : `/api/${manifest.apiVersion}`;
    const namespace =
      resource.namespaced && collection !== 'all-namespaces'
        ? `/namespaces/${encodeURIComponent(manifest.metadata.namespace ?? 'default')}`
        : '';
    const collectionPath = `${base}${namespace}/${resource.name}`;
    return collection ? collectionPath : `${collectionPath}/${encodeURIComponent(manifest.metadata.name)}`;
  };

  const send = async (
    manifest: Pick<Manifest, 'apiVersion' | 'kind' | 'metadata'>,
    method: string,
    query: Record<string, string>,
    body?: string,
    collection: false | 'namespace' | 'all-namespaces' = false,
  ): Promise<LiveObject> => {
    const url = new URL(`${server}${await pathOf(manifest, collection)}`);
    for (const [key, value] of Object.entries(query)) url.searchParams.set(key, value);
    const options: RequestOptions = { method, headers: { accept: 'application/json' } };
    await config.applyToHTTPSOptions(options);
    options.agent = url.protocol === 'https:' ? agent : undefined;
    if (body !== undefined) Object.assign(options.headers ?? {}, { 'content-type': 'application/apply-patch+yaml' });
    const { status, text } = await new Promise<{ status: number; text: string }>((resolve, reject) => {
      const req = (url.protocol === 'https:' ? httpsRequest : httpRequest)(url, options, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', reject);
      });
      req.setTimeout(60_000, () => req.destroy(new Error('request to the apiserver timed out')));
      req.on('error', reject);
      req.end(body);
    }).catch((error: unknown) => {
      throw classify(error, manifest);
    });
    if (status >= 200 && status < 300) return (text ? JSON.parse(text) : {}) as LiveObject;
    throw classify(Object.assign(new Error(`HTTP ${status}`), { code: status, body: text }), manifest);
  };

  return {
    apply: (manifest, options) =>
      send(
        manifest,
        'PATCH',
        { fieldManager: FIELD_MANAGER, force: String(options.force), ...(options.dryRun ? { dryRun: 'All' } : {}) },
        JSON.stringify(manifest),
      ),
    get: async (manifest) => {
      try {
        return await send(manifest, 'GET', {});
      } catch (error) {
        if (error instanceof KubeError && (error.kind === 'not-found' || error.kind === 'missing-namespace'))
          return undefined;
        throw error;
      }
    },
    list: async (apiVersion, kind, namespace, options = {}) => {
      const what = { apiVersion, kind, metadata: namespace ? { name: '', namespace } : { name: '' } };
      const query = options.labelSelector ? { labelSelector: options.labelSelector } : {};
      const scope = options.allNamespaces ? 'all-namespaces' : 'namespace';
      const list = (await send(what, 'GET', query, undefined, scope)) as { items?: LiveObject[] };
      return (list.items ?? []).map((item) => ({ ...item, apiVersion, kind }));
    },
    delete: async (manifest) => {
      await send(manifest, 'DELETE', { propagationPolicy: 'Background' });
    },
  };
}

/** client-node's discovery (cached per group version, refetched when a kind is missing) made callable. */
class Discovery extends KubernetesObjectApi {
  lookup(apiVersion: string, kind: string) {
    return this.resource(apiVersion, kind);
  }
}

function refOf(what: Pick<Manifest, 'kind' | 'metadata'>): string {
  return what.metadata.namespace
    ? `${what.kind}/${what.metadata.namespace}/${what.metadata.name}`
    : `${what.kind}/${what.metadata.name}`;
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
  // No answer at all (refused, reset, timed out, DNS): the cluster is unreachable, whatever the wrapper says.
  const cause = (error as { cause?: { code?: string } }).cause?.code ?? (error as { code?: unknown }).code;
  if (
    status === undefined &&
    (typeof cause === 'string' ||
      /ECONNREFUSED|ECONNRESET|ETIMEDOUT|EHOSTUNREACH|ENOTFOUND|EAI_AGAIN|socket hang up|timed out/i.test(message))
  ) {
    return new KubeError('unavailable', `${ref}: cluster unreachable: ${message}`, status);
  }
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
  // Expired credentials or missing RBAC are the installation's problem, not the commit's: retry.
  if (status === 401 || status === 403) return new KubeError('unavailable', `${ref}: ${message}`, status);
  // Server-side apply answers 500 when the object does not fit the kind's schema: still the object's fault.
  if (/failed to create typed patch object|field not declared in schema/.test(message)) {
    return new KubeError('rejected', `${ref}: ${message}`, status);
  }
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
