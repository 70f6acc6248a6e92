/** `top`'s table: columns chosen by width and importance, no line past the width, highlights only past a threshold. */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { TickSnapshot } from '../core/types.js';
import { chooseColumns, COLUMNS, displayWidth, fit, renderTop, terminalWidth, type Thresholds } from './top-view.js';
import { psiResource, runqlatWindow } from '../signals/windows.js';

const TH: Thresholds = { runqP99Us: 4000, psiSomeAvg10: 20 };
const RED = '\x1b[1;31m';

const runqlat = (p99: number) => runqlatWindow({ count: 500, p50: 20, p90: 300, p99, mean: 50, p99Ewma: p99, waitUs: 1000, oncpuUs: 9000, oncpuRatio: 0.9, involuntary: 3 });
const psi = (cpu: number) => ({ cpu: psiResource({ someAvg10: cpu }), memory: psiResource(), io: psiResource() });

function snapshot(targets: Record<string, { role: string; p99: number; psiCpu?: number; throttled?: number }>, host = true): TickSnapshot {
  return {
    time: Date.UTC(2026, 0, 1),
    windowMs: 1000,
    targets: Object.fromEntries(
      Object.entries(targets).map(([name, t]) => [
        name,
        {
          name,
          role: t.role,
          runqlat: runqlat(t.p99),
          futex: { count: 10, p99: 50 },
          blkio: { p99: 120, readBytes: 4096, seqRatio: 0.5 },
          net: { retransmits: 0, drops: 0 },
          psi: { host: psi(1), ...(t.psiCpu !== undefined ? { cgroup: psi(t.psiCpu) } : {}) },
          cgstat: { throttledRatio: t.throttled ?? 0 },
        },
      ]),
    ) as unknown as TickSnapshot['targets'],
    ...(host ? { host: { runqlat: runqlat(100), psi: psi(1) } } : {}),
  };
}

const plain = (s: string) => s.replace(/\x1b\[[0-9;]*m/g, '');
/** The signal columns a table shows. */
const headers = (table: string) => COLUMNS.map((c) => c.header).filter((h) => plain(table.split('\n')[2]).includes(h));

/** The cells of each row, by header, with whether each is highlighted. */
function cells(table: string): Map<string, Map<string, { text: string; red: boolean }>> {
  const lines = table.split('\n');
  const head = plain(lines[2]);
  // Right-aligned columns end where their header ends.
  const names = COLUMNS.map((c) => c.header).filter((h) => head.includes(h));
  const ends = names.map((h) => head.indexOf(h) + h.length);
  const out = new Map<string, Map<string, { text: string; red: boolean }>>();
  for (const line of lines.slice(3)) {
    if (!line.trim() || line.includes('more column')) continue;
    const marked = line.replace(/\x1b\[1;31m/g, '\u0001').replace(/\x1b\[0m/g, '\u0002');
    const chars = Array.from(marked);
    const row = new Map<string, { text: string; red: boolean }>();
    let red = false;
    const visible: { ch: string; red: boolean }[] = [];
    for (const ch of chars) {
      if (ch === '\u0001') red = true;
      else if (ch === '\u0002') red = false;
      else visible.push({ ch, red });
    }
    names.forEach((h, i) => {
      // The first signal column starts after the role column ('role' padded to the longest role, "protect").
      const start = i === 0 ? head.indexOf('role') + 'protect'.length : ends[i - 1];
      const part = visible.slice(start, ends[i]);
      row.set(h, { text: part.map((p) => p.ch).join('').trim(), red: part.some((p) => p.red) });
    });
    out.set(visible.map((p) => p.ch).join('').split(' ')[0], row);
  }
  return out;
}

describe('chooseColumns', () => {
  const cols = [
    { id: 'a', width: 10, priority: 3 },
    { id: 'b', width: 10, priority: 1 },
    { id: 'c', width: 10, priority: 2 },
  ];

  it('keeps everything that fits, in display order', () => {
    expect(chooseColumns(cols, 33).map((c) => c.id)).toEqual(['a', 'b', 'c']);
  });

  it('drops the least important first', () => {
    expect(chooseColumns(cols, 32).map((c) => c.id)).toEqual(['b', 'c']);
    expect(chooseColumns(cols, 21).map((c) => c.id)).toEqual(['b']);
    expect(chooseColumns(cols, 10).map((c) => c.id)).toEqual([]);
  });

  it('never exceeds the width, and keeps more as the width grows', () => {
    const col = fc.record({ width: fc.integer({ min: 1, max: 20 }), priority: fc.integer({ min: 1, max: 50 }) });
    fc.assert(
      fc.property(fc.array(col, { maxLength: 20 }), fc.integer({ min: 0, max: 200 }), fc.integer({ min: 0, max: 50 }), (cs, w, more) => {
        const kept = chooseColumns(cs, w);
        expect(kept.reduce((n, c) => n + c.width + 1, 0)).toBeLessThanOrEqual(w);
        const wider = chooseColumns(cs, w + more);
        for (const c of kept) expect(wider).toContain(c);
        // What is dropped is never more important than what is kept.
        const dropped = cs.filter((c) => !kept.includes(c));
        for (const d of dropped) for (const k of kept) expect(d.priority).toBeGreaterThanOrEqual(k.priority);
      }),
    );
  });
});

describe('terminalWidth', () => {
  it('is --width, else the terminal columns, else 80', () => {
    expect(terminalWidth(120, { isTTY: true, columns: 200 })).toBe(120);
    expect(terminalWidth(undefined, { isTTY: true, columns: 132 })).toBe(132);
    expect(terminalWidth(undefined, { isTTY: false, columns: undefined })).toBe(80);
    expect(terminalWidth(undefined, {})).toBe(80);
  });
});

describe('fit and displayWidth', () => {
  it('count µ, — and … as one column and escape sequences as none', () => {
    expect(displayWidth('\x1b[1;31m330µs\x1b[0m — x')).toBe(9);
    expect(fit('abcdef', 4)).toBe('abc…');
    expect(displayWidth(fit('µµµµµµ', 3))).toBe(3);
  });
});

describe('renderTop', () => {
  const snap = snapshot({ 'a-very-long-target-name-indeed': { role: 'protect', p99: 9000, psiCpu: 35 }, batch: { role: 'noisy', p99: 800, throttled: 0.4 } });

  it('fits every line in the width, from very narrow to wide, coloured or not', () => {
    for (const color of [false, true]) {
      for (let width = 10; width <= 240; width += 7) {
        const t = renderTop(snap, { color, width, thresholds: TH });
        for (const line of t.split('\n')) expect(displayWidth(line), `width ${width}: ${JSON.stringify(line)}`).toBeLessThanOrEqual(width);
      }
    }
  });

  it('shows more columns as the width grows, the most important first', () => {
    const at = (width: number) => COLUMNS.filter((c) => plain(renderTop(snap, { color: false, width, thresholds: TH }).split('\n')[2]).includes(c.header));
    const narrow = at(50);
    const normal = at(80);
    const wide = at(200);
    expect(normal.length).toBeGreaterThan(narrow.length);
    expect(wide.length).toBeGreaterThan(normal.length);
    expect(wide.map((c) => c.header)).toEqual(expect.arrayContaining(COLUMNS.map((c) => c.header)));
    expect(normal.map((c) => c.header)).toEqual(expect.arrayContaining(['rq p99', 'psi cpu', 'throttle']));
    expect(renderTop(snap, { color: false, width: 80, thresholds: TH })).toMatch(/^\d+ more columns with --width or a wider terminal: rq p50, /m);
    expect(renderTop(snap, { color: false, width: 200, thresholds: TH })).not.toMatch(/more column/);
  });

  it('writes microseconds as µs', () => {
    const t = renderTop(snap, { color: false, width: 200, thresholds: TH });
    expect(t).toContain('800µs');
    expect(t).toContain('9.0ms');
    expect(t).not.toMatch(/\dus\b/);
  });

  it('highlights exactly the values past their thresholds', () => {
    const t = renderTop(snap, { color: true, width: 200, thresholds: TH });
    const c = cells(t);
    const long = c.get('a-very-long-tar…')!;
    const batch = c.get('batch')!;
    const host = c.get('(host)')!;
    expect(long.get('rq p99')).toEqual({ text: '9.0ms', red: true });
    expect(long.get('p99 ewma')!.red).toBe(true);
    expect(long.get('psi cpu')).toEqual({ text: '35.0%', red: true });
    expect(long.get('throttle')).toEqual({ text: '0%', red: false });
    expect(batch.get('rq p99')).toEqual({ text: '800µs', red: false });
    expect(batch.get('psi cpu')).toEqual({ text: '1.0%', red: false });
    expect(batch.get('throttle')).toEqual({ text: '40%', red: true });
    expect(host.get('rq p99')!.red).toBe(false);
    // Columns without a threshold are never highlighted, however they compare.
    for (const row of [long, batch, host]) for (const h of ['rq p50', 'oncpu', 'invol/s', 'futex p99', 'io p99', 'drops', 'retrans']) expect(row.get(h)?.red ?? false).toBe(false);
  });

  it('highlights nothing when nothing is past a threshold: not the largest of equal zeros, not the largest value', () => {
    const calm = snapshot({ a: { role: 'protect', p99: 3999, psiCpu: 20 }, b: { role: 'noisy', p99: 100 } });
    const t = renderTop(calm, { color: true, width: 200, thresholds: TH });
    expect(t).not.toContain(RED);
    expect(headers(t).length).toBeGreaterThan(3);
  });

  it('colours nothing without colour', () => {
    expect(renderTop(snap, { color: false, width: 200, thresholds: TH })).not.toMatch(/\x1b/);
  });
});
