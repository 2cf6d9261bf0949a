import type { Request, RequestHandler, Response } from 'express';

/**
 * Reads the body into `req.body` as a Buffer, refusing with 413 as soon as it is known to exceed
 * `limit`: from Content-Length before reading anything, or mid-stream for a chunked body. Nothing past
 * the limit is kept in memory; `onRefused` lets the caller count the refusal.
 */
export function readRawBody(limit: number, onRefused: (req: Request) => void = () => {}): RequestHandler {
  return (req, res, next) => {
    const declared = Number(req.get('content-length') ?? Number.NaN);
    if (declared > limit) {
      onRefused(req);
      refuse(req, res, limit);
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    let settled = false;
    req.on('data', (chunk: Buffer) => {
      if (settled) return;
      size += chunk.length;
      if (size > limit) {
        settled = true;
        chunks.length = 0;
        onRefused(req);
        refuse(req, res, limit);
        return;
      }
      chunks.push(chunk);
    });
    req.once('end', () => {
      if (settled) return;
      settled = true;
      req.body = Buffer.concat(chunks, size);
      next();
    });
    req.once('error', () => {
      // The sender went away mid-body: there is nobody left to answer.
      settled = true;
    });
  };
}

/** How long a refused sender may keep sending (discarded) before the connection is closed. */
const LINGER_MS = 2_000;

/**
 * Answers 413 at once, then lingers: the rest of the body is read and discarded (never kept) for a
 * moment before the connection closes. Closing a socket with unread data makes the kernel send a reset,
 * which can destroy the answer before the sender has read it.
 */
function refuse(req: Request, res: Response, limit: number): void {
  const body = JSON.stringify({ error: `body exceeds GitHub's ${limit / 1024 / 1024} MB limit` });
  res.writeHead(413, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(body),
    connection: 'close',
  });
  res.write(body);
  req.resume();
  const close = () => {
    clearTimeout(timer);
    res.end();
  };
  const timer = setTimeout(close, LINGER_MS);
  req.once('end', close);
  req.once('error', close);
}
