import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { request } from 'node:https';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { freePort } from './free-port.ts';
import { type ProcessRecord, startDaemon } from './processes.ts';
import type { ControlPlaneBinaries } from './toolchain.ts';

export interface EtcdRecord extends ProcessRecord {
  readonly url: string;
}

export interface ClusterRecord {
  readonly name: string;
  readonly server: string;
  readonly kubeconfig: string;
  readonly apiserver: ProcessRecord;
  readonly controllerManager: ProcessRecord;
}

/** Files every apiserver of the stack shares: the service-account key pair and the static admin token. */
export interface SharedCredentials {
  readonly serviceAccountKey: string;
  readonly serviceAccountPub: string;
  readonly tokenFile: string;
  readonly token: string;
}

export async function writeSharedCredentials(dir: string): Promise<SharedCredentials> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const token = randomBytes(24).toString('hex');
  const credentials: SharedCredentials = {
    serviceAccountKey: join(dir, 'sa.key'),
    serviceAccountPub: join(dir, 'sa.pub'),
    tokenFile: join(dir, 'tokens.csv'),
    token,
  };
  await writeFile(credentials.serviceAccountKey, privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
  await writeFile(credentials.serviceAccountPub, publicKey.export({ type: 'spki', format: 'pem' }));
  await writeFile(credentials.tokenFile, `${token},admin,admin,"system:masters"\n`, { mode: 0o600 });
  return credentials;
}

export async function startEtcd(
  binaries: ControlPlaneBinaries,
  dir: string,
  ports: readonly [number, number],
): Promise<EtcdRecord> {
  const url = `http://127.0.0.1:${ports[0]}`;
  const etcd = await startDaemon({
    what: 'etcd',
    timeoutMs: 30_000,
    ready: async () => (await fetch(`${url}/health`)).ok,
    logFile: join(dir, 'etcd.log'),
    command: binaries.etcd,
    args: [
      '--name=plumbline-local',
      `--data-dir=${join(dir, 'etcd-data')}`,
      `--listen-client-urls=${url}`,
      `--advertise-client-urls=${url}`,
      `--listen-peer-urls=http://127.0.0.1:${ports[1]}`,
      `--initial-advertise-peer-urls=http://127.0.0.1:${ports[1]}`,
      `--initial-cluster=plumbline-local=http://127.0.0.1:${ports[1]}`,
      '--unsafe-no-fsync',
      '--log-level=warn',
    ],
  });
  return { ...etcd, url };
}

export interface ApiserverSpec {
  readonly name: string;
  readonly dir: string;
  readonly port: number;
  readonly etcd: EtcdRecord;
  readonly credentials: SharedCredentials;
}

/** Starts one kube-apiserver (its own etcd prefix, so several clusters share one etcd) and writes its kubeconfig. */
export async function startCluster(binaries: ControlPlaneBinaries, spec: ApiserverSpec): Promise<ClusterRecord> {
  const certDir = join(spec.dir, 'certs');
  await mkdir(certDir, { recursive: true });
  const server = `https://127.0.0.1:${spec.port}`;
  const caFile = join(certDir, 'apiserver.crt');
  const apiserver = await startDaemon({
    what: `kube-apiserver for cluster ${spec.name}`,
    timeoutMs: 120_000,
    ready: async () =>
      (await getStatus(`${server}/readyz`, { ca: await readFile(caFile), token: spec.credentials.token })) === 200,
    logFile: join(spec.dir, 'kube-apiserver.log'),
    command: binaries.kubeApiserver,
    args: [
      `--etcd-servers=${spec.etcd.url}`,
      `--etcd-prefix=/${spec.name}`,
      `--secure-port=${spec.port}`,
      '--bind-address=127.0.0.1',
      `--cert-dir=${certDir}`,
      '--service-cluster-ip-range=10.0.0.0/24',
      '--allow-privileged=true',
      '--authorization-mode=RBAC',
      '--disable-admission-plugins=ServiceAccount',
      `--service-account-issuer=${server}/`,
      `--service-account-key-file=${spec.credentials.serviceAccountPub}`,
      `--service-account-signing-key-file=${spec.credentials.serviceAccountKey}`,
      `--token-auth-file=${spec.credentials.tokenFile}`,
    ],
  });
  const kubeconfig = join(spec.dir, 'kubeconfig');
  await writeFile(kubeconfig, renderKubeconfig(spec.name, server, await readFile(caFile), spec.credentials.token), {
    mode: 0o600,
  });
  const controllerManager = await startControllerManager(binaries, spec.dir, kubeconfig);
  return { name: spec.name, server, kubeconfig, apiserver, controllerManager };
}

/**
 * Only the controllers that make prune realistic (namespace deletion, garbage collection) and give
 * namespaces their default ServiceAccount. The workload controllers stay off: there is no kubelet, and
 * tests write workload status themselves through the /status subresource.
 */
async function startControllerManager(
  binaries: ControlPlaneBinaries,
  dir: string,
  kubeconfig: string,
): Promise<ProcessRecord> {
  const port = await freePort();
  return startDaemon({
    what: 'kube-controller-manager',
    timeoutMs: 60_000,
    // Its serving certificate is self-signed on the fly; this probe only asks a loopback process whether it is up.
    ready: async () => (await getStatus(`https://127.0.0.1:${port}/healthz`, {})) === 200,
    logFile: join(dir, 'kube-controller-manager.log'),
    command: binaries.kubeControllerManager,
    args: [
      `--kubeconfig=${kubeconfig}`,
      `--authentication-kubeconfig=${kubeconfig}`,
      `--authorization-kubeconfig=${kubeconfig}`,
      '--controllers=namespace,garbagecollector,serviceaccount',
      '--leader-elect=false',
      '--bind-address=127.0.0.1',
      `--secure-port=${port}`,
      `--cert-dir=${join(dir, 'kcm-certs')}`,
    ],
  });
}

export function renderKubeconfig(name: string, server: string, ca: Buffer, token: string): string {
  return stringify({
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name, cluster: { server, 'certificate-authority-data': ca.toString('base64') } }],
    users: [{ name: `${name}-admin`, user: { token } }],
    contexts: [{ name, context: { cluster: name, user: `${name}-admin` } }],
    'current-context': name,
  });
}

function getStatus(url: string, auth: { ca?: Buffer; token?: string }): Promise<number> {
  return new Promise<number>((resolve, reject) => {
    const req = request(
      url,
      {
        ...(auth.ca ? { ca: auth.ca } : { rejectUnauthorized: false }),
        ...(auth.token ? { headers: { authorization: `Bearer ${auth.token}` } } : {}),
        timeout: 5_000,
      },
      (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      },
    );
    req.once('timeout', () => req.destroy(new Error('timeout')));
    req.once('error', reject);
    req.end();
  });
}
