import { request as httpRequest } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest, type RequestOptions } from 'node:https';
import { KubeConfig, type KubernetesObject, KubernetesObjectApi } from '@kubernetes/client-node';
import { z } from 'zod';
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
  /** A precondition failed: the object changed (or was replaced) since it was read. */
  | 'modified'
  | 'not-found'
  /** Network, timeouts, 5xx, throttling: retry later. */
  | 'unavailable';

/** One entry of a Status's `details.causes`: for a field conflict, `reason: FieldManagerConflict`. */
export interface StatusCause {
  readonly reason?: string | undefined;
  readonly message?: string | undefined;
  readonly field?: string | undefined;
}

export class KubeError extends Error {
  override readonly name = 'KubeError';
  constructor(
    readonly kind: KubeErrorKind,
    message: string,
    readonly status: number | undefined,
    /** The apiserver's Status `details.causes`, when it answered with one. */
    readonly causes: readonly StatusCause[] = [],
  ) {
    super(message);
  }

  get retryable(): boolean {
    return this.kind === 'unavailable';
  }
}

/**
 * The field managers a server-side apply conflicted with, from the Status's `FieldManagerConflict` causes
 * (each cause's message is `conflict with "<manager>"`, optionally `using <apiVersion>`). Pure.
 */
export function conflictingManagers(error: KubeError): string[] {
  const managers = error.causes
    .filter((cause) => cause.reason === 'FieldManagerConflict')
    .map((cause) => /conflict with "([^"]+)"/.exec(cause.message ?? '')?.[1])
    .filter((manager): manager is string => manager !== undefined);
  return [...new Set(managers)];
}

export type LiveObject = KubernetesObject & Record<string, unknown>;

/** The few calls the engine makes; one implementation talks to a real apiserver, tests may use others. */
export interface ClusterClient {
  /** Server-side apply with field manager `plumbline`. */
  apply(
    manifest: Manifest,
    options: WriteOptions & { readonly dryRun: boolean; readonly force: boolean },
  ): Promise<LiveObject>;
  get(manifest: Pick<Manifest, 'apiVersion' | 'kind' | 'metadata'>): Promise<LiveObject | undefined>;
  /** With `preconditions`, the apiserver deletes only that very object (uid) in that very version. */
  delete(
    manifest: Pick<Manifest, 'apiVersion' | 'kind' | 'metadata'>,
    options?: WriteOptions & { readonly preconditions?: Preconditions },
  ): Promise<void>;
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
  /**
   * What Helm's `.Capabilities` says of the cluster: its version and every API it serves, as `group/version`
   * and `group/version/Kind` (what `helm template --api-versions` takes). Reads discovery only.
   */
  capabilities?(): Promise<ClusterCapabilities>;
  /** Whether a kind is namespaced, from discovery; undefined when the cluster does not serve it. */
  scopeOf?(apiVersion: string, kind: string): Promise<'namespaced' | 'cluster' | undefined>;
  /**
   * The client for Plumbline's own records (inventory, baselines in `plumbline-system`): Plumbline's own
   * identity even when this client impersonates the registry entry's ServiceAccount. Absent: this client.
   */
  forRecords?(): ClusterClient;
}

export interface WriteOptions {
  /**
   * Called synchronously at the last moment before the request leaves (after any connection is set up);
   * when it throws, nothing is sent and the call rejects with its error as is. The fence of the cluster
   * lock: a process paused between its fence check and the send finds out here.
   */
  readonly guard?: (() => void) | undefined;
}

export interface Preconditions {
  readonly uid?: string | undefined;
  readonly resourceVersion?: string | undefined;
}

export interface ClusterClientOptions {
  /**
   * The registry's `serviceAccount` (`namespace/name`, or `name` in plumbline-system): every request for
   * repository objects carries `Impersonate-User: system:serviceaccount:<namespace>:<name>`, so the
   * apiserver's RBAC for that account is the final wall. The apiserver adds the account's groups itself.
   */
  readonly serviceAccount?: string | undefined;
  /**
   * Told of every request that left for the apiserver (discovery's own excepted): its HTTP verb, the
   * answer's status (undefined when none came) and how long it took. The worker's metrics; a plain callback.
   */
  readonly observe?: ((verb: string, code: number | undefined, seconds: number) => void) | undefined;
}

/** `system:serviceaccount:<namespace>:<name>` for the registry's `serviceAccount`. Pure. */
export function serviceAccountUser(serviceAccount: string): string {
  const [namespace, name] = serviceAccount.includes('/')
    ? serviceAccount.split('/', 2)
    : ['plumbline-system', serviceAccount];
  return `system:serviceaccount:${namespace}:${name}`;
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
export function createClusterClient(config: KubeConfig, options: ClusterClientOptions = {}): ClusterClient {
  const discovery = config.makeApiClient(Discovery);
  const server = config.getCurrentCluster()?.server;
  if (!server) throw new Error('the kubeconfig has no current cluster');
  const agent = new HttpsAgent({ keepAlive: true, maxSockets: 256 });
  const shared = { config, discovery, server, agent, observe: options.observe };
  const own = clientAs(shared, undefined);
  if (!options.serviceAccount) return own;
  const impersonated = clientAs(shared, serviceAccountUser(options.serviceAccount));
  return { ...impersonated, forRecords: () => own };
}

/**
 * One identity's client. Discovery (which every authenticated identity may read) always runs as
 * Plumbline; object requests carry the impersonation headers when `user` is set.
 */
function clientAs(
  shared: {
    readonly config: KubeConfig;
    readonly discovery: Discovery;
    readonly server: string;
    readonly agent: HttpsAgent;
    readonly observe?: ClusterClientOptions['observe'];
  },
  user: string | undefined,
): ClusterClient {
  const { config, discovery, server, agent, observe } = shared;

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
    body?: { readonly text: string; readonly type: string },
    collection: false | 'namespace' | 'all-namespaces' = false,
    guard?: () => void,
  ): Promise<LiveObject> => request(manifest, await pathOf(manifest, collection), { method, query, body, guard });

  /** One request to the apiserver; `what` names the subject in errors. */
  const request = async (
    what: Pick<Manifest, 'kind' | 'metadata'>,
    path: string,
    call: {
      readonly method: string;
      readonly query?: Record<string, string>;
      readonly body?: { readonly text: string; readonly type: string } | undefined;
      readonly guard?: (() => void) | undefined;
      readonly accept?: string;
    },
  ): Promise<LiveObject> => {
    const { method, body, guard } = call;
    const manifest = what;
    const url = new URL(`${server}${path}`);
    for (const [key, value] of Object.entries(call.query ?? {})) url.searchParams.set(key, value);
    const options: RequestOptions = { method, headers: { accept: call.accept ?? 'application/json' } };
    await config.applyToHTTPSOptions(options);
    options.agent = url.protocol === 'https:' ? agent : undefined;
    // An explicit length: Node frames a DELETE's body neither by length nor chunked on its own.
    if (body !== undefined)
      Object.assign(options.headers ?? {}, {
        'content-type': body.type,
        'content-length': Buffer.byteLength(body.text),
      });
    if (user !== undefined) Object.assign(options.headers ?? {}, { 'Impersonate-User': user });
    let refused: unknown;
    const started = performance.now();
    const observed = (code: number | undefined) => observe?.(method, code, (performance.now() - started) / 1000);
    const { status, text } = await new Promise<{ status: number; text: string }>((resolve, reject) => {
      const req = (url.protocol === 'https:' ? httpsRequest : httpRequest)(url, options, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', reject);
      });
      req.setTimeout(60_000, () => req.destroy(new Error('request to the apiserver timed out')));
      req.on('error', reject);
      if (!guard) {
        req.end(body?.text);
        return;
      }
      const sendNow = () => {
        try {
          guard();
        } catch (error) {
          refused = error;
          req.destroy(error as Error);
          return;
        }
        req.end(body?.text);
      };
      // A new connection: the guard runs once it is up, right before the bytes go out.
      req.once('socket', (socket) => {
        if (!socket.connecting) sendNow();
        else socket.once(url.protocol === 'https:' ? 'secureConnect' : 'connect', sendNow);
      });
    }).catch((error: unknown) => {
      // A write the guard refused never left: nothing to observe.
      if (refused !== undefined && error === refused) throw error;
      observed(undefined);
      throw classify(error, manifest);
    });
    observed(status);
    if (status >= 200 && status < 300) return (text ? JSON.parse(text) : {}) as LiveObject;
    throw classify(Object.assign(new Error(`HTTP ${status}`), { code: status, body: text }), manifest, user);
  };

  let capabilities: { readonly at: number; readonly value: Promise<ClusterCapabilities> } | undefined;
  const readCapabilities = async (): Promise<ClusterCapabilities> => {
    const what = { kind: 'Discovery', metadata: { name: 'apiserver' } };
    const version = (await request(what, '/version', { method: 'GET' })) as { gitVersion?: unknown };
    const core = (await request(what, '/api', { method: 'GET' })) as { versions?: unknown };
    const groups = (await request(what, '/apis', { method: 'GET', accept: AGGREGATED_DISCOVERY })) as unknown;
    const coreResources = await Promise.all(
      (Array.isArray(core.versions) ? core.versions : []).map(async (v) => ({
        version: String(v),
        list: (await request(what, `/api/${String(v)}`, { method: 'GET' })) as unknown,
      })),
    );
    return capabilitiesOf(version.gitVersion, coreResources, groups);
  };

  return {
    apply: (manifest, options) =>
      send(
        manifest,
        'PATCH',
        { fieldManager: FIELD_MANAGER, force: String(options.force), ...(options.dryRun ? { dryRun: 'All' } : {}) },
        { text: JSON.stringify(manifest), type: 'application/apply-patch+yaml' },
        false,
        options.guard,
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
    delete: async (manifest, options = {}) => {
      const body = {
        apiVersion: 'v1',
        kind: 'DeleteOptions',
        propagationPolicy: 'Background',
        ...(options.preconditions ? { preconditions: options.preconditions } : {}),
      };
      await send(
        manifest,
        'DELETE',
        {},
        { text: JSON.stringify(body), type: 'application/json' },
        false,
        options.guard,
      );
    },
    capabilities: () => {
      // Discovery changes with CRDs and upgrades, not per render: one read per client every few minutes.
      if (!capabilities || Date.now() - capabilities.at > CAPABILITIES_TTL_MS) {
        const value = readCapabilities();
        capabilities = { at: Date.now(), value };
        value.catch(() => {
          if (capabilities?.value === value) capabilities = undefined;
        });
      }
      return capabilities.value;
    },
    scopeOf: async (apiVersion, kind) => {
      const what = { apiVersion, kind, metadata: { name: '' } };
      try {
        const resource = await discovery.lookup(apiVersion, kind);
        return resource ? (resource.namespaced ? 'namespaced' : 'cluster') : undefined;
      } catch (error) {
        const classified = classify(error, what);
        if (classified.retryable) throw classified;
        return undefined;
      }
    },
  };
}

export interface ClusterCapabilities {
  /** `v1.36.3`. */
  readonly kubeVersion: string;
  /** `v1`, `v1/ConfigMap`, `apps/v1`, `apps/v1/Deployment`, …, sorted. */
  readonly apiVersions: readonly string[];
}

/** Aggregated discovery (GA in Kubernetes 1.30): every group, version and resource in one answer. */
const CAPABILITIES_TTL_MS = 5 * 60_000;

const AGGREGATED_DISCOVERY =
  'application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList';

const CoreResourceList = z.object({
  resources: z.array(z.object({ name: z.string(), kind: z.string() })).catch([]),
});
const GroupDiscoveryList = z.object({
  items: z
    .array(
      z.object({
        metadata: z.object({ name: z.string().catch('') }),
        versions: z
          .array(
            z.object({
              version: z.string(),
              resources: z.array(z.object({ responseKind: z.object({ kind: z.string() }).optional() })).catch([]),
            }),
          )
          .catch([]),
      }),
    )
    .catch([]),
});

const LegacyGroupList = z.object({
  groups: z.array(z.object({ versions: z.array(z.object({ groupVersion: z.string() })).catch([]) })).catch([]),
});

/** The capabilities from `/version`, the core resource lists and the aggregated `/apis` discovery. Pure. */
export function capabilitiesOf(
  gitVersion: unknown,
  core: readonly { readonly version: string; readonly list: unknown }[],
  groups: unknown,
): ClusterCapabilities {
  if (typeof gitVersion !== 'string' || !/^v\d+\.\d+/.test(gitVersion))
    throw new KubeError('unavailable', 'discovery: the apiserver did not report its version', undefined);
  const apiVersions = new Set<string>();
  for (const { version, list } of core) {
    apiVersions.add(version);
    for (const resource of CoreResourceList.parse(list).resources)
      if (!resource.name.includes('/')) apiVersions.add(`${version}/${resource.kind}`);
  }
  // A server without aggregated discovery answers with a plain APIGroupList: versions, no kinds.
  for (const group of LegacyGroupList.parse(groups).groups)
    for (const version of group.versions) apiVersions.add(version.groupVersion);
  for (const group of GroupDiscoveryList.parse(groups).items) {
    for (const version of group.versions) {
      const groupVersion = `${group.metadata.name}/${version.version}`;
      apiVersions.add(groupVersion);
      for (const resource of version.resources)
        if (resource.responseKind?.kind) apiVersions.add(`${groupVersion}/${resource.responseKind.kind}`);
    }
  }
  return { kubeVersion: gitVersion.replace(/[-+].*$/, ''), apiVersions: [...apiVersions].sort() };
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

/**
 * Maps client-node errors (ApiException with a Status body, or plain network errors) to KubeError.
 * `impersonating`: the user requests were sent as; its RBAC refusing an object is the commit's problem.
 */
export function classify(error: unknown, what: Pick<Manifest, 'kind' | 'metadata'>, impersonating?: string): KubeError {
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
    if (body?.details?.kind === 'namespaces') {
      return new KubeError(
        'missing-namespace',
        `${ref}: namespace ${what.metadata.namespace ?? ''} does not exist`,
        status,
      );
    }
    return new KubeError('not-found', `${ref}: not found`, status);
  }
  const causes = body?.details?.causes ?? [];
  // 409 is either a field conflict of server-side apply (its causes say so) or a failed precondition.
  if (status === 409 && causes.some((cause) => cause.reason === 'FieldManagerConflict'))
    return new KubeError('conflict', `${ref}: ${message}`, status, causes);
  if (status === 409) return new KubeError('modified', `${ref}: ${message}`, status, causes);
  // The registry's ServiceAccount may not write this object: the tenancy wall, so the commit is wrong.
  if (status === 403 && impersonating && message.includes(`User "${impersonating}" cannot`)) {
    return new KubeError(
      'rejected',
      `${ref}: refused by the cluster's RBAC for ${impersonating}, the registry entry's serviceAccount: ${message}`,
      status,
    );
  }
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

/** The apiserver's `Status` answer, permissively: the fields the classification reads. */
const StatusBody = z.object({
  message: z.string().optional().catch(undefined),
  reason: z.string().optional().catch(undefined),
  details: z
    .object({
      kind: z.string().optional().catch(undefined),
      causes: z
        .array(
          z.object({
            reason: z.string().optional().catch(undefined),
            message: z.string().optional().catch(undefined),
            field: z.string().optional().catch(undefined),
          }),
        )
        .optional()
        .catch(undefined),
    })
    .optional()
    .catch(undefined),
});

function parseStatusBody(body: unknown): z.infer<typeof StatusBody> | undefined {
  let value = body;
  if (typeof body === 'string') {
    try {
      value = JSON.parse(body);
    } catch {
      return undefined;
    }
  }
  const parsed = StatusBody.safeParse(value);
  return parsed.success ? parsed.data : undefined;
}
