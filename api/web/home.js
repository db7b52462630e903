// home.js — upcoming events and the search form, over GET /v1/search.
import { get, el, when, report, clearError, $ } from '/assets/common.js';

let cursor = null;
let query = '';

function row(r) {
  return el('li', { class: 'event' },
    el('a', { class: 'event-link', href: `/events/${encodeURIComponent(r.id)}` }, r.name),
    el('span', { class: 'when' }, when(r.starts_at)),
    el('span', { class: 'where' }, r.venue ? `${r.venue.name}, ${r.venue.city}` : ''),
    r.performers?.length ? el('span', { class: 'muted' }, r.performers.map(p => p.name ?? p).join(', ')) : null);
}

async function load(append) {
  const params = new URLSearchParams(query);
  if (append && cursor) params.set('cursor', cursor);
  try {
    const r = await get(`/v1/search${params.size ? '?' + params : ''}`, { auth: false });
    clearError();
    const list = $('#events');
    if (!append) list.replaceChildren();
    list.append(...r.results.map(row));
    cursor = r.next_cursor || null;
    $('#more').hidden = !cursor;
    $('#results-note').textContent = list.children.length ? '' : (query ? 'No events match.' : 'No upcoming events yet.');
  } catch (err) {
    report(err);
  }
}

$('#search').addEventListener('submit', e => {
  e.preventDefault();
  const form = new FormData(e.target);
  const p = new URLSearchParams();
  for (const [k, v] of form) if (String(v).trim()) p.set(k, String(v).trim());
  query = p.toString();
  history.replaceState(null, '', query ? `/?${query}` : '/');
  load(false);
});
$('#more').addEventListener('click', () => load(true));

// A search in the address bar (a shared link) fills the form.
const initial = new URLSearchParams(location.search);
for (const name of ['term', 'location', 'date_from', 'date_to']) {
  if (initial.get(name)) $(`#search [name=${name}]`).value = initial.get(name);
}
query = new URLSearchParams([...initial].filter(([k]) => ['term', 'location', 'date_from', 'date_to'].includes(k))).toString();
load(false);
