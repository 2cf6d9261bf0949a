import type { Express, Request, RequestHandler, Response } from 'express';
import type { ClusterState, ClusterStateStore } from '../status/cluster-state.ts';
import { publicClusterState } from './public-cluster-state.ts';
import { renderClusterPage, renderStatusPage, type StatusPageView } from './status-page.ts';
import { CONTENT_SECURITY_POLICY, SIGN_IN_PATH, type StatusPageMode, statusPageAccess } from './status-page-access.ts';

export interface StatusPageSettings {
  /** `off`: not served (404); `public`: anyone, without error detail or addresses; `token`: full detail. */
  readonly mode: StatusPageMode;
  readonly token: string | undefined;
  readonly secureCookie: boolean;
}

const CLUSTER_NAME = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;

/**
 * The status page (`/`, `/clusters/:name`) and the same as JSON (`/api/clusters[/:name]`), as the mode
 * allows. In `off` mode nothing is mounted: those paths fall through to the receiver's 404.
 */
export function mountStatusPage(
  app: Express,
  clusters: Pick<ClusterStateStore, 'get' | 'list'>,
  settings: StatusPageSettings,
): void {
  if (settings.mode === 'off') return;
  const view: StatusPageView = settings.mode === 'public' ? 'public' : 'full';
  const shown = (state: ClusterState) => (view === 'public' ? publicClusterState(state) : state);
  let guard: RequestHandler = (_req, _res, next) => next();
  if (settings.mode === 'token') {
    const access = statusPageAccess({ token: settings.token, secureCookie: settings.secureCookie });
    guard = access.guard;
    app.post(SIGN_IN_PATH, ...access.signIn);
  }
  const named = async (req: Request) => {
    const name = String(req.params.name);
    return CLUSTER_NAME.test(name) ? await clusters.get(name) : undefined;
  };
  const html = (res: Response, status: number, body: string) =>
    res.status(status).type('html').set('content-security-policy', CONTENT_SECURITY_POLICY).send(body);
  const refreshing = (req: Request) => req.query.refresh !== 'off';

  app.get('/', guard, async (req, res) => {
    html(res, 200, renderStatusPage((await clusters.list()).map(shown), Date.now(), refreshing(req), view));
  });
  app.get('/clusters/:name', guard, async (req, res) => {
    const state = await named(req);
    if (!state) {
      html(
        res,
        404,
        '<!doctype html><html lang="en"><title>Not found</title><p>No such cluster. <a href="/">All clusters</a></p></html>',
      );
      return;
    }
    html(res, 200, renderClusterPage(shown(state), Date.now(), refreshing(req), view));
  });
  app.get('/api/clusters', guard, async (_req, res) => {
    res.json({ clusters: (await clusters.list()).map(shown) });
  });
  app.get('/api/clusters/:name', guard, async (req, res) => {
    const state = await named(req);
    if (!state) {
      res.status(404).json({ error: 'no such cluster' });
      return;
    }
    res.json(shown(state));
  });
}
