/**
 * The dashboard. Three views, chosen by the URL fragment:
 *   #/              overview: one row per target (role, run-queue p99 sparkline, on-CPU share, changed knobs, last
 *                   decision), host pressure once, recent decisions with their ids, changes in effect, agent cost;
 *   #/target/NAME   one target's charts with human titles and units, gaps with their reason, latest facts;
 *   #/decision/ID   one decision with the text `ebpf-tuner explain ID` prints.
 * The overview loads /api/overview (a few numbers per target and tick) and follows /api/stream?view=overview; uPlot
 * is loaded only when a target is opened. Plain browser JavaScript with no build step: it is type-checked
 * (tsconfig.dashboard.json, part of `npm run typecheck`) against the server's own types of what it reads.
 */
// @ts-check

/**
 * @typedef {import('../http/api.js').AgentStatus} AgentStatus
 * @typedef {import('../http/api.js').ApiBodies} ApiBodies
 * @typedef {import('../http/api.js').ApiErrorBody} ApiErrorBody
 * @typedef {import('../http/api.js').ViewStreamEvents} ViewStreamEvents
 * @typedef {import('../http/overview.js').OverviewDelta} OverviewDelta
 * @typedef {import('../http/overview.js').OverviewRow} OverviewRow
 * @typedef {import('../http/details.js').ChartUnit} ChartUnit
 * @typedef {import('../http/details.js').DetailChart} DetailChart
 * @typedef {import('../http/details.js').DetailGap} DetailGap
 * @typedef {import('../http/details.js').TargetDetails} TargetDetails
 * @typedef {import('../http/details.js').TargetTickDelta} TargetTickDelta
 * @typedef {import('../http/telemetry.js').OverheadSample} OverheadSample
 * @typedef {import('../http/types.js').KnobChange} KnobChange
 * @typedef {import('../core/events.js').DecisionEvent} DecisionEvent
 * @typedef {import('../core/events.js').DecisionKind} DecisionKind
 */

const DECISION_ROWS = 20;
const CHART_HEIGHT = 170;
const TOKEN_KEY = 'ebpf-tuner-token';
/**
 * Every decision kind, each with a colour in style.css (--k-KIND). A record rather than a list so that the checker
 * names a kind the server adds and this page does not know yet.
 * @type {Record<DecisionKind, true>}
 */
const KNOWN_KINDS = {
  applied: true,
  'dry-run': true,
  refused: true,
  reverted: true,
  overridden: true,
  restored: true,
  kept: true,
  failed: true,
};
const KINDS = Object.keys(KNOWN_KINDS);

/**
 * @overload
 * @param {string} id
 * @returns {HTMLElement}
 */
/**
 * @template {HTMLElement} T
 * @overload
 * @param {string} id
 * @param {new () => T} type
 * @returns {T}
 */
/**
 * The element of index.html with this id, of the type its markup gives it. A missing or different element is a
 * mistake in the page, reported here by name rather than as a TypeError wherever it is first used.
 * @param {string} id
 * @param {new () => HTMLElement} [type]
 * @returns {HTMLElement}
 */
function $(id, type = HTMLElement) {
  const e = document.getElementById(id);
  if (e instanceof type) return e;
  throw new Error(`find #${id} in the page: ${e === null ? 'missing' : `${String(e)} is not ${type.name}`}`);
}

// ---------- formatting ----------

/**
 * Three significant digits at most, without trailing zeros: 4 ms, 2.5 ms, 49.7 µs, 312 ms.
 * @param {number} x
 */
function num(x) {
  const a = Math.abs(x);
  return String(Number(x.toFixed(a >= 100 ? 0 : a >= 10 ? 1 : 2)));
}

/** @type {Record<ChartUnit, (v: number) => string>} */
const formatters = {
  seconds(v) {
    const a = Math.abs(v);
    if (a === 0) return '0';
    if (a < 1e-6) return `${num(v * 1e9)} ns`;
    if (a < 1e-3) return `${num(v * 1e6)} µs`;
    if (a < 1) return `${num(v * 1e3)} ms`;
    return `${num(v)} s`;
  },
  bytes(v) {
    const a = Math.abs(v);
    if (a < 1024) return `${v.toFixed(0)} B`;
    if (a < 1024 ** 2) return `${num(v / 1024)} KiB`;
    if (a < 1024 ** 3) return `${num(v / 1024 ** 2)} MiB`;
    return `${num(v / 1024 ** 3)} GiB`;
  },
  'bytes/s': (v) => `${formatters.bytes(v)}/s`,
  ratio(v) {
    const p = v * 100;
    return `${Math.abs(p) < 10 && p !== 0 ? p.toFixed(1) : p.toFixed(0)}%`;
  },
  '/s': (v) => `${formatters.count(v)}/s`,
  cores: (v) => `${num(v)} cores`,
  count(v) {
    const a = Math.abs(v);
    if (a >= 1e9) return `${num(v / 1e9)}G`;
    if (a >= 1e6) return `${num(v / 1e6)}M`;
    if (a >= 1e4) return `${num(v / 1e3)}k`;
    return Number.isInteger(v) ? String(v) : num(v);
  },
};

/**
 * Unit names shown beside chart titles.
 * @type {Record<ChartUnit, string>}
 */
const UNIT_NAMES = {
  seconds: 'time',
  ratio: '% of time',
  bytes: 'bytes',
  'bytes/s': 'bytes per second',
  '/s': 'per second',
  cores: 'CPU cores',
  count: 'count',
};

/**
 * @param {ChartUnit} unit
 * @param {number | null | undefined} v
 */
function fmt(unit, v) {
  if (v === null || v === undefined || !Number.isFinite(v)) return '–';
  return formatters[unit](v);
}

/** @param {number} ms */
const clock = (ms) => new Date(ms).toLocaleTimeString([], { hour12: false });
/** @param {number} ms */
const clockShort = (ms) => new Date(ms).toLocaleTimeString([], { hour12: false, hour: '2-digit', minute: '2-digit' });

/** @param {number} s */
function duration(s) {
  if (s < 60) return `${Math.floor(s)}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${Math.floor(s % 60)}s`;
  if (s < 86400) return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`;
  return `${Math.floor(s / 86400)}d ${Math.floor((s % 86400) / 3600)}h`;
}

/**
 * @template {keyof HTMLElementTagNameMap} K
 * @param {K} tag
 * @param {string} [className]
 * @param {string} [text]
 * @returns {HTMLElementTagNameMap[K]}
 */
function el(tag, className, text) {
  const e = document.createElement(tag);
  if (className) e.className = className;
  if (text !== undefined) e.textContent = text;
  return e;
}

/**
 * @param {string} href
 * @param {string} text
 * @param {string} [className]
 */
function link(href, text, className) {
  const a = el('a', className, text);
  a.href = href;
  return a;
}

/** @param {string} name */
const targetHref = (name) => `#/target/${encodeURIComponent(name)}`;
/** @param {string} id */
const decisionHref = (id) => `#/decision/${encodeURIComponent(id)}`;

// ---------- theme ----------

/** The colours and font of style.css (light or dark), for what uPlot draws on a canvas. */
function readTheme() {
  const cs = getComputedStyle(document.documentElement);
  /** @param {string} n */
  const v = (n) => cs.getPropertyValue(n).trim();
  return {
    fg: v('--fg'),
    muted: v('--muted'),
    grid: v('--grid'),
    palette: [1, 2, 3, 4, 5, 6, 7, 8].map((i) => v(`--c${i}`)),
    kinds: Object.fromEntries(KINDS.map((k) => [k, v(`--k-${k}`) || v('--muted')])),
    font: `11px ${v('--font')}`,
  };
}

/** Read again when the colour scheme changes. */
let theme = readTheme();

// ---------- shared state ----------

/**
 * The view the URL fragment names.
 * @typedef {{ name: 'overview' } | { name: 'target', target: string } | { name: 'decision', id: string }} View
 */

/** What the agent has told the page, shared by the three views; the stream keeps it current. */
const shared = {
  /** @type {AgentStatus | null} */
  status: null,
  /** @type {ApiBodies['/api/overview'] | null} The /api/overview body, kept current by stream deltas. */
  overview: null,
  /** @type {DecisionEvent[]} Newest first, the last DECISION_ROWS*5 heard. */
  decisions: [],
  /** @type {KnobChange[]} */
  changes: [],
  /** Time of the newest tick heard, ms since the epoch; 0 before the first. */
  lastTickTime: 0,
  /** The agent's tick interval, which says how old a tick may be before the page calls the stream stale. */
  windowMs: 1000,
  /** @type {View} */
  view: { name: 'overview' },
};

// ---------- overview ----------

const SVG = 'http://www.w3.org/2000/svg';

/**
 * A sparkline of the p99 history: a line over the points there are, broken where there is no value.
 * @param {(number | null)[]} values
 */
function sparkline(values) {
  const w = 160;
  const h = 28;
  const svg = document.createElementNS(SVG, 'svg');
  svg.setAttribute('viewBox', `0 0 ${w} ${h}`);
  svg.setAttribute('class', 'spark');
  svg.setAttribute('aria-hidden', 'true');
  const finite = values.filter((v) => v !== null);
  if (finite.length === 0) return svg;
  const max = Math.max(...finite) || 1;
  const n = values.length;
  let d = '';
  let pen = false;
  values.forEach((v, i) => {
    if (v === null) {
      pen = false;
      return;
    }
    const x = n === 1 ? w : (i / (n - 1)) * w;
    const y = h - 2 - (v / max) * (h - 4);
    d += `${pen ? 'L' : 'M'}${x.toFixed(1)} ${y.toFixed(1)}`;
    pen = true;
  });
  const path = document.createElementNS(SVG, 'path');
  path.setAttribute('d', d);
  svg.append(path);
  return svg;
}

/** @param {string} kind */
function kindPill(kind) {
  const p = el('span', 'kind', kind);
  p.dataset.kind = kind;
  return p;
}

function renderHost() {
  const box = $('host-pressure');
  const host = shared.overview?.host;
  if (!host) {
    box.replaceChildren(el('span', 'muted', 'no host pressure reported yet'));
    return;
  }
  if (host.unavailable) {
    box.replaceChildren(el('span', 'gap-note', `not available: ${host.unavailable}`));
    return;
  }
  const items = /** @type {const} */ (['cpu', 'memory', 'io']).map((r) => {
    const item = el('div', 'pressure-item');
    item.dataset.resource = r;
    const some = host.some[r];
    const full = host.full[r];
    item.append(el('span', 'kpi-label', r === 'io' ? 'I/O' : r === 'cpu' ? 'CPU' : 'Memory'));
    const value = el('span', 'kpi-value', some === undefined ? '–' : fmt('ratio', some));
    if (some !== undefined && some >= 0.1) value.classList.add('bad');
    item.append(value);
    if (full !== undefined && r !== 'cpu') item.append(el('span', 'muted small', `all tasks: ${fmt('ratio', full)}`));
    return item;
  });
  box.replaceChildren(...items);
}

/**
 * Rows are updated in place, cell by cell, and only where the content changed: a link re-created under the pointer
 * between mouse-down and mouse-up loses the click, and a tick comes every second.
 */
function renderOverviewRows() {
  const overview = shared.overview;
  const body = $('overview', HTMLTableElement).tBodies[0];
  const shown = new Map([...body.rows].map((r) => [r.dataset.target, r]));
  const rows = (overview?.targets ?? []).map((t) => {
    const fresh = overviewRow(t);
    const tr = shown.get(t.name);
    if (!tr || tr.cells.length !== fresh.cells.length) return fresh;
    [...fresh.cells].forEach((cell, i) => {
      if (tr.cells[i].outerHTML !== cell.outerHTML) tr.cells[i].replaceWith(cell);
    });
    return tr;
  });
  if (rows.length !== body.rows.length || rows.some((r, i) => body.rows[i] !== r)) body.replaceChildren(...rows);
  $('targets-empty').hidden = rows.length > 0;
  const pts = overview?.spark.points ?? 0;
  $('targets-note').textContent = pts
    ? `${rows.length} target(s) · sparklines over the last ${duration((pts * (overview?.windowMs ?? 1000)) / 1000)}`
    : '';
}

/** @param {OverviewRow} t */
function overviewRow(t) {
  const tr = el('tr');
  tr.dataset.target = t.name;
  const name = el('td', 'name');
  name.append(link(targetHref(t.name), t.name));
  const role = el('td');
  role.append(el('span', `badge role-${t.role || 'unknown'}`, t.role || '–'));
  const p99 = el('td', 'p99');
  const now = el('span', 'p99-now mono', t.p99Us === null ? '–' : fmt('seconds', t.p99Us * 1e-6));
  if (t.gap) {
    now.title = t.gap;
    now.classList.add('gap');
  }
  const cell = el('div', 'p99-cell');
  cell.append(sparkline(t.p99SparkUs), now);
  p99.append(cell);
  const oncpu = el('td', 'right mono oncpu', fmt('ratio', t.oncpuRatio));
  const knobs = el('td', 'knobs');
  if (t.knobs.length === 0) knobs.append(el('span', 'muted', 'none'));
  for (const k of t.knobs) {
    const k1 = el('div', 'knob-line mono small', `${k.action} ${k.original} → ${k.value}`);
    k1.title = k.path;
    knobs.append(k1);
  }
  for (const h of t.holds) {
    const line = el('div', 'hold-line small', `held since ${clock(h.since)}: ${h.reason}`);
    line.title = `${h.rule} keeps this ${h.action} change in effect on purpose (${h.cause}); as of ${clock(h.time)}`;
    knobs.append(line);
  }
  const last = el('td', 'last-decision');
  const d = t.lastDecision;
  if (!d) last.append(el('span', 'muted', 'no decision yet'));
  else {
    last.append(kindPill(d.kind), ' ', link(decisionHref(d.id), d.id, 'mono decision-link'));
    const why = el('div', 'small muted reason-short', d.reason);
    why.title = `${clock(d.time)} · ${d.action}: ${d.reason}`;
    last.append(why);
  }
  tr.append(name, role, p99, oncpu, knobs, last);
  return tr;
}

/** @param {DecisionEvent[]} list */
function decisionRows(list) {
  return list.map((d) => {
    const tr = el('tr');
    tr.dataset.kind = d.kind;
    tr.dataset.id = d.id;
    const time = el('td', 'nowrap mono', clock(d.time));
    time.title = new Date(d.time).toString();
    const id = el('td', 'nowrap');
    id.append(link(decisionHref(d.id), d.id, 'mono decision-link'));
    const kind = el('td');
    kind.append(kindPill(d.kind));
    const target = el('td', 'nowrap');
    target.append(link(targetHref(d.target), d.target));
    const change = d.from !== undefined || d.to !== undefined ? ` (${d.from ?? '?'} → ${d.to ?? '?'})` : '';
    tr.append(time, id, kind, target, el('td', 'reason', `${d.action}${change}: ${d.reason ?? ''}`));
    return tr;
  });
}

function renderDecisions() {
  const { decisions, overview } = shared;
  $('decisions', HTMLTableElement).tBodies[0].replaceChildren(...decisionRows(decisions.slice(0, DECISION_ROWS)));
  $('decisions-empty').hidden = decisions.length > 0;
  $('decisions-count').textContent = overview ? `${overview.decisions} since the agent started` : '';
}

/** @type {Record<KnobChange['state'], number>} */
const CHANGE_ORDER = { active: 0, overridden: 1, restored: 2 };

function renderChanges() {
  const { changes, status } = shared;
  const body = $('changes', HTMLTableElement).tBodies[0];
  const sorted = [...changes].sort(
    (a, b) => CHANGE_ORDER[a.state] - CHANGE_ORDER[b.state] || (b.time ?? 0) - (a.time ?? 0),
  );
  const writable = status?.writable === true;
  const rows = sorted.map((c) => {
    const tr = el('tr');
    tr.dataset.state = c.state;
    const knob = el('td', 'knob');
    knob.append(el('div', '', c.action), el('div', 'mono small muted path', c.path));
    knob.title = `${c.knobId}\n${c.path}`;
    const value = el('td', 'nowrap mono', c.state === 'restored' ? c.original : `${c.original} → ${c.value}`);
    const state = el('td');
    const pill = el('span', 'state', c.state);
    pill.dataset.state = c.state;
    state.append(pill);
    const act = el('td', 'right');
    if (c.state === 'active') {
      const btn = el('button', 'btn btn-small', 'Revert');
      btn.type = 'button';
      btn.disabled = !writable;
      btn.title = writable ? `Restore ${c.path} to ${c.original}` : 'Disabled: the agent runs without a token (--token-file)';
      btn.addEventListener('click', () => revert(c));
      act.append(btn);
    }
    const target = el('td', 'nowrap');
    target.append(link(targetHref(c.target), c.target));
    tr.append(target, knob, value, state, act);
    return tr;
  });
  body.replaceChildren(...rows);
  $('changes-empty').hidden = changes.length > 0;
  $('changes-note').textContent = writable ? '' : 'read-only: no token configured';
}

/** @param {OverheadSample | null} o */
function renderOverhead(o) {
  if (!o) return;
  $('kpi-cpu').textContent = fmt('ratio', o.cpuPercent / 100);
  $('kpi-rss').textContent = fmt('bytes', o.rssBytes);
  $('kpi-bpf-ns').textContent =
    o.bpfNsPerRun == null ? (o.bpfRunsTotal === 0 ? 'off' : '–') : fmt('seconds', o.bpfNsPerRun * 1e-9);
  $('kpi-bpf-ns').title =
    o.bpfRunsTotal === 0 ? 'the kernel counts BPF run time only with sysctl kernel.bpf_stats_enabled=1 (--bpf-stats)' : '';
  $('kpi-bpf-rate').textContent = fmt('count', Math.round(o.bpfRunsPerSec));
}

/**
 * Applies one tick's overview delta: new numbers per target, one more sparkline point.
 * @param {OverviewDelta} d
 */
function applyOverviewDelta(d) {
  const overview = shared.overview;
  if (!overview || d.time <= (overview.time ?? 0)) return;
  overview.time = d.time;
  overview.windowMs = d.windowMs ?? overview.windowMs;
  overview.host = d.host;
  const cap = overview.history ?? 600;
  const byName = new Map(overview.targets.map((t) => [t.name, t]));
  const points = Math.min(cap, overview.spark.points + 1);
  for (const t of d.targets) {
    let row = byName.get(t.name);
    if (!row) {
      row = {
        name: t.name,
        role: t.role,
        p99Us: null,
        oncpuRatio: null,
        p99SparkUs: new Array(points - 1).fill(null),
        knobs: [],
        holds: [],
        lastDecision: null,
      };
      overview.targets.push(row);
      byName.set(t.name, row);
    }
    Object.assign(row, { role: t.role || row.role, p99Us: t.p99Us, oncpuRatio: t.oncpuRatio, gap: t.gap });
  }
  const seen = new Set(d.targets.map((t) => t.name));
  for (const row of overview.targets) {
    row.p99SparkUs.push(seen.has(row.name) ? row.p99Us : null);
    if (!seen.has(row.name)) {
      row.p99Us = null;
      row.oncpuRatio = null;
      row.gap = 'not in the last tick: the target has no processes or cgroup right now';
    }
    while (row.p99SparkUs.length > cap) row.p99SparkUs.shift();
  }
  overview.spark.points = points;
  shared.lastTickTime = d.time;
  if (d.windowMs) shared.windowMs = d.windowMs;
  if (shared.view.name === 'overview') {
    renderHost();
    renderOverviewRows();
  }
}

async function loadOverview() {
  const [ov, dec] = await Promise.all([
    getJson('/api/overview'),
    getJson('/api/decisions', `?limit=${DECISION_ROWS}`),
    loadChanges(),
  ]);
  shared.overview = ov;
  shared.status = ov.status;
  shared.decisions = dec.decisions;
  if (ov.time) shared.lastTickTime = ov.time;
  if (ov.windowMs) shared.windowMs = ov.windowMs;
  renderStatus();
  renderHost();
  renderOverviewRows();
  renderDecisions();
  renderChanges();
  renderOverhead(ov.status.overhead);
  renderLiveness();
}

// ---------- target details ----------

/** @type {Promise<void> | null} */
let uplotLoading = null;
/** uPlot is needed only for a target's charts, so the overview does not pay for it. */
function loadUplot() {
  uplotLoading ??= new Promise((resolve, reject) => {
    const css = el('link');
    css.rel = 'stylesheet';
    css.href = '/vendor/uPlot.min.css';
    document.head.append(css);
    const s = el('script');
    s.src = '/vendor/uPlot.iife.min.js';
    s.onload = () => resolve();
    s.onerror = () => reject(new Error('load /vendor/uPlot.iife.min.js failed'));
    document.head.append(s);
  });
  return uplotLoading;
}

/**
 * The open target's history as the stream extends it: its tick times and, by chart id, the chart drawing each.
 * `spec.series[i].values` and `gaps` grow with `times`.
 * @typedef {object} Detail
 * @property {string} name
 * @property {number[]} times
 * @property {Map<string, { spec: DetailChart, chart: Chart, gaps: DetailGap[] }>} charts
 */

/** The target view's state. */
const targetView = {
  /** @type {Set<Chart>} Every chart on the page, for redraws and teardown. */
  charts: new Set(),
  /** @type {Detail | null} */
  detail: null,
};

/**
 * Dashed lines at the times of the target's decisions, in each kind's colour.
 * @param {uPlot} u
 * @param {string} target
 */
function drawMarkers(u, target) {
  const xmin = u.scales.x.min;
  const xmax = u.scales.x.max;
  if (xmin == null || xmax == null) return;
  const { left, top, width, height } = u.bbox;
  const dpr = devicePixelRatio || 1;
  const ctx = u.ctx;
  ctx.save();
  ctx.beginPath();
  ctx.rect(left, top, width, height);
  ctx.clip();
  for (const d of shared.decisions) {
    if (d.target !== target) continue;
    const x = d.time / 1000;
    if (x < xmin || x > xmax) continue;
    const px = Math.round(u.valToPos(x, 'x', true)) + 0.5;
    ctx.strokeStyle = theme.kinds[d.kind] || theme.muted;
    ctx.lineWidth = 1.5 * dpr;
    ctx.setLineDash([4 * dpr, 3 * dpr]);
    ctx.beginPath();
    ctx.moveTo(px, top);
    ctx.lineTo(px, top + height);
    ctx.stroke();
  }
  ctx.restore();
}

/**
 * The legend shows the newest values while the cursor is off the chart.
 * @param {uPlot} u
 */
function showLatest(u) {
  const n = u.data?.[0]?.length ?? 0;
  if (n > 0 && u.cursor.idx == null) u.setLegend({ idx: n - 1 }, false);
}

class Chart {
  /**
   * @param {HTMLElement} parent
   * @param {DetailChart} spec
   * @param {string} target
   */
  constructor(parent, spec, target) {
    this.spec = spec;
    this.target = target;
    this.el = el('section', 'card chart');
    this.el.dataset.chart = spec.id;
    const head = el('div', 'chart-head');
    const h = el('h3', '', spec.title);
    h.append(el('span', 'unit muted', ` · ${UNIT_NAMES[spec.unit] ?? spec.unit}`));
    head.append(h);
    head.title = spec.help;
    this.helpEl = el('p', 'muted small help', spec.help);
    this.plotEl = el('div', 'plot');
    this.gapEl = el('ul', 'notes gaps');
    this.el.append(head, this.helpEl, this.plotEl, this.gapEl);
    parent.append(this.el);
    /** @type {uPlot | null} */
    this.u = null;
    /** @type {uPlot.AlignedData | undefined} */
    this.data = undefined;
    this.ro = new ResizeObserver(() => {
      if (this.u) this.u.setSize({ width: this.width(), height: CHART_HEIGHT });
    });
    this.ro.observe(this.el);
    targetView.charts.add(this);
  }

  width() {
    return Math.max(200, this.plotEl.clientWidth || this.el.clientWidth - 24);
  }

  build() {
    const unit = this.spec.unit;
    const target = this.target;
    /** @type {uPlot.Axis} */
    const axis = {
      stroke: theme.muted,
      font: theme.font,
      grid: { stroke: theme.grid, width: 1 },
      ticks: { stroke: theme.grid, width: 1, size: 4 },
    };
    this.u = new uPlot(
      {
        width: this.width(),
        height: CHART_HEIGHT,
        padding: [10, 14, 0, 2],
        cursor: { drag: { x: true, y: false }, points: { size: 6 } },
        legend: { live: true },
        scales: {
          x: { time: true },
          y: {
            range: (u, min, max) =>
              unit === 'ratio' ? [0, Math.max(max ?? 0, 0.05) * 1.12] : [Math.min(0, min ?? 0), max > 0 ? max * 1.12 : 1],
          },
        },
        axes: [
          {
            ...axis,
            space: 70,
            values: (u, splits) => {
              const span = splits.length > 1 ? splits[splits.length - 1] - splits[0] : 0;
              return splits.map((v) => (span > 600 ? clockShort(v * 1000) : clock(v * 1000)));
            },
          },
          { ...axis, size: 70, values: (u, splits) => splits.map((v) => fmt(unit, v)) },
        ],
        series: [
          { value: (u, v) => (v == null ? '–' : clock(v * 1000)) },
          ...this.spec.series.map(/** @returns {uPlot.Series} */ (s, i) => ({
            label: s.label,
            stroke: theme.palette[i % theme.palette.length],
            width: 1.6,
            dash: s.label.endsWith('smoothed') ? [5, 4] : undefined,
            show: !(this.spec.id === 'runq' && (s.label === 'p90' || s.label === 'p99 smoothed')),
            // A tick without a value is a gap, never a zero.
            spanGaps: false,
            points: { show: false },
            value: (u, v) => fmt(unit, v),
          })),
        ],
        hooks: { draw: [(u) => drawMarkers(u, target)], ready: [showLatest], setCursor: [showLatest] },
      },
      this.data,
      this.plotEl,
    );
  }

  /**
   * @param {number[]} times
   * @param {(number | null)[][]} series
   * @param {DetailGap[]} gaps
   */
  setData(times, series, gaps) {
    /** @type {uPlot.AlignedData} */
    const data = [times.map((t) => t / 1000), ...series];
    this.data = data;
    this.el.dataset.points = String(times.length);
    const empty = series.every((s) => s.every((v) => v === null));
    this.el.dataset.empty = String(empty);
    this.renderGaps(gaps, empty, times.length);
    if (empty) {
      if (this.u) {
        this.u.destroy();
        this.u = null;
      }
      this.plotEl.replaceChildren(el('p', 'empty no-data', 'No data in the kept history.'));
      return;
    }
    if (!this.u) {
      this.plotEl.replaceChildren();
      this.build();
    } else {
      this.u.setData(data);
      showLatest(this.u);
    }
  }

  /**
   * @param {DetailGap[]} gaps
   * @param {boolean} empty
   * @param {number} n
   */
  renderGaps(gaps, empty, n) {
    const items = gaps.slice(-4).map((g) => {
      const li = el('li', 'gap-note');
      const span = empty ? 'no data' : g.from === g.to ? `no data at ${clock(g.from)}` : `no data ${clock(g.from)}–${clock(g.to)}`;
      li.textContent = `${span}: ${g.reason}`;
      return li;
    });
    if (gaps.length > 4) items.unshift(el('li', 'muted small', `${gaps.length - 4} earlier gap(s) not listed`));
    this.gapEl.replaceChildren(...(empty && gaps.length ? items.slice(-1) : items));
    this.gapEl.hidden = items.length === 0 || n === 0;
  }

  redraw() {
    if (this.u) this.u.redraw(false, false);
  }

  rebuild() {
    if (!this.u) return;
    this.u.destroy();
    this.plotEl.replaceChildren();
    this.build();
  }

  destroy() {
    this.ro.disconnect();
    if (this.u) this.u.destroy();
    this.el.remove();
    targetView.charts.delete(this);
  }
}

function clearDetail() {
  for (const c of [...targetView.charts]) c.destroy();
  targetView.detail = null;
}

/** @param {TargetDetails} d */
function renderTargetHead(d) {
  $('target-name').textContent = d.target;
  const role = $('target-role');
  role.textContent = d.role || '–';
  role.className = `badge role-${d.role || 'unknown'}`;
  const facts = d.facts.flatMap((f) => [el('dt', '', f.label), el('dd', 'mono', f.value)]);
  $('target-facts').replaceChildren(...facts);
  $('target-facts').hidden = facts.length === 0;
  $('target-unavailable').replaceChildren(...d.unavailable.map((u) => el('li', 'gap-note', `not read: ${u}`)));
  const runq = d.charts.find((c) => c.id === 'runq');
  const p99 = runq?.series.find((s) => s.label === 'p99')?.values.at(-1);
  $('target-now').textContent = p99 == null ? '' : `run-queue p99 now ${fmt('seconds', p99)}`;
}

/** @param {string} name */
function renderTargetDecisions(name) {
  const mine = shared.decisions.filter((d) => d.target === name);
  $('target-decisions', HTMLTableElement).tBodies[0].replaceChildren(...decisionRows(mine.slice(0, DECISION_ROWS)));
  $('target-decisions-empty').hidden = mine.length > 0;
}

/** @param {string} name */
async function openTarget(name) {
  clearDetail();
  const [d] = await Promise.all([getJson('/api/signals', `?target=${encodeURIComponent(name)}`), loadUplot()]);
  const view = shared.view;
  if (view.name !== 'target' || view.target !== name) return;
  /** @type {Detail} */
  const detail = { name, times: d.times, charts: new Map() };
  targetView.detail = detail;
  renderTargetHead(d);
  const parent = $('target-charts');
  // A signal that never reported for this target (off in the config, or not applicable) gets one line, not a card
  // per chart; a chart that is empty for a reason the snapshot names keeps its card and says why.
  const absent = d.charts.filter(
    (c) => c.series.every((s) => s.values.every((v) => v === null)) && c.gaps.every((g) => /signal reported nothing/.test(g.reason)),
  );
  $('target-absent').textContent = absent.length
    ? `Not reported for this target (signal off, or not applicable): ${absent.map((c) => c.title).join(', ')}.`
    : '';
  $('target-absent').hidden = absent.length === 0;
  for (const spec of d.charts) {
    if (absent.includes(spec)) continue;
    const chart = new Chart(parent, spec, name);
    const entry = { spec, chart, gaps: spec.gaps };
    detail.charts.set(spec.id, entry);
    chart.setData(d.times, spec.series.map((s) => s.values), spec.gaps);
  }
  renderTargetDecisions(name);
}

/**
 * One tick of the open target from the stream: append a point to every chart.
 * @param {TargetTickDelta} t
 */
function applyTargetDelta(t) {
  const detail = targetView.detail;
  if (!detail || t.target !== detail.name) return;
  if (detail.times.length && t.time <= detail.times[detail.times.length - 1]) return;
  const cap = shared.overview?.history ?? 600;
  detail.times.push(t.time);
  const drop = detail.times.length > cap ? 1 : 0;
  if (drop) detail.times.shift();
  for (const [id, entry] of detail.charts) {
    const vals = t.values[id] ?? entry.spec.series.map(() => null);
    entry.spec.series.forEach((s, i) => {
      s.values.push(vals[i] ?? null);
      if (drop) s.values.shift();
    });
    const reason = t.gaps[id];
    if (reason !== undefined) {
      const g = entry.gaps[entry.gaps.length - 1];
      if (g && g.reason === reason && g.to === detail.times[detail.times.length - 2]) g.to = t.time;
      else entry.gaps.push({ from: t.time, to: t.time, reason });
    }
    entry.chart.setData(detail.times, entry.spec.series.map((s) => s.values), entry.gaps);
  }
  shared.lastTickTime = t.time;
}

// ---------- decision ----------

/** @param {string} id */
async function openDecision(id) {
  $('decision-id').textContent = id;
  $('explain').textContent = 'loading…';
  $('decision-cmd').textContent = `ebpf-tuner explain ${id}`;
  const r = await fetch(`/api/decisions/${encodeURIComponent(id)}`);
  const view = shared.view;
  if (view.name !== 'decision' || view.id !== id) return;
  if (!r.ok) {
    $('explain').textContent = await errorText(r);
    $('decision-kind').hidden = true;
    return;
  }
  /** @type {ApiBodies['/api/decisions/ID']} */
  const body = await r.json();
  const d = body.decision;
  const kind = $('decision-kind');
  kind.hidden = false;
  kind.textContent = d.kind;
  kind.dataset.kind = d.kind;
  $('decision-source').textContent =
    body.source === 'audit' ? 'from the audit trail' : 'from the decisions the dashboard heard (not in the audit trail)';
  $('explain').textContent = body.explain;
  const tl = $('decision-target-link', HTMLAnchorElement);
  tl.href = targetHref(d.target);
  tl.textContent = `→ ${d.target}`;
}

// ---------- status ----------

function renderStatus() {
  const status = shared.status;
  if (!status) return;
  $('version').textContent = `v${status.version}`;
  $('uptime').textContent = duration(status.uptimeSeconds);
  const mode = $('mode');
  mode.textContent = !status.ready ? 'starting' : status.paused ? 'paused' : 'tuning';
  mode.className = `pill ${!status.ready ? 'pill-wait' : status.paused ? 'pill-warn' : 'pill-ok'}`;
  const btn = $('pause-btn', HTMLButtonElement);
  btn.textContent = status.paused ? 'Resume' : 'Pause';
  btn.disabled = !status.writable;
  btn.title = status.writable
    ? status.paused
      ? 'Let the agent change knobs again'
      : 'Stop the agent from changing knobs (changes in effect stay)'
    : 'Disabled: the agent runs without a token (--token-file)';
}

async function loadStatus() {
  try {
    const r = await fetch('/api/status');
    if (r.ok) {
      /** @type {ApiBodies['/api/status']} */
      const status = await r.json();
      shared.status = status;
      renderStatus();
      renderOverhead(status.overhead);
      if (shared.view.name === 'overview') renderChanges();
    }
  } catch {
    // The stream's state already tells the user the agent is unreachable.
  }
}

async function loadChanges() {
  const r = await fetch('/api/changes');
  if (r.ok) {
    /** @type {ApiBodies['/api/changes']} */
    const body = await r.json();
    shared.changes = body.changes;
    if (shared.view.name === 'overview') renderChanges();
  }
}

/** @type {ReturnType<typeof setTimeout> | undefined} */
let changesTimer;
function refreshSoon() {
  clearTimeout(changesTimer);
  // Knob changes alter the overview's rows too; one fetch after a burst of them.
  changesTimer = setTimeout(() => {
    void loadChanges();
    if (shared.view.name === 'overview') {
      void getJson('/api/overview').then((ov) => ((shared.overview = ov), renderOverviewRows()));
    }
  }, 200);
}

function renderLiveness() {
  const conn = $('conn');
  const { lastTickTime, windowMs } = shared;
  const streamState = stream.state;
  if (streamState === 'live') {
    const stale = lastTickTime && Date.now() - lastTickTime > Math.max(3 * windowMs, 5000);
    conn.textContent = stale ? 'stale' : 'live';
    conn.className = `pill ${stale ? 'pill-warn' : 'pill-ok'}`;
  } else {
    conn.textContent = streamState;
    conn.className = `pill ${streamState === 'connecting' ? 'pill-wait' : 'pill-bad'}`;
  }
  $('last-tick').textContent = lastTickTime ? clock(lastTickTime) : '–';
}

// ---------- token and state-changing requests ----------

/**
 * Asks for the token in a dialog; null when the user cancels.
 * @param {string} what
 * @param {string} [error]
 * @returns {Promise<string | null>}
 */
function askToken(what, error) {
  const dialog = $('token-dialog', HTMLDialogElement);
  const input = $('token-input', HTMLInputElement);
  $('token-what').textContent = what;
  $('token-error').textContent = error ?? '';
  input.value = '';
  return new Promise((resolve) => {
    const form = $('token-form');
    /** @param {string | null} value */
    const done = (value) => {
      form.removeEventListener('submit', onSubmit);
      $('token-cancel').removeEventListener('click', onCancel);
      dialog.removeEventListener('cancel', onCancel);
      dialog.close();
      resolve(value);
    };
    /** @param {Event} e */
    const onSubmit = (e) => {
      e.preventDefault();
      done(input.value.trim() || null);
    };
    /** @param {Event} e */
    const onCancel = (e) => {
      e.preventDefault();
      done(null);
    };
    form.addEventListener('submit', onSubmit);
    $('token-cancel').addEventListener('click', onCancel);
    dialog.addEventListener('cancel', onCancel);
    dialog.showModal();
    input.focus();
  });
}

/**
 * POSTs with the bearer token, asking for it (again) while it is missing or refused; null when the user gives up.
 * @param {string} path
 * @param {string} what  What the request does, shown in the dialog.
 */
async function authorizedPost(path, what) {
  let token = sessionStorage.getItem(TOKEN_KEY);
  /** @type {string | undefined} */
  let error;
  for (let attempt = 0; attempt < 3; attempt++) {
    if (!token) {
      token = await askToken(what, error);
      if (!token) return null;
    }
    const r = await fetch(path, { method: 'POST', headers: { Authorization: `Bearer ${token}` } });
    if (r.status === 401) {
      sessionStorage.removeItem(TOKEN_KEY);
      token = null;
      error = 'That token was not accepted.';
      continue;
    }
    if (r.ok && $('token-remember', HTMLInputElement).checked) sessionStorage.setItem(TOKEN_KEY, token);
    return r;
  }
  return null;
}

/** @param {Response} r */
async function errorText(r) {
  try {
    /** @type {ApiErrorBody} */
    const body = await r.json();
    return body.error.message;
  } catch {
    return `HTTP ${r.status}`;
  }
}

/** @type {ReturnType<typeof setTimeout> | undefined} */
let toastTimer;
/**
 * @param {string} text
 * @param {boolean} [bad]
 */
function toast(text, bad = false) {
  const t = $('toast');
  t.textContent = text;
  t.className = `toast show${bad ? ' bad' : ''}`;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => (t.className = 'toast'), 4000);
}

/** @param {KnobChange} c */
async function revert(c) {
  const r = await authorizedPost(
    `/api/changes/${encodeURIComponent(c.knobId)}/revert`,
    `Revert ${c.action} on ${c.target}: restore ${c.path} from ${c.value} to ${c.original}.`,
  );
  if (!r) return;
  if (r.ok) toast(`Reverted ${c.action} on ${c.target}`);
  else toast(`Revert failed: ${await errorText(r)}`, true);
  await loadChanges();
}

async function togglePause() {
  const resume = shared.status?.paused === true;
  const r = await authorizedPost(
    resume ? '/api/resume' : '/api/pause',
    resume ? 'Resume: let the agent change knobs again.' : 'Pause: the agent keeps observing but changes nothing.',
  );
  if (!r) return;
  if (r.ok) toast(resume ? 'Agent resumed' : 'Agent paused');
  else toast(`Request failed: ${await errorText(r)}`, true);
  await loadStatus();
}

// ---------- stream ----------

/** The one event stream the page holds open. */
const stream = {
  /** @type {'connecting' | 'live' | 'reconnecting' | 'disconnected'} */
  state: 'connecting',
  /** @type {EventSource | null} */
  source: null,
  url: '',
};

/** @param {DecisionEvent} d */
function addDecision(d) {
  const { decisions, overview, view } = shared;
  if (!d || typeof d.time !== 'number' || decisions.some((x) => x.id === d.id)) return;
  decisions.unshift(d);
  decisions.sort((a, b) => b.time - a.time);
  if (decisions.length > DECISION_ROWS * 5) decisions.length = DECISION_ROWS * 5;
  if (overview) {
    overview.decisions++;
    const row = overview.targets.find((t) => t.name === d.target);
    if (row && (!row.lastDecision || row.lastDecision.time <= d.time)) {
      row.lastDecision = { id: d.id, time: d.time, kind: d.kind, action: d.action, target: d.target, reason: d.reason };
    }
  }
  if (view.name === 'overview') {
    renderDecisions();
    renderOverviewRows();
  } else if (view.name === 'target' && d.target === view.target) {
    renderTargetDecisions(view.target);
    for (const c of targetView.charts) c.redraw();
  }
}

/**
 * What the page does with each event of the stream. Typed by the server's list of events, so an event it adds is a
 * type error here until the page handles it.
 * @type {{ [E in keyof ViewStreamEvents]: (data: ViewStreamEvents[E]) => void }}
 */
const HANDLERS = {
  overview: applyOverviewDelta,
  target: applyTargetDelta,
  decision: addDecision,
  change: () => refreshSoon(),
  // A hold began or ended: the overview's rows say why a change is still in effect.
  hold: () => refreshSoon(),
  overhead: (o) => {
    if (shared.status) shared.status.overhead = o;
    renderOverhead(o);
  },
};

/**
 * @template {keyof ViewStreamEvents} E
 * @param {E} event
 * @param {ViewStreamEvents[E]} data
 */
function handle(event, data) {
  HANDLERS[event](data);
  renderLiveness();
}

/**
 * One stream at a time, carrying only what the open view draws. Events that arrive while it loads are queued.
 * @param {string} url
 * @param {(release: () => void) => void} onQueued  Given the function that hands the queued events on.
 */
function connect(url, onQueued) {
  if (stream.source && stream.url === url) return;
  stream.source?.close();
  stream.url = url;
  stream.state = 'connecting';
  /** @type {[keyof ViewStreamEvents, any][]} */
  const queue = [];
  let ready = false;
  const es = new EventSource(url);
  stream.source = es;
  es.addEventListener('open', () => {
    stream.state = 'live';
    renderLiveness();
  });
  es.addEventListener('error', () => {
    stream.state = es.readyState === EventSource.CLOSED ? 'disconnected' : 'reconnecting';
    renderLiveness();
  });
  // Object.keys is typed string[] whatever the object; HANDLERS has exactly the stream's event names as keys.
  for (const ev of /** @type {(keyof ViewStreamEvents)[]} */ (Object.keys(HANDLERS))) {
    es.addEventListener(ev, (m) => {
      let data;
      try {
        data = JSON.parse(m.data);
      } catch {
        return;
      }
      if (ready) handle(ev, data);
      else queue.push([ev, data]);
    });
  }
  onQueued(() => {
    ready = true;
    for (const [ev, data] of queue.splice(0)) handle(ev, data);
  });
}

/**
 * GETs one of the API routes whose body the server declares (ApiBodies).
 * @template {keyof ApiBodies} P
 * @param {P} path
 * @param {string} [query]  `?name=value…`, already encoded.
 * @returns {Promise<ApiBodies[P]>}
 */
async function getJson(path, query = '') {
  const r = await fetch(path + query);
  if (!r.ok) throw new Error(`${path + query}: ${await errorText(r)}`);
  return r.json();
}

// ---------- routing ----------

/** @returns {View} */
function parseRoute() {
  const h = location.hash.replace(/^#\/?/, '');
  const [kind, ...rest] = h.split('/');
  const arg = rest.length ? decodeURIComponent(rest.join('/')) : '';
  if (kind === 'target' && arg) return { name: 'target', target: arg };
  if (kind === 'decision' && arg) return { name: 'decision', id: arg };
  return { name: 'overview' };
}

async function route() {
  const view = parseRoute();
  shared.view = view;
  document.body.dataset.ready = 'false';
  document.body.dataset.view = view.name;
  for (const v of ['overview', 'target', 'decision']) $(`view-${v}`).hidden = v !== view.name;
  if (view.name !== 'target') clearDetail();
  window.scrollTo(0, 0);
  try {
    if (view.name === 'overview') {
      /** @type {(() => void) | undefined} */
      let release;
      connect('/api/stream?view=overview', (r) => (release = r));
      await loadOverview();
      release?.();
      document.title = 'ebpf-tuner';
    } else if (view.name === 'target') {
      /** @type {(() => void) | undefined} */
      let release;
      connect(`/api/stream?view=target&target=${encodeURIComponent(view.target)}`, (r) => (release = r));
      if (!shared.status) void loadStatus();
      if (shared.decisions.length === 0) {
        shared.decisions = (await getJson('/api/decisions', `?limit=${DECISION_ROWS * 5}`)).decisions;
      }
      await openTarget(view.target);
      release?.();
      document.title = `${view.target} · ebpf-tuner`;
    } else {
      if (!shared.status) void loadStatus();
      await openDecision(view.id);
      document.title = `${view.id} · ebpf-tuner`;
    }
    document.body.dataset.ready = 'true';
  } catch (err) {
    toast(`Dashboard failed to load: ${err instanceof Error ? err.message : String(err)}`, true);
  }
}

function main() {
  matchMedia('(prefers-color-scheme: dark)').addEventListener('change', () => {
    theme = readTheme();
    for (const c of targetView.charts) c.rebuild();
  });
  $('pause-btn').addEventListener('click', togglePause);
  window.addEventListener('hashchange', () => void route());
  setInterval(loadStatus, 5000);
  setInterval(renderLiveness, 1000);
  void route();
}

main();
