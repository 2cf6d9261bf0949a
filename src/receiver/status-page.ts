import type { ClusterState } from '../status/cluster-state.ts';

const escapeHtml = (text: string) =>
  text.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c] ?? c);

function ago(iso: string | undefined, now: number): string {
  if (!iso) return '—';
  const seconds = Math.round((now - Date.parse(iso)) / 1000);
  const text =
    Math.abs(seconds) < 90
      ? `${Math.abs(seconds)} s`
      : Math.abs(seconds) < 5400
        ? `${Math.round(Math.abs(seconds) / 60)} min`
        : `${Math.round(Math.abs(seconds) / 3600)} h`;
  return seconds >= 0 ? `${text} ago` : `in ${text}`;
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
  const status = drift.correctedAt
    ? `corrected ${ago(drift.correctedAt, now)}`
    : `<strong>drifted</strong> since ${ago(drift.detectedAt, now)}`;
  return `${status}<ul>${objects}</ul>`;
}

/**
 * The status page every commit status links to: one row per cluster (anchored `#cluster-<name>`), what
 * it runs, how the last sync and resync went, and drift. Server-rendered, no scripts. Pure.
 */
export function renderStatusPage(clusters: readonly ClusterState[], now = Date.now()): string {
  const rows = clusters
    .map((c) => {
      const sync = c.lastSync
        ? `${escapeHtml(c.lastSync.status)} <code>${escapeHtml(c.lastSync.sha.slice(0, 7))}</code> ${ago(c.lastSync.at, now)}<br><small>${escapeHtml(c.lastSync.description)}</small>`
        : '—';
      const flags = [c.suspended ? 'suspended' : '', c.selfHeal ? '' : 'selfHeal off'].filter(Boolean).join(', ');
      return `<tr id="cluster-${escapeHtml(c.name)}">
  <td><strong>${escapeHtml(c.name)}</strong>${flags ? `<br><small>${escapeHtml(flags)}</small>` : ''}</td>
  <td><code>${escapeHtml(c.repo)}</code> @ ${escapeHtml(c.branch)}<br><small>${escapeHtml(c.path || '/')}</small></td>
  <td>${c.appliedRevision ? `<code>${escapeHtml(c.appliedRevision.slice(0, 7))}</code> ${ago(c.appliedAt, now)}` : '—'}</td>
  <td>${sync}</td>
  <td>${ago(c.lastResyncAt, now)}${c.lastResyncResult ? `<br><small>${escapeHtml(c.lastResyncResult)}</small>` : ''}</td>
  <td>${driftCell(c, now)}</td>
  <td>${ago(c.nextResyncAt, now)}</td>
</tr>`;
    })
    .join('\n');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta http-equiv="refresh" content="30">
<title>Plumbline</title>
<style>body{font:14px system-ui,sans-serif;margin:2rem;color:#1f2328}table{border-collapse:collapse;width:100%}
th,td{border-bottom:1px solid #d0d7de;padding:.5rem;text-align:left;vertical-align:top}th{background:#f6f8fa}
tr:target{background:#fff8c5}code{font-size:13px}ul{margin:.25rem 0;padding-left:1.2rem}small{color:#59636e}</style>
</head><body>
<h1>Plumbline</h1>
<p>${clusters.length} cluster(s). JSON: <a href="/api/clusters">/api/clusters</a>.</p>
<table><thead><tr><th>Cluster</th><th>Source</th><th>Applied commit</th><th>Last sync</th><th>Last resync</th><th>Drift</th><th>Next resync</th></tr></thead>
<tbody>
${rows || '<tr><td colspan="7">No cluster has reported yet: workers publish their clusters after their first sync or resync.</td></tr>'}
</tbody></table>
</body></html>
`;
}
