// me.js — the signed-in user's bookings (GET /v1/me/bookings, paged by next_cursor), each
// confirmed one with "Cancel and refund" (POST /v1/bookings/{id}/cancel; the event's refund
// window applies, and a refused cancel says why).
import { get, post, el, money, when, report, clearError, signedIn, claims, $ } from '/assets/common.js';

let cursor = null;
const events = new Map(); // event id -> name (looked up once each)

async function eventName(id) {
  if (!events.has(id)) {
    events.set(id, get(`/v1/events/${encodeURIComponent(id)}`, { auth: false }).then(p => p.event.name, () => id));
  }
  return events.get(id);
}

function statusLine(b) {
  // confirmed, refund_pending (cancelled, the refund still runs) or refunded.
  if (!b.status || b.status === 'confirmed') return null;
  return el('div', { class: 'booking-status' }, b.status === 'refunded' ? `Refunded (${b.refund_ref})` : 'Refund pending');
}

/// Two steps instead of a dialog: the first click asks, the second cancels.
async function cancelBooking(button) {
  if (!button.dataset.armed) {
    button.dataset.armed = '1';
    button.textContent = 'Really cancel? (refunds the payment)';
    return;
  }
  button.disabled = true;
  const li = button.closest('li');
  try {
    const r = await post(`/v1/bookings/${encodeURIComponent(li.dataset.bookingId)}/cancel`);
    clearError();
    li.querySelector('.booking-status')?.remove();
    const line = statusLine(r);
    if (line) button.replaceWith(line); else button.remove();
  } catch (err) {
    // A declined refund is a 402 `payment_declined` too: say what it means here.
    report(err, {
      payment_declined: e => `The refund was declined${e.body?.detail ? ` (${e.body.detail})` : ''}. The booking stands; try again later.`,
    });
    delete button.dataset.armed;
    button.textContent = 'Cancel and refund';
    button.disabled = false;
  }
}

function item(b) {
  const name = el('a', { href: `/events/${encodeURIComponent(b.event_id)}` }, b.event_id);
  eventName(b.event_id).then(n => { name.textContent = n; });
  const cancel = (!b.status || b.status === 'confirmed')
    ? el('button', { type: 'button', class: 'booking-cancel' }, 'Cancel and refund')
    : null;
  return el('li', { class: 'booking', 'data-booking-id': b.booking_id },
    el('div', {}, el('strong', {}, 'Booking '), el('code', { class: 'booking-id' }, b.booking_id)),
    el('div', {}, name, b.created_at ? el('span', { class: 'muted' }, ` · booked ${when(b.created_at)}`) : null),
    el('div', { class: 'booking-tickets' }, `Tickets: ${b.tickets.join(', ')}`),
    el('div', { class: 'muted' }, `${money(b.amount, b.currency)} · payment ${b.payment_ref}`),
    statusLine(b) || cancel);
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
$('#bookings').addEventListener('click', e => {
  const c = e.target.closest('.booking-cancel');
  if (c) cancelBooking(c);
});
window.addEventListener('boxoffice:signin', () => load(false));
load(false);
