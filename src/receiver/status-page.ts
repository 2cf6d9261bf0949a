import type { ClusterState } from '../status/cluster-state.ts';

const escapeHtml = (text: string) =>
  text.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c] ?? c);

/** "2 min ago", "in 4 min", in a <time> element whose title is the exact instant. */
function when(iso: string | undefined, now: number): string {
  if (!iso) return '—';
  const seconds = Math.round((now - Date.parse(iso)) / 1000);
  const size = Math.abs(seconds);
  const text = size < 90 ? `${size} s` : size < 5400 ? `${Math.round(size / 60)} min` : `${Math.round(size / 3600)} h`;
  return `<time datetime="${escapeHtml(iso)}" title="${escapeHtml(iso)}">${seconds >= 0 ? `${text} ago` : `in ${text}`}</time>`;
}

/** A commit, linked to the repository's web page when its address is known. */
function commit(state: ClusterState, sha: string): string {
  const short = `<code>${escapeHtml(sha.slice(0, 7))}</code>`;
  return state.repoUrl ? `<a href="${escapeHtml(`${state.repoUrl}/commit/${sha}`)}">${short}</a>` : short;
}

/** A result as a word and a symbol, never by colour alone. */
function badge(status: string): string {
  const kind =
    status === 'applied' || status === 'previewed' || status === 'in sync'
      ? 'ok'
      : status === 'failed' || status === 'error' || status === 'drifted'
        ? 'bad'
        : 'info';
  const symbol = kind === 'ok' ? '✓' : kind === 'bad' ? '✗' : '•';
  return `<span class="badge ${kind}"><span aria-hidden="true">${symbol}</span> ${escapeHtml(status)}</span>`;
}

function driftCell(state: ClusterState, now: number): string {
  const drift = state.drift;
  if (!drift) return 'none seen';
  const objects = drift.objects
    .slice(0, 5)
    .map((o) => {
      const by = [...new Set(o.fields.flatMap((f) => f.changedBy))].join(', ');
      const what = o.kind === 'deleted' ? 'deleted' : o.fields.map((f) => f.path).join(', ');
      return `<li><code>${escapeHtml(o.object)}</code>: ${escapeHtml(what)}${by ? ` (by ${escapeHtml(by)})` : ''}</li>`;
    })
    .join('');
  const more = drift.objects.length > 5 ? `<li>and ${drift.objects.length - 5} more</li>` : '';
  const status = drift.correctedAt
    ? `${badge('corrected')} ${when(drift.correctedAt, now)}`
    : `${badge('drifted')} since ${when(drift.detectedAt, now)}`;
  return `${status}<ul>${objects}${more}</ul>`;
}

/** `full`: everything workers recorded (token mode); `public`: as publicClusterState left it, and said so. */
export type StatusPageView = 'full' | 'public';

const small = (text: string) => (text ? `<br><small>${escapeHtml(text)}</small>` : '');

function page(title: string, body: string, refresh: boolean, view: StatusPageView = 'full'): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
${refresh ? '<meta http-equiv="refresh" content="30">' : ''}
<title>${escapeHtml(title)}</title>
<style>
body{font:15px/1.45 system-ui,sans-serif;margin:0;color:#1f2328;background:#fff}
header,main{max-width:80rem;margin:0 auto;padding:1rem 1.5rem}
header{border-bottom:1px solid #d0d7de}h1{font-size:1.4rem;margin:.2rem 0}
table{border-collapse:collapse;width:100%}caption{text-align:left;font-weight:600;padding:.5rem 0}
th,td{border-bottom:1px solid #d0d7de;padding:.5rem;text-align:left;vertical-align:top}th{background:#f6f8fa}
tr:target{background:#fff8c5}code{font-size:13px}ul{margin:.25rem 0;padding-left:1.2rem}small{color:#57606a}
a{color:#0550ae}a:focus{outline:2px solid #0969da;outline-offset:2px}
.badge{font-weight:600;white-space:nowrap}.ok{color:#116329}.bad{color:#a40e26}.info{color:#57606a}
</style>
</head><body>
<header><h1>${escapeHtml(title)}</h1>
<p><small>Plumbline · refreshes every 30 s${refresh ? ' · <a href="?refresh=off">pause refreshing</a>' : ' (paused) · <a href="?">resume</a>'} · <a href="/api/clusters">JSON</a>${view === 'public' ? " · public view: failures and errors are shown without their details (see the commit's check run and Plumbline's logs)" : ''}</small></p>
</header>
<main>
${body}
</main>
</body></html>
`;
}

/**
 * The status page every commit status links to: one row per cluster (anchored `#cluster-<name>`), what
 * it runs, how the last sync and resync went, and drift. Server-rendered, no scripts. Pure.
 */
export function renderStatusPage(
  clusters: readonly ClusterState[],
  now = Date.now(),
  refresh = true,
  view: StatusPageView = 'full',
): string {
  const rows = clusters
    .map((c) => {
      const sync = c.lastSync
        ? `${badge(c.lastSync.status)} ${commit(c, c.lastSync.sha)} ${when(c.lastSync.at, now)}${small(c.lastSync.description)}`
        : '—';
      const flags = [c.suspended ? 'suspended' : '', c.selfHeal ? '' : 'selfHeal off'].filter(Boolean).join(', ');
      return `<tr id="cluster-${escapeHtml(c.name)}">
  <th scope="row"><a href="/clusters/${encodeURIComponent(c.name)}">${escapeHtml(c.name)}</a>${flags ? `<br><small>${escapeHtml(flags)}</small>` : ''}</th>
  <td><code>${escapeHtml(c.repo)}</code> @ ${escapeHtml(c.branch)}<br><small>${escapeHtml(c.path || '/')}</small></td>
  <td>${c.appliedRevision ? `${commit(c, c.appliedRevision)} ${when(c.appliedAt, now)}` : '—'}</td>
  <td>${sync}</td>
  <td>${when(c.lastResyncAt, now)}${small(c.lastResyncResult ?? '')}</td>
  <td>${driftCell(c, now)}</td>
  <td>${when(c.nextResyncAt, now)}</td>
</tr>`;
    })
    .join('\n');
  const table = `<table>
<caption>${clusters.length} cluster(s)</caption>
<thead><tr><th scope="col">Cluster</th><th scope="col">Source</th><th scope="col">Applied commit</th><th scope="col">Last sync</th><th scope="col">Last resync</th><th scope="col">Drift</th><th scope="col">Next resync</th></tr></thead>
<tbody>
${rows || '<tr><td colspan="7">No cluster has reported yet: workers publish their clusters after their first sync or resync.</td></tr>'}
</tbody></table>`;
  return page('Plumbline — clusters', table, refresh, view);
}

/** One cluster: its state and its recent reconciles. Pure. */
export function renderClusterPage(
  state: ClusterState,
  now = Date.now(),
  refresh = true,
  view: StatusPageView = 'full',
): string {
  const recent = (state.recent ?? [])
    .map(
      (r) =>
        `<tr><td>${when(r.at, now)}</td><td>${commit(state, r.sha)}</td><td>${badge(r.status)}</td><td>${escapeHtml(r.description) || '—'}</td></tr>`,
    )
    .join('\n');
  const facts = [
    [
      'Source',
      `<code>${escapeHtml(state.repo)}</code> @ ${escapeHtml(state.branch)}, <code>${escapeHtml(state.path || '/')}</code>`,
    ],
    [
      'Applied commit',
      state.appliedRevision ? `${commit(state, state.appliedRevision)} ${when(state.appliedAt, now)}` : '—',
    ],
    [
      'Last resync',
      `${when(state.lastResyncAt, now)}${state.lastResyncResult ? ` — ${escapeHtml(state.lastResyncResult)}` : ''}`,
    ],
    ['Next resync', `${when(state.nextResyncAt, now)} (every ${Math.round(state.intervalMs / 1000)} s)`],
    ['Drift', driftCell(state, now)],
    [
      'Totals',
      `${state.totals.driftDetected} drifted object(s) found, ${state.totals.driftCorrected} corrected, ${state.totals.missedPushes} missed push(es)`,
    ],
    [
      'Settings',
      [state.suspended ? 'suspended' : 'active', state.selfHeal ? 'selfHeal on' : 'selfHeal off'].join(', '),
    ],
  ]
    .map(([label, value]) => `<tr><th scope="row">${label}</th><td>${value}</td></tr>`)
    .join('\n');
  const body = `<p><a href="/#cluster-${encodeURIComponent(state.name)}">← all clusters</a></p>
<table><caption>State</caption><tbody>
${facts}
</tbody></table>
<table><caption>Recent reconciles</caption>
<thead><tr><th scope="col">When</th><th scope="col">Commit</th><th scope="col">Result</th><th scope="col">What happened</th></tr></thead>
<tbody>
${recent || '<tr><td colspan="4">None yet.</td></tr>'}
</tbody></table>`;
  return page(`Plumbline — ${state.name}`, body, refresh, view);
}

/**
 * The sign-in form of a token-protected status page. `reload`: the same page once more, which a
 * browser that held its SameSite=Strict cookie back on a cross-site arrival (a GitHub link) now sends.
 * Pure.
 */
export function renderSignInPage(options: { next: string; reload: string | undefined; wrong: boolean }): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
${options.reload ? `<meta http-equiv="refresh" content="0;url=${escapeHtml(options.reload)}">` : ''}
<title>Plumbline — sign in</title>
<style>body{font:15px/1.45 system-ui,sans-serif;max-width:30rem;margin:3rem auto;padding:0 1.5rem;color:#1f2328}
label{display:block;margin:.5rem 0}input{font:inherit;width:100%;padding:.3rem}button{font:inherit;margin-top:.5rem}
.bad{color:#a40e26;font-weight:600}</style>
</head><body>
<h1>Plumbline — sign in</h1>
<p>This status page needs the token its operator set (<code>PLUMBLINE_STATUS_PAGE_TOKEN</code>).</p>
${options.wrong ? '<p class="bad" role="alert">That token is not the right one.</p>' : ''}
<form method="post" action="/signin">
<input type="hidden" name="next" value="${escapeHtml(options.next)}">
<label for="token">Token</label>
<input id="token" name="token" type="password" autocomplete="current-password" required>
<button type="submit">Sign in</button>
</form>
</body></html>
`;
}
