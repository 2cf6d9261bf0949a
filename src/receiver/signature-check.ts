import { createHmac, type Hmac, timingSafeEqual } from 'node:crypto';

/** Which webhook secret signed a delivery: the one in use, or the one being rotated out. Never the secret itself. */
export type SecretName = 'current' | 'previous';

export interface WebhookSecrets {
  readonly current: string;
  /** Set only while a rotation is under way (`GITHUB_WEBHOOK_SECRET_PREVIOUS`). */
  readonly previous?: string | undefined;
}

/** What GitHub sends: `sha256=` and 64 lowercase hex digits. Anything else cannot match. */
const SIGNATURE = /^sha256=([0-9a-f]{64})$/;

/** The 32 digest bytes of an `X-Hub-Signature-256` header, or undefined when it cannot be a GitHub signature. */
export function parseSignatureHeader(header: string): Buffer | undefined {
  const hex = SIGNATURE.exec(header)?.[1];
  return hex ? Buffer.from(hex, 'hex') : undefined;
}

export interface SignatureCheck {
  /** Feeds the next bytes of the raw body, as they arrive. */
  update(chunk: Buffer): void;
  /** After the last byte: which secret produced the expected digest, or undefined. Call once. */
  finish(): SecretName | undefined;
}

/**
 * HMAC-SHA256 of the raw body computed while it streams in, with every configured secret, compared
 * with `expected` in constant time. Every secret's digest is compared, so the time taken does not say
 * which one matched.
 */
export function startSignatureCheck(secrets: WebhookSecrets, expected: Buffer): SignatureCheck {
  const hmacs: [SecretName, Hmac][] = [['current', createHmac('sha256', secrets.current)]];
  if (secrets.previous) hmacs.push(['previous', createHmac('sha256', secrets.previous)]);
  return {
    update(chunk) {
      for (const [, hmac] of hmacs) hmac.update(chunk);
    },
    finish() {
      let matched: SecretName | undefined;
      for (const [name, hmac] of hmacs) {
        const actual = hmac.digest();
        if (actual.length === expected.length && timingSafeEqual(actual, expected)) matched ??= name;
      }
      return matched;
    },
  };
}
