/**
 * The live dashboard: per-target charts of every numeric signal the agent reports, the agent's decisions marked on
 * them and listed, the changes in effect with a revert button, and the agent's own overhead. History comes from
 * /api/signals; after that everything arrives on the /api/stream event stream. Plain browser JavaScript with no build
 * step; uPlot is loaded by the page as a global.
 */
/* global uPlot */

const MAX_POINTS = 600;
const MAX_DECISIONS = 300;
const DECISION_ROWS = 100;
const CHART_HEIGHT = 170;
const TOKEN_KEY = 'ebpf-tuner-token';
const KIND_ORDER = ['latency', 'time', 'ratio', 'bytes', 'count'];
const KINDS = ['applied', 'dry-run', 'refused', 'reverted', 'overridden', 'restored'];
// The quantiles that matter at a glance; the others stay one legend click away.
const HIDDEN_BY_DEFAULT = new Set(['p90', 'mean', 'avg', 'p99 ewma', 'min', 'max', 'stddev']);

const $ = (id) => document.getElementById(id);

// ---------- formatting ----------

/** Three significant digits at most, without trailing zeros: 4 ms, 2.5 ms, 49.7 µs, 312 ms. */
function num(x) {
  const a = Math.abs(x);
  return String(Number(x.toFixed(a >= 100 ? 0 : a >= 10 ? 1 : 2)));
}

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
  ratio(v) {
    const p = v * 100;
    return `${Math.abs(p) < 10 && p !== 0 ? p.toFixed(1) : p.toFixed(0)}%`;
  },
  '': (v) => {
    const a = Math.abs(v);
    if (a >= 1e9) return `${num(v / 1e9)}G`;
    if (a >= 1e6) return `${num(v / 1e6)}M`;
    if (a >= 1e4) return `${num(v / 1e3)}k`;
    return Number.isInteger(v) ? String(v) : num(v);
  },
};

function fmt(unit, v) {
  if (v === null || v === undefined || !Number.isFinite(v)) return '–';
  return (formatters[unit] ?? formatters[''])(v);
}

function clock(ms) {
  return new Date(ms).toLocaleTimeString([], { hour12: false });
}

function clockShort(ms) {
  return new Date(ms).toLocaleTimeString([], { hour12: false, hour: '2-digit', minute: '2-digit' });
}

function duration(s) {
  if (s < 60) return `${Math.floor(s)}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${Math.floor(s % 60)}s`;
  if (s < 86400) return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`;
  return `${Math.floor(s / 86400)}d ${Math.floor((s % 86400) / 3600)}h`;
}

function el(tag, className, text) {
  const e = document.createElement(tag);
  if (className) e.className = className;
  if (text !== undefined) e.textContent = text;
  return e;
}

// ---------- theme ----------

let theme;
function readTheme() {
  const cs = getComputedStyle(document.documentElement);
  const v = (n) => cs.getPropertyValue(n).trim();
  theme = {
    fg: v('--fg'),
    muted: v('--muted'),
    grid: v('--grid'),
    palette: [1, 2, 3, 4, 5, 6, 7, 8].map((i) => v(`--c${i}`)),
    kinds: Object.fromEntries(KINDS.map((k) => [k, v(`--k-${k}`)])),
    font: `11px ${v('--font')}`,
  };
}

function seriesColor(label, i) {
  const fixed = { p50: 0, median: 0, p90: 1, p99: 2, 'p99 ewma': 2, p999: 3 };
  return theme.palette[(fixed[label] ?? i) % theme.palette.length];
}

// ---------- state ----------

/** name → { fields: Map<key, FieldInfo> } */
let catalogue = new Map();
/** 'target:NAME' | 'host' → Store */
const stores = new Map();
const decisions = []; // newest first
let decisionTotal = 0;
let lastTickTime = 0;
let windowMs = 1000;
let status = null;
let changes = [];
const overhead = { times: [], cpu: [], bpfCpu: [], rss: [], nsPerRun: [] };
const charts = new Set();

class Store {
  constructor(scope, name, role) {
    this.scope = scope;
    this.name = name;
    this.role = role;
    this.times = [];
    this.values = new Map();
    this.card = null;
    this.chartsEl = null;
    this.nowEl = null;
    this.groups = new Map(); // group → { chart, keys }
  }

  push(time, source) {
    this.times.push(time / 1000);
    const n = this.times.length;
    for (const f of catalogue.values()) {
      if (f.scope !== this.scope) continue;
      let v = source;
      for (const p of f.path) v = v !== null && typeof v === 'object' ? v[p] : undefined;
      const x = typeof v === 'number' ? v * f.scale : typeof v === 'boolean' ? Number(v) : null;
      let arr = this.values.get(f.key);
      if (!arr) {
        if (x === null) continue;
        arr = new Array(n - 1).fill(null);
        this.values.set(f.key, arr);
      }
      arr.push(x);
    }
    for (const arr of this.values.values()) while (arr.length < n) arr.push(null);
    if (n > MAX_POINTS) {
      const drop = n - MAX_POINTS;
      this.times.splice(0, drop);
      for (const arr of this.values.values()) arr.splice(0, drop);
    }
  }
}

function storeFor(scope, name, role) {
  const id = scope === 'host' ? 'host' : `target:${name}`;
  let s = stores.get(id);
  if (!s) {
    s = new Store(scope, name, role);
    stores.set(id, s);
  }
  if (role) s.role = role;
  return s;
}

function setCatalogue(list) {
  catalogue = new Map(list.map((f) => [`${f.scope}:${f.key}`, f]));
}

function ingest(snap) {
  if (!snap || typeof snap.time !== 'number' || snap.time <= lastTickTime) return false;
  lastTickTime = snap.time;
  if (typeof snap.windowMs === 'number') windowMs = snap.windowMs;
  for (const [name, sig] of Object.entries(snap.targets ?? {})) {
    storeFor('target', name, sig?.role).push(snap.time, sig);
  }
  if (snap.host && typeof snap.host === 'object') storeFor('host', 'host').push(snap.time, snap.host);
  return true;
}

// ---------- charts ----------

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
  for (let i = decisions.length - 1; i >= 0; i--) {
    const d = decisions[i];
    const x = d.time / 1000;
    if (x < xmin || x > xmax) continue;
    const px = Math.round(u.valToPos(x, 'x', true)) + 0.5;
    const own = target === undefined || d.target === target;
    const color = theme.kinds[d.kind] || theme.muted;
    ctx.globalAlpha = own ? 0.95 : 0.45;
    ctx.strokeStyle = color;
    ctx.lineWidth = (own ? 1.5 : 1) * dpr;
    ctx.setLineDash([4 * dpr, 3 * dpr]);
    ctx.beginPath();
    ctx.moveTo(px, top);
    ctx.lineTo(px, top + height);
    ctx.stroke();
    ctx.setLineDash([]);
    ctx.fillStyle = color;
    ctx.beginPath();
    ctx.moveTo(px - 5 * dpr, top);
    ctx.lineTo(px + 5 * dpr, top);
    ctx.lineTo(px, top + 7 * dpr);
    ctx.closePath();
    ctx.fill();
  }
  ctx.restore();
}

/** The decision drawn nearest the cursor, if any is within a few pixels. */
function decisionAt(u, left) {
  if (left == null || left < 0) return undefined;
  let best;
  let bestDist = 7;
  for (const d of decisions) {
    const px = u.valToPos(d.time / 1000, 'x');
    const dist = Math.abs(px - left);
    if (dist < bestDist) {
      best = d;
      bestDist = dist;
    }
  }
  return best;
}

/** Outside hover the legend shows the newest values rather than blanks. */
function showLatest(u) {
  const n = u.data?.[0]?.length ?? 0;
  if (n > 0 && u.cursor.idx == null) u.setLegend({ idx: n - 1 }, false);
}

class Chart {
  constructor(parent, { title, unit, series, target, yRange }) {
    this.unit = unit;
    this.series = series;
    this.target = target;
    this.yRange = yRange;
    this.el = el('div', 'chart');
    this.el.dataset.unit = unit;
    const head = el('div', 'chart-head');
    head.append(el('h3', '', title));
    this.tip = el('div', 'marker-tip');
    this.el.append(head, this.tip);
    this.plotEl = el('div', 'plot');
    this.el.append(this.plotEl);
    parent.append(this.el);
    this.u = null;
    this.data = null;
    this.ro = new ResizeObserver(() => {
      if (this.u) this.u.setSize({ width: this.width(), height: CHART_HEIGHT });
    });
    this.ro.observe(this.el);
    charts.add(this);
  }

  width() {
    return Math.max(200, this.el.clientWidth - 2);
  }

  build() {
    const unit = this.unit;
    const target = this.target;
    const yRange = this.yRange;
    const axis = {
      stroke: theme.muted,
      font: theme.font,
      grid: { stroke: theme.grid, width: 1 },
      ticks: { stroke: theme.grid, width: 1, size: 4 },
    };
    const opts = {
      width: this.width(),
      height: CHART_HEIGHT,
      padding: [10, 18, 0, 2],
      cursor: { drag: { x: true, y: false }, points: { size: 6 } },
      legend: { live: true },
      scales: {
        x: { time: true },
        y: {
          range: (u, min, max) => {
            if (yRange) return yRange(min, max);
            const hi = max > 0 ? max * 1.12 : 1;
            return [Math.min(0, min), hi];
          },
        },
      },
      axes: [
        {
          ...axis,
          space: 70,
          // 24-hour wall clock; seconds only when the visible span is short enough to need them.
          values: (u, splits) => {
            const span = splits.length > 1 ? splits[splits.length - 1] - splits[0] : 0;
            return splits.map((v) => (span > 600 ? clockShort(v * 1000) : clock(v * 1000)));
          },
        },
        { ...axis, size: 64, values: (u, splits) => splits.map((v) => fmt(unit, v)) },
      ],
      series: [
        { value: (u, v) => (v == null ? '–' : clock(v * 1000)) },
        ...this.series.map((s, i) => ({
          label: s.label,
          stroke: s.color ?? seriesColor(s.label, i),
          width: 1.6,
          dash: s.dash,
          show: s.show !== false,
          spanGaps: false,
          points: { show: false },
          value: (u, v) => fmt(unit, v),
        })),
      ],
      hooks: {
        draw: [(u) => drawMarkers(u, target)],
        ready: [(u) => showLatest(u)],
        setCursor: [
          (u) => {
            showLatest(u);
            const d = decisionAt(u, u.cursor.left);
            if (!d) {
              this.tip.classList.remove('show');
              return;
            }
            this.tip.textContent = `${clock(d.time)} · ${d.kind} · ${d.action} → ${d.target}: ${d.reason}`;
            this.tip.dataset.kind = d.kind;
            this.tip.classList.add('show');
          },
        ],
      },
    };
    this.u = new uPlot(opts, this.data, this.plotEl);
  }

  setData(data) {
    this.data = data;
    this.el.dataset.points = String(data[0].length);
    if (!this.u) this.build();
    else {
      this.u.setData(data);
      showLatest(this.u);
    }
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
    charts.delete(this);
  }
}

function ensureCard(store) {
  if (store.card) return;
  const card = el('section', 'card target');
  card.dataset.target = store.name;
  const head = el('div', 'card-head');
  const title = el('h2', '', store.name);
  head.append(title);
  if (store.scope === 'host') head.append(el('span', 'badge', 'host'));
  else {
    store.roleEl = el('span', `badge role-${store.role ?? 'unknown'}`, store.role ?? '');
    head.append(store.roleEl);
  }
  store.nowEl = el('span', 'now');
  head.append(store.nowEl);
  store.chartsEl = el('div', 'charts');
  card.append(head, store.chartsEl);
  // Targets in config order as they first appear; the host card goes last.
  const container = $('targets');
  const hostCard = stores.get('host')?.card;
  if (store.scope !== 'host' && hostCard) container.insertBefore(card, hostCard);
  else container.append(card);
  store.card = card;
  $('targets-empty').hidden = true;
}

function groupsOf(store) {
  const groups = new Map();
  for (const f of catalogue.values()) {
    if (f.scope !== store.scope || !store.values.has(f.key)) continue;
    let g = groups.get(f.group);
    if (!g) {
      g = { title: f.groupTitle, unit: f.unit, kind: f.group.split(':').pop(), fields: [] };
      groups.set(f.group, g);
    }
    g.fields.push(f);
  }
  return [...groups.entries()].sort(
    ([a, ga], [b, gb]) => KIND_ORDER.indexOf(ga.kind) - KIND_ORDER.indexOf(gb.kind) || a.localeCompare(b),
  );
}

function renderStore(store) {
  ensureCard(store);
  const wanted = groupsOf(store);
  const seen = new Set();
  for (const [id, g] of wanted) {
    seen.add(id);
    const keys = g.fields.map((f) => f.key);
    const sig = keys.join('|');
    let entry = store.groups.get(id);
    if (entry && entry.sig !== sig) {
      entry.chart.destroy();
      entry = undefined;
    }
    if (!entry) {
      const series = g.fields.map((f) => ({
        label: f.label,
        show: !(g.kind === 'latency' && HIDDEN_BY_DEFAULT.has(f.label)),
        dash: f.label.endsWith('ewma') ? [5, 4] : undefined,
      }));
      const chart = new Chart(store.chartsEl, {
        title: g.title,
        unit: g.unit,
        series,
        target: store.scope === 'host' ? undefined : store.name,
        yRange: g.unit === 'ratio' ? (min, max) => [0, Math.max(1, max)] : undefined,
      });
      entry = { chart, sig, keys };
      store.groups.set(id, entry);
      // Keep chart order stable by kind: re-append in sorted order.
      for (const [gid] of wanted) {
        const e = store.groups.get(gid);
        if (e) store.chartsEl.append(e.chart.el);
      }
    }
    entry.chart.setData([store.times, ...entry.keys.map((k) => store.values.get(k))]);
  }
  for (const [id, entry] of store.groups) {
    if (!seen.has(id)) {
      entry.chart.destroy();
      store.groups.delete(id);
    }
  }
  renderNow(store, wanted);
}

function renderNow(store, groups) {
  const bits = [];
  for (const [, g] of groups) {
    if (g.kind !== 'latency') continue;
    const parts = [];
    for (const label of ['p50', 'p99']) {
      const f = g.fields.find((x) => x.label === label);
      const arr = f && store.values.get(f.key);
      const v = arr ? arr[arr.length - 1] : null;
      if (v != null) parts.push(`${label} ${fmt('seconds', v)}`);
    }
    if (parts.length) bits.push(`${g.title.split(' · ')[0]}  ${parts.join(' · ')}`);
  }
  store.nowEl.textContent = bits.join('   ');
  if (store.roleEl && store.role) {
    store.roleEl.textContent = store.role;
    store.roleEl.className = `badge role-${store.role}`;
  }
}

function renderAll() {
  const order = [...stores.values()].sort((a, b) => (a.scope === 'host') - (b.scope === 'host'));
  for (const s of order) renderStore(s);
}

// ---------- overhead ----------

let overheadCharts = null;

function pushOverhead(o) {
  const t = o.time / 1000;
  if (overhead.times.length && t <= overhead.times[overhead.times.length - 1]) return;
  overhead.times.push(t);
  overhead.cpu.push(o.cpuPercent / 100);
  overhead.bpfCpu.push(o.bpfCpuPercent == null ? null : o.bpfCpuPercent / 100);
  overhead.rss.push(o.rssBytes);
  overhead.nsPerRun.push(o.bpfNsPerRun == null ? null : o.bpfNsPerRun * 1e-9);
  if (overhead.times.length > MAX_POINTS) for (const a of Object.values(overhead)) a.shift();
  $('kpi-cpu').textContent = fmt('ratio', o.cpuPercent / 100);
  $('kpi-rss').textContent = fmt('bytes', o.rssBytes);
  $('kpi-bpf-ns').textContent = o.bpfNsPerRun == null ? '–' : fmt('seconds', o.bpfNsPerRun * 1e-9);
  $('kpi-bpf-cpu').textContent = o.bpfCpuPercent == null ? '–' : fmt('ratio', o.bpfCpuPercent / 100);
  $('kpi-bpf-rate').textContent = fmt('', Math.round(o.bpfRunsPerSec));
  const progs = o.programs
    .filter((p) => p.nsPerRun != null)
    .map((p) => `${p.name} ${fmt('seconds', p.nsPerRun * 1e-9)}/run`)
    .join(' · ');
  $('programs').textContent =
    progs ||
    (o.programs.length === 0
      ? ''
      : o.bpfRunsTotal === 0
        ? 'no BPF run statistics: the kernel counts them only with sysctl kernel.bpf_stats_enabled=1'
        : 'no BPF program ran in the last window');
}

function renderOverhead() {
  if (!overhead.times.length) return;
  const parent = $('overhead-charts');
  if (!overheadCharts) {
    overheadCharts = {
      cpu: new Chart(parent, {
        title: 'CPU · agent process and its BPF programs',
        unit: 'ratio',
        series: [{ label: 'agent' }, { label: 'bpf', color: theme.palette[4] }],
        yRange: (min, max) => [0, Math.max(0.02, max * 1.2)],
      }),
      rss: new Chart(parent, {
        title: 'memory · resident set',
        unit: 'bytes',
        series: [{ label: 'rss', color: theme.palette[5] }],
      }),
      ns: new Chart(parent, {
        title: 'BPF · time per event',
        unit: 'seconds',
        series: [{ label: 'per run', color: theme.palette[6] }],
      }),
    };
  }
  overheadCharts.cpu.setData([overhead.times, overhead.cpu, overhead.bpfCpu]);
  overheadCharts.rss.setData([overhead.times, overhead.rss]);
  overheadCharts.ns.setData([overhead.times, overhead.nsPerRun]);
}

// ---------- decisions and changes ----------

function addDecision(d, redraw = true) {
  if (!d || typeof d.time !== 'number') return;
  if (d.id && decisions.some((x) => x.id === d.id)) return;
  decisionTotal++;
  let i = 0;
  while (i < decisions.length && decisions[i].time > d.time) i++;
  decisions.splice(i, 0, d);
  if (decisions.length > MAX_DECISIONS) decisions.length = MAX_DECISIONS;
  if (redraw) {
    renderDecisions();
    for (const c of charts) c.redraw();
  }
}

function kindPill(kind) {
  const p = el('span', 'kind', kind);
  p.dataset.kind = kind;
  return p;
}

function renderDecisions() {
  const body = $('decisions').tBodies[0];
  const rows = decisions.slice(0, DECISION_ROWS).map((d) => {
    const tr = el('tr');
    tr.dataset.kind = d.kind;
    const time = el('td', 'nowrap mono', clock(d.time));
    time.title = new Date(d.time).toString();
    const kind = el('td');
    kind.append(kindPill(d.kind));
    const change = d.from !== undefined || d.to !== undefined ? `${d.from ?? '?'} → ${d.to ?? '?'}` : '';
    const reason = el('td', 'reason', d.reason ?? '');
    const extra = [
      d.rule && `rule ${d.rule}`,
      d.outcome,
      d.evidence &&
        Object.entries(d.evidence)
          .map(([k, v]) => `${k}=${v}`)
          .join(' '),
    ]
      .filter(Boolean)
      .join(' · ');
    reason.title = extra;
    tr.append(
      time,
      kind,
      el('td', 'nowrap', d.action),
      el('td', 'nowrap', d.target),
      el('td', 'nowrap mono', change),
      reason,
    );
    return tr;
  });
  body.replaceChildren(...rows);
  $('decisions-empty').hidden = decisions.length > 0;
  $('kpi-decisions').textContent = String(decisionTotal);
  const present = KINDS.filter((k) => decisions.some((d) => d.kind === k));
  $('kind-legend').replaceChildren(...present.map(kindPill));
}

function renderChanges() {
  const body = $('changes').tBodies[0];
  const order = { active: 0, overridden: 1, restored: 2 };
  const sorted = [...changes].sort(
    (a, b) => (order[a.state] ?? 3) - (order[b.state] ?? 3) || (b.time ?? 0) - (a.time ?? 0),
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
    if (c.time) state.title = `since ${new Date(c.time).toLocaleString()}`;
    const act = el('td', 'right');
    if (c.state === 'active') {
      const btn = el('button', 'btn btn-small', 'Revert');
      btn.type = 'button';
      btn.disabled = !writable;
      btn.title = writable
        ? `Restore ${c.path} to ${c.original}`
        : 'Disabled: the agent runs without a token (--token-file)';
      btn.addEventListener('click', () => revert(c));
      act.append(btn);
    }
    tr.append(el('td', 'nowrap', c.target), knob, value, state, act);
    return tr;
  });
  body.replaceChildren(...rows);
  $('changes-empty').hidden = changes.length > 0;
  $('kpi-changes').textContent = String(changes.filter((c) => c.state === 'active').length);
  $('changes-note').textContent = writable ? '' : 'read-only: no token configured';
}

let changesTimer = null;
function refreshChangesSoon() {
  clearTimeout(changesTimer);
  changesTimer = setTimeout(loadChanges, 150);
}

async function loadChanges() {
  const r = await fetch('/api/changes');
  if (r.ok) {
    changes = (await r.json()).changes;
    renderChanges();
  }
}

// ---------- status ----------

function renderStatus() {
  if (!status) return;
  $('version').textContent = `v${status.version}`;
  $('uptime').textContent = duration(status.uptimeSeconds);
  $('ticks').textContent = String(status.ticks);
  const mode = $('mode');
  mode.textContent = !status.ready ? 'starting' : status.paused ? 'paused' : 'tuning';
  mode.className = `pill ${!status.ready ? 'pill-wait' : status.paused ? 'pill-warn' : 'pill-ok'}`;
  const btn = $('pause-btn');
  btn.textContent = status.paused ? 'Resume' : 'Pause';
  btn.disabled = !status.writable;
  btn.title = status.writable
    ? status.paused
      ? 'Let the agent change knobs again'
      : 'Stop the agent from changing knobs (changes in effect stay)'
    : 'Disabled: the agent runs without a token (--token-file)';
  if (status.overhead) pushOverhead(status.overhead);
}

async function loadStatus() {
  try {
    const r = await fetch('/api/status');
    if (r.ok) {
      status = await r.json();
      renderStatus();
      renderChanges();
    }
  } catch {
    // The stream's state already tells the user the agent is unreachable.
  }
}

function renderLiveness() {
  const conn = $('conn');
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

function askToken(what, error) {
  const dialog = $('token-dialog');
  $('token-what').textContent = what;
  $('token-error').textContent = error ?? '';
  $('token-input').value = '';
  return new Promise((resolve) => {
    const form = $('token-form');
    const done = (value) => {
      form.removeEventListener('submit', onSubmit);
      $('token-cancel').removeEventListener('click', onCancel);
      dialog.removeEventListener('cancel', onCancel);
      dialog.close();
      resolve(value);
    };
    const onSubmit = (e) => {
      e.preventDefault();
      done($('token-input').value.trim() || null);
    };
    const onCancel = (e) => {
      e.preventDefault();
      done(null);
    };
    form.addEventListener('submit', onSubmit);
    $('token-cancel').addEventListener('click', onCancel);
    dialog.addEventListener('cancel', onCancel);
    dialog.showModal();
    $('token-input').focus();
  });
}

async function authorizedPost(path, what) {
  let token = sessionStorage.getItem(TOKEN_KEY);
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
    if (r.ok && $('token-remember').checked) sessionStorage.setItem(TOKEN_KEY, token);
    return r;
  }
  return null;
}

async function errorText(r) {
  try {
    return (await r.json()).error.message;
  } catch {
    return `HTTP ${r.status}`;
  }
}

let toastTimer = null;
function toast(text, bad = false) {
  const t = $('toast');
  t.textContent = text;
  t.className = `toast show${bad ? ' bad' : ''}`;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => (t.className = 'toast'), 4000);
}

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
  const resume = status?.paused === true;
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

let streamState = 'connecting';
let loaded = false;
const queue = [];

function handle(event, data) {
  if (event === 'fields') {
    setCatalogue(data);
  } else if (event === 'tick') {
    if (ingest(data)) renderAll();
    renderLiveness();
  } else if (event === 'decision') {
    addDecision(data);
  } else if (event === 'change') {
    refreshChangesSoon();
  } else if (event === 'overhead') {
    pushOverhead(data);
    renderOverhead();
  }
}

function connect() {
  const es = new EventSource('/api/stream');
  es.addEventListener('open', () => {
    streamState = 'live';
    renderLiveness();
  });
  es.addEventListener('error', () => {
    streamState = es.readyState === EventSource.CLOSED ? 'disconnected' : 'reconnecting';
    renderLiveness();
  });
  for (const ev of ['fields', 'tick', 'decision', 'change', 'overhead']) {
    es.addEventListener(ev, (m) => {
      let data;
      try {
        data = JSON.parse(m.data);
      } catch {
        return;
      }
      if (loaded) handle(ev, data);
      else queue.push([ev, data]);
    });
  }
}

async function getJson(path) {
  const r = await fetch(path);
  if (!r.ok) throw new Error(`${path}: HTTP ${r.status}`);
  return r.json();
}

async function main() {
  readTheme();
  matchMedia('(prefers-color-scheme: dark)').addEventListener('change', () => {
    readTheme();
    for (const c of charts) c.rebuild();
  });
  $('pause-btn').addEventListener('click', togglePause);
  // Subscribe first and buffer, so nothing published while the history loads is lost; duplicates are skipped by time.
  connect();
  const [signals, dec, ov] = await Promise.all([
    getJson('/api/signals'),
    getJson(`/api/decisions?limit=${MAX_DECISIONS}`),
    getJson('/api/overhead'),
    loadStatus(),
    loadChanges(),
  ]);
  setCatalogue(signals.fields);
  for (const s of signals.history) ingest(s);
  for (const d of dec.decisions.slice().reverse()) addDecision(d, false);
  for (const o of ov.samples) pushOverhead(o);
  loaded = true;
  for (const [ev, data] of queue.splice(0)) handle(ev, data);
  renderAll();
  renderDecisions();
  renderOverhead();
  renderLiveness();
  setInterval(loadStatus, 5000);
  setInterval(renderLiveness, 1000);
  document.body.dataset.ready = 'true';
}

main().catch((err) => {
  toast(`Dashboard failed to load: ${err.message}`, true);
});
