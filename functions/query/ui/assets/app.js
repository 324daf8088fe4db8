// The timeline viewer: searches the query API, draws a correlation as lanes on a time axis,
// shows one event in full, checks integrity proofs and exports the result.
//
// Events are attacker-controlled data. They reach the page only through textContent, SVG
// attributes set with setAttribute and <title> text, never parsed as markup.

import * as T from './timeline.js';

const API = new URL('../api/v1/audit/', location.href);
const TOKEN_KEY = 'auditstore.token';
// A timeline follows cursors until it is complete, up to this many events.
const MAX_TIMELINE = 5000;
// Event ids per integrity request (the API takes up to 1000).
const PROOF_BATCH = 500;
const LANE_H = 34;
const AXIS_H = 36;
const PAD = 28;

// The Event fields in the contract's order; fields a newer server adds are shown after them.
const FIELDS = ['event_id', 'version', 'event_timestamp', 'event_type', 'event_category', 'event_action',
  'event_outcome', 'correlation_id', 'actor_type', 'actor_id', 'actor_ip', 'resource_type', 'resource_id',
  'resource_name', 'parent_event_id', 'trace_id', 'span_id', 'namespace', 'cluster_id', 'severity',
  'duration_ms', 'error_code', 'error_message', 'retention_days', 'is_sensitive', 'received_at', 'submitted_by'];
const COPYABLE = new Set(['event_id', 'correlation_id', 'parent_event_id', 'trace_id', 'span_id', 'resource_id']);

const $ = (id) => document.getElementById(id);

const state = {
  params: new URLSearchParams(),
  events: [], // as the API returned them
  sorted: [], // by time
  byId: new Map(),
  nextCursor: null,
  hasMore: false,
  selected: null,
  integrity: new Map(), // event_id → {status, text, proof}
  integrityNote: '',
  zoom: 1,
  seq: 0,
  abort: null,
};

/** el makes an HTML element; children are nodes or strings (as text, never markup). */
function el(tag, props = {}, ...children) {
  const n = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (k === 'dataset') Object.assign(n.dataset, v);
    else if (k === 'className') n.className = v;
    else n.setAttribute(k, v);
  }
  for (const c of children) {
    if (c === null || c === undefined) continue;
    n.append(typeof c === 'string' ? document.createTextNode(c) : c);
  }
  return n;
}

function svg(tag, attrs = {}) {
  const n = document.createElementNS('http://www.w3.org/2000/svg', tag);
  for (const [k, v] of Object.entries(attrs)) n.setAttribute(k, String(v));
  return n;
}

function outcomeClass(o) {
  return 'outcome-' + (T.OUTCOMES.includes(o) ? o : 'unknown');
}

// --- API -----------------------------------------------------------------------------------

function token() {
  return sessionStorage.getItem(TOKEN_KEY) || '';
}

/** ApiError is a failed request, with the problem+json body when the server sent one. */
class ApiError extends Error {
  constructor(status, problem, message) {
    super(message);
    this.status = status;
    this.problem = problem;
  }
}

async function request(path, opts = {}) {
  const headers = new Headers(opts.headers || {});
  if (token()) headers.set('Authorization', 'Bearer ' + token());
  let res;
  try {
    res = await fetch(new URL(path, API), { ...opts, headers });
  } catch (err) {
    if (err.name === 'AbortError') throw err;
    throw new ApiError(0, null, 'the server cannot be reached: ' + err.message);
  }
  if (res.ok) return res;
  let problem = null;
  try {
    problem = await res.json();
  } catch {
    // not problem+json: a proxy's page
  }
  throw new ApiError(res.status, problem, describeFailure(res.status, problem));
}

function describeFailure(status, problem) {
  if (status === 401) return 'the server wants a Bearer token: enter one above (401)';
  if (status === 403) return 'this token may not read audit events (403)';
  let msg = (problem && problem.detail) || `the server answered ${status}`;
  if (problem && Array.isArray(problem.errors)) {
    msg += ': ' + problem.errors.map((e) => `${e.field} ${e.message}`).join('; ');
  }
  return msg;
}

async function getJSON(path, signal) {
  const res = await request(path, { signal });
  return T.parseExact(await res.text());
}

// --- search --------------------------------------------------------------------------------

function setStatus(text, kind = '') {
  const s = $('status');
  s.textContent = text;
  s.className = kind;
}

function formValues() {
  const out = {};
  for (const name of T.FILTERS) {
    const f = $('search').elements.namedItem(name);
    if (f) out[name] = f.value;
  }
  return out;
}

function fillForm(params) {
  for (const name of T.FILTERS) {
    const f = $('search').elements.namedItem(name);
    if (f) f.value = params.get(name) ?? '';
  }
}

function isTimeline(params) {
  return params.has('correlation_id');
}

async function search(params) {
  state.abort?.abort();
  const abort = new AbortController();
  state.abort = abort;
  const seq = ++state.seq;
  Object.assign(state, { params, events: [], sorted: [], byId: new Map(), nextCursor: null, hasMore: false, selected: null });
  state.integrity = new Map();
  document.body.dataset.state = 'loading';
  setStatus('Searching…');
  closeDetail();
  try {
    await loadPage(abort.signal);
    while (isTimeline(params) && state.hasMore && state.events.length < MAX_TIMELINE) {
      await loadPage(abort.signal);
    }
  } catch (err) {
    if (err.name === 'AbortError' || seq !== state.seq) return;
    render();
    setStatus(err.message, 'error');
    document.body.dataset.state = 'error';
    if (err.status === 401) $('token').focus();
    return;
  }
  if (seq !== state.seq) return;
  render();
  // Ready once the browser has laid out and painted it: the next frame's task.
  requestAnimationFrame(() => setTimeout(() => {
    if (seq !== state.seq) return;
    performance.mark('auditstore:rendered');
    document.body.dataset.state = 'ready';
  }));
  loadIntegrity(seq);
}

async function loadPage(signal) {
  const p = new URLSearchParams(state.params);
  p.set('limit', $('limit').value);
  if (state.nextCursor) p.set('cursor', state.nextCursor);
  const body = await getJSON('events?' + p, signal);
  for (const e of body.data) {
    if (state.byId.has(e.event_id)) continue;
    state.byId.set(e.event_id, e);
    state.events.push(e);
  }
  state.sorted = [...state.events].sort(T.compareEvents);
  state.hasMore = body.pagination.has_more;
  state.nextCursor = body.pagination.next_cursor;
}

async function loadMore() {
  const seq = state.seq;
  setStatus('Loading more…');
  try {
    await loadPage(state.abort?.signal);
  } catch (err) {
    if (err.name !== 'AbortError') setStatus(err.message, 'error');
    return;
  }
  if (seq !== state.seq) return;
  render();
  loadIntegrity(seq);
}

// --- rendering -----------------------------------------------------------------------------

function render() {
  renderSummary();
  renderTimeline();
  renderTable();
  if (state.selected && state.byId.has(state.selected)) select(state.selected);
}

function renderSummary() {
  const n = state.events.length;
  const lanes = T.lanes(state.sorted);
  const parts = [];
  if (n === 0) {
    parts.push('No event matches.');
  } else {
    const first = state.sorted[0];
    const last = state.sorted[n - 1];
    const span = T.toMicros(last.event_timestamp) - T.toMicros(first.event_timestamp);
    parts.push(`${n} event${n === 1 ? '' : 's'} from ${lanes.length} service${lanes.length === 1 ? '' : 's'}, ` +
      `${first.event_timestamp} to ${last.event_timestamp} (${T.formatDuration(span)})`);
    if (state.hasMore) parts.push(isTimeline(state.params) ? `only the first ${n} are shown` : 'more match');
  }
  setStatus(parts.join(' · '));
  $('more').hidden = !state.hasMore;
  $('results').hidden = n === 0;
  document.body.dataset.count = String(n);
}

function renderTimeline() {
  const sorted = state.sorted;
  const lanes = T.lanes(sorted);
  const laneOf = new Map(lanes.map((l) => [l.key, l]));
  const labels = $('lane-labels');
  labels.replaceChildren(...lanes.map((l) => el('div', { className: 'lane-label', title: `${l.actorType} ${l.actorId}: ${l.count} events` },
    el('span', { className: 'lane-name' }, l.label), el('span', { className: 'lane-count' }, String(l.count)))));
  labels.style.paddingTop = AXIS_H + 'px';

  const plot = $('plot');
  const width = Math.max(plot.clientWidth || 900, 600) * state.zoom;
  const height = AXIS_H + lanes.length * LANE_H + 8;
  const scale = T.buildScale(sorted.map(T.spanOf), width - 2 * PAD);
  const X = (t) => PAD + scale.x(t);
  const laneY = (e) => AXIS_H + laneOf.get(T.laneKey(e)).index * LANE_H + LANE_H / 2;

  const root = svg('svg', { id: 'timeline', width, height, viewBox: `0 0 ${width} ${height}`, role: 'group', 'aria-label': 'timeline' });
  const defs = svg('defs');
  const marker = svg('marker', { id: 'arrow', viewBox: '0 0 10 10', refX: 16, refY: 5, markerWidth: 8, markerHeight: 8, markerUnits: 'userSpaceOnUse', orient: 'auto-start-reverse' });
  marker.append(svg('path', { d: 'M0,0 L10,5 L0,10 z', class: 'arrow' }));
  defs.append(marker);
  root.append(defs);

  const stripes = svg('g', { class: 'stripes' });
  for (const l of lanes) {
    stripes.append(svg('rect', { x: 0, y: AXIS_H + l.index * LANE_H, width, height: LANE_H, class: l.index % 2 ? 'lane odd' : 'lane' }));
  }
  root.append(stripes);

  // Gaps: the pauses between steps, labelled with their length; a break is a gap drawn shorter
  // than it was.
  const gaps = svg('g', { class: 'gaps' });
  for (const g of scale.gaps) {
    const x0 = PAD + g.x0;
    const w = g.x1 - g.x0;
    if (w < 14 && !g.compressed) continue;
    const band = svg('rect', { x: x0, y: AXIS_H - 14, width: Math.max(w, 1), height: height - AXIS_H + 6, class: g.compressed ? 'gap break' : 'gap' });
    const label = svg('text', { x: x0 + w / 2, y: AXIS_H - 4, class: 'gap-label', 'text-anchor': 'middle' });
    label.textContent = (g.compressed ? '⋯ ' : '') + T.formatDuration(g.t1 - g.t0);
    const title = svg('title');
    title.textContent = `${g.compressed ? 'gap (shortened)' : 'gap'}: ${T.formatDuration(g.t1 - g.t0)} without an event`;
    band.append(title);
    gaps.append(band, label);
  }
  root.append(gaps);

  const axis = svg('g', { class: 'axis' });
  for (const t of T.ticks(scale)) {
    axis.append(svg('line', { x1: PAD + t.x, x2: PAD + t.x, y1: 12, y2: height, class: 'tick' }));
    const label = svg('text', { x: PAD + t.x + 3, y: 10, class: 'tick-label' });
    label.textContent = t.label;
    axis.append(label);
  }
  root.append(axis);

  const bars = svg('g', { class: 'bars' });
  const links = svg('g', { class: 'links' });
  const dots = svg('g', { class: 'events' });
  for (const e of sorted) {
    const span = T.spanOf(e);
    const y = laneY(e);
    const x = X(span.end);
    if (span.end > span.start) {
      const x0 = X(span.start);
      const bar = svg('rect', { x: x0, y: y - 5, width: Math.max(x - x0, 2), height: 10, rx: 3, class: 'bar ' + outcomeClass(e.event_outcome), 'data-event-id': e.event_id });
      const title = svg('title');
      title.textContent = `${e.event_type}: ${T.formatDuration(span.end - span.start)}`;
      bar.append(title);
      bars.append(bar);
    }
    const parent = e.parent_event_id && state.byId.get(e.parent_event_id);
    if (parent) {
      const px = X(T.spanOf(parent).end);
      const py = laneY(parent);
      // Across lanes an S-curve; within a lane an arch over the lane, so the arrow is not
      // hidden under the dots it joins.
      const dx = Math.max(Math.abs(x - px) / 2, 12);
      const d = py === y
        ? `M${px},${py} C${px},${py - LANE_H * 0.6} ${x},${y - LANE_H * 0.6} ${x},${y}`
        : `M${px},${py} C${px + dx},${py} ${x - dx},${y} ${x},${y}`;
      links.append(svg('path', {
        d,
        class: 'link', 'marker-end': 'url(#arrow)', 'data-parent': parent.event_id, 'data-child': e.event_id,
      }));
    }
    const dot = svg('circle', {
      cx: x, cy: y, r: 6, class: 'event ' + outcomeClass(e.event_outcome), tabindex: 0, role: 'button',
      'data-event-id': e.event_id, 'data-lane': laneOf.get(T.laneKey(e)).index,
    });
    const title = svg('title');
    title.textContent = `${e.event_type} · ${e.event_outcome} · ${e.event_timestamp}`;
    dot.append(title);
    dots.append(dot);
  }
  root.append(bars, links, dots);
  root.addEventListener('click', (ev) => {
    const id = ev.target.getAttribute && ev.target.getAttribute('data-event-id');
    if (id) select(id);
  });
  root.addEventListener('keydown', onTimelineKey);
  $('timeline').replaceWith(root);
}

function onTimelineKey(ev) {
  const id = ev.target.getAttribute && ev.target.getAttribute('data-event-id');
  if (!id) return;
  const i = state.sorted.findIndex((e) => e.event_id === id);
  let next = null;
  if (ev.key === 'Enter' || ev.key === ' ') next = state.sorted[i];
  else if (ev.key === 'ArrowRight') next = state.sorted[i + 1];
  else if (ev.key === 'ArrowLeft') next = state.sorted[i - 1];
  if (!next) return;
  ev.preventDefault();
  select(next.event_id);
  document.querySelector(`#timeline circle[data-event-id="${CSS.escape(next.event_id)}"]`)?.focus();
}

// Rows per chunk of the event list; the browser lays out only the chunks in view.
const CHUNK = 50;

function renderTable() {
  const start = state.sorted.length ? T.toMicros(state.sorted[0].event_timestamp) : 0;
  const cell = (className, ...children) => el('span', { className, role: 'cell' }, ...children);
  const chunks = [];
  for (let i = 0; i < state.events.length; i += CHUNK) {
    chunks.push(el('div', { className: 'chunk' }, ...state.events.slice(i, i + CHUNK).map((e) =>
      el('div', { className: 'row', role: 'row', dataset: { eventId: e.event_id } },
        cell('time', e.event_timestamp),
        cell('offset', '+' + T.formatDuration(T.toMicros(e.event_timestamp) - start)),
        cell('service', isErased(e, '/actor_id') ? erasedMarker('/actor_id') : e.actor_id),
        cell('type', e.event_type),
        cell('outcome', el('span', { className: 'badge ' + outcomeClass(e.event_outcome) }, e.event_outcome)),
        cell('resource', [e.resource_type, e.resource_id].filter(Boolean).join(' ')),
        cell('duration', Number.isFinite(e.duration_ms) ? T.formatDuration(e.duration_ms * 1000) : ''),
        cell('integrity', integrityText(e.event_id))))));
  }
  $('rows').replaceChildren(...chunks);
}

// --- detail --------------------------------------------------------------------------------

function select(id) {
  const e = state.byId.get(id);
  if (!e) return;
  state.selected = id;
  for (const n of document.querySelectorAll('.selected')) n.classList.remove('selected');
  for (const n of document.querySelectorAll('.link.active')) n.classList.remove('active');
  const sel = CSS.escape(id);
  document.querySelector(`#timeline circle[data-event-id="${sel}"]`)?.classList.add('selected');
  for (const n of document.querySelectorAll(`.link[data-parent="${sel}"], .link[data-child="${sel}"]`)) n.classList.add('active');
  const row = document.querySelector(`#rows .row[data-event-id="${sel}"]`);
  if (row) {
    row.classList.add('selected');
    row.scrollIntoView({ block: 'nearest' });
  }
  showDetail(e, true);
}

function copyButton(text) {
  const b = el('button', { type: 'button', className: 'copy', title: 'Copy to the clipboard' }, 'copy');
  b.addEventListener('click', async () => {
    try {
      await navigator.clipboard.writeText(text);
      flash(b, 'copied');
    } catch {
      // No clipboard outside a secure context: select the text for Ctrl+C.
      const range = document.createRange();
      range.selectNodeContents(b.previousElementSibling);
      getSelection().removeAllRanges();
      getSelection().addRange(range);
      flash(b, 'selected: press Ctrl+C');
    }
  });
  return b;
}

function flash(button, text) {
  button.textContent = text;
  setTimeout(() => { button.textContent = 'copy'; }, 1500);
}

function valueCell(key, value, e) {
  if (value === null || value === undefined) return el('dd', { className: 'null' }, '—');
  const text = typeof value === 'object' ? T.pretty(value) : String(value);
  const dd = el('dd', {}, el('code', { className: 'value' }, text));
  if (COPYABLE.has(key)) dd.append(copyButton(text));
  if (key === 'parent_event_id') {
    const b = el('button', { type: 'button', className: 'link-button', id: 'goto-parent' }, state.byId.has(value) ? 'show parent' : 'open parent');
    b.addEventListener('click', () => openEvent(value));
    dd.append(b);
  }
  if (key === 'correlation_id' && state.params.get('correlation_id') !== value) {
    const b = el('button', { type: 'button', className: 'link-button' }, 'open timeline');
    b.addEventListener('click', () => go(new URLSearchParams({ correlation_id: value })));
    dd.append(b);
  }
  if (key === 'duration_ms' && Number.isFinite(value)) dd.append(el('span', { className: 'hint' }, ' ' + T.formatDuration(value * 1000)));
  if (key === 'event_timestamp' && e && state.sorted.length) {
    dd.append(el('span', { className: 'hint' }, ' +' + T.formatDuration(T.toMicros(value) - T.toMicros(state.sorted[0].event_timestamp))));
  }
  return dd;
}

// --- erased and withheld members ------------------------------------------------------------
//
// An erasure deletes members' values for good (their digests keep the event verifiable); a
// sensitive event read without the right to read it withholds some. Either is shown as a
// marker where the value would be, never as a missing or empty value.

const ERASED_TITLE = 'erased: the value was deleted by an erasure (its digest still proves the event)';

function isErased(e, pointer) {
  return Array.isArray(e.erased) && e.erased.includes(pointer);
}

function erasedMarker(pointer) {
  return el('span', { className: 'marker erased', title: ERASED_TITLE, dataset: { pointer } }, '[erased]');
}

function withheldMarker(field) {
  return el('span', { className: 'marker withheld', title: `withheld: this event is sensitive and this token may not read its ${field}`, dataset: { field } }, '[withheld]');
}

/** erasedFromData lists the erased members of event_data, each as a marker naming it. */
function erasedFromData(e) {
  const pointers = (Array.isArray(e.erased) ? e.erased : []).filter((p) => p.startsWith('/event_data/'));
  if (!pointers.length) return null;
  const list = el('p', { id: 'detail-erased', className: 'erased-list' }, 'Erased from event_data: ');
  pointers.forEach((p, i) => {
    if (i) list.append(' ');
    const m = erasedMarker(p);
    m.textContent = p;
    list.append(m);
  });
  return list;
}

/**
 * nameErasures gives each erased marker of the detail of e the erasure that erased it (when,
 * by whom, why), from the erasures' own audit events; a token that may not read them keeps the
 * generic description.
 */
async function nameErasures(e) {
  const d = $('detail');
  if (!Array.isArray(e.erased) || !e.erased.length) {
    d.dataset.erasures = 'none';
    return;
  }
  d.dataset.erasures = 'loading';
  const p = new URLSearchParams({
    event_type: 'auditstore.erasure.performed', order: 'asc', limit: '100',
    data: JSON.stringify({ payload: { events: [{ event_id: e.event_id }] } }),
  });
  try {
    const body = await getJSON('events?' + p);
    if (d.dataset.eventId !== e.event_id) return;
    for (const r of body.data) {
      const er = r.event_data && r.event_data.payload;
      const mine = er && Array.isArray(er.events) && er.events.find((x) => x.event_id === e.event_id);
      if (!mine) continue;
      const text = `erased ${r.event_timestamp} by ${r.actor_id} (erasure ${er.erasure_id}): ${er.reason}`;
      for (const m of mine.members || []) {
        for (const n of d.querySelectorAll(`.marker.erased[data-pointer="${CSS.escape(m)}"]`)) {
          n.title = text;
          n.dataset.erasureId = er.erasure_id;
        }
      }
    }
  } catch (err) {
    if (err.name === 'AbortError') return;
  }
  if (d.dataset.eventId === e.event_id) d.dataset.erasures = 'done';
}

function showDetail(e, inResult) {
  const d = $('detail');
  d.dataset.eventId = e.event_id;
  const keys = [...FIELDS, ...Object.keys(e).filter((k) => !FIELDS.includes(k) && k !== 'event_data')];
  const withheld = Array.isArray(e.withheld) ? e.withheld : [];
  const dl = el('dl', { id: 'detail-fields' });
  for (const k of keys) {
    let dd;
    if (isErased(e, '/' + k)) dd = el('dd', {}, erasedMarker('/' + k));
    else if (withheld.includes(k)) dd = el('dd', {}, withheldMarker(k));
    else dd = valueCell(k, e[k], inResult ? e : null);
    dl.append(el('dt', {}, k), dd);
  }
  const integrity = el('p', { id: 'detail-integrity', className: 'integrity' }, 'integrity: checking…');
  d.replaceChildren(...[
    el('div', { className: 'detail-head' },
      el('h2', { id: 'detail-title' }, e.event_type),
      el('span', { className: 'badge ' + outcomeClass(e.event_outcome) }, e.event_outcome),
      closeButton()),
    inResult ? null : el('p', { className: 'hint', id: 'detail-outside' }, 'This event is not in the current result.'),
    integrity,
    dl,
    el('h3', {}, 'event_data'),
    // A sensitive event read without the right to read it withholds its payload (and
    // error_message, resource_name): say so instead of showing an empty object as its data.
    withheld.includes('event_data')
      ? el('p', { id: 'detail-withheld', className: 'hint' }, withheldMarker('event_data'), ' this event is sensitive and you may not read ' + withheld.join(', ') + '.')
      : el('pre', { id: 'detail-data' }, T.pretty(e.event_data)),
    erasedFromData(e),
  ].filter(Boolean));
  d.hidden = false;
  document.body.classList.add('with-detail');
  loadProof(e.event_id, integrity);
  nameErasures(e);
}

function closeButton() {
  const b = el('button', { type: 'button', className: 'close', title: 'Close', 'aria-label': 'Close' }, '×');
  b.addEventListener('click', closeDetail);
  return b;
}

function closeDetail() {
  $('detail').hidden = true;
  document.body.classList.remove('with-detail');
}

async function openEvent(id) {
  if (state.byId.has(id)) {
    select(id);
    return;
  }
  try {
    showDetail(await getJSON('events/' + encodeURIComponent(id)), false);
  } catch (err) {
    setStatus(`event ${id}: ${err.message}`, 'error');
  }
}

// --- integrity -----------------------------------------------------------------------------

function checkpointText(cp) {
  if (!cp) return '';
  return `, checkpoint ${cp.timestamp ?? cp.tree_size}`;
}

function integrityText(id) {
  const s = state.integrity.get(id);
  return s ? s.text : '';
}

/** judge turns one proof (or null: not sealed) into a status with the words the page shows. */
async function judge(proof, checkpoint) {
  if (proof === null) return { status: 'not-sealed', text: 'not yet sealed' };
  if (!proof || typeof proof !== 'object') return { status: 'unavailable', text: 'integrity status unavailable' };
  const cp = proof.checkpoint || checkpoint || null;
  const where = `leaf ${proof.leaf_index}${checkpointText(cp)}`;
  const v = await T.verifyInclusion(proof, cp);
  if (v.ok) return { status: 'verified', text: `sealed (${where}), inclusion verified`, proof, checkpoint: cp };
  if (v.unverifiable) return { status: 'sealed', text: `sealed (${where}), not verified: ${v.reason}`, proof, checkpoint: cp };
  return { status: 'invalid', text: `sealed (${where}) but the proof does NOT verify: ${v.reason}`, proof, checkpoint: cp };
}

async function loadIntegrity(seq) {
  const ids = state.events.map((e) => e.event_id).filter((id) => !state.integrity.has(id));
  document.body.dataset.integrity = 'loading';
  try {
    for (let i = 0; i < ids.length; i += PROOF_BATCH) {
      const chunk = ids.slice(i, i + PROOF_BATCH);
      const res = await request('integrity/proofs', {
        method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ event_ids: chunk }),
        signal: state.abort?.signal,
      });
      const body = await res.json();
      const proofs = body.proofs || {};
      for (const id of chunk) {
        state.integrity.set(id, await judge(id in proofs ? proofs[id] : undefined, body.checkpoint));
      }
      if (seq !== state.seq) return;
    }
    state.integrityNote = '';
  } catch (err) {
    if (err.name === 'AbortError' || seq !== state.seq) return;
    state.integrityNote = err.status === 404 ? 'this server has no integrity API' : err.message;
    for (const id of ids) state.integrity.set(id, { status: 'unavailable', text: 'integrity status unavailable' });
  }
  for (const row of $('rows').querySelectorAll('.row')) row.lastElementChild.textContent = integrityText(row.dataset.eventId);
  renderIntegritySummary();
  document.body.dataset.integrity = 'done';
}

function renderIntegritySummary() {
  const counts = { verified: 0, sealed: 0, invalid: 0, 'not-sealed': 0, unavailable: 0 };
  for (const s of state.integrity.values()) counts[s.status]++;
  const parts = [];
  if (counts.verified) parts.push(`${counts.verified} sealed and verified`);
  if (counts.sealed) parts.push(`${counts.sealed} sealed, not verified here`);
  if (counts['not-sealed']) parts.push(`${counts['not-sealed']} not yet sealed`);
  if (counts.invalid) parts.push(`${counts.invalid} whose proof does NOT verify`);
  const note = state.integrityNote ? ` (${state.integrityNote})` : '';
  const s = $('integrity-summary');
  if (counts.unavailable && parts.length === 0) {
    s.textContent = 'Integrity status unavailable' + note;
  } else {
    if (counts.unavailable) parts.push(`${counts.unavailable} with integrity status unavailable${note}`);
    s.textContent = parts.length ? 'Integrity: ' + parts.join(' · ') : '';
  }
  s.className = counts.invalid ? 'error' : counts.unavailable ? 'muted' : '';
}

async function loadProof(id, target) {
  const show = (text, cls) => {
    if (!target.isConnected) return;
    target.textContent = 'integrity: ' + text;
    target.className = 'integrity ' + cls;
  };
  let proof;
  try {
    const res = await request('events/' + encodeURIComponent(id) + '/proof');
    proof = await res.json();
  } catch (err) {
    if (err.status === 404 && err.problem && typeof err.problem.type === 'string' && err.problem.type.endsWith('/not-sealed')) {
      show('not yet sealed', 'not-sealed');
    } else {
      show('integrity status unavailable', 'unavailable');
    }
    return;
  }
  const j = await judge(proof, null);
  show(j.text, j.status);
  if (!target.isConnected) return;
  const rows = [['leaf_index', proof.leaf_index], ['tree_size', proof.tree_size], ['event_hash', proof.event_hash],
    ['root_hash', proof.root_hash], ['audit_path', `${(proof.audit_path || []).length} hashes`]];
  if (proof.checkpoint) {
    rows.push(['checkpoint', `${proof.checkpoint.timestamp ?? ''} key ${proof.checkpoint.key_id ?? ''}`],
      ['signature', 'not checked by this page']);
  }
  target.after(el('dl', { className: 'proof' }, ...rows.flatMap(([k, v]) => [el('dt', {}, k), el('dd', {}, el('code', {}, String(v)))])));
}

// --- export --------------------------------------------------------------------------------

async function exportAs(format) {
  const p = new URLSearchParams(state.params);
  if (format === 'csv') p.set('format', 'csv');
  const url = new URL('export?' + p, API);
  const corr = state.params.get('correlation_id');
  const name = `audit-events${corr ? '-' + corr.replace(/[^A-Za-z0-9._-]/g, '_').slice(0, 80) : ''}.${format}`;
  const save = (href) => {
    const a = el('a', { href, download: name, hidden: '' });
    document.body.append(a);
    a.click();
    a.remove();
  };
  if (!token()) {
    save(url.href); // the browser streams it to disk
    return;
  }
  // A download link cannot carry the Authorization header: fetch, then save the blob.
  setStatus(`Exporting ${format.toUpperCase()}…`);
  try {
    const res = await request(url);
    const blobURL = URL.createObjectURL(await res.blob());
    save(blobURL);
    setTimeout(() => URL.revokeObjectURL(blobURL), 60_000);
    renderSummary();
  } catch (err) {
    setStatus('export failed: ' + err.message, 'error');
  }
}

// --- wiring --------------------------------------------------------------------------------

function go(params) {
  fillForm(params);
  const q = params.toString();
  history.pushState(null, '', q ? '?' + q : location.pathname);
  search(params);
}

function renderTokenState() {
  $('token-state').textContent = token() ? 'token set for this tab' : 'no token';
}

function init() {
  $('search').addEventListener('submit', (ev) => {
    ev.preventDefault();
    go(T.searchParams(formValues()));
  });
  $('clear').addEventListener('click', () => {
    $('search').reset();
  });
  $('token-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const v = $('token').value.trim();
    if (v) sessionStorage.setItem(TOKEN_KEY, v);
    $('token').value = '';
    renderTokenState();
    if (state.params.toString() || document.body.dataset.state === 'error') search(state.params);
  });
  $('token-forget').addEventListener('click', () => {
    sessionStorage.removeItem(TOKEN_KEY);
    renderTokenState();
  });
  $('more').addEventListener('click', loadMore);
  $('export-ndjson').addEventListener('click', () => exportAs('ndjson'));
  $('export-csv').addEventListener('click', () => exportAs('csv'));
  $('zoom-in').addEventListener('click', () => zoom(2));
  $('zoom-out').addEventListener('click', () => zoom(0.5));
  $('rows').addEventListener('click', (ev) => {
    const row = ev.target.closest('.row');
    if (row) select(row.dataset.eventId);
  });
  window.addEventListener('popstate', fromLocation);
  renderTokenState();
  fromLocation();
}

function zoom(f) {
  state.zoom = Math.min(64, Math.max(1, state.zoom * f));
  $('zoom-level').textContent = `×${state.zoom}`;
  renderTimeline();
  if (state.selected) select(state.selected);
}

function fromLocation() {
  const params = T.searchParams(Object.fromEntries(new URLSearchParams(location.search)));
  fillForm(params);
  if (params.toString()) search(params);
  else document.body.dataset.state = 'idle';
}

init();
