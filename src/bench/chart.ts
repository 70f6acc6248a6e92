/**
 * Charts for the benchmark report as self-contained SVG: grouped bars (one bar per condition in each group, with
 * min–max whiskers and an optional reference line) and line/scatter panels (optionally log-scaled, with vertical
 * markers). Pure string building with no dependencies, so the same input always draws the same picture; png.ts
 * turns the SVG into a PNG.
 */

export interface BarPanel {
  kind: 'bar';
  title: string;
  yLabel: string;
  /** One bar per series in every group, in this order and colour. */
  series: string[];
  /** `color` (a palette index) colours every bar of the group, for one-series panels grouped by something else. */
  groups: { label: string; values: (number | null)[]; lo?: (number | null)[]; hi?: (number | null)[]; color?: number }[];
  /** Legend entries (palette index order) instead of the series names. */
  legend?: string[];
  refLine?: { value: number; label: string };
  logY?: boolean;
  /** Digits of the value printed above each bar. */
  digits?: number;
}

export interface LinePanel {
  kind: 'line';
  title: string;
  xLabel: string;
  yLabel: string;
  logY?: boolean;
  series: { label: string; points: [number, number][]; dashed?: boolean; markers?: boolean; line?: boolean; color?: number }[];
  vlines?: { x: number; label: string }[];
}

export type ChartPanel = BarPanel | LinePanel;

export const PALETTE = ['#4e79a7', '#f28e2b', '#e15759', '#59a14f', '#76b7b2', '#b07aa1', '#edc948', '#ff9da7', '#9c755f', '#bab0ac'];

const W = 960;
const PANEL_H = 380;
const M = { left: 78, right: 24, top: 76, bottom: 64 };

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

/** Round-number ticks from at or below lo to at or above hi, so the axis ends on a labelled tick. */
export function niceTicks(lo: number, hi: number, count = 5): number[] {
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((f) => f * mag).find((s) => raw <= s) ?? 10 * mag;
  const out: number[] = [];
  const end = Math.ceil(hi / step - 1e-9) * step;
  for (let v = Math.floor(lo / step + 1e-9) * step; v <= end + step * 1e-9; v += step) out.push(Number(v.toPrecision(12)));
  return out;
}

function logTicks(lo: number, hi: number): number[] {
  const out: number[] = [];
  for (let e = Math.floor(Math.log10(lo)); e <= Math.ceil(Math.log10(hi)); e++) {
    for (const f of [1, 2, 5]) {
      const v = f * 10 ** e;
      if (v >= lo * 0.999 && v <= hi * 1.001) out.push(v);
    }
  }
  return out;
}

function label(v: number): string {
  const a = Math.abs(v);
  if (a >= 1e6) return `${+(v / 1e6).toPrecision(3)}M`;
  if (a >= 1e4) return `${+(v / 1e3).toPrecision(3)}k`;
  if (a >= 100 || a === 0) return String(Math.round(v));
  return String(+v.toPrecision(3));
}

interface Scale {
  (v: number): number;
  ticks: number[];
}

function yScale(lo: number, hi: number, top: number, bottom: number, log: boolean): Scale {
  if (log) {
    const l0 = Math.log10(lo);
    const l1 = Math.log10(hi);
    const f = ((v: number) => bottom - ((Math.log10(Math.max(v, lo)) - l0) / (l1 - l0 || 1)) * (bottom - top)) as Scale;
    f.ticks = logTicks(lo, hi);
    return f;
  }
  const ticks = niceTicks(lo, hi);
  const h = Math.max(hi, ticks[ticks.length - 1]!);
  const f = ((v: number) => bottom - ((v - lo) / (h - lo || 1)) * (bottom - top)) as Scale;
  f.ticks = ticks;
  return f;
}

/** Splits a label into lines of at most `max` characters, at spaces where it can. */
export function wrap(text: string, max: number): string[] {
  const lines: string[] = [];
  for (const part of text.split('\n')) {
    let cur = '';
    for (const word of part.split(' ')) {
      const next = cur ? `${cur} ${word}` : word;
      if (next.length <= max || !cur) cur = next;
      else {
        lines.push(cur);
        cur = word;
      }
    }
    while (cur.length > max) {
      lines.push(cur.slice(0, max));
      cur = cur.slice(max);
    }
    if (cur) lines.push(cur);
  }
  return lines;
}

function multiline(x: number, y: number, lines: string[], attrs: string): string {
  return `<text x="${x}" y="${y}" ${attrs}>${lines.map((l, i) => `<tspan x="${x}" dy="${i ? 13 : 0}">${esc(l)}</tspan>`).join('')}</text>`;
}

/** Legend swatches left to right, wrapping to a second row; what does not fit in two rows is left out. */
function legend(items: { label: string; color: string; dashed?: boolean }[], y: number): string {
  let x = M.left;
  let row = 0;
  let out = '';
  for (const it of items) {
    const w = 28 + it.label.length * 7.2;
    if (x + w > W - M.right && x > M.left) {
      if (++row > 1) break;
      x = M.left;
    }
    const yy = y + row * 16;
    out += it.dashed
      ? `<line x1="${x}" y1="${yy - 4}" x2="${x + 14}" y2="${yy - 4}" stroke="${it.color}" stroke-width="2.5" stroke-dasharray="4 3"/>`
      : `<rect x="${x}" y="${yy - 10}" width="12" height="12" fill="${it.color}"/>`;
    out += `<text x="${x + 18}" y="${yy}" font-size="12">${esc(it.label)}</text>`;
    x += w;
  }
  return out;
}

function axes(s: Scale, top: number, bottom: number, yLabel: string): string {
  let out = '';
  for (const t of s.ticks) {
    const y = s(t);
    if (y < top - 1 || y > bottom + 1) continue;
    out += `<line x1="${M.left}" y1="${y}" x2="${W - M.right}" y2="${y}" stroke="#e4e4e4"/>`;
    out += `<text x="${M.left - 6}" y="${y + 4}" font-size="11" text-anchor="end">${esc(label(t))}</text>`;
  }
  out += `<line x1="${M.left}" y1="${top}" x2="${M.left}" y2="${bottom}" stroke="#555"/>`;
  out += `<line x1="${M.left}" y1="${bottom}" x2="${W - M.right}" y2="${bottom}" stroke="#555"/>`;
  const my = (top + bottom) / 2;
  out += `<text x="16" y="${my}" font-size="12" text-anchor="middle" transform="rotate(-90 16 ${my})">${esc(yLabel)}</text>`;
  return out;
}

function barPanel(p: BarPanel, y0: number): string {
  const top = y0 + M.top;
  const bottom = y0 + PANEL_H - M.bottom;
  const all = p.groups.flatMap((g) => [...g.values, ...(g.hi ?? [])]).filter((v): v is number => v !== null && Number.isFinite(v));
  if (p.refLine) all.push(p.refLine.value);
  const positive = all.filter((v) => v > 0);
  const log = p.logY === true && positive.length > 0;
  const hi = all.length ? Math.max(...all) * (log ? 2 : 1.12) : 1;
  const lo = log ? Math.min(...positive) / 2 : 0;
  const s = yScale(lo, hi || 1, top, bottom, log);
  let out = `<text x="${W / 2}" y="${y0 + 22}" font-size="15" font-weight="bold" text-anchor="middle">${esc(p.title)}</text>`;
  out += legend(
    (p.legend ?? p.series).map((l, i) => ({ label: l, color: PALETTE[i % PALETTE.length]! })),
    y0 + 44,
  );
  out += axes(s, top, bottom, p.yLabel);
  const gw = (W - M.left - M.right) / Math.max(1, p.groups.length);
  const bw = Math.min(60, (gw * 0.8) / Math.max(1, p.series.length));
  p.groups.forEach((g, gi) => {
    const gx = M.left + gi * gw + (gw - bw * p.series.length) / 2;
    g.values.forEach((v, si) => {
      if (v === null || !Number.isFinite(v)) return;
      const x = gx + si * bw;
      const y = s(v);
      const color = PALETTE[(g.color ?? si) % PALETTE.length]!;
      out += `<rect x="${x + 1}" y="${Math.min(y, bottom)}" width="${bw - 2}" height="${Math.max(0, bottom - y)}" fill="${color}"/>`;
      const lo = g.lo?.[si];
      const hi2 = g.hi?.[si];
      if (lo !== undefined && hi2 !== undefined && lo !== null && hi2 !== null && Number.isFinite(lo) && Number.isFinite(hi2)) {
        const cx = x + bw / 2;
        out += `<line x1="${cx}" y1="${s(lo)}" x2="${cx}" y2="${s(hi2)}" stroke="#222"/>`;
        out += `<line x1="${cx - 4}" y1="${s(lo)}" x2="${cx + 4}" y2="${s(lo)}" stroke="#222"/><line x1="${cx - 4}" y1="${s(hi2)}" x2="${cx + 4}" y2="${s(hi2)}" stroke="#222"/>`;
      }
      const digits = p.digits ?? (Math.abs(v) >= 100 ? 0 : Math.abs(v) >= 10 ? 1 : 2);
      out += `<text x="${x + bw / 2}" y="${Math.min(y, bottom) - 4}" font-size="10" text-anchor="middle">${esc(v.toFixed(digits))}</text>`;
    });
    const small = gw < 110;
    out += multiline(M.left + gi * gw + gw / 2, bottom + 16, wrap(g.label, Math.max(6, Math.floor(gw / (small ? 5.8 : 7)))).slice(0, 3), `font-size="${small ? 10 : 12}" text-anchor="middle"`);
  });
  if (p.refLine) {
    const y = s(p.refLine.value);
    out += `<line x1="${M.left}" y1="${y}" x2="${W - M.right}" y2="${y}" stroke="#c00" stroke-dasharray="6 4"/>`;
    out += `<text x="${W - M.right - 4}" y="${y - 4}" font-size="11" fill="#c00" text-anchor="end">${esc(p.refLine.label)}</text>`;
  }
  return out;
}

function linePanel(p: LinePanel, y0: number): string {
  const top = y0 + M.top;
  const bottom = y0 + PANEL_H - M.bottom;
  const pts = p.series.flatMap((s) => s.points).filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y));
  const xs = [...pts.map((q) => q[0]), ...(p.vlines ?? []).map((v) => v.x)];
  const ys = pts.map((q) => q[1]);
  const positive = ys.filter((v) => v > 0);
  const log = p.logY === true && positive.length > 0;
  const xlo = xs.length ? Math.min(0, ...xs) : 0;
  const xhi = xs.length ? Math.max(...xs) : 1;
  const xt = niceTicks(xlo, xhi || 1);
  const xmax = Math.max(xhi, xt[xt.length - 1]!);
  const sx = (v: number): number => M.left + ((v - xlo) / (xmax - xlo || 1)) * (W - M.left - M.right);
  const ylo = log ? Math.min(...positive) / 1.5 : Math.min(0, ...(ys.length ? ys : [0]));
  const yhi = ys.length ? Math.max(...ys) * (log ? 1.5 : 1.1) : 1;
  const s = yScale(ylo, yhi || 1, top, bottom, log);
  let out = `<text x="${W / 2}" y="${y0 + 22}" font-size="15" font-weight="bold" text-anchor="middle">${esc(p.title)}</text>`;
  out += legend(
    p.series.map((l, i) => ({ label: l.label, color: PALETTE[(l.color ?? i) % PALETTE.length]!, dashed: l.dashed })),
    y0 + 44,
  );
  out += axes(s, top, bottom, p.yLabel);
  for (const t of xt) {
    out += `<line x1="${sx(t)}" y1="${bottom}" x2="${sx(t)}" y2="${bottom + 4}" stroke="#555"/>`;
    out += `<text x="${sx(t)}" y="${bottom + 17}" font-size="11" text-anchor="middle">${esc(label(t))}</text>`;
  }
  out += `<text x="${(M.left + W - M.right) / 2}" y="${bottom + 40}" font-size="12" text-anchor="middle">${esc(p.xLabel)}</text>`;
  for (const v of p.vlines ?? []) {
    out += `<line x1="${sx(v.x)}" y1="${top}" x2="${sx(v.x)}" y2="${bottom}" stroke="#777" stroke-dasharray="3 3"/>`;
    out += `<text x="${sx(v.x) + 3}" y="${top + 12}" font-size="11" fill="#555">${esc(v.label)}</text>`;
  }
  p.series.forEach((ser, i) => {
    const color = PALETTE[(ser.color ?? i) % PALETTE.length]!;
    const q = ser.points.filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y) && (!log || y > 0));
    if (q.length === 0) return;
    if (ser.line !== false && q.length > 1) {
      const d = q.map(([x, y], k) => `${k ? 'L' : 'M'}${sx(x).toFixed(1)},${s(y).toFixed(1)}`).join(' ');
      out += `<path d="${d}" fill="none" stroke="${color}" stroke-width="2"${ser.dashed ? ' stroke-dasharray="6 4"' : ''}/>`;
    }
    // Dots on a long series only hide the line.
    if (ser.markers !== false && q.length <= 60) for (const [x, y] of q) out += `<circle cx="${sx(x).toFixed(1)}" cy="${s(y).toFixed(1)}" r="3.5" fill="${color}"/>`;
  });
  return out;
}

/** Stacks the panels vertically into one SVG document. */
export function renderSvg(panels: ChartPanel[], title?: string): { svg: string; width: number; height: number } {
  const head = title ? 36 : 0;
  const height = head + Math.max(1, panels.length) * PANEL_H;
  let body = title ? `<text x="${W / 2}" y="26" font-size="18" font-weight="bold" text-anchor="middle">${esc(title)}</text>` : '';
  panels.forEach((p, i) => {
    body += p.kind === 'bar' ? barPanel(p, head + i * PANEL_H) : linePanel(p, head + i * PANEL_H);
  });
  if (panels.length === 0) body += `<text x="${W / 2}" y="${head + PANEL_H / 2}" font-size="14" text-anchor="middle">no data</text>`;
  const svg =
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${height}" viewBox="0 0 ${W} ${height}" ` +
    `font-family="DejaVu Sans, Liberation Sans, Arial, sans-serif"><rect width="100%" height="100%" fill="#fff"/>${body}</svg>`;
  return { svg, width: W, height };
}
