// admin.js — the organizer's pages: venues (with a live preview of the seat map),
// performers, events (prices per section of the chosen venue, sale settings, queue), and
// the event list with edit and cancel, and webhook endpoints with their deliveries.
// Everything goes through the admin API.
import { get, post, api, el, when, report, clearError, showError, isAdmin, drawMap, $ } from '/assets/common.js';

/// How many listing pages the venue and performer pickers follow (100 each).
const PICKER_PAGES_MAX = 10;

// ---- venues --------------------------------------------------------------------------------

let sectionCount = 0;
function sectionName(n) {
  // A, B, …, Z, AA, AB, …
  let s = '';
  for (n += 1; n > 0; n = Math.floor((n - 1) / 26)) s = String.fromCharCode(65 + (n - 1) % 26) + s;
  return s;
}

function addSection(kind = 'seated') {
  const row = el('div', { class: 'section-row' },
    el('label', {}, 'Name ', el('input', { class: 'section-name', value: sectionName(sectionCount++), required: true, 'aria-label': 'Section name' })),
    el('select', { class: 'section-kind', 'aria-label': 'Kind' },
      el('option', { value: 'seated' }, 'seated'), el('option', { value: 'general' }, 'general admission')),
    el('label', { class: 'seated-only' }, 'Rows ', el('input', { class: 'section-rows', type: 'number', min: 1, value: 5, 'aria-label': 'Rows' })),
    el('label', { class: 'seated-only' }, 'Seats per row ', el('input', { class: 'section-seats', type: 'number', min: 1, value: 10, 'aria-label': 'Seats per row' })),
    el('label', { class: 'general-only' }, 'Capacity ', el('input', { class: 'section-capacity', type: 'number', min: 1, value: 100, 'aria-label': 'Capacity' })),
    el('button', { type: 'button', class: 'section-remove', 'aria-label': 'Remove this section' }, 'Remove'));
  row.querySelector('.section-kind').value = kind;
  $('#sections').append(row);
  syncKind(row);
  preview();
  return row;
}

function syncKind(row) {
  const general = row.querySelector('.section-kind').value === 'general';
  row.querySelectorAll('.seated-only').forEach(e => { e.hidden = general; });
  row.querySelectorAll('.general-only').forEach(e => { e.hidden = !general; });
}

const int = (v, d = 0) => { const n = parseInt(v, 10); return Number.isFinite(n) ? n : d; };

/// The sections as the API takes them.
function sectionsSpec() {
  return [...document.querySelectorAll('#sections .section-row')].map(row => {
    const name = row.querySelector('.section-name').value.trim();
    if (row.querySelector('.section-kind').value === 'general') {
      return { name, kind: 'general', capacity: int(row.querySelector('.section-capacity').value) };
    }
    const rows = Math.max(0, int(row.querySelector('.section-rows').value));
    const seats = Math.max(0, int(row.querySelector('.section-seats').value));
    return { name, kind: 'seated', rows: Array.from({ length: rows }, (_, r) => ({ name: String(r + 1), seats })) };
  });
}

/// Bound on what the preview draws: beyond it the preview says so instead of freezing.
const PREVIEW_SEATS_MAX = 50_000;

let previewQueued = false;
function preview() {
  if (previewQueued) return;
  previewQueued = true;
  requestAnimationFrame(() => {
    previewQueued = false;
    const spec = sectionsSpec();
    const total = spec.reduce((n, s) => n + (s.kind === 'general' ? s.capacity : s.rows.reduce((m, r) => m + r.seats, 0)), 0);
    $('#venue-summary').textContent = `${spec.length} section${spec.length === 1 ? '' : 's'}, ${total} tickets.`;
    const svg = $('#venue-preview');
    if (total > PREVIEW_SEATS_MAX || spec.length === 0) {
      svg.innerHTML = '';
      svg.setAttribute('viewBox', '0 0 10 10');
      svg.setAttribute('width', 10); svg.setAttribute('height', 10);
      return;
    }
    const layout = spec.map(s => s.kind === 'general' ? s
      : { ...s, rows: s.rows.map(r => ({ name: r.name, seats: Array.from({ length: r.seats }, (_, k) => k + 1) })) });
    const drawn = drawMap(layout, () => 'a');
    svg.setAttribute('viewBox', `0 0 ${drawn.width} ${drawn.height}`);
    svg.setAttribute('width', drawn.width);
    svg.setAttribute('height', drawn.height);
    svg.innerHTML = drawn.svg;
  });
}

/// Put venue `v` into the venue form (to edit it), or empty the form for a new one. The
/// editor draws a seated section as rows × seats per row; a section whose rows differ is
/// loaded with its longest row (the summary says so).
function loadVenueForm(v) {
  const f = $('#venue-form');
  $('#sections').replaceChildren();
  sectionCount = 0;
  $('#venue-created').textContent = '';
  if (!v) {
    f.reset();
    $('#venue-save').textContent = 'Create venue';
    addSection();
    return;
  }
  f.elements.name.value = v.name;
  f.elements.city.value = v.city;
  f.elements.country.value = v.country;
  f.elements.lat.value = v.location.lat;
  f.elements.lon.value = v.location.lon;
  for (const s of v.sections) {
    const row = addSection(s.kind === 'general' ? 'general' : 'seated');
    row.querySelector('.section-name').value = s.name;
    if (s.kind === 'general') {
      row.querySelector('.section-capacity').value = s.capacity;
    } else {
      row.querySelector('.section-rows').value = s.rows.length;
      row.querySelector('.section-seats').value = Math.max(1, ...s.rows.map(r => r.seats));
    }
  }
  $('#venue-save').textContent = 'Save venue';
  preview();
}

function venueOption(v) {
  return el('option', { value: v.id }, `${v.name} (${v.city}) — ${v.id}`);
}

/// Put `option` into `sel`, replacing the option of the same value (and keeping whether it
/// was selected) if there is one.
function upsertOption(sel, option) {
  const old = sel.querySelector(`option[value="${CSS.escape(option.value)}"]`);
  if (!old) { sel.append(option); return; }
  option.selected = old.selected;
  old.replaceWith(option);
}

/// Create (`POST /v1/<kind>s`) or, when `#<kind>-edit` names one, replace (`PUT`) a venue or
/// a performer; show its id, and put it into `pickers` and the editor's picker.
async function saveEntry(kind, body, optionOf, pickers) {
  const edit = $(`#${kind}-edit`);
  const editing = edit.value;
  const saved = editing
    ? await api('PUT', `/v1/${kind}s/${encodeURIComponent(editing)}`, body)
    : await post(`/v1/${kind}s`, body);
  clearError();
  $(`#${kind}-created-label`).textContent = `${editing ? 'Saved' : 'Created'} ${kind}`;
  $(`#${kind}-created`).textContent = saved.id;
  for (const sel of [...pickers, edit]) upsertOption(sel, optionOf(saved));
  edit.value = editing;
  return { saved, editing };
}

async function saveVenue(e) {
  e.preventDefault();
  const f = e.target;
  const body = {
    name: f.elements.name.value.trim(), city: f.elements.city.value.trim(), country: f.elements.country.value.trim(),
    location: { lat: Number(f.elements.lat.value), lon: Number(f.elements.lon.value) },
    sections: sectionsSpec(),
  };
  const sel = $('#event-venue');
  const chosen = sel.value;
  try {
    const { saved: v } = await saveEntry('venue', body, venueOption, [sel]);
    venues.set(v.id, v);
    sel.value = chosen || v.id;
    if (sel.value === v.id) renderPrices();
  } catch (err) {
    report(err, { conflict: 'This venue has an event on it, so it can no longer change (the event’s tickets were made from it). Create a new venue instead.' });
  }
}

// ---- performers ----------------------------------------------------------------------------

const performers = new Map(); // id -> performer

function performerOption(p) {
  return el('option', { value: p.id }, `${p.name} (${p.genre})`);
}

/// Put performer `p` into the performer form (to edit it), or empty it for a new one.
function loadPerformerForm(p) {
  const f = $('#performer-form');
  $('#performer-created').textContent = '';
  f.elements.name.value = p ? p.name : '';
  f.elements.genre.value = p ? p.genre : '';
  $('#performer-save').textContent = p ? 'Save performer' : 'Create performer';
}

async function savePerformer(e) {
  e.preventDefault();
  const f = e.target;
  const body = { name: f.elements.name.value.trim(), genre: f.elements.genre.value.trim() };
  try {
    const { saved: p, editing } = await saveEntry('performer', body, performerOption, [$('#event-performers-select')]);
    performers.set(p.id, p);
    if (!editing) f.reset();
  } catch (err) {
    report(err);
  }
}

// ---- events --------------------------------------------------------------------------------

const venues = new Map(); // id -> venue

/// Every page of a listing, up to PICKER_PAGES_MAX pages.
async function listAll(path, key) {
  const out = [];
  let cursor = null;
  for (let n = 0; n < PICKER_PAGES_MAX; n++) {
    const r = await get(`${path}?limit=100${cursor ? '&cursor=' + encodeURIComponent(cursor) : ''}`);
    out.push(...r[key]);
    cursor = r.next_cursor;
    if (!cursor) break;
  }
  return out;
}

async function loadPickers() {
  try {
    const [vs, ps] = await Promise.all([listAll('/v1/venues', 'venues'), listAll('/v1/performers', 'performers')]);
    const sel = $('#event-venue');
    const chosen = sel.value;
    for (const v of vs) {
      venues.set(v.id, v);
      if (!sel.querySelector(`option[value="${CSS.escape(v.id)}"]`)) sel.append(venueOption(v));
      const edit = $('#venue-edit');
      if (!edit.querySelector(`option[value="${CSS.escape(v.id)}"]`)) edit.append(venueOption(v));
    }
    if (chosen) sel.value = chosen;
    const psel = $('#event-performers-select');
    for (const p of ps) {
      performers.set(p.id, p);
      if (!psel.querySelector(`option[value="${CSS.escape(p.id)}"]`)) psel.append(performerOption(p));
      const edit = $('#performer-edit');
      if (!edit.querySelector(`option[value="${CSS.escape(p.id)}"]`)) edit.append(performerOption(p));
    }
  } catch (err) {
    report(err, { unauthorized: 'Sign in with an organizer (admin) token to use these pages.', forbidden: 'This sign-in is not an organizer: sign in with an admin token.' });
  }
}

async function renderPrices() {
  const id = $('#event-venue').value;
  const box = $('#prices-editor');
  if (!id) { box.replaceChildren(el('span', { class: 'muted' }, 'Choose a venue first.')); return; }
  let v = venues.get(id);
  if (!v) {
    try { v = await get(`/v1/venues/${encodeURIComponent(id)}`); venues.set(id, v); } catch (err) { report(err); return; }
  }
  const old = new Map([...box.querySelectorAll('.price-input')].map(i => [i.dataset.section, i.value]));
  box.replaceChildren(...v.sections.map(s => el('label', {}, `${s.name} `,
    el('input', { class: 'price-input', type: 'number', min: 0, required: true, 'data-section': s.name, value: old.get(s.name) ?? '' }))));
}

/// A datetime-local value as RFC 3339 (it is the browser's local time).
function iso(local) { return local ? new Date(local).toISOString() : undefined; }
/// An RFC 3339 time as a datetime-local value in the browser's zone.
function local(isoTime) {
  const d = new Date(isoTime);
  if (isNaN(d)) return '';
  const p = n => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}`;
}

async function saveEvent(e) {
  e.preventDefault();
  const f = e.target;
  const prices = {};
  for (const i of f.querySelectorAll('.price-input')) prices[i.dataset.section] = int(i.value);
  const body = {
    name: f.elements.name.value.trim(),
    type: f.elements.type.value.trim(),
    venue_id: $('#event-venue').value,
    description: f.elements.description.value,
    performer_ids: [...$('#event-performers-select').selectedOptions].map(o => o.value),
    starts_at: iso(f.elements.starts_at.value),
    prices,
    currency: f.elements.currency.value.trim() || undefined,
    hold_seconds: int(f.elements.hold_seconds.value, 600),
    per_user_limit: int(f.elements.per_user_limit.value, 8),
    queue: {
      enabled: f.elements.queue_enabled.checked,
      max_admitted: int(f.elements.max_admitted.value, 100),
      admission_seconds: int(f.elements.admission_seconds.value, 600),
    },
  };
  const onSale = iso(f.elements.on_sale_at.value);
  if (onSale) body.on_sale_at = onSale;
  const salesEnd = iso(f.elements.sales_end.value);
  if (salesEnd) body.sales_end = salesEnd;
  try {
    const ev = await post('/v1/events', body);
    clearError();
    $('#event-created').textContent = ev.id;
    $('#event-created-link').href = `/events/${encodeURIComponent(ev.id)}`;
    loadEvents(false);
  } catch (err) {
    report(err);
  }
}

let eventsCursor = null;
let eventsQuery = '';

function eventRow(ev) {
  const cancel = el('button', { type: 'button', class: 'event-cancel', 'data-id': ev.id, disabled: ev.status === 'cancelled' }, 'Cancel');
  const edit = el('a', { href: `#edit-${ev.id}`, class: 'event-edit', 'data-id': ev.id }, 'Edit');
  return el('tr', { class: 'admin-event', 'data-id': ev.id },
    el('td', {}, el('a', { href: `/events/${encodeURIComponent(ev.id)}` }, ev.name), el('br'), el('code', {}, ev.id)),
    el('td', {}, when(ev.starts_at)),
    el('td', {}, venues.get(ev.venue_id)?.name || ev.venue_id),
    el('td', { class: 'event-status' }, ev.status),
    el('td', {}, edit, ' ', cancel));
}

const shown = new Map(); // event id -> event

async function loadEvents(append) {
  const params = new URLSearchParams(eventsQuery);
  params.set('limit', '50');
  if (append && eventsCursor) params.set('cursor', eventsCursor);
  try {
    const r = await get(`/v1/events?${params}`);
    const body = $('#admin-events tbody');
    if (!append) { body.replaceChildren(); shown.clear(); }
    for (const ev of r.events) shown.set(ev.id, ev);
    body.append(...r.events.map(eventRow));
    eventsCursor = r.next_cursor || null;
    $('#events-more').hidden = !eventsCursor;
  } catch (err) {
    report(err, { unauthorized: 'Sign in with an organizer (admin) token to use these pages.', forbidden: 'This sign-in is not an organizer: sign in with an admin token.' });
  }
}

async function cancelEvent(button) {
  // Two steps instead of a dialog: the first click asks, the second cancels.
  if (button.dataset.armed !== 'true') {
    button.dataset.armed = 'true';
    button.textContent = 'Really cancel? (refunds every booking)';
    setTimeout(() => { if (button.isConnected) { button.dataset.armed = ''; button.textContent = 'Cancel'; } }, 5000);
    return;
  }
  button.disabled = true;
  try {
    await post(`/v1/events/${encodeURIComponent(button.dataset.id)}/cancel`);
    clearError();
    button.textContent = 'Cancelled';
    const row = button.closest('tr');
    row.querySelector('.event-status').textContent = 'cancelled';
  } catch (err) {
    button.disabled = false;
    report(err);
  }
}

function openEdit(id) {
  const ev = shown.get(id);
  if (!ev) return;
  const f = $('#edit-form');
  f.dataset.id = id;
  $('#edit-id').textContent = id;
  f.elements.name.value = ev.name;
  f.elements.type.value = ev.type;
  f.elements.starts_at.value = local(ev.starts_at);
  f.elements.description.value = ev.description || '';
  f.hidden = false;
  f.elements.name.focus();
}

async function saveEdit(e) {
  e.preventDefault();
  const f = e.target;
  const body = {
    name: f.elements.name.value.trim(), type: f.elements.type.value.trim(),
    starts_at: iso(f.elements.starts_at.value), description: f.elements.description.value,
  };
  try {
    await api('PATCH', `/v1/events/${encodeURIComponent(f.dataset.id)}`, body);
    clearError();
    f.hidden = true;
    loadEvents(false);
  } catch (err) {
    report(err);
  }
}

// ---- wiring --------------------------------------------------------------------------------

$('#add-section').addEventListener('click', () => addSection().querySelector('.section-name').focus());
$('#sections').addEventListener('click', e => {
  if (e.target.closest('.section-remove')) { e.target.closest('.section-row').remove(); preview(); }
});
$('#sections').addEventListener('change', e => {
  if (e.target.matches('.section-kind')) syncKind(e.target.closest('.section-row'));
  preview();
});
$('#sections').addEventListener('input', preview);
$('#venue-form').addEventListener('submit', saveVenue);
$('#venue-edit').addEventListener('change', e => loadVenueForm(venues.get(e.target.value)));
$('#performer-form').addEventListener('submit', savePerformer);
$('#performer-edit').addEventListener('change', e => loadPerformerForm(performers.get(e.target.value)));
$('#event-form').addEventListener('submit', saveEvent);
$('#event-venue').addEventListener('change', renderPrices);
$('#events-filter').addEventListener('submit', e => {
  e.preventDefault();
  const p = new URLSearchParams();
  for (const [k, v] of new FormData(e.target)) if (v) p.set(k, v);
  eventsQuery = p.toString();
  loadEvents(false);
});
$('#events-more').addEventListener('click', () => loadEvents(true));
$('#admin-events').addEventListener('click', e => {
  const c = e.target.closest('.event-cancel');
  if (c) { cancelEvent(c); return; }
  const edit = e.target.closest('.event-edit');
  if (edit) { e.preventDefault(); openEdit(edit.dataset.id); }
});
// ---- webhooks ------------------------------------------------------------------------------

function webhookRow(w) {
  return el('tr', { 'data-webhook-id': w.id },
    el('td', {}, el('code', {}, w.url), ' ', el('span', { class: 'muted' }, w.id)),
    el('td', {}, w.events.join(', ')),
    el('td', {}, when(w.created_at)),
    el('td', {},
      el('button', { type: 'button', class: 'webhook-deliveries', 'data-id': w.id }, 'Deliveries'), ' ',
      el('button', { type: 'button', class: 'webhook-delete', 'data-id': w.id }, 'Remove')));
}

async function loadWebhooks() {
  if (!isAdmin()) return;
  try {
    const { webhooks } = await get('/v1/webhooks');
    $('#webhooks tbody').replaceChildren(...webhooks.map(webhookRow));
  } catch (err) {
    report(err);
  }
}

async function saveWebhook(e) {
  e.preventDefault();
  const f = e.target;
  const events = [...f.querySelectorAll('input[name=events]:checked')].map(i => i.value);
  try {
    const w = await post('/v1/webhooks', { url: f.elements.url.value.trim(), events, secret: f.elements.secret.value });
    clearError();
    $('#webhook-created').textContent = w.id;
    f.elements.secret.value = '';
    loadWebhooks();
  } catch (err) {
    report(err);
  }
}

async function showDeliveries(id) {
  try {
    const { deliveries } = await get(`/v1/webhooks/${encodeURIComponent(id)}/deliveries`);
    $('#deliveries-of').textContent = id;
    $('#deliveries tbody').replaceChildren(...deliveries.map(d => el('tr', { 'data-delivery-id': d.id },
      el('td', {}, when(d.at)),
      el('td', {}, d.type),
      el('td', {}, el('code', {}, d.notice_id)),
      el('td', { class: 'delivery-status' }, d.status + (d.http_status ? ` (${d.http_status})` : '') + (d.error && d.status !== 'delivered' ? ` — ${d.error}` : '')),
      el('td', {}, String(d.attempts)),
      el('td', {}, el('button', { type: 'button', class: 'delivery-resend', 'data-webhook': id, 'data-id': d.id }, 'Send again')))));
    $('#deliveries-panel').hidden = false;
  } catch (err) {
    report(err);
  }
}

$('#webhook-form').addEventListener('submit', saveWebhook);
$('#webhooks').addEventListener('click', async e => {
  const del = e.target.closest('.webhook-delete');
  if (del) {
    try {
      await api('DELETE', `/v1/webhooks/${encodeURIComponent(del.dataset.id)}`);
      clearError();
      if ($('#deliveries-of').textContent === del.dataset.id) $('#deliveries-panel').hidden = true;
      loadWebhooks();
    } catch (err) { report(err); }
    return;
  }
  const log = e.target.closest('.webhook-deliveries');
  if (log) showDeliveries(log.dataset.id);
});
$('#deliveries').addEventListener('click', async e => {
  const b = e.target.closest('.delivery-resend');
  if (!b) return;
  b.disabled = true;
  try {
    const d = await post(`/v1/webhooks/${encodeURIComponent(b.dataset.webhook)}/deliveries/${encodeURIComponent(b.dataset.id)}/redeliver`);
    clearError();
    b.closest('tr').querySelector('.delivery-status').textContent = d.status + (d.http_status ? ` (${d.http_status})` : '');
  } catch (err) {
    report(err);
  } finally {
    b.disabled = false;
  }
});

$('#edit-form').addEventListener('submit', saveEdit);
$('#edit-close').addEventListener('click', () => { $('#edit-form').hidden = true; });

function start() {
  $('#admin-note').hidden = isAdmin();
  if (!isAdmin()) showError('Sign in with an organizer (admin) token to use these pages.');
  else clearError();
  loadPickers().then(loadEvents);
  loadWebhooks();
}
window.addEventListener('boxoffice:signin', start);

addSection();
start();
