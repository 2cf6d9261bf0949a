/**
 * What Plumbline treats as secret when it shows a value from a manifest or a cluster to a person (a
 * check run, a drift report): a key or list-item name that says "secret" (`DB_PASSWORD`, `api_key`),
 * a value that looks like a credential whatever key it sits under (a GitHub token, a PEM block, a URL
 * with a password, a long random token), and a Secret's payload. A masked value is shown as
 * {@link MASK}: a reader learns *that* it changed, never *what* it holds. Pure.
 */

/** What a masked value is shown as: it says a value changed without saying anything about it. */
export const MASK = '••••••';

/** Keys (and list-item names such as an env var's) whose values are treated as secrets. */
const SECRET_KEY =
  /(pass(word|wd)?|secret|token|credential|api[-_]?key|private[-_]?key|auth|cert|dsn|connection[-_]?string)/i;
/** Well-known credential prefixes: GitHub and Slack tokens, AWS access keys, PEM blocks, JWTs. */
const CREDENTIAL_PREFIX = /^(?:gh[pousr]_|github_pat_|xox[abpr]-|AKIA|-----BEGIN|eyJ)/;
/** Credentials embedded in a longer string: a PEM block, a URL with a password, `password=…`-style assignments. */
const EMBEDDED_CREDENTIAL = [
  /-----BEGIN/,
  /[a-z][a-z0-9+.-]*:\/\/[^\s/:@]+:[^\s/@]+@/i,
  /(?:pass(?:word|wd)?|secret|token|credential|api[-_]?key|private[-_]?key|auth(?:orization)?|dsn)["']?\s*[=:]\s*["']?[^\s"',;]{3,}/i,
];
/** Image and content digests (`sha256:<hex>`) are public identifiers, not credentials. */
const DIGEST = /\bsha(?:1|224|256|384|512):[0-9a-f]+/gi;
/** Splits a string into the pieces a token could be one of. */
const PIECE_SEPARATOR = /[\s=:,;"'`()[\]{}<>|]+/;
const TOKEN_CHARS = /^[A-Za-z0-9+/=_-]{32,}$/;
const HEX_CHARS = /^[0-9a-fA-F]+$/;
/** The fields of a core `Secret` that hold its payload. */
const SECRET_PAYLOAD_FIELDS: ReadonlySet<string> = new Set(['data', 'stringData']);

const isRecord = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

/** Bits of Shannon entropy per character. */
function entropy(text: string): number {
  const counts = new Map<string, number>();
  for (const char of text) counts.set(char, (counts.get(char) ?? 0) + 1);
  let bits = 0;
  for (const count of counts.values()) {
    const p = count / text.length;
    bits -= p * Math.log2(p);
  }
  return bits;
}

/** How often neighbouring letters/digits switch class (lower, upper, digit): words rarely do, random text often. */
function classSwitchRate(piece: string): number {
  const chars = piece.replace(/[^A-Za-z0-9]/g, '');
  const classOf = (char: string) => (/[a-z]/.test(char) ? 0 : /[A-Z]/.test(char) ? 1 : 2);
  let switches = 0;
  for (let i = 1; i < chars.length; i++) if (classOf(chars.charAt(i)) !== classOf(chars.charAt(i - 1))) switches++;
  return chars.length > 1 ? switches / (chars.length - 1) : 0;
}

/**
 * A long (32+), random-looking base64/hex run without spaces: high entropy, and (unless hex) letters
 * that keep switching case or to digits — which keeps `my-application-configuration-v2` and paths visible.
 */
export function isHighEntropyToken(piece: string): boolean {
  if (!TOKEN_CHARS.test(piece)) return false;
  const [digit, lower, upper] = [/[0-9]/.test(piece), /[a-z]/.test(piece), /[A-Z]/.test(piece)];
  if (HEX_CHARS.test(piece)) return digit && (lower || upper) && entropy(piece) >= 3;
  return (digit ? lower || upper : lower && upper) && entropy(piece) >= 3.5 && classSwitchRate(piece) >= 0.15;
}

/**
 * Whether a string value looks like a credential, whatever key it sits under: it starts with (or has a
 * piece starting with) a well-known credential prefix, embeds one (PEM block, URL password,
 * `password=…`), or has a high-entropy token among its pieces. Image digests never count.
 */
export function looksLikeCredential(value: string): boolean {
  if (CREDENTIAL_PREFIX.test(value.trimStart())) return true;
  if (EMBEDDED_CREDENTIAL.some((pattern) => pattern.test(value))) return true;
  return value
    .replace(DIGEST, ' ')
    .split(PIECE_SEPARATOR)
    .some((piece) => CREDENTIAL_PREFIX.test(piece) || isHighEntropyToken(piece));
}

/** Whether a path segment (an object key or a list item's name) marks what lies under it as secret. */
export const isSecretSegment = (segment: string): boolean => SECRET_KEY.test(segment) || looksLikeCredential(segment);

/** Whether a top-level field of a core `Secret` holds its payload (`data`, `stringData`): all of it is masked. */
export const isSecretPayloadField = (field: string | undefined): boolean =>
  field !== undefined && SECRET_PAYLOAD_FIELDS.has(field);

/** The `name`/`key` of a list item, which names what it holds (an env var, a ConfigMap item). */
export function itemNames(item: unknown): string[] {
  if (!isRecord(item)) return [];
  return [item.name, item.key].filter((name): name is string => typeof name === 'string');
}

/**
 * Whether anything inside a whole value (a scalar, or an added/removed/replaced subtree) would be masked
 * on its own: a credential-looking string, a secret-named key, a list item with a secret-looking name.
 */
export function containsSecret(value: unknown): boolean {
  if (typeof value === 'string') return looksLikeCredential(value);
  if (Array.isArray(value)) return value.some((item) => itemNames(item).some(isSecretSegment) || containsSecret(item));
  if (isRecord(value)) {
    return Object.entries(value).some(([key, child]) => isSecretSegment(key) || containsSecret(child));
  }
  return false;
}
