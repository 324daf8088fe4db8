// Pure logic of the timeline viewer: time parsing, lanes, the time scale, durations, query
// strings, exact JSON and Merkle inclusion proofs. Nothing here touches the DOM, so the Go
// tests run these functions in a browser on their own.

/** Outcomes in the order the legend shows them. */
export const OUTCOMES = ['success', 'failure', 'pending', 'unknown'];

const rfc3339 = /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)$/i;

/**
 * toMicros reads an RFC 3339 time into microseconds since the epoch. Date.parse keeps
 * milliseconds only, and the store keeps microseconds: two events a few µs apart must not
 * share a position or swap places. Returns NaN for anything else.
 */
export function toMicros(s) {
  let v = micros.get(s);
  if (v === undefined) {
    v = parseMicros(s);
    if (micros.size > 100000) micros.clear();
    micros.set(s, v);
  }
  return v;
}

// micros remembers parsed times: sorting and drawing ask for each many times.
const micros = new Map();

function parseMicros(s) {
  const m = rfc3339.exec(s || '');
  if (!m) return NaN;
  const ms = Date.parse(m[1] + m[3].toUpperCase());
  if (Number.isNaN(ms)) return NaN;
  const frac = ((m[2] || '') + '000000').slice(0, 6);
  return ms * 1000 + Number(frac);
}

/** compareEvents orders by (event_timestamp, event_id), the store's own order. */
export function compareEvents(a, b) {
  const d = toMicros(a.event_timestamp) - toMicros(b.event_timestamp);
  if (d !== 0) return d;
  return a.event_id < b.event_id ? -1 : a.event_id > b.event_id ? 1 : 0;
}

/** laneKey is the lane of an event: its actor, so one lane per service. */
export function laneKey(e) {
  return e.actor_type + '\u0000' + e.actor_id;
}

/**
 * lanes lists the lanes of events (sorted by time) in order of first appearance, so a
 * remediation reads top to bottom as it flowed from service to service.
 */
export function lanes(events) {
  const byKey = new Map();
  for (const e of events) {
    const key = laneKey(e);
    let lane = byKey.get(key);
    if (!lane) {
      lane = {
        key, index: byKey.size, count: 0, actorType: e.actor_type, actorId: e.actor_id,
        label: e.actor_type === 'service' ? e.actor_id : `${e.actor_id} (${e.actor_type})`,
      };
      byKey.set(key, lane);
    }
    lane.count++;
  }
  return [...byKey.values()];
}

/**
 * spanOf is the time an event covers, in µs: a point, or, with duration_ms, the step that
 * ended at the event (services record a step when it finishes).
 */
export function spanOf(e) {
  const end = toMicros(e.event_timestamp);
  const d = Number.isFinite(e.duration_ms) && e.duration_ms > 0 ? e.duration_ms * 1000 : 0;
  return { start: end - d, end };
}

/**
 * busyBlocks merges spans into the disjoint intervals where something happened; what lies
 * between two blocks is a gap.
 */
export function busyBlocks(spans) {
  const sorted = spans.filter((s) => Number.isFinite(s.start) && Number.isFinite(s.end))
    .map((s) => ({ start: s.start, end: s.end }))
    .sort((a, b) => a.start - b.start);
  const blocks = [];
  for (const s of sorted) {
    const last = blocks[blocks.length - 1];
    if (last && s.start <= last.end) last.end = Math.max(last.end, s.end);
    else blocks.push(s);
  }
  return blocks;
}

/**
 * buildScale maps time (µs) to x in [0, width]. Time is linear, except that a gap which would
 * take more than maxGapShare of the width and is more than gapFactor times the median gap is
 * drawn as a break of breakPx, so one long wait (an approval, a retry hours later) does not
 * squeeze every other step into a few pixels, while steps at comparable distances stay true
 * to scale. Breaks carry their real length so the page can label them.
 *
 * Returns {x(t), segments, gaps, start, end}; segments are [{t0, t1, x0, x1, compressed}] in
 * order, gaps are every gap between busy blocks with {t0, t1, x0, x1, compressed}.
 */
export function buildScale(spans, width, opts = {}) {
  const breakPx = opts.breakPx ?? 48;
  const maxGapShare = opts.maxGapShare ?? 0.2;
  const gapFactor = opts.gapFactor ?? 10;
  const blocks = busyBlocks(spans);
  if (blocks.length === 0 || width <= 0) {
    return { x: () => width / 2, segments: [], gaps: [], start: 0, end: 0 };
  }
  const start = blocks[0].start;
  const end = blocks[blocks.length - 1].end;
  const gaps = [];
  for (let i = 1; i < blocks.length; i++) {
    gaps.push({ t0: blocks[i - 1].end, t1: blocks[i].start, compressed: false });
  }
  const total = end - start;
  const byLength = [...gaps].sort((a, b) => (b.t1 - b.t0) - (a.t1 - a.t0));
  const median = byLength.length ? byLength[Math.floor(byLength.length / 2)].t1 - byLength[Math.floor(byLength.length / 2)].t0 : 0;
  let linear = total;
  let breaks = 0;
  // Compress the largest gap while it stands out and is too wide, as long as something else
  // stays linear and the breaks leave at least half the width to time.
  for (const g of byLength) {
    const len = g.t1 - g.t0;
    const k = (width - breaks * breakPx) / linear;
    if (len * k <= maxGapShare * width || len <= gapFactor * median || linear - len <= 0 ||
      (breaks + 1) * breakPx > width / 2) break;
    g.compressed = true;
    linear -= len;
    breaks++;
  }
  const k = linear > 0 ? (width - breaks * breakPx) / linear : 0;
  const used = breaks * breakPx + linear * k;
  let x = (width - used) / 2; // a single instant sits in the middle
  const segments = [];
  let t = start;
  for (const g of gaps) {
    if (!g.compressed) continue;
    const x1 = x + (g.t0 - t) * k;
    segments.push({ t0: t, t1: g.t0, x0: x, x1, compressed: false });
    segments.push({ t0: g.t0, t1: g.t1, x0: x1, x1: x1 + breakPx, compressed: true });
    x = x1 + breakPx;
    t = g.t1;
  }
  segments.push({ t0: t, t1: end, x0: x, x1: x + (end - t) * k, compressed: false });

  const at = (time) => {
    if (time <= segments[0].t0) return segments[0].x0;
    for (const s of segments) {
      if (time <= s.t1) {
        return s.t1 === s.t0 ? s.x0 : s.x0 + (time - s.t0) / (s.t1 - s.t0) * (s.x1 - s.x0);
      }
    }
    return segments[segments.length - 1].x1;
  };
  for (const g of gaps) {
    g.x0 = at(g.t0);
    g.x1 = at(g.t1);
  }
  return { x: at, segments, gaps, start, end };
}

const tickSteps = [1, 2, 5, 10, 20, 50, 100, 200, 500].map((n) => n * 1000) // ms
  .concat([1, 2, 5, 10, 15, 30].map((n) => n * 1e6)) // s
  .concat([1, 2, 5, 10, 15, 30].map((n) => n * 60e6)) // min
  .concat([1, 2, 3, 6, 12].map((n) => n * 3600e6)) // h
  .concat([1, 2, 7, 14, 30].map((n) => n * 86400e6)); // days

/**
 * ticks places axis ticks on the linear segments of a scale, at round offsets from the
 * scale's start, at least minPx apart: [{x, t, label}] with labels like "+1.5 s".
 */
export function ticks(scale, minPx = 90) {
  const out = [];
  for (const s of scale.segments) {
    if (s.compressed) continue;
    const span = s.t1 - s.t0;
    const px = s.x1 - s.x0;
    if (span <= 0 || px <= 0) {
      if (out.length === 0 || s.x0 - out[out.length - 1].x >= minPx) {
        out.push({ x: s.x0, t: s.t0, label: '+' + formatDuration(s.t0 - scale.start) });
      }
      continue;
    }
    const want = (minPx * span) / px;
    const step = tickSteps.find((v) => v >= want) ?? want;
    const first = scale.start + Math.ceil((s.t0 - scale.start) / step) * step;
    for (let t = first; t <= s.t1; t += step) {
      const x = scale.x(t);
      if (out.length && x - out[out.length - 1].x < minPx) continue;
      out.push({ x, t, label: '+' + formatDuration(t - scale.start) });
    }
  }
  return out;
}

/** formatDuration writes µs for people: "0 ms", "12 ms", "1.5 s", "3 min 12 s", "2 h 5 min", "3 d 4 h". */
export function formatDuration(us) {
  const neg = us < 0 ? '-' : '';
  us = Math.abs(us);
  if (us < 1000) return neg + (us === 0 ? '0 ms' : `${Math.round(us)} µs`);
  const ms = us / 1000;
  if (ms < 1000) return neg + `${trim(ms < 10 ? ms.toFixed(1) : ms.toFixed(0))} ms`;
  const s = ms / 1000;
  if (s < 60) return neg + `${trim(s < 10 ? s.toFixed(2) : s.toFixed(1))} s`;
  const total = Math.round(s);
  const d = Math.floor(total / 86400);
  const h = Math.floor((total % 86400) / 3600);
  const m = Math.floor((total % 3600) / 60);
  const sec = total % 60;
  if (d > 0) return neg + (h ? `${d} d ${h} h` : `${d} d`);
  if (h > 0) return neg + (m ? `${h} h ${m} min` : `${h} h`);
  return neg + (sec ? `${m} min ${sec} s` : `${m} min`);
}

function trim(n) {
  return n.includes('.') ? n.replace(/\.?0+$/, '') : n;
}

/** FILTERS are the search form's fields: the query API's parameters of the same names. */
export const FILTERS = ['correlation_id', 'since', 'until', 'event_type', 'event_outcome', 'actor_type',
  'actor_id', 'resource_type', 'resource_id', 'namespace', 'data', 'data_path', 'order'];

/**
 * searchParams turns the form's values into query parameters: known filters only, trimmed,
 * empty ones left out, so a link to the page carries exactly the search.
 */
export function searchParams(values) {
  const p = new URLSearchParams();
  for (const name of FILTERS) {
    const v = (values[name] ?? '').trim();
    if (v !== '') p.set(name, v);
  }
  return p;
}

/**
 * parseExact parses JSON keeping numbers JavaScript cannot hold exactly (integers past 2^53,
 * long decimals) as their source text, so event_data is shown as it was stored. Browsers
 * without JSON source text access parse as JSON.parse does.
 */
export function parseExact(text) {
  if (typeof JSON.rawJSON !== 'function') return JSON.parse(text);
  return JSON.parse(text, (key, value, ctx) => {
    if (typeof value === 'number' && ctx && typeof ctx.source === 'string' && String(value) !== ctx.source) {
      return JSON.rawJSON(ctx.source);
    }
    return value;
  });
}

/** pretty writes a value as indented JSON (raw numbers from parseExact as they were). */
export function pretty(value) {
  return JSON.stringify(value, null, 2);
}

/** hexToBytes decodes a hex string; null when it is not hex of whole bytes. */
export function hexToBytes(hex) {
  if (typeof hex !== 'string' || hex.length % 2 !== 0 || !/^[0-9a-fA-F]*$/.test(hex)) return null;
  const out = new Uint8Array(hex.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(hex.substr(i * 2, 2), 16);
  return out;
}

async function sha256(...parts) {
  let n = 0;
  for (const p of parts) n += p.length;
  const buf = new Uint8Array(n);
  let off = 0;
  for (const p of parts) {
    buf.set(p, off);
    off += p.length;
  }
  return new Uint8Array(await crypto.subtle.digest('SHA-256', buf));
}

function equalBytes(a, b) {
  if (a.length !== b.length) return false;
  let d = 0;
  for (let i = 0; i < a.length; i++) d |= a[i] ^ b[i];
  return d === 0;
}

/**
 * verifyInclusion checks a Merkle inclusion proof as RFC 9162 section 2.1.3.2 does: the leaf
 * hash SHA-256(0x00 || event_hash) climbs the audit path (SHA-256(0x01 || left || right)) to
 * root_hash, and root_hash and tree_size are the checkpoint's when one is given. Resolves to
 * {ok, reason}; reason says what failed.
 */
export async function verifyInclusion(proof, checkpoint) {
  if (!globalThis.crypto || !crypto.subtle) {
    return { ok: false, unverifiable: true, reason: 'this page cannot hash (WebCrypto needs https or localhost)' };
  }
  const leaf = hexToBytes(proof.event_hash);
  const root = hexToBytes(proof.root_hash);
  const path = (proof.audit_path || []).map(hexToBytes);
  const index = proof.leaf_index;
  const size = proof.tree_size;
  if (!leaf || !root || path.some((p) => !p || p.length !== 32) || root.length !== 32) {
    return { ok: false, reason: 'the proof holds a hash that is not 32 bytes of hex' };
  }
  if (!Number.isSafeInteger(index) || !Number.isSafeInteger(size) || index < 0 || index >= size) {
    return { ok: false, reason: `leaf ${index} is not inside a tree of ${size}` };
  }
  if (checkpoint) {
    if (checkpoint.tree_size !== size) {
      return { ok: false, reason: `the proof is for tree size ${size}, the checkpoint for ${checkpoint.tree_size}` };
    }
    const cpRoot = hexToBytes(checkpoint.root_hash);
    if (!cpRoot || !equalBytes(cpRoot, root)) return { ok: false, reason: 'the proof\'s root is not the checkpoint\'s root' };
  }
  const one = Uint8Array.of(1);
  let fn = index;
  let sn = size - 1;
  let r = await sha256(Uint8Array.of(0), leaf);
  for (const p of path) {
    if (sn === 0) return { ok: false, reason: 'the audit path is longer than the tree is deep' };
    if (fn % 2 === 1 || fn === sn) {
      r = await sha256(one, p, r);
      if (fn % 2 === 0) {
        while (fn % 2 === 0 && fn !== 0) {
          fn = Math.floor(fn / 2);
          sn = Math.floor(sn / 2);
        }
      }
    } else {
      r = await sha256(one, r, p);
    }
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  if (sn !== 0) return { ok: false, reason: 'the audit path is shorter than the tree is deep' };
  if (!equalBytes(r, root)) return { ok: false, reason: 'the audit path does not lead to the root hash' };
  return { ok: true, reason: '' };
}
