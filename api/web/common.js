// common.js — what every page shares: the token and the sign-in area, calling the API,
// errors in words, small formatting helpers, and a streaming text/event-stream reader
// (for streams that need an Authorization header, which EventSource cannot send).

const TOKEN_KEY = 'boxoffice.token';

// ---- the token ---------------------------------------------------------------------------

export function token() {
  try { return localStorage.getItem(TOKEN_KEY) || ''; } catch { return ''; }
}

function setToken(t) {
  if (t) localStorage.setItem(TOKEN_KEY, t); else localStorage.removeItem(TOKEN_KEY);
  renderWho();
  window.dispatchEvent(new CustomEvent('boxoffice:signin', { detail: claims() }));
}

/// The token's claims (`sub`, `role`, `exp`), decoded only to show them; null if none.
export function claims() {
  const t = token();
  if (!t) return null;
  try {
    const part = t.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
    const padded = part + '='.repeat((4 - part.length % 4) % 4);
    const bytes = Uint8Array.from(atob(padded), c => c.charCodeAt(0));
    return JSON.parse(new TextDecoder().decode(bytes));
  } catch {
    return { sub: '?' };
  }
}

export function signedIn() { return !!token(); }
export function isAdmin() { return claims()?.role === 'admin'; }

function renderWho() {
  const c = claims();
  const who = document.getElementById('whoami');
  if (!who) return;
  const expired = c && c.exp && c.exp * 1000 < Date.now();
  who.textContent = c ? `signed in as ${c.sub}${c.role === 'admin' ? ' (organizer)' : ''}${expired ? ' — token expired' : ''}`
    : 'not signed in';
  document.getElementById('signout').hidden = !c;
  const box = document.getElementById('signin');
  box.open = !c;
  box.querySelector('summary').textContent = c ? 'Switch user' : 'Sign in';
}

// ---- errors ------------------------------------------------------------------------------

/// An API error: the problem+json body's fields, with `status`.
export class ApiProblem extends Error {
  constructor(status, body) {
    super(body?.detail || body?.title || `HTTP ${status}`);
    this.status = status;
    this.code = body?.code || (status === 0 ? 'network' : 'http');
    this.body = body || {};
  }
}

/// An error in words, for a person. `ctx` may override per code.
export function describe(err, ctx = {}) {
  if (!(err instanceof ApiProblem)) return `Something went wrong: ${err?.message || err}`;
  if (ctx[err.code]) return typeof ctx[err.code] === 'function' ? ctx[err.code](err) : ctx[err.code];
  const b = err.body;
  switch (err.code) {
    case 'network': return 'Could not reach the box office. Check the connection and try again.';
    case 'unauthorized': return 'Sign in first (your token is missing, wrong or expired).';
    case 'forbidden': return 'This sign-in may not do that' + (b.detail ? ` (${b.detail}).` : '.');
    case 'not_found': return 'Not found' + (b.detail ? `: ${b.detail}.` : '.');
    case 'ticket_unavailable':
      return `Those seats were just taken by someone else${b.tickets?.length ? ': ' + b.tickets.join(', ') : ''}. The map is up to date again; pick others.`;
    case 'hold_expired': return 'Your hold expired and the seats went back on sale. Pick seats again.';
    case 'payment_declined': return 'Your card was declined. Your seats are still held: try another card.';
    case 'limit_exceeded': return `Over the limit: ${b.detail || 'too many tickets for this event'}.`;
    case 'queue_admission_required': return 'This event has a waiting queue: join it and wait for your turn before reserving.';
    case 'event_closed': return `This event is not on sale${b.detail ? ` (${b.detail})` : ''}.`;
    case 'hold_not_active': return `That hold is no longer active${b.detail ? ` (${b.detail})` : ''}.`;
    case 'invalid_request': return `Please check ${b.field ? `“${b.field}”` : 'the form'}: ${b.detail || 'invalid value'}.`;
    case 'idempotency_conflict': return 'That request was already made with other details; reload and try again.';
    case 'unavailable': case 'overloaded':
      return 'The box office is busy right now and nothing was done. Try again in a moment.';
    case 'outcome_unknown':
      return 'The box office did not confirm in time whether that went through. Wait a moment, then check before trying again.';
    case 'not_refundable': return `This booking cannot be refunded${b.detail ? ` (${b.detail})` : ''}.`;
    case 'too_many_streams': return 'Too many open pages from this address; close some and reload.';
    default:
      if (err.status >= 500) return 'The box office had a problem. Try again in a moment.';
      return b.detail || b.title || `Request failed (HTTP ${err.status}).`;
  }
}

export function showError(text) {
  const e = document.getElementById('error');
  if (e) e.textContent = text || '';
}
export function clearError() { showError(''); }

/// Show `err` in #error (in words) and return it again for the caller's recovery.
export function report(err, ctx) {
  showError(describe(err, ctx));
  if (!(err instanceof ApiProblem)) console.error(err);
  return err;
}

// ---- the API -----------------------------------------------------------------------------

/// Call the API: JSON in, JSON out; throws ApiProblem. `opts.auth` (default true) sends the
/// token when there is one; `opts.headers` adds headers.
export async function api(method, path, body, opts = {}) {
  const headers = { Accept: 'application/json', ...(opts.headers || {}) };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const t = token();
  if (t && opts.auth !== false) headers.Authorization = `Bearer ${t}`;
  let res;
  try {
    res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch (e) {
    throw new ApiProblem(0, { detail: String(e) });
  }
  const text = await res.text();
  let data = null;
  if (text) { try { data = JSON.parse(text); } catch { data = { detail: text.slice(0, 200) }; } }
  if (!res.ok) throw new ApiProblem(res.status, data);
  return data;
}

export const get = (path, opts) => api('GET', path, undefined, opts);
export const post = (path, body, opts) => api('POST', path, body, opts);
export const del = (path, opts) => api('DELETE', path, undefined, opts);

/// A fresh Idempotency-Key.
export function idemKey() {
  return crypto.randomUUID ? crypto.randomUUID() : `${Date.now()}-${Math.random().toString(36).slice(2)}`;
}

// ---- a streaming text/event-stream reader ------------------------------------------------

/// Read server-sent events from `fetch(url)` with the token; calls `onEvent({event, data, id})`
/// for each. Resolves when the stream ends; rejects (ApiProblem) if it cannot open.
export async function readEvents(url, onEvent, signal) {
  const headers = { Accept: 'text/event-stream' };
  if (token()) headers.Authorization = `Bearer ${token()}`;
  let res;
  try { res = await fetch(url, { headers, signal, cache: 'no-store' }); }
  catch (e) { throw new ApiProblem(0, { detail: String(e) }); }
  if (!res.ok || !res.body) {
    let data = null;
    try { data = await res.json(); } catch { /* not JSON */ }
    throw new ApiProblem(res.status, data);
  }
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
  let buf = '';
  let ev = { event: 'message', data: [], id: null };
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buf += value;
    let nl;
    while ((nl = buf.search(/\r\n|\r|\n/)) >= 0) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + (buf.startsWith('\r\n', nl) ? 2 : 1));
      if (line === '') {
        if (ev.data.length) onEvent({ event: ev.event, data: ev.data.join('\n'), id: ev.id });
        ev = { event: 'message', data: [], id: ev.id };
        continue;
      }
      if (line.startsWith(':')) continue;
      const colon = line.indexOf(':');
      const field = colon < 0 ? line : line.slice(0, colon);
      let v = colon < 0 ? '' : line.slice(colon + 1);
      if (v.startsWith(' ')) v = v.slice(1);
      if (field === 'event') ev.event = v;
      else if (field === 'data') ev.data.push(v);
      else if (field === 'id') ev.id = v;
    }
  }
}

// ---- formatting and DOM helpers ----------------------------------------------------------

export function money(amount, currency = 'USD') {
  try {
    return new Intl.NumberFormat(undefined, { style: 'currency', currency }).format(amount / 100);
  } catch {
    return `${(amount / 100).toFixed(2)} ${currency}`;
  }
}

export function when(iso) {
  if (!iso) return '';
  const d = new Date(iso);
  return isNaN(d) ? iso : d.toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'short' });
}

/// mm:ss from milliseconds (never negative).
export function mmss(ms) {
  const s = Math.max(0, Math.ceil(ms / 1000));
  return `${String(Math.floor(s / 60)).padStart(2, '0')}:${String(s % 60).padStart(2, '0')}`;
}

/// A duration in words: "about 3 min".
export function duration(seconds) {
  if (seconds < 60) return `${seconds} s`;
  if (seconds < 3600) return `about ${Math.round(seconds / 60)} min`;
  return `about ${(seconds / 3600).toFixed(1)} h`;
}

/// A range of seconds in words, in the unit its top needs: "about 20–40 s", "about 2–4 min",
/// "up to about 3 min" (the low end rounds to nothing), "about 1.5–2.0 h".
export function durationRange(low, high) {
  const [unit, size, digits] = high < 60 ? ['s', 1, 0] : high < 3600 ? ['min', 60, 0] : ['h', 3600, 1];
  const show = (s) => (s / size).toFixed(digits);
  const [lo, hi] = [show(low), show(high)];
  if (Number(lo) === 0) return `up to about ${hi} ${unit}`;
  if (lo === hi) return `about ${hi} ${unit}`;
  return `about ${lo}–${hi} ${unit}`;
}

/// Make an element: el('li', {class: 'x', href: '/'}, 'text', child…). Text is never parsed as HTML.
export function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === false || v == null) continue;
    if (k === 'class') e.className = v;
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children.flat()) if (c != null) e.append(c instanceof Node ? c : String(c));
  return e;
}

export function esc(s) {
  return String(s).replace(/[&<>"']/g, c => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }[c]));
}

export const $ = (sel, root = document) => root.querySelector(sel);

// ---- the sign-in area --------------------------------------------------------------------

function initSignIn() {
  renderWho();
  $('#signin-form').addEventListener('submit', e => {
    e.preventDefault();
    const t = $('#signin-token').value.trim();
    if (!t) return showError('Paste a token first.');
    if (t.split('.').length !== 3) return showError('That does not look like a token (three parts separated by dots).');
    $('#signin-token').value = '';
    clearError();
    setToken(t);
  });
  $('#signout').addEventListener('click', () => { clearError(); setToken(''); });
  $('#dev-login').addEventListener('submit', async e => {
    e.preventDefault();
    const user = $('#dev-user').value.trim();
    const admin = $('#dev-admin').checked;
    try {
      const r = await post('/v1/dev/token', admin ? { user, admin: true } : { user }, { auth: false });
      clearError();
      setToken(r.token);
    } catch (err) {
      report(err, { not_found: 'Dev sign-in is off on this node.' });
    }
  });
  // The dev form shows only where the dev endpoint exists: without --dev-login it is 404
  // before the body is read; with it, this empty body is a 400 (nothing is minted).
  fetch('/v1/dev/token', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: '{}' })
    .then(r => { if (r.status !== 404) $('#dev-login').hidden = false; })
    .catch(() => {});
  window.addEventListener('storage', e => { if (e.key === TOKEN_KEY) { renderWho(); window.dispatchEvent(new CustomEvent('boxoffice:signin', { detail: claims() })); } });
}

if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', initSignIn);
else initSignIn();

// ---- the seat map's drawing (the event page and the venue preview) ----------------------

/// Seat pitch and size in SVG units; rows are lines of seats, sections boxes in a grid.
export const SEAT = { pitch: 12, size: 10, label: 30, head: 22, pad: 8, gap: 18, gaWidth: 180, gaHeight: 64 };
const WORD = { a: 'available', h: 'held', s: 'sold' };
export const STATUS_WORD = WORD;

/// Lay out `sections` ([{name, kind, rows: [{name, seats: [n…]}], capacity}], layout order)
/// and draw them as one SVG string. `status(i)` gives ticket i's status char (a|h|s), i in
/// layout order; `opts.interactive` adds the seats' roles, ids and labels. Returns
/// {svg, width, height, rows: [{section, name, first, count, x0, y}], seated: [ticket index…]}.
export function drawMap(sections, status, opts = {}) {
  const S = SEAT;
  const boxes = sections.map(sec => {
    if (sec.kind === 'general') return { w: S.gaWidth + 2 * S.pad, h: S.head + S.gaHeight + 2 * S.pad };
    const widest = Math.max(1, ...sec.rows.map(r => r.seats.length));
    return { w: S.label + widest * S.pitch + 2 * S.pad, h: S.head + sec.rows.length * S.pitch + 2 * S.pad };
  });
  // Lines of sections about as wide as a 4:3 picture of their total area, and room for
  // at least two of the widest side by side.
  const area = boxes.reduce((a, b) => a + (b.w + S.gap) * (b.h + S.gap), 0);
  const widest = Math.max(1, ...boxes.map(b => b.w));
  const lineMax = Math.max(2 * widest + S.gap, Math.sqrt(area * 4 / 3));
  let x = 0, y = 0, lineH = 0, width = 0;
  for (const b of boxes) {
    if (x > 0 && x + b.w > lineMax) { x = 0; y += lineH + S.gap; lineH = 0; }
    b.x = x; b.y = y; x += b.w + S.gap; lineH = Math.max(lineH, b.h); width = Math.max(width, b.x + b.w);
  }
  const height = y + lineH;
  const out = [];
  const rows = [];
  const seated = [];
  const inter = !!opts.interactive;
  let t = 0; // ticket index in layout order
  sections.forEach((sec, si) => {
    const b = boxes[si];
    const name = esc(sec.name);
    out.push(`<rect class="section-box" x="${b.x}" y="${b.y}" width="${b.w}" height="${b.h}" rx="6"/>`,
      `<text class="section-name" x="${b.x + S.pad}" y="${b.y + S.pad + 12}">${name}${sec.price != null && opts.priceText ? ' · ' + esc(opts.priceText(sec.price)) : ''}</text>`);
    if (sec.kind === 'general') {
      const cap = sec.capacity || 0;
      let free = 0;
      for (let k = 0; k < cap; k++) if (status(t + k) === 'a') free++;
      const gx = b.x + S.pad, gy = b.y + S.pad + S.head;
      const label = `${name}: ${free} available`;
      out.push(`<g class="ga-block" data-section="${name}" data-first="${t}"${inter ? ` role="button" tabindex="0" aria-label="${label}"` : ''}>`,
        `<rect x="${gx}" y="${gy}" width="${S.gaWidth}" height="${S.gaHeight}" rx="6"/>`,
        `<text x="${gx + S.gaWidth / 2}" y="${gy + S.gaHeight / 2 + 5}" text-anchor="middle">${inter ? label : `${name}: ${cap} standing`}</text></g>`);
      t += cap;
      return;
    }
    const inner = b.w - 2 * S.pad - S.label;
    sec.rows.forEach((row, ri) => {
      const ry = b.y + S.pad + S.head + ri * S.pitch;
      const x0 = b.x + S.pad + S.label + Math.floor((inner - row.seats.length * S.pitch) / 2);
      rows.push({ section: si, name: row.name, first: t, count: row.seats.length, x0, y: ry });
      out.push(`<text class="row-name" x="${b.x + S.pad}" y="${ry + S.size - 1}">${esc(row.name)}</text>`);
      const rowName = esc(row.name);
      for (let k = 0; k < row.seats.length; k++, t++) {
        const sx = x0 + k * S.pitch;
        const st = WORD[status(t)] || 'available';
        if (inter) {
          const id = `${name}-${rowName}-${row.seats[k]}`;
          out.push(`<rect class="seat" role="button" tabindex="${t === 0 || seated.length === 0 ? 0 : -1}" data-id="${id}" data-status="${st}" aria-label="${id} ${st}" x="${sx}" y="${ry}" width="${S.size}" height="${S.size}" rx="2"/>`);
        } else {
          out.push(`<rect class="seat" data-status="${st}" x="${sx}" y="${ry}" width="${S.size}" height="${S.size}" rx="2"/>`);
        }
        seated.push(t);
      }
    });
  });
  return { svg: out.join(''), width: Math.ceil(width), height: Math.ceil(height), rows, seated };
}
