import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import express, { type Request, type RequestHandler, type Response } from 'express';
import { z } from 'zod';
import { renderSignInPage } from './status-page.ts';

export type StatusPageMode = 'off' | 'public' | 'token';

export interface StatusPageAccessOptions {
  /** Required for `token`: what a reader must present (`PLUMBLINE_STATUS_PAGE_TOKEN`). */
  readonly token: string | undefined;
  /** Marks the cookie `Secure` (the page is served over HTTPS, e.g. behind the Ingress). */
  readonly secureCookie: boolean;
}

export const STATUS_COOKIE = 'plumbline_status';
export const SIGN_IN_PATH = '/signin';
const COOKIE_DAYS = 7;

/** Where a sign-in may send the reader afterwards: the status page's own routes, nothing else. */
const STATUS_ROUTE = /^\/(?:clusters\/[a-z0-9-]{1,63}|api\/clusters(?:\/[a-z0-9-]{1,63})?)?(?:\?refresh=off)?$/;

const signInForm = z.object({ token: z.string().max(4096), next: z.string().max(200).optional() });

const digest = (text: string) => createHash('sha256').update(text).digest();

/** Constant-time equality of two secrets of any length (their digests have the same length). */
function sameSecret(candidate: string, expected: Buffer): boolean {
  return timingSafeEqual(digest(candidate), expected);
}

function cookieValue(header: string | undefined): string | undefined {
  for (const part of (header ?? '').split(';')) {
    const [name, ...value] = part.trim().split('=');
    if (name === STATUS_COOKIE) return value.join('=');
  }
  return undefined;
}

function bearer(header: string | undefined): string | undefined {
  const match = /^Bearer[ ]+(\S+)\s*$/i.exec(header ?? '');
  return match?.[1];
}

/** The request's own address without the sign-in parameters. */
function withoutToken(req: Request, add: Record<string, string> = {}): string {
  const url = new URL(req.originalUrl, 'http://status.invalid');
  url.searchParams.delete('token');
  url.searchParams.delete('signin');
  for (const [name, value] of Object.entries(add)) url.searchParams.set(name, value);
  return `${url.pathname}${url.search}`;
}

const isPage = (req: Request) => !req.path.startsWith('/api/');

/**
 * Guards the status page and `/api/clusters` in `token` mode. The token is accepted as
 * `Authorization: Bearer <token>`, or once — in `?token=` or the sign-in form — after which the reader
 * holds an HttpOnly, SameSite=Strict cookie (an HMAC of the token, never the token itself) and is sent
 * to the same page without the token in its address. Comparisons are constant-time. Everything it
 * answers is `no-store`.
 */
export function statusPageAccess(options: StatusPageAccessOptions): {
  readonly guard: RequestHandler;
  readonly signIn: RequestHandler[];
} {
  if (!options.token) throw new Error('the status page token is required in token mode');
  const expectedToken = digest(options.token);
  const cookie = createHmac('sha256', options.token).update('plumbline status page cookie').digest('base64url');
  const expectedCookie = digest(cookie);

  const setCookie = (res: Response) =>
    res.append(
      'set-cookie',
      `${STATUS_COOKIE}=${cookie}; Path=/; HttpOnly; SameSite=Strict; Max-Age=${COOKIE_DAYS * 86_400}${options.secureCookie ? '; Secure' : ''}`,
    );
  const privately = (res: Response) => {
    res.set('cache-control', 'no-store');
    res.vary('authorization');
    res.vary('cookie');
  };
  const deny = (req: Request, res: Response, wrong: boolean) => {
    res.status(401).set('www-authenticate', 'Bearer realm="plumbline status page"');
    if (!isPage(req)) {
      res.json({ error: 'this status page needs its token: Authorization: Bearer <token>' });
      return;
    }
    // A reader coming from a GitHub link arrives cross-site, so the browser held its SameSite=Strict
    // cookie back; reloading from here is same-site and sends it. Once: `signin=1` marks the reload.
    const reload = wrong || req.query.signin !== undefined ? undefined : withoutToken(req, { signin: '1' });
    res
      .type('html')
      .set('content-security-policy', CONTENT_SECURITY_POLICY)
      .send(renderSignInPage({ next: withoutToken(req), reload, wrong }));
  };

  const guard: RequestHandler = (req, res, next) => {
    privately(res);
    const offered = req.query.token;
    if (typeof offered === 'string') {
      if (!sameSecret(offered, expectedToken)) return deny(req, res, true);
      setCookie(res);
      return res.redirect(303, withoutToken(req));
    }
    const presented = bearer(req.get('authorization'));
    if (presented !== undefined && sameSecret(presented, expectedToken)) return next();
    const held = cookieValue(req.get('cookie'));
    if (held !== undefined && sameSecret(held, expectedCookie)) return next();
    deny(req, res, presented !== undefined);
  };

  const signIn: RequestHandler[] = [
    express.urlencoded({ extended: false, limit: '8kb', parameterLimit: 4 }),
    (req, res) => {
      privately(res);
      const form = signInForm.safeParse(req.body);
      const next = form.success && form.data.next && STATUS_ROUTE.test(form.data.next) ? form.data.next : '/';
      if (!form.success || !sameSecret(form.data.token, expectedToken)) {
        res
          .status(401)
          .type('html')
          .set('content-security-policy', CONTENT_SECURITY_POLICY)
          .send(renderSignInPage({ next, reload: undefined, wrong: true }));
        return;
      }
      setCookie(res);
      res.redirect(303, next);
    },
  ];
  return { guard, signIn };
}

/** The status pages have no scripts, images or frames; the only form posts to this origin. */
export const CONTENT_SECURITY_POLICY =
  "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";
