// me.js — the signed-in user's bookings (GET /v1/me/bookings, paged by next_cursor).
import { get, el, money, when, report, clearError, signedIn, claims, $ } from '/assets/common.js';

let cursor = null;
const events = new Map(); // event id -> name (looked up once each)

async function eventName(id) {
  if (!events.has(id)) {
    events.set(id, get(`/v1/events/${encodeURIComponent(id)}`, { auth: false }).then(p => p.event.name, () => id));
  }
  return events.get(id);
}

function item(b) {
  const name = el('a', { href: `/events/${encodeURIComponent(b.event_id)}` }, b.event_id);
  eventName(b.event_id).then(n => { name.textContent = n; });
  return el('li', { class: 'booking', 'data-booking-id': b.booking_id },
    el('div', {}, el('strong', {}, 'Booking '), el('code', { class: 'booking-id' }, b.booking_id)),
    el('div', {}, name, b.created_at ? el('span', { class: 'muted' }, ` · booked ${when(b.created_at)}`) : null),
    el('div', { class: 'booking-tickets' }, `Tickets: ${b.tickets.join(', ')}`),
    el('div', { class: 'muted' }, `${money(b.amount, b.currency)} · payment ${b.payment_ref}`),
    // confirmed, refund_pending (cancelled, the refund still runs) or refunded.
    b.status && b.status !== 'confirmed'
      ? el('div', { class: 'booking-status' }, b.status === 'refunded' ? `Refunded (${b.refund_ref})` : 'Refund pending')
      : null);
}

async function load(append) {
  const list = $('#bookings');
  if (!append) { list.replaceChildren(); cursor = null; }
  if (!signedIn()) {
    $('#me-note').textContent = 'Sign in to see your bookings.';
    $('#more').hidden = true;
    return;
  }
  const params = new URLSearchParams({ limit: '20' });
  if (append && cursor) params.set('cursor', cursor);
  try {
    const r = await get(`/v1/me/bookings?${params}`);
    clearError();
    list.append(...r.bookings.map(item));
    cursor = r.next_cursor || null;
    $('#more').hidden = !cursor;
    $('#me-note').textContent = list.children.length ? `Bookings of ${claims()?.sub}.` : 'No bookings yet.';
  } catch (err) {
    report(err);
  }
}

$('#more').addEventListener('click', () => load(true));
window.addEventListener('boxoffice:signin', () => load(false));
load(false);
