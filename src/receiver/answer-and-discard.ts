import type { Request, Response } from 'express';

/** How long a refused sender may keep sending (discarded) before the connection is closed. */
const LINGER_MS = 2_000;

/**
 * Answers at once, before the body has been read (or while it is still arriving), then lingers: the rest
 * of the body is read and discarded (never kept) for a moment before the connection closes. Closing a
 * socket with unread data makes the kernel send a reset, which can destroy the answer before the sender
 * has read it.
 */
export function answerAndDiscard(
  req: Request,
  res: Response,
  status: number,
  body: Record<string, unknown>,
  headers: Record<string, string> = {},
): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    ...headers,
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(text),
    connection: 'close',
  });
  res.write(text);
  req.removeAllListeners('data');
  req.resume();
  const close = () => {
    clearTimeout(timer);
    res.end();
  };
  const timer = setTimeout(close, LINGER_MS);
  if (req.readableEnded) close();
  req.once('end', close);
  req.once('error', close);
}
