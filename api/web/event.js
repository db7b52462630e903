// event.js — one event: details, the live seat map, the waiting queue, checkout and the
// waiting list of a sold-out event.
//
// The map is drawn once, as one SVG string, from the layout (GET /layout; fixed for the
// event) and the compact statuses (GET /seats: one char per ticket in layout order). Then
// it follows the seat stream (EventSource with ?since=<version>), touching only the seats
// that changed: `els[i]` is ticket i's element, and one listener on the <svg> handles
// every seat's clicks and keys. A build without /layout falls back to GET /tickets.
import {
  get, post, del, report, clearError, showError, ApiProblem, money, when, mmss, duration, durationRange,
  idemKey, readEvents, signedIn, drawMap, STATUS_WORD, $,
} from '/assets/common.js';

const eventId = decodeURIComponent(location.pathname.split('/')[2] || '');
const base = `/v1/events/${encodeURIComponent(eventId)}`;
const CHAR = { available: 'a', held: 'h', sold: 's' };
const HOLD_KEY = `boxoffice.hold.${eventId}`;

// ---- the model -----------------------------------------------------------------------------

const M = {
  event: null,          // GET /v1/events/{id}'s "event"
  currency: 'USD',
  sections: [],         // layout sections, with first ticket index and count
  ids: [],              // ticket ids in layout order
  status: [],           // status chars in layout order
  index: new Map(),     // id -> ticket index
  secOf: null,          // Uint16Array: ticket index -> section index
  els: [],              // ticket index -> seat element (seated tickets only)
  rows: [],             // from drawMap: rows with geometry
  rowOf: null,          // Int32Array: ticket index -> row index (-1 for general)
  version: 0,
  counts: { a: 0, h: 0, s: 0 },
  selected: new Set(),  // ticket indices
  hold: null,           // the current hold
  focus: -1,            // the seat with tabindex 0
};

// ---- loading -------------------------------------------------------------------------------

/// The layout from GET /tickets (for a build without /layout): sections, rows and
/// seats in the order the list gives them (layout order).
function layoutFromTickets(list) {
  const sections = [];
  const byName = new Map();
  for (const t of list.tickets) {
    let s = byName.get(t.section);
    if (!s) {
      s = t.row == null ? { name: t.section, kind: 'general', price: t.price, capacity: 0 }
        : { name: t.section, kind: 'seated', price: t.price, rows: [], rowByName: new Map() };
      byName.set(t.section, s);
      sections.push(s);
    }
    if (s.kind === 'general') { s.capacity++; continue; }
    let r = s.rowByName.get(t.row);
    if (!r) { r = { name: t.row, seats: [] }; s.rowByName.set(t.row, r); s.rows.push(r); }
    r.seats.push(t.seat);
  }
  for (const s of sections) delete s.rowByName;
  return { sections, count: list.tickets.length };
}

const statusesFromTickets = list => list.tickets.map(t => CHAR[t.status] || 'a').join('');

async function load() {
  const [page, layout, seats] = await Promise.allSettled([
    get(base, { auth: false }), get(`${base}/layout`, { auth: false }), get(`${base}/seats`, { auth: false }),
  ]);
  if (page.status === 'rejected') {
    const err = page.reason;
    if (err instanceof ApiProblem && err.status === 404) {
      $('#event-name').textContent = 'No such event';
      showError(`There is no event “${eventId}”. Find one on the events page.`);
    } else {
      $('#event-name').textContent = 'Could not load this event';
      report(err);
    }
    return;
  }
  showDetails(page.value);
  let lay = layout.status === 'fulfilled' ? layout.value : null;
  let statuses = seats.status === 'fulfilled' ? seats.value : null;
  if (!lay || !statuses || statuses.statuses.length !== lay.count) {
    // Fallback: the full list has both.
    try {
      const list = await get(`${base}/tickets`, { auth: false });
      lay = lay && lay.count === list.tickets.length ? lay : layoutFromTickets(list);
      statuses = { version: list.version, statuses: statusesFromTickets(list) };
    } catch (err) {
      report(err);
      return;
    }
  }
  buildMap(lay, statuses);
  connect();
  restoreHold();
  setupQueue();
  checkWaitlist();
}

function showDetails(p) {
  const e = p.event;
  M.event = e;
  M.currency = e.currency || 'USD';
  document.title = `${e.name} · boxoffice`;
  $('#event-name').textContent = e.name;
  $('#event-when').textContent = when(e.starts_at);
  const v = p.venue;
  $('#event-venue').textContent = v ? `${v.name}, ${v.city}` : e.venue_id;
  $('#event-performers').textContent = p.performers?.length ? p.performers.map(x => x.name).join(', ') : '';
  const prices = $('#prices');
  prices.replaceChildren(...Object.entries(e.prices || {}).map(([s, a]) => {
    const li = document.createElement('li');
    li.textContent = `${s}: ${money(a, M.currency)}`;
    return li;
  }));
  const badge = $('#event-status');
  const onSale = Date.parse(e.on_sale_at);
  if (e.status === 'cancelled') { badge.hidden = false; badge.textContent = 'cancelled'; }
  else if (onSale > Date.now()) { badge.hidden = false; badge.textContent = `on sale from ${when(e.on_sale_at)}`; }
  else if (Date.parse(e.sales_end) <= Date.now()) { badge.hidden = false; badge.textContent = 'sales have ended'; }
  const a = p.availability;
  $('#availability').textContent = `${a.available} available`;
}

// ---- the map -------------------------------------------------------------------------------

function buildMap(layout, statuses) {
  const t0 = performance.now();
  const st = statuses.statuses;
  M.version = statuses.version;
  M.status = Array.from(st);
  M.sections = layout.sections;
  const n = M.status.length;
  M.secOf = new Uint16Array(n);
  M.ids = new Array(n);
  let t = 0;
  layout.sections.forEach((s, si) => {
    s.first = t;
    if (s.kind === 'general') {
      for (let k = 1; k <= s.capacity; k++, t++) { M.ids[t] = `${s.name}-${k}`; M.secOf[t] = si; }
    } else {
      for (const r of s.rows) for (const seat of r.seats) { M.ids[t] = `${s.name}-${r.name}-${seat}`; M.secOf[t] = si; t++; }
    }
    s.count = t - s.first;
  });
  console.assert(t === n, 'layout count matches the statuses', t, n);
  M.ids.forEach((id, i) => M.index.set(id, i));
  M.counts = { a: 0, h: 0, s: 0 };
  for (const c of M.status) M.counts[c]++;

  const drawn = drawMap(layout.sections, i => M.status[i], { interactive: true, priceText: a => money(a, M.currency) });
  const svg = $('#seatmap');
  svg.setAttribute('viewBox', `0 0 ${drawn.width} ${drawn.height}`);
  svg.setAttribute('width', drawn.width);
  svg.setAttribute('height', drawn.height);
  // Fill the width it has, up to 1.6 times its own size (small halls are not postage stamps).
  svg.style.width = `min(100%, ${Math.round(drawn.width * 1.6)}px)`;
  svg.innerHTML = drawn.svg;
  M.rows = drawn.rows;
  M.rowOf = new Int32Array(n).fill(-1);
  drawn.rows.forEach((r, ri) => { for (let k = 0; k < r.count; k++) M.rowOf[r.first + k] = ri; });
  M.els = new Array(n);
  const seatEls = svg.getElementsByClassName('seat');
  drawn.seated.forEach((ti, k) => { M.els[ti] = seatEls[k]; });
  M.gaEls = new Map([...svg.querySelectorAll('.ga-block')].map(g => [g.dataset.section, g]));
  M.focus = drawn.seated.length ? drawn.seated[0] : -1;

  const best = $('#best-section');
  best.replaceChildren(...layout.sections.map(s => {
    const o = document.createElement('option');
    o.value = s.name;
    o.textContent = `${s.name} (${s.kind === 'general' ? 'standing' : 'seated'}, ${money(s.price ?? M.event.prices?.[s.name] ?? 0, M.currency)})`;
    return o;
  }));
  // Prices in the venue's order (the event lists them by name).
  $('#prices').replaceChildren(...layout.sections.map(s => {
    const li = document.createElement('li');
    li.textContent = `${s.name}: ${money(s.price ?? M.event.prices?.[s.name] ?? 0, M.currency)}`;
    return li;
  }));
  const zoom = $('#zoom');
  zoom.hidden = false;
  zoom.onclick = () => {
    const natural = zoom.getAttribute('aria-pressed') !== 'true';
    zoom.setAttribute('aria-pressed', String(natural));
    zoom.textContent = natural ? 'Fit to width' : 'Zoom in';
    svg.style.width = natural ? `${Math.round(drawn.width * 1.6)}px` : `min(100%, ${Math.round(drawn.width * 1.6)}px)`;
    svg.style.maxWidth = natural ? 'none' : '';
  };
  renderCounts();
  const ms = performance.now() - t0;
  svg.dataset.renderMs = ms.toFixed(1);
  console.info(`seat map: ${n} tickets drawn in ${ms.toFixed(1)} ms`);
}

let countsQueued = false;
function renderCounts() {
  if (countsQueued) return;
  countsQueued = true;
  requestAnimationFrame(() => {
    countsQueued = false;
    const c = M.counts;
    $('#availability').textContent = `${c.a} available` + (c.h || c.s ? ` · ${c.h} held · ${c.s} sold` : '');
    if (c.a === 0) offerWaitlist();
    for (const s of M.sections) {
      if (s.kind !== 'general') continue;
      const g = M.gaEls.get(s.name);
      if (!g) continue;
      let free = 0;
      for (let i = s.first; i < s.first + s.count; i++) if (M.status[i] === 'a') free++;
      const label = `${s.name}: ${free} available`;
      if (g.getAttribute('aria-label') !== label) {
        g.setAttribute('aria-label', label);
        g.querySelector('text').textContent = label;
      }
    }
  });
}

/// Ticket i is now `c` (a|h|s): touch its element only if it changed.
function setStatus(i, c) {
  const old = M.status[i];
  if (old === c || c === undefined) return;
  M.status[i] = c;
  M.counts[old]--;
  M.counts[c]++;
  const e = M.els[i];
  if (e) {
    const word = STATUS_WORD[c];
    e.setAttribute('data-status', word);
    e.setAttribute('aria-label', `${M.ids[i]} ${word}`);
  }
  if (c !== 'a' && M.selected.has(i) && !(M.hold && M.hold.tickets.includes(M.ids[i]))) {
    setSelected(i, false);
    renderSelection(`${M.ids[i]} was just taken by someone else.`);
  }
  renderCounts();
}

/// Apply a change event or a full list ({version, tickets: [{id, status}]}).
function apply(data, full) {
  if (!full && data.version <= M.version) return;
  for (const t of data.tickets) {
    const i = M.index.get(t.id);
    if (i !== undefined) setStatus(i, CHAR[t.status]);
  }
  M.version = Math.max(M.version, data.version);
}

/// Read the statuses again (after an error, the map may be behind what the API just said).
async function refresh() {
  try {
    const s = await get(`${base}/seats`, { auth: false });
    if (s.statuses.length === M.status.length && s.version >= M.version) {
      for (let i = 0; i < s.statuses.length; i++) setStatus(i, s.statuses[i]);
      M.version = s.version;
      return;
    }
  } catch { /* fall back to the full list */ }
  try {
    const list = await get(`${base}/tickets`, { auth: false });
    if (list.version >= M.version) apply(list, true);
  } catch (err) { console.warn('refresh', err); }
}

// ---- live ----------------------------------------------------------------------------------

let source = null;
let retry = 500;
function connect() {
  if (source) source.close();
  const live = $('#live');
  source = new EventSource(`${base}/tickets/stream?since=${M.version}`);
  source.addEventListener('open', () => { retry = 500; live.textContent = 'live'; live.classList.add('on'); });
  source.addEventListener('change', e => apply(JSON.parse(e.data), false));
  source.addEventListener('snapshot', e => apply(JSON.parse(e.data), true));
  source.addEventListener('error', () => {
    // Reopen with the last version seen: the stream resumes right after it.
    source.close();
    live.textContent = 'reconnecting…';
    live.classList.remove('on');
    setTimeout(connect, retry);
    retry = Math.min(retry * 2, 10_000);
  });
}

// ---- selecting -----------------------------------------------------------------------------

function setSelected(i, on) {
  const e = M.els[i];
  if (on) M.selected.add(i); else M.selected.delete(i);
  if (e) {
    e.setAttribute('aria-pressed', on ? 'true' : 'false');
    if (on) e.setAttribute('data-selected', 'true'); else e.removeAttribute('data-selected');
  }
}

function toggle(i) {
  if (M.selected.has(i)) setSelected(i, false);
  else if (M.status[i] !== 'a') return renderSelection(`${M.ids[i]} is ${STATUS_WORD[M.status[i]]}; pick an available seat.`);
  else setSelected(i, true);
  renderSelection();
}

function renderSelection(note) {
  const ids = [...M.selected].sort((a, b) => a - b);
  const total = ids.reduce((sum, i) => sum + (M.sections[M.secOf[i]].price ?? M.event.prices?.[M.sections[M.secOf[i]].name] ?? 0), 0);
  const limit = M.event?.per_user_limit;
  let text = ids.length
    ? `${ids.length} seat${ids.length > 1 ? 's' : ''} selected: ${ids.map(i => M.ids[i]).join(', ')} — ${money(total, M.currency)}.`
    : 'Select seats on the map, or ask for the best available.';
  if (limit && ids.length > limit) text += ` At most ${limit} per person.`;
  if (note) text = `${note} ${text}`;
  $('#selection').textContent = text;
  $('#reserve').disabled = ids.length === 0;
}

function focusSeat(i) {
  if (i < 0 || !M.els[i]) return;
  if (M.focus >= 0 && M.els[M.focus]) M.els[M.focus].setAttribute('tabindex', '-1');
  M.focus = i;
  M.els[i].setAttribute('tabindex', '0');
  M.els[i].focus();
}

/// The seat an arrow key leads to from ticket i, or -1.
function neighbour(i, key) {
  const ri = M.rowOf[i];
  if (ri < 0) return -1;
  const row = M.rows[ri];
  const k = i - row.first;
  if (key === 'ArrowLeft') return k > 0 ? i - 1 : -1;
  if (key === 'ArrowRight') return k + 1 < row.count ? i + 1 : -1;
  const to = M.rows[ri + (key === 'ArrowUp' ? -1 : 1)];
  if (!to) return -1;
  // The seat of the next row nearest this one's x.
  const x = row.x0 + k * 12;
  const j = Math.min(to.count - 1, Math.max(0, Math.round((x - to.x0) / 12)));
  return to.first + j;
}

function chooseGeneral(name) {
  $('#best-section').value = name;
  $('#best-qty').focus();
  renderSelection(`Standing section ${name}: choose how many and reserve.`);
}

function initMapEvents() {
  const svg = $('#seatmap');
  svg.addEventListener('click', e => {
    const seat = e.target.closest('.seat');
    if (seat) {
      const i = M.index.get(seat.dataset.id);
      if (i === undefined) return;
      focusSeat(i);
      toggle(i);
      return;
    }
    const ga = e.target.closest('.ga-block');
    if (ga) chooseGeneral(ga.dataset.section);
  });
  svg.addEventListener('keydown', e => {
    const ga = e.target.closest('.ga-block');
    if (ga && (e.key === 'Enter' || e.key === ' ')) { e.preventDefault(); chooseGeneral(ga.dataset.section); return; }
    const seat = e.target.closest('.seat');
    if (!seat) return;
    const i = M.index.get(seat.dataset.id);
    if (i === undefined) return;
    if (e.key === 'Enter' || e.key === ' ') { e.preventDefault(); toggle(i); return; }
    if (e.key.startsWith('Arrow')) {
      e.preventDefault();
      const j = neighbour(i, e.key);
      if (j >= 0) focusSeat(j);
    }
  });
  svg.addEventListener('focusin', e => {
    const seat = e.target.closest('.seat');
    if (seat) {
      const i = M.index.get(seat.dataset.id);
      if (i !== undefined && i !== M.focus) {
        if (M.focus >= 0 && M.els[M.focus]) M.els[M.focus].setAttribute('tabindex', '-1');
        M.focus = i;
        seat.setAttribute('tabindex', '0');
      }
    }
  });
}

// ---- holding and paying --------------------------------------------------------------------

function saveHold() {
  try {
    if (M.hold) sessionStorage.setItem(HOLD_KEY, JSON.stringify(M.hold)); else sessionStorage.removeItem(HOLD_KEY);
  } catch { /* private mode */ }
}

function showHold(h) {
  M.hold = h;
  saveHold();
  for (const id of h.tickets) {
    const i = M.index.get(id);
    if (i !== undefined) { setSelected(i, false); setStatus(i, 'h'); }
  }
  renderSelection();
  $('#hold-id').textContent = h.hold_id;
  $('#hold-tickets').textContent = h.tickets.join(', ');
  $('#hold-amount').textContent = h.amount != null ? money(h.amount, h.currency || M.currency) : '';
  $('#pay-note').textContent = '';
  $('#extend').disabled = false;
  $('#hold').hidden = false;
  $('#booking').hidden = true;
  tick();
}

function clearHold() {
  M.hold = null;
  saveHold();
  $('#hold').hidden = true;
}

async function reserve(body) {
  if (!signedIn()) { showError('Sign in first: use the sign-in box at the top of the page.'); return; }
  const buttons = [$('#reserve'), $('#best-available')];
  buttons.forEach(b => { b.disabled = true; });
  try {
    const h = await post('/v1/booking/reserve', { event_id: eventId, ...body }, { headers: { 'Idempotency-Key': idemKey() } });
    clearError();
    showHold(h);
  } catch (err) {
    report(err);
    if (err.code === 'ticket_unavailable') {
      for (const id of err.body.tickets || []) {
        const i = M.index.get(id);
        if (i !== undefined) setSelected(i, false);
      }
      renderSelection();
    }
    if (err.code === 'queue_admission_required') checkQueue();
    // Nothing fits: offer the waiting list for what was asked.
    if (err.code === 'ticket_unavailable' && body.section) offerWaitlist();
    refresh();
  } finally {
    $('#best-available').disabled = false;
    $('#reserve').disabled = M.selected.size === 0;
  }
}

async function pay() {
  const h = M.hold;
  if (!h) return;
  const card = $('#card').value;
  const payBtn = $('#pay');
  payBtn.disabled = true;
  $('#pay-note').textContent = 'Paying…';
  try {
    // One key per hold and card: a retry of the same payment is answered once; another
    // card after a decline is a new attempt.
    const b = await post('/v1/booking/confirm', { hold_id: h.hold_id, payment: { token: card } },
      { headers: { 'Idempotency-Key': `${h.hold_id}.${card}` } });
    booked(b);
  } catch (err) {
    $('#pay-note').textContent = '';
    if (err.code === 'payment_declined') {
      report(err);
    } else if (err.code === 'hold_expired' || err.code === 'hold_not_active') {
      report(err);
      await settleHold();
    } else if (err.code === 'unavailable' || err.code === 'outcome_unknown') {
      showError('The payment provider has not answered yet; the payment goes on. Checking the outcome…');
      await followPayment(h);
    } else {
      report(err);
    }
  } finally {
    payBtn.disabled = false;
  }
}

function booked(b) {
  clearError();
  clearHold();
  for (const id of b.tickets) {
    const i = M.index.get(id);
    if (i !== undefined) setStatus(i, 's');
  }
  $('#booking-id').textContent = b.booking_id;
  $('#booking-tickets').textContent = b.tickets.join(', ');
  $('#booking-amount').textContent = money(b.amount, b.currency || M.currency);
  $('#booking').hidden = false;
}

/// After a slow payment: look at the hold until it is booked or no longer confirming.
async function followPayment(h) {
  for (let n = 0; n < 30 && M.hold === h; n++) {
    await new Promise(r => setTimeout(r, 2000));
    try {
      const s = await get(`/v1/holds/${encodeURIComponent(h.hold_id)}`);
      if (s.status === 'confirmed' && s.booking_id) {
        booked(await get(`/v1/bookings/${encodeURIComponent(s.booking_id)}`));
        return;
      }
      if (s.status === 'active') { showError('The payment did not go through. Your seats are still held: try again.'); return; }
      if (s.status !== 'confirming') { await settleHold(s); return; }
    } catch (err) { report(err); }
  }
}

/// The hold is over (expired or released): say so, drop it and catch the map up.
async function settleHold(s) {
  const h = M.hold;
  if (!h) return;
  if (!s) { try { s = await get(`/v1/holds/${encodeURIComponent(h.hold_id)}`); } catch { s = { status: 'expired' }; } }
  if (s.status === 'active' || s.status === 'confirming') { showHold({ ...h, expires_at: s.expires_at }); return; }
  if (s.status === 'confirmed' && s.booking_id) {
    try { booked(await get(`/v1/bookings/${encodeURIComponent(s.booking_id)}`)); } catch (err) { report(err); }
    return;
  }
  clearHold();
  if (s.status === 'expired') showError('Your hold expired and the seats went back on sale. Pick seats again.');
  refresh();
}

async function extend() {
  const h = M.hold;
  if (!h) return;
  try {
    const r = await post(`/v1/holds/${encodeURIComponent(h.hold_id)}/extend`);
    clearError();
    M.hold = { ...h, expires_at: r.expires_at };
    saveHold();
    tick();
  } catch (err) {
    report(err, { limit_exceeded: 'This hold cannot be extended any more: pay before the countdown ends.' });
    if (err.code === 'limit_exceeded') $('#extend').disabled = true;
    if (err.code === 'hold_expired' || err.code === 'hold_not_active') await settleHold();
  }
}

async function release() {
  const h = M.hold;
  if (!h) return;
  try {
    await post('/v1/booking/release', { hold_id: h.hold_id });
    clearError();
    clearHold();
    $('#selection').textContent = 'Hold released; the seats are back on sale.';
  } catch (err) {
    report(err);
    if (err.code === 'hold_expired' || err.code === 'hold_not_active' || err.code === 'not_found') await settleHold();
  }
}

/// A hold made earlier in this tab (kept in sessionStorage) comes back after a reload.
async function restoreHold() {
  let h = null;
  try { h = JSON.parse(sessionStorage.getItem(HOLD_KEY) || 'null'); } catch { /* none */ }
  if (!h || !signedIn()) return;
  try {
    const s = await get(`/v1/holds/${encodeURIComponent(h.hold_id)}`);
    if (s.status === 'active') showHold({ ...h, expires_at: s.expires_at });
    else { M.hold = null; saveHold(); }
  } catch { M.hold = null; saveHold(); }
}

// ---- the clock: hold countdown and admission countdown -------------------------------------

let settling = false;
function tick() {
  const now = Date.now();
  if (M.hold) {
    const left = Date.parse(M.hold.expires_at) - now;
    $('#countdown').textContent = mmss(left);
    $('#countdown').classList.toggle('urgent', left < 60_000);
    if (left <= -1000 && !settling) {
      settling = true;
      settleHold().finally(() => { settling = false; });
    }
  }
  if (Q.admittedUntil) {
    const left = Date.parse(Q.admittedUntil) - now;
    $('#admission-countdown').textContent = mmss(left);
    if (left <= -1000 && !Q.checking) checkQueue();
  }
}
setInterval(tick, 250);

// ---- the waiting queue ---------------------------------------------------------------------

const Q = { enabled: false, joined: false, admittedUntil: null, stream: null, poll: null, checking: false };

function showBuy(on) { $('#buy').hidden = !on; }

function setupQueue() {
  Q.enabled = !!M.event.queue?.enabled;
  $('#queue').hidden = !Q.enabled;
  if (!Q.enabled) { showBuy(true); return; }
  showBuy(false);
  checkQueue();
}

function renderQueue(q) {
  Q.joined = !!q;
  $('#queue-join').hidden = !!q;
  $('#queue-place').hidden = !q;
  if (!q) {
    Q.admittedUntil = null;
    $('#admission').hidden = true;
    showBuy(!!M.hold);
    return;
  }
  $('#queue-status').textContent = q.status;
  $('#queue-position').textContent = String(q.position);
  $('#queue-ahead').textContent = String(q.ahead);
  const range = q.estimated_wait_range;
  $('#queue-wait').textContent = q.status === 'admitted' ? 'none'
    : range ? durationRange(range[0], range[1]) : duration(q.estimated_wait_seconds);
  $('#queue-wait').title = q.status === 'admitted' ? '' : `best guess ${duration(q.estimated_wait_seconds)}`;
  const admitted = q.status === 'admitted';
  Q.admittedUntil = admitted ? q.admitted_until : null;
  $('#admission').hidden = !admitted;
  $('#queue-intro').textContent = admitted ? 'You are through the queue.' : 'You are in the queue; this page updates by itself.';
  showBuy(admitted || !!M.hold);
  tick();
}

/// Where this user is in the queue: 404 means not in it (or no longer).
async function checkQueue() {
  if (!Q.enabled) return;
  if (!signedIn()) { renderQueue(null); $('#queue-intro').textContent = 'This sale has a waiting queue. Sign in, then join it.'; return; }
  Q.checking = true;
  try {
    const q = await get(`${base}/queue/me`);
    renderQueue(q);
    follow();
  } catch (err) {
    if (err.status === 404) { stopFollowing(); renderQueue(null); }
    else report(err);
  } finally {
    Q.checking = false;
  }
}

async function join() {
  if (!signedIn()) { showError('Sign in first: use the sign-in box at the top of the page.'); return; }
  try {
    const q = await post(`${base}/queue`);
    clearError();
    renderQueue(q);
    follow();
  } catch (err) {
    report(err);
  }
}

function stopFollowing() {
  if (Q.stream) { Q.stream.abort(); Q.stream = null; }
  if (Q.poll) { clearInterval(Q.poll); Q.poll = null; }
}

/// Follow the place live over the queue stream (fetch, with the token); poll every second
/// if the stream cannot be read.
function follow() {
  if (Q.stream || Q.poll) return;
  const ctl = new AbortController();
  Q.stream = ctl;
  readEvents(`${base}/queue/me/stream`, ev => {
    if (ev.event === 'queue') renderQueue(JSON.parse(ev.data));
  }, ctl.signal).then(() => {
    // The stream ends when the user leaves the queue or the admission ends.
    if (Q.stream === ctl) { Q.stream = null; checkQueue(); }
  }, err => {
    if (Q.stream !== ctl) return;
    Q.stream = null;
    if (err instanceof ApiProblem && err.status === 404) { renderQueue(null); return; }
    console.warn('queue stream failed; polling', err);
    Q.poll = setInterval(async () => {
      try { renderQueue(await get(`${base}/queue/me`)); }
      catch (e) { if (e.status === 404) { stopFollowing(); renderQueue(null); } }
    }, 1000);
  });
}

// ---- the waiting list ----------------------------------------------------------------------
//
// When a section is sold out a buyer joins its waiting list for the quantity chosen under
// "Best available". When seats come back the store holds them for the first entry that fits
// (an offer): the page shows it as the buyer's hold, to pay as any hold. The entry is followed
// on its stream (or polled); it ends when the offer is paid, released or lapses.

const W = { entry: null, stream: null, poll: null };

/// Show the panel with its join button (a sold-out section, or a best-available that failed).
function offerWaitlist() {
  if (W.entry || !M.event || M.event.status === 'cancelled') return;
  $('#waitlist').hidden = false;
}

function renderWaitlist(e) {
  W.entry = e;
  $('#waitlist-join').hidden = !!e;
  $('#waitlist-leave').hidden = !e;
  $('#waitlist-place').hidden = !e;
  if (!e) {
    $('#waitlist').hidden = M.counts.a > 0;
    return;
  }
  $('#waitlist').hidden = false;
  const offered = e.status === 'offered';
  $('#waitlist-section').textContent = e.section;
  $('#waitlist-quantity').textContent = String(e.quantity);
  $('#waitlist-status').textContent = offered ? 'offered' : 'waiting';
  $('#waitlist-position').textContent = offered ? '—' : String(e.position);
  $('#waitlist-intro').textContent = offered
    ? 'Seats came back and are held for you: pay for them below before the hold runs out.'
    : 'You are on the waiting list; this page updates by itself.';
  if (offered && e.offer && M.hold?.hold_id !== e.offer.hold_id) {
    showBuy(true);
    showHold(e.offer);
  }
}

/// This user's entry: 404 means none (never joined, left, or it ended).
async function checkWaitlist() {
  if (!signedIn() || !M.event) return;
  try {
    renderWaitlist(await get(`${base}/waitlist/me`));
    followWaitlist();
  } catch (err) {
    if (err.status === 404) { stopWaitlist(); renderWaitlist(null); }
    else report(err);
  }
}

async function joinWaitlist() {
  if (!signedIn()) { showError('Sign in first: use the sign-in box at the top of the page.'); return; }
  const quantity = Number($('#best-qty').value);
  if (!Number.isInteger(quantity) || quantity < 1) { showError('Choose how many seats (a whole number from 1).'); return; }
  try {
    const e = await post(`${base}/waitlist`, { section: $('#best-section').value, quantity });
    clearError();
    renderWaitlist(e);
    followWaitlist();
  } catch (err) {
    report(err);
    if (err.code === 'conflict') checkWaitlist();
  }
}

async function leaveWaitlist() {
  try {
    await del(`${base}/waitlist/me`);
  } catch (err) {
    if (err.status !== 404) { report(err); return; }
  }
  stopWaitlist();
  if (M.hold && W.entry?.offer?.hold_id === M.hold.hold_id) clearHold();
  renderWaitlist(null);
}

function stopWaitlist() {
  if (W.stream) { W.stream.abort(); W.stream = null; }
  if (W.poll) { clearInterval(W.poll); W.poll = null; }
}

/// Follow the entry over its stream (`waitlist` on every change, `ended` when it is gone);
/// poll every second if the stream cannot be read.
function followWaitlist() {
  if (W.stream || W.poll) return;
  const ctl = new AbortController();
  W.stream = ctl;
  readEvents(`${base}/waitlist/me/stream`, ev => {
    if (ev.event === 'waitlist') renderWaitlist(JSON.parse(ev.data));
    if (ev.event === 'ended') renderWaitlist(null);
  }, ctl.signal).then(() => {
    if (W.stream === ctl) { W.stream = null; checkWaitlist(); }
  }, err => {
    if (W.stream !== ctl) return;
    W.stream = null;
    if (err instanceof ApiProblem && err.status === 404) { renderWaitlist(null); return; }
    console.warn('waiting-list stream failed; polling', err);
    W.poll = setInterval(async () => {
      try { renderWaitlist(await get(`${base}/waitlist/me`)); }
      catch (e) { if (e.status === 404) { stopWaitlist(); renderWaitlist(null); } }
    }, 1000);
  });
}

// ---- wiring --------------------------------------------------------------------------------

initMapEvents();
$('#reserve').addEventListener('click', () => {
  const ids = [...M.selected].sort((a, b) => a - b).map(i => M.ids[i]);
  if (ids.length) reserve({ ticket_ids: ids });
});
$('#best-available').addEventListener('click', () => {
  const quantity = Number($('#best-qty').value);
  if (!Number.isInteger(quantity) || quantity < 1) { showError('Choose how many seats (a whole number from 1).'); return; }
  reserve({ section: $('#best-section').value, quantity });
});
$('#best').addEventListener('submit', e => { e.preventDefault(); $('#best-available').click(); });
$('#pay').addEventListener('click', pay);
$('#extend').addEventListener('click', extend);
$('#release').addEventListener('click', release);
$('#queue-join').addEventListener('click', join);
$('#waitlist-join').addEventListener('click', joinWaitlist);
$('#waitlist-leave').addEventListener('click', leaveWaitlist);
window.addEventListener('boxoffice:signin', () => {
  stopFollowing();
  stopWaitlist();
  if (M.event) { checkQueue(); restoreHold(); checkWaitlist(); }
});

if (!eventId) { $('#event-name').textContent = 'No such event'; } else { load(); }
