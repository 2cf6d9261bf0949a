import type { RequestHandler, Response } from 'express';

/**
 * Reads the body into `req.body` as a Buffer, refusing with 413 as soon as it is known to exceed
 * `limit`: from Content-Length before reading anything, or mid-stream for a chunked body. Nothing past
 * the limit is kept in memory, and the connection is closed rather than drained.
 */
export function readRawBody(limit: number): RequestHandler {
  return (req, res, next) => {
    const declared = Number(req.get('content-length') ?? Number.NaN);
    if (declared > limit) {
      refuse(res, limit);
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
        req.pause();
        refuse(res, limit);
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

function refuse(res: Response, limit: number): void {
  res.set('connection', 'close');
  res.status(413).json({ error: `body exceeds GitHub's ${limit / 1024 / 1024} MB limit` });
}
