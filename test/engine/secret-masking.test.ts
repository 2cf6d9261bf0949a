import { describe, expect, it } from '@jest/globals';
import {
  containsSecret,
  isHighEntropyToken,
  isSecretPayloadField,
  isSecretSegment,
  itemNames,
  looksLikeCredential,
  MASK,
} from '../../src/engine/secret-masking.ts';

/** sha256("test"): a real digest, random-looking enough to be masked if it were not recognised as one. */
const SHA256 = '9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08';

describe('MASK', () => {
  it('says nothing about the value it stands for', () => {
    expect(MASK).toMatch(/^•+$/);
  });
});

describe('isSecretSegment: key and item names', () => {
  it.each([
    'password',
    'DB_PASSWORD',
    'passwd',
    'SMTP_PASS',
    'clientSecret',
    'API_TOKEN',
    'aws_credentials',
    'api_key',
    'api-key',
    'apiKey',
    'private_key',
    'AUTH_HEADER',
    'tls.cert',
    'SENTRY_DSN',
    'connection_string',
  ])('%s names a secret', (segment) => {
    expect(isSecretSegment(segment)).toBe(true);
  });

  it.each(['region', 'replicas', 'LOG_LEVEL', 'name', 'image', 'app.kubernetes.io/name'])('%s does not', (segment) => {
    expect(isSecretSegment(segment)).toBe(false);
  });

  it('also marks a segment that is itself a credential (a token used as a key)', () => {
    expect(isSecretSegment(`ghp_${'A1b2C3d4E5'.repeat(4)}`)).toBe(true);
  });
});

describe('looksLikeCredential: well-known prefixes', () => {
  it.each([
    ['a GitHub personal token', `ghp_${'A1b2C3d4E5'.repeat(4)}`],
    ['a GitHub OAuth token', 'gho_abc'],
    ['a GitHub user-to-server token', 'ghu_abc'],
    ['a GitHub server-to-server token', 'ghs_abc'],
    ['a GitHub refresh token', 'ghr_abc'],
    ['a fine-grained GitHub token', 'github_pat_11ABC'],
    ['a Slack bot token', 'xoxb-123-456'],
    ['a Slack user token', 'xoxp-123'],
    ['a Slack app token', 'xoxa-123'],
    ['a Slack refresh token', 'xoxr-123'],
    ['an AWS access key id', 'AKIAIOSFODNN7EXAMPLE'],
    ['a PEM block', '-----BEGIN PRIVATE KEY-----\nMIIE...'],
    ['a JWT', 'eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln'],
    ['a prefixed token after leading space', '   ghp_abc'],
    ['a prefixed token inside a sentence', 'the bot uses xoxb-123 to post'],
  ])('%s', (_what, value) => {
    expect(looksLikeCredential(value)).toBe(true);
  });

  it('does not take a prefix in the middle of a word for one', () => {
    expect(looksLikeCredential('BAKIAX theyJump')).toBe(false);
  });
});

describe('looksLikeCredential: credentials embedded in a longer string', () => {
  it.each([
    ['a PEM block glued to other text', 'MIIE-----BEGIN CERTIFICATE-----'],
    ['a URL with a password', 'url: postgres://app:s3cr3t-pw@db:5432/app'],
    ['a password assignment', 'password=hunter2'],
    ['a quoted api key', 'api_key="k-123"'],
    ['a token in YAML', 'token: abc123'],
    ['an authorization header', 'Authorization: Basic dXNlcg'],
    ['a DSN', 'dsn=https://sentry'],
  ])('%s', (_what, value) => {
    expect(looksLikeCredential(value)).toBe(true);
  });

  it.each([
    ['a URL with a user but no password', 'https://app@example.com/path'],
    ['a URL with a port', 'https://example.com:8443/path'],
    ['prose about passwords', 'passwords are rotated monthly'],
    ['an assignment with an empty value', 'password='],
    ['an ordinary setting', 'level=info'],
  ])('not %s', (_what, value) => {
    expect(looksLikeCredential(value)).toBe(false);
  });
});

describe('looksLikeCredential: random-looking tokens', () => {
  it('masks long high-entropy base64 and hex tokens, alone or inside a sentence', () => {
    expect(looksLikeCredential('q8Zr2LmP4tW9xK3nB7vC1dF6gH0jS5aE')).toBe(true);
    expect(looksLikeCredential('9f86d081884c7d659a2feaa0c55ad015')).toBe(true);
    expect(looksLikeCredential(`Bearer ${'Zx9Qk2LmP4rT8vWy'.repeat(2)}`)).toBe(true);
  });

  it('keeps ordinary long values visible', () => {
    expect(looksLikeCredential('my-application-configuration-v2-prod')).toBe(false);
    expect(looksLikeCredential('usr/local/lib/node_modules/typescript/bin')).toBe(false);
  });

  it('keeps image and content digests visible, whatever the algorithm', () => {
    expect(looksLikeCredential(`ghcr.io/acme/app@sha256:${SHA256}`)).toBe(false);
    expect(looksLikeCredential(`sha512:${SHA256}${SHA256}`)).toBe(false);
    // The same hex outside a digest is a token.
    expect(looksLikeCredential(`checksum: ${SHA256}`)).toBe(true);
  });
});

describe('isHighEntropyToken', () => {
  it.each([
    ['mixed-case base64 with digits', 'q8Zr2LmP4tW9xK3nB7vC1dF6gH0jS5aE'],
    ['mixed-case base64 without digits', 'qZrLmPtWxKnBvCdFgHjSaEoIuYtReWqQ'],
    ['lower-case hex', '9f86d081884c7d659a2feaa0c55ad015'],
    ['upper-case hex', '9F86D081884C7D659A2FEAA0C55AD015'],
  ])('%s is one', (_what, piece) => {
    expect(isHighEntropyToken(piece)).toBe(true);
  });

  it.each([
    ['31 characters are too short', 'q8Zr2LmP4tW9xK3nB7vC1dF6gH0jS5a'],
    ['spaces are not token characters', 'q8Zr2LmP4tW9 xK3nB7vC1dF6gH0jS5aE'],
    ['hex of digits only', '12345678901234567890123456789012'],
    ['hex of low entropy', 'ab12'.repeat(8)],
    ['lower case only, no digits', 'abcdefghijklmnopqrstuvwxyzabcdef'],
    ['low entropy despite mixed classes', 'xX1'.repeat(11)],
    ['hex of low entropy despite mixed classes', 'aA1'.repeat(11)],
    ['high entropy but words-like runs (few class switches)', 'abcdefghijklmnopqrstuvwxyz012345'],
  ])('not when %s', (_what, piece) => {
    expect(isHighEntropyToken(piece)).toBe(false);
  });
});

describe('isSecretPayloadField', () => {
  it('is data and stringData only', () => {
    expect(['data', 'stringData', 'type', 'metadata', undefined].map(isSecretPayloadField)).toEqual([
      true,
      true,
      false,
      false,
      false,
    ]);
  });
});

describe('itemNames', () => {
  it('are the string name and key of a list item', () => {
    expect(itemNames({ name: 'DB_PASSWORD', key: 'pw', value: 'x' })).toEqual(['DB_PASSWORD', 'pw']);
    expect(itemNames({ name: 8080, key: 'k' })).toEqual(['k']);
    expect(itemNames('DB_PASSWORD')).toEqual([]);
    expect(itemNames(null)).toEqual([]);
  });
});

describe('containsSecret', () => {
  it('finds a credential-looking string, however deep', () => {
    expect(containsSecret('postgres://app:pw1@db/app')).toBe(true);
    expect(containsSecret({ spec: { nested: [{ value: 'xoxb-123' }] } })).toBe(true);
  });

  it('finds a secret-named key in a subtree', () => {
    expect(containsSecret({ spec: { auth: { user: 'admin' } } })).toBe(true);
  });

  it('finds a list item whose name or key names a secret', () => {
    expect(containsSecret([{ name: 'STRIPE_API_KEY', value: 'plain-looking' }])).toBe(true);
    expect(containsSecret([{ key: 'db-password', path: 'pw' }])).toBe(true);
  });

  it('finds nothing in an innocent subtree or in non-strings', () => {
    expect(containsSecret({ spec: { replicas: 3, ports: [{ name: 'http', port: 80 }], flag: true } })).toBe(false);
    expect(containsSecret(['--port=9898', '--level=info'])).toBe(false);
    expect([42, true, null, undefined].some(containsSecret)).toBe(false);
  });
});
