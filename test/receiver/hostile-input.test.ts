/**
 * Hostile-input drill against a real receiver on loopback (see receiver-harness.ts, which runs the
 * receiver in this process with the timeouts of start-receiver.ts). Deterministic and bounded: the fuzzed
 * bodies are fast-check arbitraries over real payloads (@octokit/webhooks-examples), run with a fixed seed
 * and a fixed number of runs after a list of fixed cases; a failure is shrunk to a minimal case.
 * receiver.test.ts covers the basic bad requests (other secret, truncated signature, missing event +
 * delivery headers, form-encoded, 413s); this file pushes further: fuzzed signed bodies, header abuse, slow senders and memory.
 */
import { createHmac } from 'node:crypto';
import type { Server } from 'node:http';
import { createRequire } from 'node:module';
import { connect } from 'node:net';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import type { PlumblineJob } from '../../src/queue/jobs.ts';
import type { RedisConnection } from '../../src/redis/redis-topology.ts';
import { testEnvironment } from '../helpers/environment.ts';
import { fakeSha, githubDelivery, pushPayload, send, signature } from '../helpers/github-delivery.ts';
import { type ReceiverHarness, startReceiverHarness, WEBHOOK_SECRET } from '../helpers/receiver-harness.ts';

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
// Hostile JSON values (fast-check arbitraries)

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

/** Up to 11 awkward characters (NUL, a lone surrogate, U+2028, quotes…), or a canary-carrying script tag. */
const hostileString: fc.Arbitrary<string> = fc.oneof(
  { weight: 7, arbitrary: fc.array(fc.constantFrom(...ALPHABET), { maxLength: 11 }).map((chars) => chars.join('')) },
  { weight: 1, arbitrary: fc.constant(`<script>${CANARY}</script>`) },
);

/** Keys that poke at prototypes or at the fields the router reads, and now and then a random one. */
const hostileKey: fc.Arbitrary<string> = fc.oneof(
  {
    weight: 6,
    arbitrary: fc.constantFrom('__proto__', 'constructor', 'prototype', 'ref', 'action', 'installation'),
  },
  { weight: 1, arbitrary: hostileString },
);

/** Own-property assignment, so `__proto__` becomes a real key (as JSON.parse makes it), not the prototype. */
function defineKey(target: JsonObject, key: string, value: Json): void {
  Object.defineProperty(target, key, { value, enumerable: true, writable: true, configurable: true });
}

function objectOf(entries: readonly (readonly [string, Json])[]): JsonObject {
  const object: JsonObject = {};
  for (const [key, value] of entries) defineKey(object, key, value);
  return object;
}

/** Any JSON value nested at most `maxDepth` deep, with hostile numbers, strings and keys. */
function hostileJson(maxDepth: number): fc.Arbitrary<Json> {
  return fc.letrec<{ json: Json }>((tie) => ({
    json: fc.oneof(
      { maxDepth },
      fc.constant(null),
      fc.boolean(),
      fc.constantFrom(0, -1, 1.5, 1e308, -1e-308, 2 ** 53 + 2, 42),
      hostileString,
      fc.nat(999_999),
      fc.array(tie('json'), { maxLength: 4 }),
      fc.array(fc.tuple(hostileKey, tie('json')), { maxLength: 4 }).map(objectOf),
    ),
  })).json;
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

interface FuzzCase extends fc.WithToStringMethod {
  readonly kind: string;
  readonly label: string;
  readonly event: string;
  readonly body: Buffer;
  readonly expected: Expected;
  toString(): string;
}

const describeExpected = (expected: Expected): string =>
  expected.status === 400
    ? `400 ${String(expected.error)}`
    : expected.status === 200
      ? `200 ignored ${expected.ignored}`
      : '401';

/** A case that prints as one line (kind, label, event, size, expectation) in fast-check's counterexamples. */
function fuzzCase(kind: string, label: string, event: string, body: string | Buffer, expected: Expected): FuzzCase {
  const bytes = Buffer.isBuffer(body) ? body : Buffer.from(body, 'utf8');
  const text = `${kind}: ${label} (X-GitHub-Event ${JSON.stringify(event)}, ${bytes.length} bytes) → expected ${describeExpected(expected)}`;
  return { kind, label, event, body: bytes, expected, [fc.toStringMethod]: () => text, toString: () => text };
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
const NOT_OBJECT_BODIES = ['null', '0', '"push"', '[]', 'true'];
/** Fields the router does not read, where ignorable deliveries get junk. */
const JUNK_KEYS = ['sender', 'organization', 'enterprise', 'zz_extra', '__proto__', 'constructor'];

const deepArrays = (levels: number) => `${'['.repeat(levels)}${']'.repeat(levels)}`;
const deepObjects = (levels: number) => `${'{"a":'.repeat(levels)}1${'}'.repeat(levels)}`;
const isInvalidUtf8 = (bytes: readonly number[]) => {
  try {
    new TextDecoder('utf-8', { fatal: true }).decode(Uint8Array.from(bytes));
    return false;
  } catch {
    return true;
  }
};

// One builder per kind, shared by the fixed examples and the generated cases.

/** Deep nesting, `levels` deep: must neither overflow the parser's stack nor hang. */
const DEEP_TARGETS = {
  'arrays as the whole body': (levels: number) =>
    fuzzCase('deep nesting', `${levels} arrays as the whole body`, 'push', deepArrays(levels), {
      status: 400,
      error: /^push payload: \(body\) /,
    }),
  'arrays, unknown event': (levels: number) =>
    fuzzCase('deep nesting', `${levels} arrays, unknown event`, 'star', deepArrays(levels), {
      status: 200,
      ignored: 'unhandled-event',
    }),
  'arrays, ping': (levels: number) =>
    fuzzCase('deep nesting', `${levels} arrays, ping`, 'ping', deepArrays(levels), { status: 200, ignored: 'ping' }),
  'arrays, never closed': (levels: number) =>
    fuzzCase('deep nesting', `${levels} arrays, never closed`, 'push', '['.repeat(levels), NOT_JSON),
  'ref = arrays': (levels: number) =>
    fuzzCase(
      'deep nesting',
      `ref = ${levels} arrays`,
      'push',
      withRaw(WORKING_BASES.push!, 'ref', deepArrays(levels)),
      {
        status: 400,
        error: namesField('push', 'ref'),
      },
    ),
  'repository = objects': (levels: number) =>
    fuzzCase(
      'deep nesting',
      `repository = ${levels} objects`,
      'push',
      withRaw(WORKING_BASES.push!, 'repository', deepObjects(levels)),
      { status: 400, error: namesField('push', 'repository') },
    ),
  'check_run.pull_requests = [arrays]': (levels: number) =>
    fuzzCase(
      'deep nesting',
      `check_run.pull_requests = [${levels} arrays]`,
      'check_run',
      withRaw(WORKING_BASES.check_run!, 'check_run.pull_requests', `[${deepArrays(levels)}]`),
      { status: 400, error: namesField('check_run', 'check_run.pull_requests.0') },
    ),
  'tag push, commits = arrays': (levels: number) =>
    fuzzCase(
      'deep nesting',
      `tag push, commits = ${levels} arrays`,
      'push',
      withRaw(IGNORABLE_BASES[0]!.payload, 'commits', deepArrays(levels)),
      { status: 200, ignored: 'tag-push' },
    ),
} as const;
type DeepTarget = keyof typeof DEEP_TARGETS;

/** A wrong type in a field the router reads: the 400 names that field. */
const wrongType = (event: string, path: string, raw: string, label = raw) =>
  fuzzCase('wrong type', `${event} ${path} = ${label}`, event, withRaw(WORKING_BASES[event]!, path, raw), {
    status: 400,
    error: namesField(event, path),
  });

/** A required field removed and offered through __proto__ / constructor.prototype instead. */
const SMUGGLED: readonly (readonly [string, string, Json])[] = [
  ['push', 'ref', 'refs/heads/main'],
  ['push', 'after', fakeSha(1)],
  ['push', 'repository', { id: 1, full_name: 'a/b', clone_url: 'https://x' }],
  ['push', 'repository.id', 4242],
  ['pull_request', 'number', 7],
  ['pull_request', 'pull_request.head.sha', fakeSha(2)],
  ['check_run', 'check_run.head_sha', fakeSha(3)],
  ['installation', 'installation.id', 9],
];
const SMUGGLE_VIA = ['__proto__', 'constructor'] as const;
function smuggled([event, path, value]: readonly [string, string, Json], via: (typeof SMUGGLE_VIA)[number]): FuzzCase {
  const copy = structuredClone(WORKING_BASES[event]!);
  const parent = deletePath(copy, path);
  const field = path.split('.').at(-1)!;
  const offered: JsonObject = { [field]: value, polluted: CANARY };
  const prototype: JsonObject = {};
  defineKey(prototype, 'prototype', offered);
  defineKey(parent, via, via === '__proto__' ? offered : prototype);
  return fuzzCase('__proto__ smuggling', `${event} ${path} via ${via}`, event, canaried(copy), {
    status: 400,
    error: namesField(event, path),
  });
}

/** Valid JSON that is not an object. */
const notAnObject = (event: string, raw: string) =>
  fuzzCase('not an object', `${event} body ${raw}`, event, raw, {
    status: 400,
    error: new RegExp(`^${event} payload: \\(body\\) `),
  });

const notJson = (event: string, body: string) => fuzzCase('not JSON', JSON.stringify(body), event, body, NOT_JSON);

/**
 * Every fixed case, run first on every run (fast-check's `examples`): the bodies that are a list rather
 * than a space to sample — each not-JSON text, each deep nesting at its named size, the brief's named wrong
 * types, each smuggling and each non-object body.
 */
const FIXED_CASES: readonly FuzzCase[] = [
  ...NOT_JSON_BODIES.map((body, n) => notJson(WORKING_EVENTS[n % WORKING_EVENTS.length]!, body)),
  // @octokit/webhooks' verify() refuses an empty payload outright, so an empty body never reaches the parser.
  fuzzCase('not JSON', 'empty body', 'push', '', { status: 401 }),
  DEEP_TARGETS['arrays as the whole body'](10_000),
  DEEP_TARGETS['arrays, unknown event'](10_000),
  DEEP_TARGETS['arrays, ping'](100_000),
  DEEP_TARGETS['arrays, never closed'](10_000),
  DEEP_TARGETS['ref = arrays'](10_000),
  DEEP_TARGETS['repository = objects'](10_000),
  DEEP_TARGETS['check_run.pull_requests = [arrays]'](10_000),
  DEEP_TARGETS['tag push, commits = arrays'](10_000),
  wrongType('push', 'ref', '42'),
  wrongType('push', 'after', '{}'),
  wrongType('push', 'repository', '"x"'),
  wrongType('push', 'installation', '{"id":"7"}'),
  wrongType('push', 'repository.id', '1e400'),
  wrongType('push', 'installation.id', '12345678901234567890'),
  wrongType('pull_request', 'pull_request.head.sha', 'null'),
  wrongType('pull_request', 'number', String(2 ** 53)),
  ...SMUGGLED.flatMap((entry) => SMUGGLE_VIA.map((via) => smuggled(entry, via))),
  ...WORKING_EVENTS.flatMap((event) => NOT_OBJECT_BODIES.map((raw) => notAnObject(event, raw))),
];

const workingEvent = fc.constantFrom(...WORKING_EVENTS);
const unknownEvent = fc.constantFrom(...UNKNOWN_EVENTS);
/** A real delivery: 60 % one that would queue work, 40 % one acknowledged without work. */
const anyBase = fc.oneof(
  { weight: 3, arbitrary: workingEvent.map((event) => ({ event, payload: WORKING_BASES[event]! })) },
  { weight: 2, arbitrary: fc.constantFrom(...IGNORABLE_BASES) },
);

/** Truncated JSON: any strict prefix of an object's text is invalid, whatever the event (1 in 10 unknown). */
const truncatedJson: fc.Arbitrary<FuzzCase> = fc
  .record({
    base: anyBase,
    event: fc.oneof({ weight: 9, arbitrary: fc.constant(undefined) }, { weight: 1, arbitrary: unknownEvent }),
  })
  .chain(({ base, event }) => {
    const text = canaried(base.payload);
    return fc
      .integer({ min: 1, max: text.length - 1 })
      .map((cut) =>
        fuzzCase(
          'truncated JSON',
          `${base.event} cut at ${cut}/${text.length}`,
          event ?? base.event,
          text.slice(0, cut),
          NOT_JSON,
        ),
      );
  });

/**
 * Invalid UTF-8 inside a string (the canary's), signed over the raw bytes (see the test that checks these):
 * the known bad sequences, or any 1–4 bytes that do not decode.
 */
const invalidUtf8: fc.Arbitrary<FuzzCase> = fc
  .record({
    event: fc.oneof({ weight: 4, arbitrary: workingEvent }, { weight: 1, arbitrary: unknownEvent }),
    base: workingEvent,
    at: fc.nat(CANARY.length - 1),
    bad: fc.oneof(
      fc.constantFrom(...INVALID_UTF8),
      fc
        .uint8Array({ minLength: 1, maxLength: 4 })
        .map((bytes) => [...bytes])
        .filter(isInvalidUtf8),
    ),
  })
  .map(({ event, base, at, bad }) => {
    const text = Buffer.from(canaried(WORKING_BASES[base]!), 'utf8');
    const offset = text.indexOf(CANARY) + at;
    const bytes = Buffer.from(bad);
    return fuzzCase(
      'invalid UTF-8',
      `${base} body, bytes ${bytes.toString('hex')} at ${at}`,
      event,
      Buffer.concat([text.subarray(0, offset), bytes, text.subarray(offset)]),
      { status: 401 },
    );
  });

/** Deep nesting of any size up to 20,000 levels, at any of the fixed cases' places. */
const deepNesting: fc.Arbitrary<FuzzCase> = fc
  .record({
    target: fc.constantFrom(...(Object.keys(DEEP_TARGETS) as DeepTarget[])),
    levels: fc.integer({ min: 1, max: 20_000 }),
  })
  .map(({ target, levels }) => DEEP_TARGETS[target](levels));

/** A value of the wrong type (by the independent `fits` oracle) in a field the router reads. */
const wrongTypes: fc.Arbitrary<FuzzCase> = workingEvent.chain((event) => {
  const fields = READ_FIELDS[event]!;
  return fc
    .constantFrom(...Object.keys(fields))
    .chain((path) =>
      fc
        .constantFrom(...HOSTILE_VALUES.filter((value) => !fits(fields[path]!, value.raw)))
        .map((value) => wrongType(event, path, value.raw, value.label)),
    );
});

/** Unknown events and pings with random bodies: verified, then acknowledged without work. */
const unknownEvents: fc.Arbitrary<FuzzCase> = fc
  .record({ event: unknownEvent, body: hostileJson(4) })
  .map(({ event, body }) =>
    fuzzCase('unknown event', `${event}, random body`, event, JSON.stringify(body), {
      status: 200,
      ignored: 'unhandled-event',
    }),
  );
const pings: fc.Arbitrary<FuzzCase> = hostileJson(4).map((body) =>
  fuzzCase('ping', 'random body', 'ping', JSON.stringify(body), { status: 200, ignored: 'ping' }),
);

/** Ignorable deliveries with junk in fields the router does not read. */
const ignorableWithJunk: fc.Arbitrary<FuzzCase> = fc
  .record({
    base: fc.constantFrom(...IGNORABLE_BASES.filter((base) => base.event !== 'ping')),
    junk: fc.uniqueArray(fc.tuple(fc.constantFrom(...JUNK_KEYS), hostileJson(3)), {
      selector: ([key]) => key,
      maxLength: JUNK_KEYS.length,
    }),
  })
  .map(({ base, junk }) => {
    const copy = structuredClone(base.payload);
    for (const [key, value] of junk) defineKey(copy, key, value);
    const keys = junk.map(([key]) => key).join(', ') || 'no junk';
    return fuzzCase('ignorable + junk', `${base.event} (${base.reason}) + ${keys}`, base.event, canaried(copy), {
      status: 200,
      ignored: base.reason,
    });
  });

/**
 * Every kind of hostile, correctly signed delivery. The weights follow the old hand-rolled generator's
 * counts; the kinds that are mostly fixed cases (above) get a few generated variations too.
 */
const hostileDelivery: fc.Arbitrary<FuzzCase> = fc.oneof(
  { weight: 50, arbitrary: truncatedJson },
  {
    weight: 5,
    arbitrary: fc
      .record({ event: workingEvent, body: fc.constantFrom(...NOT_JSON_BODIES) })
      .map(({ event, body }) => notJson(event, body)),
  },
  { weight: 30, arbitrary: invalidUtf8 },
  { weight: 8, arbitrary: deepNesting },
  { weight: 92, arbitrary: wrongTypes },
  {
    weight: 5,
    arbitrary: fc
      .tuple(fc.constantFrom(...SMUGGLED), fc.constantFrom(...SMUGGLE_VIA))
      .map(([entry, via]) => smuggled(entry, via)),
  },
  {
    weight: 5,
    arbitrary: fc
      .tuple(workingEvent, fc.constantFrom(...NOT_OBJECT_BODIES))
      .map(([event, raw]) => notAnObject(event, raw)),
  },
  { weight: 36, arbitrary: unknownEvents },
  { weight: 10, arbitrary: pings },
  { weight: 16, arbitrary: ignorableWithJunk },
);
/** Generated cases per run, on top of FIXED_CASES: bounded, so a run takes seconds on a loaded 2-core machine. */
const NUM_RUNS = 230;
const FUZZ_PARAMETERS = { seed: SEED, numRuns: NUM_RUNS } as const;

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

async function keysUnder(redis: RedisConnection, prefix: string): Promise<string[]> {
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
    it('builds ~300 deterministic cases of every kind', () => {
      const generated = fc.sample(hostileDelivery, FUZZ_PARAMETERS);
      const kinds = [
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
      ];
      expect(FIXED_CASES.length + generated.length).toBeGreaterThanOrEqual(290);
      // Every kind is generated (not only among the fixed examples), and every fixed kind is in the list.
      expect(new Set(generated.map((c) => c.kind))).toEqual(new Set(kinds));
      expect(kinds).toEqual(expect.arrayContaining([...new Set(FIXED_CASES.map((c) => c.kind))]));
      // Same seed, same bodies.
      const again = fc.sample(hostileDelivery, FUZZ_PARAMETERS);
      expect(again.map((c) => c.body.toString('base64'))).toEqual(generated.map((c) => c.body.toString('base64')));
    });

    /** What Redis holds under the harness's prefix: jobs in any state, and every key. */
    const footprint = async () => {
      const counts = {
        ...(await harness.queues.sync.getJobCounts()),
        ...(await harness.queues.preview.getJobCounts()),
      };
      return {
        jobs: Object.values(counts).reduce((sum, n) => sum + n, 0),
        keys: await keysUnder(harness.redis, harness.prefix),
      };
    };
    /** BullMQ's own `<queue>:meta` (its version) is all there may be. */
    const notBullMqMeta = (key: string) => !/^[^:]+:(sync|preview):meta$/.test(key);

    /** Everything wrong with the answer to `c` (empty when it is right), each naming the case. */
    async function problemsWith(c: FuzzCase, deliveryId: string): Promise<string[]> {
      const before = await footprint();
      const logsBefore = harness.logs.length;
      const answer = await post(harness.baseUrl, signedHeaders(c.event, c.body, deliveryId), c.body);
      const after = await footprint();
      const problems: string[] = [];
      let body: Record<string, unknown> = {};
      try {
        body = JSON.parse(answer.text) as Record<string, unknown>;
      } catch {
        problems.push('the answer is not JSON');
      }
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
      if (!ok) problems.push(`answered ${answer.status} ${answer.contentType} ${answer.text.slice(0, 200)}`);
      if (answer.text.includes(CANARY) || answer.text.length > 300) problems.push('the answer echoes the body');
      if (harness.logs.slice(logsBefore).join('\n').includes(CANARY)) problems.push('a log line echoes the body');
      if (Object.hasOwn(Object.prototype, 'polluted')) problems.push('Object.prototype was polluted');
      if (after.jobs !== before.jobs) problems.push(`jobs under the prefix went from ${before.jobs} to ${after.jobs}`);
      const written = after.keys.filter((key) => !before.keys.includes(key) && notBullMqMeta(key));
      if (written.length > 0) problems.push(`keys written: ${written.join(', ')}`);
      const health = await fetch(`${harness.baseUrl}/healthz`, { signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) });
      if (health.status !== 200) problems.push(`/healthz answered ${health.status} afterwards`);
      return problems;
    }

    it('answers each with the expected 4xx (or 200 when ignorable), queues nothing and keeps serving', async () => {
      const gc = garbageCollector();
      gc?.();
      const heapBefore = process.memoryUsage().heapUsed;

      // Fixed cases first, then NUM_RUNS generated ones; on a failure fast-check shrinks the generated case
      // to a minimal one and reports it (one line, see fuzzCase) with the problems named below.
      let sent = 0;
      await fc.assert(
        fc.asyncProperty(hostileDelivery, async (c) => {
          sent += 1;
          const problems = await problemsWith(c, `drill-${SEED}-${sent}`);
          expect({ case: String(c), problems }).toEqual({ case: String(c), problems: [] });
        }),
        // fast-check counts the examples among `numRuns`.
        {
          ...FUZZ_PARAMETERS,
          numRuns: FIXED_CASES.length + NUM_RUNS,
          examples: FIXED_CASES.map((c) => [c] as [FuzzCase]),
        },
      );
      expect(sent).toBe(FIXED_CASES.length + NUM_RUNS);

      expect(harness.logs.join('\n')).not.toContain(CANARY);
      expect(Object.prototype).not.toHaveProperty('polluted');
      expect(await (await fetch(`${harness.baseUrl}/healthz`)).json()).toEqual({ status: 'ok' });

      // Nothing reached Redis: no job, no newest-push record, no delivery claim, no installation change.
      const { jobs, keys } = await footprint();
      expect(jobs).toBe(0);
      expect(keys.filter(notBullMqMeta)).toEqual([]);

      gc?.();
      const growth = process.memoryUsage().heapUsed - heapBefore;
      expect(growth).toBeLessThan(200 * MB);

      // The inspection above sees jobs under this prefix: one valid push shows up.
      const control = pushPayload({ after: fakeSha(1), repositoryId: 6001 });
      expect((await send(harness.baseUrl, githubDelivery('push', control, WEBHOOK_SECRET))).status).toBe(202);
      expect((await harness.queues.sync.getJobCounts()).delayed).toBe(1);
      expect((await footprint()).keys.filter(notBullMqMeta)).not.toEqual([]);
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
