/**
 * Hostile-input drill against a real receiver on loopback (see receiver-harness.ts, which runs the
 * receiver in this process with the timeouts of start-receiver.ts). Deterministic: every body comes from
 * a seeded PRNG and real payloads (@octokit/webhooks-examples). receiver.test.ts covers the basic bad
 * requests (other secret, truncated signature, missing event + delivery headers, form-encoded, 413s);
 * this file pushes further: fuzzed signed bodies, header abuse, slow senders and memory.
 */
import { createHmac } from 'node:crypto';
import type { Server } from 'node:http';
import { createRequire } from 'node:module';
import { connect } from 'node:net';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { Redis } from 'ioredis';
import type { PlumblineJob } from '../../src/queue/jobs.ts';
import { testEnvironment } from '../support/environment.ts';
import { fakeSha, githubDelivery, pushPayload, send, signature } from '../support/github-delivery.ts';
import { type ReceiverHarness, startReceiverHarness, WEBHOOK_SECRET } from '../support/receiver-harness.ts';

const env = testEnvironment();

const SEED = 0x5eed_2024;
/** Any answer slower than this counts as a hang. */
const REQUEST_TIMEOUT_MS = 15_000;
/** Marks every fuzzed body; no answer (or log line) may contain it. */
const CANARY = 'drill-canary-8c1f5e';
const MB = 1024 * 1024;

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type JsonObject = { [key: string]: Json };

// ---------------------------------------------------------------------------------------------------
// Deterministic randomness

/** mulberry32: tiny, seeded, good enough to pick mutations. */
function prng(seed: number) {
  let state = seed >>> 0;
  const next = (): number => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
  const int = (below: number): number => Math.floor(next() * below);
  const pick = <T>(items: readonly T[]): T => items[int(items.length)]!;
  return { next, int, pick };
}
type Rng = ReturnType<typeof prng>;

const ALPHABET = [
  'a',
  'Z',
  '0',
  ' ',
  '"',
  '\\',
  '/',
  '<',
  '>',
  '\u0000',
  '\n',
  '\u2028',
  'é',
  '😀',
  '\ud800',
  '{',
  ']',
];

function randomString(rng: Rng): string {
  if (rng.int(8) === 0) return `<script>${CANARY}</script>`;
  return Array.from({ length: rng.int(12) }, () => rng.pick(ALPHABET)).join('');
}

/** Own-property assignment, so `__proto__` becomes a real key (as JSON.parse makes it), not the prototype. */
function defineKey(target: JsonObject, key: string, value: Json): void {
  Object.defineProperty(target, key, { value, enumerable: true, writable: true, configurable: true });
}

function randomJson(rng: Rng, depth: number): Json {
  switch (rng.int(depth <= 0 ? 5 : 7)) {
    case 0:
      return null;
    case 1:
      return rng.next() < 0.5;
    case 2:
      return rng.pick([0, -1, 1.5, 1e308, -1e-308, 2 ** 53 + 2, 42]);
    case 3:
      return randomString(rng);
    case 4:
      return rng.int(1_000_000);
    case 5:
      return Array.from({ length: rng.int(5) }, () => randomJson(rng, depth - 1));
    default: {
      const object: JsonObject = {};
      for (let n = rng.int(5); n > 0; n -= 1) {
        const key = rng.pick([
          '__proto__',
          'constructor',
          'prototype',
          'ref',
          'action',
          'installation',
          randomString(rng),
        ]);
        defineKey(object, key, randomJson(rng, depth - 1));
      }
      return object;
    }
  }
}

// ---------------------------------------------------------------------------------------------------
// Real payloads

interface ExampleGroup {
  name: string;
  examples: JsonObject[];
}
const examples = createRequire(import.meta.url)('@octokit/webhooks-examples') as ExampleGroup[];

function example(event: string, matches: (payload: JsonObject) => boolean): JsonObject {
  const found = examples.find((group) => group.name === event)?.examples.find(matches);
  if (!found) throw new Error(`no ${event} example matches`);
  return found;
}

const get = (payload: JsonObject, path: string): Json | undefined =>
  path.split('.').reduce<Json | undefined>((node, key) => (isObject(node) ? node[key] : undefined), payload);

const isObject = (value: Json | undefined): value is JsonObject =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

/** Deliveries that would queue work (or change the installation set) if they arrived unmutated. */
const WORKING_BASES: Record<string, JsonObject> = {
  push: example('push', (p) => String(p.ref).startsWith('refs/heads/') && p.deleted !== true),
  pull_request: example('pull_request', (p) => p.action === 'opened'),
  check_run: example('check_run', (p) => p.action === 'rerequested'),
  check_suite: example('check_suite', (p) => p.action === 'rerequested'),
  installation: example('installation', (p) => p.action === 'created'),
  installation_repositories: example('installation_repositories', (p) => p.action === 'added'),
};

/** Verified deliveries that are acknowledged without work, and why. */
const IGNORABLE_BASES: { event: string; payload: JsonObject; reason: string }[] = [
  { event: 'push', payload: example('push', (p) => String(p.ref).startsWith('refs/tags/')), reason: 'tag-push' },
  {
    event: 'pull_request',
    payload: example('pull_request', (p) => p.action === 'labeled'),
    reason: 'unhandled-action',
  },
  { event: 'check_run', payload: example('check_run', (p) => p.action === 'completed'), reason: 'unhandled-action' },
  {
    event: 'check_suite',
    payload: example('check_suite', (p) => p.action === 'requested'),
    reason: 'unhandled-action',
  },
  { event: 'ping', payload: example('ping', () => true), reason: 'ping' },
];

/** The fields the router reads, with the type it needs, written from GitHub's docs rather than the router. */
type FieldType =
  | 'string'
  | 'nonEmptyString'
  | 'sha'
  | 'int'
  | 'bool'
  | 'object'
  | 'optionalObject'
  | 'array'
  | 'optionalArray';
const READ_FIELDS: Record<string, Record<string, FieldType>> = {
  push: {
    ref: 'nonEmptyString',
    before: 'string',
    // `after` must also be a SHA; that is its own test below (the 400 does not name the field).
    after: 'string',
    forced: 'bool',
    deleted: 'bool',
    repository: 'object',
    'repository.id': 'int',
    'repository.full_name': 'nonEmptyString',
    installation: 'optionalObject',
    'installation.id': 'int',
  },
  pull_request: {
    action: 'string',
    number: 'int',
    pull_request: 'object',
    'pull_request.head': 'object',
    'pull_request.head.sha': 'sha',
    'pull_request.base.ref': 'nonEmptyString',
    'repository.id': 'int',
    'installation.id': 'int',
  },
  check_run: {
    action: 'string',
    check_run: 'object',
    'check_run.head_sha': 'sha',
    'check_run.pull_requests': 'array',
    'repository.full_name': 'nonEmptyString',
    'installation.id': 'int',
  },
  check_suite: {
    'check_suite.head_sha': 'sha',
    'check_suite.pull_requests': 'array',
    'check_suite.pull_requests.0.number': 'int',
    // Jobs carry no clone URL (workers resolve it by repository id), so the router no longer reads it.
    'repository.id': 'int',
  },
  installation: { action: 'string', installation: 'object', 'installation.id': 'int', repositories: 'optionalArray' },
  installation_repositories: {
    action: 'string',
    'installation.id': 'int',
    repositories_added: 'array',
    repositories_removed: 'array',
  },
};

/** Hostile values: `raw` is spliced into the JSON text as is (JSON.stringify cannot write 1e400). */
interface HostileValue {
  readonly label: string;
  readonly raw: string;
}
const jsonValue = (label: string, value: Json): HostileValue => ({ label, raw: JSON.stringify(value) });
const HOSTILE_VALUES: readonly HostileValue[] = [
  jsonValue('42', 42),
  jsonValue('-1', -1),
  jsonValue('1.5', 1.5),
  jsonValue('2^53', 2 ** 53),
  { label: '1e400 (Infinity)', raw: '1e400' },
  { label: '12345678901234567890123', raw: '12345678901234567890123' },
  { label: '-0.0e-999', raw: '-0.0e-999' },
  jsonValue('"7"', '7'),
  jsonValue('""', ''),
  jsonValue('canary string', `<img src=x onerror=alert(1)>${CANARY}`),
  jsonValue('true', true),
  jsonValue('null', null),
  jsonValue('{}', {}),
  jsonValue('[]', []),
  jsonValue('[1, "x"]', [1, 'x']),
  { label: '{"__proto__": …}', raw: `{"__proto__":{"polluted":"${CANARY}","id":7}}` },
  { label: '{"constructor": …}', raw: `{"constructor":{"prototype":{"polluted":"${CANARY}"}}}` },
];

/** Whether a value is acceptable for the type; an independent oracle, so the fuzz only sends wrong ones. */
function fits(type: FieldType, raw: string): boolean {
  const value = JSON.parse(raw) as Json;
  switch (type) {
    case 'string':
      return typeof value === 'string';
    case 'nonEmptyString':
      return typeof value === 'string' && value.length > 0;
    case 'sha':
      return typeof value === 'string' && /^[0-9a-f]{40}$/.test(value);
    case 'int':
      return typeof value === 'number' && Number.isSafeInteger(value);
    case 'bool':
      return typeof value === 'boolean';
    case 'object':
      return false; // every read object has required fields, which none of the hostile values has
    case 'optionalObject':
      return value === null;
    case 'array':
      return Array.isArray(value) && value.length === 0;
    case 'optionalArray':
      return value === null || (Array.isArray(value) && value.length === 0);
  }
}

const MARKER = '@@HOSTILE@@';

function setPath(payload: JsonObject, path: string, value: Json): void {
  const keys = path.split('.');
  let node: Json = payload;
  for (const key of keys.slice(0, -1)) {
    if (!isObject(node) && !Array.isArray(node)) throw new Error(`cannot set ${path}`);
    const holder = node as Record<string, Json>;
    if (typeof holder[key] !== 'object' || holder[key] === null) holder[key] = {};
    node = holder[key]!;
  }
  (node as Record<string, Json>)[keys.at(-1)!] = value;
}

function deletePath(payload: JsonObject, path: string): JsonObject {
  const keys = path.split('.');
  const parent = keys.length === 1 ? payload : get(payload, keys.slice(0, -1).join('.'));
  if (!isObject(parent)) throw new Error(`no parent for ${path}`);
  delete parent[keys.at(-1)!];
  return parent;
}

/** The payload with `path` replaced by a hostile raw JSON value. */
function withRaw(payload: JsonObject, path: string, raw: string): string {
  const copy = structuredClone(payload);
  setPath(copy, path, MARKER);
  return canaried(copy).replace(JSON.stringify(MARKER), raw);
}

/** JSON text with the canary as its first key, so even a truncated body usually carries it. */
function canaried(payload: JsonObject): string {
  return JSON.stringify({ drill_canary: CANARY, ...payload });
}

const escapeRegExp = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
const namesField = (event: string, path: string) =>
  new RegExp(`^${escapeRegExp(event)} payload: ${escapeRegExp(path)}[ .]`);
const NOT_JSON = { status: 400, error: 'body is not valid JSON' } as const;

// ---------------------------------------------------------------------------------------------------
// The fuzz cases

type Expected =
  | { readonly status: 400; readonly error: string | RegExp }
  | { readonly status: 401 }
  | { readonly status: 200; readonly ignored: string };

interface FuzzCase {
  readonly kind: string;
  readonly label: string;
  readonly event: string;
  readonly body: Buffer;
  readonly expected: Expected;
}

const WORKING_EVENTS = Object.keys(WORKING_BASES);
const UNKNOWN_EVENTS = [
  'star',
  'issues',
  'workflow_run',
  'meta',
  'deployment_status',
  '__proto__',
  'constructor',
  'toString',
  'hasOwnProperty',
  'PUSH',
  'Pull_Request',
];
const INVALID_UTF8 = [[0xff], [0xfe], [0xc3, 0x28], [0x80], [0xc0, 0xaf], [0xed, 0xa0, 0x80], [0xf8, 0x88, 0x80, 0x80]];
const NOT_JSON_BODIES = [
  ' ',
  '{',
  '}',
  '{"a":1,}',
  "{'a':1}",
  'NaN',
  'undefined',
  '{"a":01}',
  '[1,]',
  '\u0000',
  '{"a":"\\x41"}',
  '\ufeff{}',
  '{"a":1}{"b":2}',
  '{"a":1} trailing',
  'nul',
  '"unterminated',
  '{"a":"line\nbreak"}',
  '1e',
  '--1',
];

function fuzzCases(): FuzzCase[] {
  const rng = prng(SEED);
  const cases: FuzzCase[] = [];
  const add = (kind: string, label: string, event: string, body: string | Buffer, expected: Expected) =>
    cases.push({ kind, label, event, body: Buffer.isBuffer(body) ? body : Buffer.from(body, 'utf8'), expected });
  const anyBase = (): { event: string; payload: JsonObject } => {
    if (rng.next() >= 0.6) return rng.pick(IGNORABLE_BASES);
    const event = rng.pick(WORKING_EVENTS);
    return { event, payload: WORKING_BASES[event]! };
  };

  // Truncated JSON: any strict prefix of an object's text is invalid, whatever the event.
  for (let n = 0; n < 50; n += 1) {
    const { event, payload } = anyBase();
    const text = canaried(payload);
    const cut = 1 + rng.int(text.length - 1);
    add(
      'truncated JSON',
      `${event} cut at ${cut}/${text.length}`,
      rng.next() < 0.1 ? rng.pick(UNKNOWN_EVENTS) : event,
      text.slice(0, cut),
      NOT_JSON,
    );
  }
  for (const body of NOT_JSON_BODIES) add('not JSON', JSON.stringify(body), rng.pick(WORKING_EVENTS), body, NOT_JSON);
  // @octokit/webhooks' verify() refuses an empty payload outright, so an empty body never reaches the parser.
  add('not JSON', 'empty body', rng.pick(WORKING_EVENTS), '', { status: 401 });

  // Invalid UTF-8 inside a string, signed over the raw bytes (see the test that checks these).
  for (let n = 0; n < 30; n += 1) {
    const event = n % 5 === 0 ? rng.pick(UNKNOWN_EVENTS) : rng.pick(WORKING_EVENTS);
    const text = Buffer.from(canaried(WORKING_BASES[rng.pick(WORKING_EVENTS)]!), 'utf8');
    const at = text.indexOf(CANARY) + rng.int(CANARY.length);
    const bad = Buffer.from(rng.pick(INVALID_UTF8));
    add(
      'invalid UTF-8',
      `${event}, bytes ${bad.toString('hex')}`,
      event,
      Buffer.concat([text.subarray(0, at), bad, text.subarray(at)]),
      { status: 401 },
    );
  }

  // Deep nesting: must neither overflow the parser's stack nor hang.
  const deepArrays = (levels: number) => `${'['.repeat(levels)}${']'.repeat(levels)}`;
  const deepObjects = (levels: number) => `${'{"a":'.repeat(levels)}1${'}'.repeat(levels)}`;
  const push = WORKING_BASES.push!;
  const checkRun = WORKING_BASES.check_run!;
  const tagPush = IGNORABLE_BASES[0]!.payload;
  add('deep nesting', '10,000 arrays as the whole body', 'push', deepArrays(10_000), {
    status: 400,
    error: /^push payload: \(body\) /,
  });
  add('deep nesting', '10,000 arrays, unknown event', 'star', deepArrays(10_000), {
    status: 200,
    ignored: 'unhandled-event',
  });
  add('deep nesting', '100,000 arrays, ping', 'ping', deepArrays(100_000), { status: 200, ignored: 'ping' });
  add('deep nesting', '10,000 arrays, never closed', 'push', '['.repeat(10_000), NOT_JSON);
  add('deep nesting', 'ref = 10,000 arrays', 'push', withRaw(push, 'ref', deepArrays(10_000)), {
    status: 400,
    error: namesField('push', 'ref'),
  });
  add('deep nesting', 'repository = 10,000 objects', 'push', withRaw(push, 'repository', deepObjects(10_000)), {
    status: 400,
    error: namesField('push', 'repository'),
  });
  add(
    'deep nesting',
    'check_run.pull_requests = [10,000 arrays]',
    'check_run',
    withRaw(checkRun, 'check_run.pull_requests', `[${deepArrays(10_000)}]`),
    { status: 400, error: namesField('check_run', 'check_run.pull_requests.0') },
  );
  add('deep nesting', 'tag push, commits = 10,000 arrays', 'push', withRaw(tagPush, 'commits', deepArrays(10_000)), {
    status: 200,
    ignored: 'tag-push',
  });

  // Wrong types in the fields the router reads; the brief's named cases first, then random ones.
  const wrong = (event: string, path: string, raw: string, label = raw) =>
    add('wrong type', `${event} ${path} = ${label}`, event, withRaw(WORKING_BASES[event]!, path, raw), {
      status: 400,
      error: namesField(event, path),
    });
  wrong('push', 'ref', '42');
  wrong('push', 'after', '{}');
  wrong('push', 'repository', '"x"');
  wrong('push', 'installation', '{"id":"7"}');
  wrong('push', 'repository.id', '1e400');
  wrong('push', 'installation.id', '12345678901234567890');
  wrong('pull_request', 'pull_request.head.sha', 'null');
  wrong('pull_request', 'number', String(2 ** 53));
  for (let n = 0; n < 92; n += 1) {
    const event = rng.pick(WORKING_EVENTS);
    const fields = READ_FIELDS[event]!;
    const path = rng.pick(Object.keys(fields));
    const candidates = HOSTILE_VALUES.filter((value) => !fits(fields[path]!, value.raw));
    const value = rng.pick(candidates);
    wrong(event, path, value.raw, value.label);
  }

  // A required field removed and offered through __proto__ / constructor.prototype instead.
  const smuggled: [string, string, Json][] = [
    ['push', 'ref', 'refs/heads/main'],
    ['push', 'after', fakeSha(1)],
    ['push', 'repository', { id: 1, full_name: 'a/b', clone_url: 'https://x' }],
    ['push', 'repository.id', 4242],
    ['pull_request', 'number', 7],
    ['pull_request', 'pull_request.head.sha', fakeSha(2)],
    ['check_run', 'check_run.head_sha', fakeSha(3)],
    ['installation', 'installation.id', 9],
  ];
  for (const [event, path, value] of smuggled) {
    for (const via of ['__proto__', 'constructor'] as const) {
      const copy = structuredClone(WORKING_BASES[event]!);
      const parent = deletePath(copy, path);
      const field = path.split('.').at(-1)!;
      const offered: JsonObject = { [field]: value, polluted: CANARY };
      const prototype: JsonObject = {};
      defineKey(prototype, 'prototype', offered);
      defineKey(parent, via, via === '__proto__' ? offered : prototype);
      add('__proto__ smuggling', `${event} ${path} via ${via}`, event, canaried(copy), {
        status: 400,
        error: namesField(event, path),
      });
    }
  }

  // Valid JSON that is not an object.
  for (const event of WORKING_EVENTS) {
    for (const raw of ['null', '0', '"push"', '[]', 'true']) {
      add('not an object', `${event} body ${raw}`, event, raw, {
        status: 400,
        error: new RegExp(`^${event} payload: \\(body\\) `),
      });
    }
  }

  // Unknown events and pings with random bodies: verified, then acknowledged without work.
  for (let n = 0; n < 36; n += 1) {
    const event = rng.pick(UNKNOWN_EVENTS);
    add('unknown event', `${event}, random body`, event, JSON.stringify(randomJson(rng, 4)), {
      status: 200,
      ignored: 'unhandled-event',
    });
  }
  for (let n = 0; n < 10; n += 1) {
    add('ping', 'random body', 'ping', JSON.stringify(randomJson(rng, 4)), { status: 200, ignored: 'ping' });
  }

  // Ignorable deliveries with junk in fields the router does not read.
  for (let n = 0; n < 20; n += 1) {
    const { event, payload, reason } = rng.pick(IGNORABLE_BASES);
    if (event === 'ping') continue;
    const copy = structuredClone(payload);
    for (const key of ['sender', 'organization', 'enterprise', 'zz_extra', '__proto__', 'constructor']) {
      if (rng.next() < 0.5) defineKey(copy, key, randomJson(rng, 3));
    }
    add('ignorable + junk', `${event} (${reason})`, event, canaried(copy), { status: 200, ignored: reason });
  }
  return cases;
}

// ---------------------------------------------------------------------------------------------------
// HTTP helpers

interface Answer {
  readonly status: number;
  readonly text: string;
  readonly contentType: string;
  readonly ms: number;
}

async function post(baseUrl: string, headers: Record<string, string>, body: Buffer | string): Promise<Answer> {
  const started = Date.now();
  const response = await fetch(`${baseUrl}/api/github/webhooks`, {
    method: 'POST',
    headers,
    body,
    signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
  });
  const text = await response.text();
  return {
    status: response.status,
    text,
    contentType: response.headers.get('content-type') ?? '',
    ms: Date.now() - started,
  };
}

/** GitHub's headers for a delivery whose signature covers exactly `body` (bytes, not a re-encoding). */
function signedHeaders(event: string, body: Buffer | string, deliveryId: string): Record<string, string> {
  const { headers } = githubDelivery(event, null, WEBHOOK_SECRET, { deliveryId, body: '' });
  return { ...headers, 'x-hub-signature-256': signature(WEBHOOK_SECRET, body) };
}

/** One HTTP/1.1 exchange over a raw socket (no client-side header limits); resolves when the server closes. */
function rawExchange(port: number, head: string, body = ''): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    let received = '';
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no answer within ${REQUEST_TIMEOUT_MS} ms`));
    }, REQUEST_TIMEOUT_MS);
    socket.on('data', (data: Buffer) => {
      received += data.toString('latin1');
    });
    socket.on('error', () => {});
    socket.on('close', () => {
      clearTimeout(timer);
      resolve({ status: Number(/^HTTP\/1\.1 (\d{3})/.exec(received)?.[1] ?? 0), text: received });
    });
    socket.write(`${head}\r\n${body}`);
  });
}

function requestHead(port: number, headers: Record<string, string>, extra: string[] = []): string {
  const lines = Object.entries({ host: `127.0.0.1:${port}`, connection: 'close', ...headers }).map(
    ([k, v]) => `${k}: ${v}`,
  );
  return `POST /api/github/webhooks HTTP/1.1\r\n${[...lines, ...extra].map((line) => `${line}\r\n`).join('')}`;
}

async function keysUnder(redis: Redis, prefix: string): Promise<string[]> {
  const found: string[] = [];
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
    cursor = next;
    found.push(...keys);
  } while (cursor !== '0');
  return found.sort();
}

async function jobsFor(harness: ReceiverHarness, repositoryId: number): Promise<PlumblineJob[]> {
  const jobs = [
    ...(await harness.queues.sync.getJobs(['delayed', 'waiting', 'active', 'prioritized'])),
    ...(await harness.queues.preview.getJobs(['delayed', 'waiting', 'active', 'prioritized'])),
  ];
  return jobs.map((job) => job.data as PlumblineJob).filter((job) => job.repository.id === repositoryId);
}

/** `global.gc` when node runs with --expose-gc; otherwise the same function through a V8 flag set now. */
function garbageCollector(): (() => void) | undefined {
  const exposed = (globalThis as { gc?: () => void }).gc;
  if (exposed) return exposed;
  try {
    setFlagsFromString('--expose-gc');
    return runInNewContext('gc') as () => void;
  } catch {
    return undefined;
  }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

// ---------------------------------------------------------------------------------------------------

describe('the receiver under hostile input', () => {
  // Started first: node checks request timeouts on a 30 s tick counted from `listen`, so a receiver that
  // has been up for a while closes the slow senders of the last test sooner.
  let slowReceiver: ReceiverHarness;
  let harness: ReceiverHarness;

  beforeAll(async () => {
    slowReceiver = await startReceiverHarness(env.redisUrl, { PLUMBLINE_PUSH_COALESCE_MS: '60000' });
    harness = await startReceiverHarness(env.redisUrl, { PLUMBLINE_PUSH_COALESCE_MS: '60000' });
  });
  afterAll(async () => {
    await Promise.all([harness?.close(), slowReceiver?.close()]);
  });

  describe('fuzzed bodies, correctly signed', () => {
    const cases = fuzzCases();

    it('builds ~300 deterministic cases of every kind', () => {
      expect(cases.length).toBeGreaterThanOrEqual(290);
      expect(new Set(cases.map((c) => c.kind))).toEqual(
        new Set([
          'truncated JSON',
          'not JSON',
          'invalid UTF-8',
          'deep nesting',
          'wrong type',
          '__proto__ smuggling',
          'not an object',
          'unknown event',
          'ping',
          'ignorable + junk',
        ]),
      );
      // Same seed, same bodies.
      const again = fuzzCases();
      expect(again.map((c) => c.body.toString('base64'))).toEqual(cases.map((c) => c.body.toString('base64')));
    });

    it('answers each with the expected 4xx (or 200 when ignorable), queues nothing and keeps serving', async () => {
      const gc = garbageCollector();
      gc?.();
      const heapBefore = process.memoryUsage().heapUsed;

      const mismatches: unknown[] = [];
      const echoes: string[] = [];
      for (const [index, c] of cases.entries()) {
        const answer = await post(harness.baseUrl, signedHeaders(c.event, c.body, `drill-${SEED}-${index}`), c.body);
        const body = JSON.parse(answer.text) as Record<string, unknown>;
        const expected = c.expected;
        const ok =
          answer.status === expected.status &&
          answer.contentType.startsWith('application/json') &&
          (expected.status === 401
            ? body.error === 'signature does not match the webhook secret'
            : expected.status === 200
              ? body.ignored === expected.ignored
              : typeof expected.error === 'string'
                ? body.error === expected.error
                : expected.error.test(String(body.error)));
        if (!ok) mismatches.push({ index, kind: c.kind, label: c.label, expected, got: [answer.status, answer.text] });
        if (answer.text.includes(CANARY) || answer.text.length > 300)
          echoes.push(`${c.kind} ${c.label}: ${answer.text.slice(0, 80)}`);
      }

      expect(mismatches).toEqual([]);
      expect(echoes).toEqual([]);
      expect(harness.logs.join('\n')).not.toContain(CANARY);
      expect(Object.prototype).not.toHaveProperty('polluted');
      expect(await (await fetch(`${harness.baseUrl}/healthz`)).json()).toEqual({ status: 'ok' });

      // Nothing reached Redis: no job, no newest-push record, no delivery claim, no installation change.
      const counts = {
        ...(await harness.queues.sync.getJobCounts()),
        ...(await harness.queues.preview.getJobCounts()),
      };
      expect(Object.values(counts).reduce((sum, n) => sum + n, 0)).toBe(0);
      // BullMQ's own `<queue>:meta` (its version) is all there may be.
      const stored = await keysUnder(harness.redis, harness.prefix);
      expect(stored.filter((key) => !/^[^:]+:(sync|preview):meta$/.test(key))).toEqual([]);

      gc?.();
      const growth = process.memoryUsage().heapUsed - heapBefore;
      expect(growth).toBeLessThan(200 * MB);

      // The inspection above sees jobs under this prefix: one valid push shows up.
      const control = pushPayload({ after: fakeSha(1), repositoryId: 6001 });
      expect((await send(harness.baseUrl, githubDelivery('push', control, WEBHOOK_SECRET))).status).toBe(202);
      expect((await harness.queues.sync.getJobCounts()).delayed).toBe(1);
    }, 120_000);

    it('refuses a body that is invalid UTF-8 even when signed over its raw bytes (401, checked on decoded text)', async () => {
      // webhook-handler.ts verifies the signature over `raw.toString('utf8')`, which replaces invalid
      // bytes, so GitHub's HMAC over the raw bytes no longer matches. GitHub only sends UTF-8.
      const text = Buffer.from(JSON.stringify(pushPayload({ after: fakeSha(2), repositoryId: 6002 })));
      const at = text.indexOf('octocat');
      const body = Buffer.concat([text.subarray(0, at), Buffer.from([0xff]), text.subarray(at)]);
      const answer = await post(harness.baseUrl, signedHeaders('push', body, 'utf8-raw'), body);
      expect(answer.status).toBe(401);
      expect(await jobsFor(harness, 6002)).toEqual([]);
    });

    it('names `after` when a signed push to a branch carries something that is not a commit SHA', async () => {
      for (const after of ['not-a-sha', fakeSha(3).toUpperCase(), `${fakeSha(3)}0`]) {
        const payload = { ...pushPayload({ after: fakeSha(3), repositoryId: 6003 }), after };
        const response = await send(harness.baseUrl, githubDelivery('push', payload, WEBHOOK_SECRET));
        expect({ after, ...response }).toEqual({
          after,
          status: 400,
          body: { error: expect.stringMatching(/^push payload: after /) },
        });
      }
      expect(await jobsFor(harness, 6003)).toEqual([]);
    });

    it('rejects a signed check_run whose pull_requests holds a million wrong-typed items promptly, without stalling', async () => {
      // 2 MB, well inside GitHub's 25 MB cap. The router keeps only the first schema issue, but zod
      // collects one issue per bad item first, on the event loop.
      const base = WORKING_BASES.check_run!;
      const items = `[${'0,'.repeat(999_999)}0]`;
      const body = withRaw(base, 'check_run.pull_requests', items);
      // The receiver runs in this process: its event-loop delay is the stall every other request sees.
      const delay = monitorEventLoopDelay({ resolution: 10 });
      delay.enable();
      const answer = await post(harness.baseUrl, signedHeaders('check_run', body, 'wide-array'), body);
      delay.disable();
      const stallMs = Math.round(delay.max / 1e6);

      expect(answer.status).toBe(400);
      expect(JSON.parse(answer.text)).toEqual({
        error: 'check_run payload: check_run.pull_requests has more than 1000 items',
      });
      expect((await fetch(`${harness.baseUrl}/healthz`)).status).toBe(200);
      const stalls = [
        answer.ms >= 2_000 ? `the answer took ${answer.ms} ms` : '',
        stallMs >= 1_000 ? `the receiver's event loop stalled for ${stallMs} ms` : '',
      ].filter(Boolean);
      expect(stalls).toEqual([]);
    }, 90_000);
  });

  describe('headers', () => {
    let repositoryId = 7000;
    /** A signed push for its own repository, so what it queued (or not) can be told apart. */
    const delivery = () => {
      repositoryId += 1;
      return {
        repositoryId,
        ...githubDelivery('push', pushPayload({ after: fakeSha(repositoryId), repositoryId }), WEBHOOK_SECRET),
      };
    };
    const sha1 = (body: string) => `sha1=${createHmac('sha1', WEBHOOK_SECRET).update(body).digest('hex')}`;
    const without = (headers: Record<string, string>, name: string) =>
      Object.fromEntries(Object.entries(headers).filter(([key]) => key !== name));
    const refusedSignature = { status: 401, body: { error: 'signature does not match the webhook secret' } };
    const missing = (name: string) => ({ status: 400, body: { error: `missing required header(s): ${name}` } });
    const unsupported = {
      status: 415,
      body: { error: 'content type must be application/json (set it in the webhook settings)' },
    };

    const cases: {
      name: string;
      headers: (headers: Record<string, string>, body: string) => Record<string, string>;
      expected: { status: number; body: unknown };
    }[] = [
      {
        name: 'unsigned (no X-Hub-Signature-256)',
        headers: (h) => without(h, 'x-hub-signature-256'),
        expected: missing('x-hub-signature-256'),
      },
      {
        name: 'only the legacy SHA-1 X-Hub-Signature, correct',
        headers: (h, body) => ({ ...without(h, 'x-hub-signature-256'), 'x-hub-signature': sha1(body) }),
        expected: missing('x-hub-signature-256'),
      },
      {
        name: 'X-Hub-Signature-256 carrying a correct sha1= HMAC',
        headers: (h, body) => ({ ...h, 'x-hub-signature-256': sha1(body) }),
        expected: refusedSignature,
      },
      {
        name: 'the right digest without its sha256= prefix',
        headers: (h) => ({ ...h, 'x-hub-signature-256': h['x-hub-signature-256']!.slice('sha256='.length) }),
        expected: refusedSignature,
      },
      {
        name: 'one hex digit of the digest changed',
        headers: (h) => {
          const sig = h['x-hub-signature-256']!;
          return { ...h, 'x-hub-signature-256': `${sig.slice(0, -1)}${sig.endsWith('0') ? '1' : '0'}` };
        },
        expected: refusedSignature,
      },
      {
        name: 'sha256= and nothing else',
        headers: (h) => ({ ...h, 'x-hub-signature-256': 'sha256=' }),
        expected: refusedSignature,
      },
      {
        name: 'an 8 KB signature',
        headers: (h) => ({ ...h, 'x-hub-signature-256': `sha256=${'f'.repeat(8 * 1024)}` }),
        expected: refusedSignature,
      },
      {
        name: 'the right signature sent twice (joined as "a, a")',
        headers: (h) => ({ ...h, 'x-hub-signature-256': `${h['x-hub-signature-256']}, ${h['x-hub-signature-256']}` }),
        expected: refusedSignature,
      },
      {
        name: 'no X-GitHub-Delivery',
        headers: (h) => without(h, 'x-github-delivery'),
        expected: missing('x-github-delivery'),
      },
      {
        name: 'empty X-GitHub-Delivery',
        headers: (h) => ({ ...h, 'x-github-delivery': '' }),
        expected: missing('x-github-delivery'),
      },
      {
        name: 'Content-Type text/plain',
        headers: (h) => ({ ...h, 'content-type': 'text/plain' }),
        expected: unsupported,
      },
      {
        name: 'Content-Type text/plain; charset=utf-8',
        headers: (h) => ({ ...h, 'content-type': 'text/plain; charset=utf-8' }),
        expected: unsupported,
      },
      {
        name: 'Content-Type multipart/form-data',
        headers: (h) => ({ ...h, 'content-type': 'multipart/form-data; boundary=x' }),
        expected: unsupported,
      },
      { name: 'no Content-Type', headers: (h) => without(h, 'content-type'), expected: unsupported },
      {
        name: 'Content-Type application/json; charset=utf-8',
        headers: (h) => ({ ...h, 'content-type': 'application/json; charset=utf-8' }),
        expected: { status: 202, body: { queued: 1 } },
      },
      {
        name: 'Content-Type Application/JSON',
        headers: (h) => ({ ...h, 'content-type': 'Application/JSON' }),
        expected: { status: 202, body: { queued: 1 } },
      },
    ];

    it.each(cases)('$name → $expected.status', async ({ headers, expected }) => {
      const { repositoryId: id, headers: signed, body } = delivery();
      const answer = await post(harness.baseUrl, headers(signed, body), body);
      expect({ status: answer.status, body: JSON.parse(answer.text) as unknown }).toEqual(expected);
      expect(await jobsFor(harness, id)).toHaveLength(expected.status === 202 ? 1 : 0);
    });

    it('answers 431 to a 64 KB header value, and keeps serving', async () => {
      const port = harness.receiver.port;
      const { repositoryId: id, headers, body } = delivery();
      const head = requestHead(port, { ...headers, 'content-length': String(Buffer.byteLength(body)) }, [
        `x-padding: ${'p'.repeat(64 * 1024)}`,
      ]);
      const answer = await rawExchange(port, head, body);
      expect(answer.status).toBe(431);
      expect(answer.text).not.toContain('ppppp');
      expect((await fetch(`${harness.baseUrl}/healthz`)).status).toBe(200);
      expect(await jobsFor(harness, id)).toEqual([]);
    });

    it('takes 1,000 small headers (under the 16 KB limit) and answers 431 to 1,000 that exceed it', async () => {
      const port = harness.receiver.port;
      const small = delivery();
      const many = Array.from({ length: 1_000 }, (_, n) => `x-h${n}: 1`);
      const fits = await rawExchange(
        port,
        requestHead(port, { ...small.headers, 'content-length': String(Buffer.byteLength(small.body)) }, many),
        small.body,
      );
      expect(fits.status).toBe(202);
      expect(await jobsFor(harness, small.repositoryId)).toHaveLength(1);

      const big = delivery();
      const tooMany = Array.from(
        { length: 1_000 },
        (_, n) => `x-header-${String(n).padStart(4, '0')}: ${'v'.repeat(16)}`,
      );
      const refused = await rawExchange(
        port,
        requestHead(port, { ...big.headers, 'content-length': String(Buffer.byteLength(big.body)) }, tooMany),
        big.body,
      );
      expect(refused.status).toBe(431);
      expect(await jobsFor(harness, big.repositoryId)).toEqual([]);
      expect((await fetch(`${harness.baseUrl}/healthz`)).status).toBe(200);
    });
  });

  describe('slow senders (slow-loris)', () => {
    const DRIP_MS = 500;
    /** Slack on a loaded machine, past node's own checking tick. */
    const SLACK_MS = 5_000;
    const open: { destroy(): void }[] = [];
    afterAll(() => {
      for (const socket of open) socket.destroy();
    });

    interface SlowSocket {
      readonly name: string;
      readonly phase: 'headers' | 'body';
      /** Milliseconds from opening until the server closed the socket; Infinity if it did not by `deadline`. */
      closedAfter(deadlineMs: number): Promise<number>;
      isClosed(): boolean;
      received(): string;
    }

    function slowSocket(
      port: number,
      name: string,
      phase: 'headers' | 'body',
      initial: string,
      drip?: () => string,
    ): SlowSocket {
      const socket = connect(port, '127.0.0.1');
      socket.setNoDelay(true);
      open.push(socket);
      const openedAt = Date.now();
      let received = '';
      let closedAt: number | undefined;
      let timer: NodeJS.Timeout | undefined;
      const closed = new Promise<number>((resolve) =>
        socket.once('close', () => {
          closedAt = Date.now();
          clearInterval(timer);
          resolve(closedAt - openedAt);
        }),
      );
      socket.on('data', (data: Buffer) => {
        received += data.toString('latin1');
      });
      socket.on('error', () => {});
      socket.once('connect', () => {
        if (initial) socket.write(initial);
        if (drip) {
          timer = setInterval(() => {
            if (!socket.destroyed) socket.write(drip());
          }, DRIP_MS);
        }
      });
      return {
        name,
        phase,
        closedAfter: (deadlineMs) =>
          new Promise<number>((resolve) => {
            const wait = Math.max(0, openedAt + deadlineMs - Date.now());
            const giveUp = setTimeout(() => resolve(Number.POSITIVE_INFINITY), wait);
            void closed.then((ms) => {
              clearTimeout(giveUp);
              resolve(ms);
            });
          }),
        isClosed: () => closedAt !== undefined,
        received: () => received,
      };
    }

    it('closes each within its timeout while a normal push still gets 202 promptly', async () => {
      const server = slowReceiver.receiver.server as Server & { connectionsCheckingInterval?: number };
      const { headersTimeout, requestTimeout } = server;
      const tick = server.connectionsCheckingInterval ?? 30_000;
      // What start-receiver.ts sets; node's defaults (60 s / 300 s) would not fit this test.
      expect({ headersTimeout, requestTimeout }).toEqual({ headersTimeout: 10_000, requestTimeout: 30_000 });

      const port = slowReceiver.receiver.port;
      const pushHead = (id: number, framing: Record<string, string>) => {
        const d = githubDelivery('push', pushPayload({ after: fakeSha(id), repositoryId: id }), WEBHOOK_SECRET);
        return { head: `${requestHead(port, { ...d.headers, ...framing })}\r\n`, body: d.body };
      };
      const length = Buffer.byteLength(JSON.stringify(pushPayload({ after: fakeSha(8101), repositoryId: 8101 })));
      const lengthHead = pushHead(8101, { 'content-length': String(length) });
      const chunkedHead = pushHead(8102, { 'transfer-encoding': 'chunked' });
      let offset = 0;
      const sockets = [
        slowSocket(port, 'connects and sends nothing', 'headers', ''),
        slowSocket(
          port,
          'half a header, then silence',
          'headers',
          'POST /api/github/webhooks HTTP/1.1\r\nHost: x\r\nX-Git',
        ),
        slowSocket(
          port,
          'headers one byte every 500 ms',
          'headers',
          'POST /api/github/webhooks HTTP/1.1\r\nHost: x\r\nX-Slow: ',
          () => 'a',
        ),
        slowSocket(port, 'signed push, body one byte every 500 ms', 'body', lengthHead.head, () => {
          offset += 1;
          return lengthHead.body.charAt(offset - 1);
        }),
        slowSocket(
          port,
          'signed push, chunked, one 1-byte chunk every 500 ms',
          'body',
          chunkedHead.head,
          () => '1\r\n \r\n',
        ),
      ];

      await sleep(1_500);
      const started = Date.now();
      const normal = await send(
        slowReceiver.baseUrl,
        githubDelivery('push', pushPayload({ after: fakeSha(8100), repositoryId: 8100 }), WEBHOOK_SECRET),
      );
      const normalMs = Date.now() - started;
      expect(sockets.filter((s) => s.isClosed()).map((s) => s.name)).toEqual([]);
      expect(normal).toEqual({ status: 202, body: { queued: 1 } });
      expect(normalMs).toBeLessThan(3_000);

      const bounds = {
        headers: [headersTimeout, headersTimeout + tick],
        body: [requestTimeout, requestTimeout + tick],
      } as const;
      const outcomes = await Promise.all(
        sockets.map(async (s) => {
          const [low, high] = bounds[s.phase];
          const ms = await s.closedAfter(high + SLACK_MS);
          return {
            name: s.name,
            ms,
            inBounds: ms >= low - 1_000 && ms <= high + SLACK_MS,
            answer: s.received().split('\r\n')[0],
          };
        }),
      );
      expect(outcomes.filter((o) => !o.inBounds)).toEqual([]);
      expect(outcomes.map((o) => o.answer)).toEqual(sockets.map(() => 'HTTP/1.1 408 Request Timeout'));
      expect((await fetch(`${slowReceiver.baseUrl}/healthz`)).status).toBe(200);
      expect(await jobsFor(slowReceiver, 8101)).toEqual([]);
      expect(await jobsFor(slowReceiver, 8102)).toEqual([]);
      expect(await jobsFor(slowReceiver, 8100)).toHaveLength(1);
    }, 90_000);
  });
});
