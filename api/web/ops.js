// ops.js — the operator console: nodes and groups from GET /v1/cluster, and live figures
// from GET /metrics (Prometheus text; rates are the counters' change between two scrapes).
import { get, el, report, clearError, $ } from '/assets/common.js';

const REFRESH_MS = 3000;
let last = null; // {at, sums}

/// Sum every sample of each metric name (over all its labels).
export function parseMetrics(text) {
  const sums = new Map();
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)/.exec(line);
    if (!m) continue;
    const v = Number(m[3]);
    if (Number.isFinite(v)) sums.set(m[1], (sums.get(m[1]) || 0) + v);
  }
  return sums;
}

const rate = (now, prev, name, secs) => prev && secs > 0 ? Math.max(0, ((now.get(name) || 0) - (prev.get(name) || 0)) / secs) : null;
const fmt = v => v == null ? '…' : v >= 100 ? v.toFixed(0) : v.toFixed(1);

async function figures() {
  const res = await fetch('/metrics', { cache: 'no-store' });
  if (!res.ok) throw new Error(`/metrics answered ${res.status}`);
  const sums = parseMetrics(await res.text());
  const at = performance.now();
  const secs = last ? (at - last.at) / 1000 : 0;
  const prev = last?.sums;
  $('#fig-requests').textContent = fmt(rate(sums, prev, 'boxoffice_http_requests_total', secs));
  $('#fig-holds').textContent = fmt(rate(sums, prev, 'boxoffice_holds_total', secs));
  $('#fig-bookings').textContent = fmt(rate(sums, prev, 'boxoffice_bookings_total', secs));
  $('#fig-errors').textContent = fmt(rate(sums, prev, 'boxoffice_http_errors_total', secs));
  $('#fig-errors-total').textContent = String(sums.get('boxoffice_http_errors_total') || 0);
  $('#fig-streams').textContent = String(sums.get('boxoffice_streams_open') || 0);
  last = { at, sums };
}

async function cluster() {
  const c = await get('/v1/cluster');
  $('#nodes tbody').replaceChildren(...c.nodes.map(n => el('tr', { class: 'node', 'data-id': n.id },
    el('td', {}, String(n.id), n.id === c.node_id ? ' (this node)' : ''),
    el('td', {}, n.http_addr), el('td', {}, n.raft_addr),
    el('td', { class: n.status === 'up' ? 'up' : 'down' }, n.status))));
  $('#groups tbody').replaceChildren(...c.groups.map(g => el('tr', { class: 'group', 'data-id': g.id },
    el('td', {}, el('code', {}, g.id)),
    el('td', {}, g.members.join(', ') + (g.membership_changing ? ' (changing)' : '')),
    el('td', {}, g.leader == null ? '—' : String(g.leader)),
    el('td', {}, String(g.last_log_index)),
    el('td', {}, String(g.applied_index ?? '')),
    el('td', {}, (g.state || '') + (g.in_memory === false ? ' (on disk)' : '')))));
}

async function refresh() {
  const results = await Promise.allSettled([cluster(), figures()]);
  const failed = results.find(r => r.status === 'rejected');
  if (failed) report(failed.reason); else clearError();
  $('#ops-updated').textContent = `Updated ${new Date().toLocaleTimeString()}.`;
}

refresh();
setInterval(refresh, REFRESH_MS);
