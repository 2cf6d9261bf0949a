import type { Request, RequestHandler } from 'express';
import type { Logger } from '../logging/create-logger.ts';
import { answerAndDiscard } from './answer-and-discard.ts';
import type { BodyBudget } from './body-budget.ts';
import { eventLabel } from './receiver-metrics.ts';
import { parseSignatureHeader, type SecretName, startSignatureCheck, type WebhookSecrets } from './signature-check.ts';

/** A verified delivery body: decoded once, and which secret signed it. */
export interface SignedBody {
  readonly text: string;
  readonly signedWith: SecretName;
}

export type BodyRefusal = 'too-large' | 'rejected' | 'busy';

export interface SignedBodyOptions {
  /** Largest body accepted (GitHub caps payloads at 25 MB). */
  readonly limit: number;
  readonly secrets: WebhookSecrets;
  /** Shared by every delivery this receiver is reading; a body that would pass it gets 503. */
  readonly budget: BodyBudget;
  readonly logger: Logger;
  /** Counts a request answered here (the metric). */
  readonly onRefused: (req: Request, refusal: BodyRefusal) => void;
}

export const SIGNATURE_MISMATCH = 'signature does not match the webhook secret';
/** GitHub does not retry on its own; the header is for anything else that sends to us. */
const RETRY_AFTER_SECONDS = '5';

const bodies = new WeakMap<Request, SignedBody>();

/** The body `readSignedBody` verified for this request; undefined if it did not run or refused it. */
export function signedBody(req: Request): SignedBody | undefined {
  return bodies.get(req);
}

/** Strict UTF-8 (GitHub sends nothing else); a byte-order mark is kept, as Buffer#toString keeps it. */
const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/**
 * Reads a webhook body while checking its `X-Hub-Signature-256`: the HMAC is fed chunk by chunk, the
 * chunks are kept as they came (no copy) and charged to the shared budget, and only once the digest
 * matches are they joined (one copy) and decoded, once. A body that is too large (413, from
 * Content-Length or mid-stream), would pass the budget (503 + Retry-After), carries a header that cannot
 * be a signature (401 before a byte is read) or a wrong signature (401 at its end) is answered here and
 * never joined or decoded. Bytes that are not UTF-8, and an empty body, are a 401 too: GitHub signs
 * UTF-8 text and always sends a payload, so such a body was not signed by it (the answers
 * @octokit/webhooks' verify() gave).
 */
export function readSignedBody(options: SignedBodyOptions): RequestHandler {
  const { limit, budget } = options;
  return (req, res, next) => {
    const log = options.logger.child({
      deliveryId: req.get('x-github-delivery'),
      event: eventLabel(req.get('x-github-event')),
    });
    const declared = Number(req.get('content-length') ?? Number.NaN);
    if (declared > limit) {
      options.onRefused(req, 'too-large');
      answerAndDiscard(req, res, 413, tooLarge(limit));
      return;
    }
    const expected = parseSignatureHeader(req.get('x-hub-signature-256') ?? '');
    if (!expected) {
      log.warn({ reason: 'malformed signature header' }, 'delivery rejected: signature does not match');
      options.onRefused(req, 'rejected');
      answerAndDiscard(req, res, 401, { error: SIGNATURE_MISMATCH });
      return;
    }

    const check = startSignatureCheck(options.secrets, expected);
    let chunks: Buffer[] = [];
    let size = 0;
    let charged = 0;
    let settled = false;
    // The budget is given back when the answer is done (or the sender went away), whatever happened.
    res.once('close', () => {
      budget.give(charged);
      charged = 0;
    });
    const refuse = (status: number, refusal: BodyRefusal, body: Record<string, unknown>, headers = {}) => {
      settled = true;
      chunks = [];
      options.onRefused(req, refusal);
      answerAndDiscard(req, res, status, body, headers);
    };

    req.on('data', (chunk: Buffer) => {
      if (settled) return;
      size += chunk.length;
      if (size > limit) return refuse(413, 'too-large', tooLarge(limit));
      if (!budget.take(chunk.length)) {
        log.warn({ bytesInFlight: budget.used(), received: size }, 'delivery refused: too many bodies in flight');
        return refuse(
          503,
          'busy',
          { error: 'receiver busy: too many webhook bodies in flight; redeliver this delivery' },
          { 'retry-after': RETRY_AFTER_SECONDS },
        );
      }
      charged += chunk.length;
      check.update(chunk);
      chunks.push(chunk);
    });
    req.once('end', () => {
      if (settled) return;
      settled = true;
      // GitHub never sends an empty body; like @octokit/webhooks, we do not take one as signed.
      const signedWith = size > 0 ? check.finish() : undefined;
      const raw = signedWith ? join(chunks, size) : undefined;
      chunks = [];
      const text = raw ? decode(raw) : undefined;
      if (!signedWith || text === undefined) {
        const reason = size === 0 ? 'empty body' : signedWith ? 'not UTF-8' : 'digest differs';
        log.warn({ reason, bytes: size }, 'delivery rejected: signature does not match');
        options.onRefused(req, 'rejected');
        res.status(401).json({ error: SIGNATURE_MISMATCH });
        return;
      }
      bodies.set(req, { text, signedWith });
      next();
    });
    req.once('error', () => {
      // The sender went away mid-body: there is nobody left to answer.
      settled = true;
      chunks = [];
    });
  };
}

const tooLarge = (limit: number) => ({ error: `body exceeds GitHub's ${limit / 1024 / 1024} MB limit` });

/** One copy, only for a verified body; a body that came in one chunk is not copied at all. */
function join(chunks: readonly Buffer[], size: number): Buffer {
  return chunks.length === 1 && chunks[0] ? chunks[0] : Buffer.concat(chunks, size);
}

function decode(raw: Buffer): string | undefined {
  try {
    return utf8.decode(raw);
  } catch {
    return undefined;
  }
}
