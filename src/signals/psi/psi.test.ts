/**
 * Pressure-file parsing against the formats kernels print, stall rates from totals, the per-target shape for v1, v2
 * and pid targets (against a fake /proc/pressure and the faithful fake cgroup v2 tree), and trigger validation.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { isTunerError } from '../../core/errors.js';
import { silentLogger } from '../../core/log.js';
import type { Target, TargetSignals } from '../../core/types.js';
import { createFakeCgroup2, type FakeCgroup2 } from '../../cgroup/fake-cgroup2.js';
import { parsePressure, PsiSignal, type PsiTargetWindow } from './psi.js';
import { hasSysResource, validateTrigger } from './psi-trigger.js';

// As printed by v5.13+ for /proc/pressure/cpu (the host's cpu "full" is always 0, but the line is there).
const CPU_NEW = 'some avg10=74.59 avg60=39.55 avg300=29.76 total=252659577\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=0\n';
// v4.20–v5.12: cpu has no "full" line.
const CPU_OLD = 'some avg10=1.22 avg60=0.43 avg300=0.10 total=4031342\n';
const IO = 'some avg10=0.00 avg60=0.02 avg300=0.21 total=8205956\nfull avg10=0.00 avg60=0.00 avg300=0.06 total=5794611\n';
// v6.1+ with CONFIG_IRQ_TIME_ACCOUNTING: irq pressure has only a "full" line.
const IRQ = 'full avg10=0.18 avg60=0.05 avg300=0.01 total=1893354\n';

describe('parsePressure', () => {
  it('reads some and full lines', () => {
    expect(parsePressure(CPU_NEW)).toEqual({
      some: { avg10: 74.59, avg60: 39.55, avg300: 29.76, totalUs: 252659577 },
      full: { avg10: 0, avg60: 0, avg300: 0, totalUs: 0 },
    });
    expect(parsePressure(IO).full).toEqual({ avg10: 0, avg60: 0, avg300: 0.06, totalUs: 5794611 });
  });

  it('leaves full absent when the kernel prints no full line (cpu before v5.13)', () => {
    const p = parsePressure(CPU_OLD);
    expect(p.some?.totalUs).toBe(4031342);
    expect(p.full).toBeUndefined();
  });

  it('accepts a full-only file (irq) and ignores keys it does not know', () => {
    expect(parsePressure(IRQ)).toEqual({ full: { avg10: 0.18, avg60: 0.05, avg300: 0.01, totalUs: 1893354 } });
    expect(parsePressure('some avg10=1.00 avg60=2.00 avg300=3.00 total=4 avg1=9.00\n').some).toEqual({ avg10: 1, avg60: 2, avg300: 3, totalUs: 4 });
  });

  it('totals past 2^32 stay exact', () => {
    expect(parsePressure('some avg10=0.00 avg60=0.00 avg300=0.00 total=98765432101234\n').some?.totalUs).toBe(98765432101234);
  });

  it.each([
    ['some avg10=0.00 avg60=0.00 avg300=0.00\n', /no total/],
    ['some avg10=x avg60=0.00 avg300=0.00 total=1\n', /avg10=x/],
    ['', /no "some" or "full" line/],
    ['garbage\n', /no "some" or "full" line/],
  ])('refuses %j', (text, msg) => {
    expect(() => parsePressure(text, '/proc/pressure/cpu')).toThrow(msg);
  });

  it('names the file in errors', () => {
    expect(() => parsePressure('', '/x/cpu.pressure')).toThrow(/parse \/x\/cpu\.pressure/);
  });
});

describe('validateTrigger', () => {
  const ok = { resource: 'cpu' as const, kind: 'some' as const, stallUs: 150_000, windowUs: 1_000_000 };

  it('accepts what the kernel accepts', () => {
    expect(() => validateTrigger(ok, true)).not.toThrow();
    expect(() => validateTrigger({ ...ok, stallUs: 500_000, windowUs: 500_000 }, true)).not.toThrow();
    expect(() => validateTrigger({ ...ok, windowUs: 10_000_000 }, true)).not.toThrow();
    expect(() => validateTrigger({ ...ok, windowUs: 4_000_000 }, false)).not.toThrow();
  });

  it('without CAP_SYS_RESOURCE asks for a window that is a multiple of 2 s', () => {
    expect(() => validateTrigger(ok, false)).toThrow(/multiple of 2 s .* fix: use a window of 2s/);
  });

  it('reads CAP_SYS_RESOURCE from the effective set', () => {
    expect(hasSysResource('CapEff:\t000001ffffffffff\n')).toBe(true);
    expect(hasSysResource('CapEff:\t000001fffeffffff\n')).toBe(false);
    expect(hasSysResource('Name:\tx\n')).toBe(false);
  });

  it.each([
    [{ windowUs: 499_999 }, /window 499999 µs/],
    [{ windowUs: 10_000_001 }, /outside the kernel's range/],
    [{ stallUs: 0 }, /stall 0 µs/],
    [{ stallUs: 1_000_001 }, /at most the window/],
    [{ kind: 'half' }, /unknown kind/],
    [{ resource: 'irq' }, /unknown resource/],
  ])('refuses %j with a fix', (patch, msg) => {
    try {
      validateTrigger({ ...ok, ...(patch as object) }, true);
      expect.unreachable();
    } catch (e) {
      expect(isTunerError(e, 'CONFIG_INVALID')).toBe(true);
      expect((e as Error).message).toMatch(msg);
      expect((e as Error).message).toMatch(/fix: /);
    }
  });
});

describe('PsiSignal against fake files', () => {
  let proc: string | undefined;
  let fake: FakeCgroup2 | undefined;
  afterEach(() => {
    if (proc) fs.rmSync(proc, { recursive: true, force: true });
    fake?.remove();
    proc = undefined;
    fake = undefined;
  });

  const line = (kind: string, total: number, avg10 = 0) => `${kind} avg10=${avg10.toFixed(2)} avg60=0.00 avg300=0.00 total=${total}\n`;

  it('turns totals into µs stalled per second, per host and per v2 cgroup, and says why v1 and pid targets have none', async () => {
    proc = fs.mkdtempSync(path.join(os.tmpdir(), 'ebpf-tuner-psi-'));
    fake = createFakeCgroup2();
    const web = fake.mkdir('web');
    const writeHost = (cpuSome: number, ioFull: number) => {
      fs.writeFileSync(path.join(proc!, 'cpu'), CPU_OLD.replace('4031342', String(cpuSome)));
      fs.writeFileSync(path.join(proc!, 'memory'), line('some', 0) + line('full', 0));
      fs.writeFileSync(path.join(proc!, 'io'), line('some', 10) + line('full', ioFull));
    };
    writeHost(1_000_000, 500);
    fs.writeFileSync(path.join(web, 'cpu.pressure'), line('some', 7_000_000, 42.5) + line('full', 100));
    const targets: Target[] = [
      { name: 'web', role: 'protect', slot: 0, scope: { kind: 'cgroup', path: web, version: 2, id: 1n } },
      { name: 'batch', role: 'noisy', slot: 1, scope: { kind: 'cgroup', path: '/sys/fs/cgroup/cpu/batch', version: 1, id: 2n } },
      { name: 'proc', role: 'noisy', slot: 2, scope: { kind: 'pids', pids: [1] } },
    ];
    const s = new PsiSignal({ procDir: proc });
    await s.start({ log: silentLogger, targets, cgroupVersion: 2 });
    const t0 = Date.now();
    s.collect(t0, {});

    writeHost(1_600_000, 2_500);
    fs.writeFileSync(path.join(web, 'cpu.pressure'), line('some', 8_000_000, 43) + line('full', 100));
    const out: Record<string, TargetSignals> = {};
    s.collect(t0 + 2000, out);

    const host = s.hostWindow()!;
    expect(host.cpu).toMatchObject({ someAvg10: 1.22, someStallUs: 300_000, someTotalUs: 1_600_000 });
    expect(host.cpu?.fullStallUs).toBeUndefined();
    expect(host.io).toMatchObject({ someStallUs: 0, fullStallUs: 1000, fullTotalUs: 2500 });
    expect(host.unavailable).toBeUndefined();

    const web1 = out.web.psi as PsiTargetWindow;
    expect(web1.host.cpu).toEqual(host.cpu);
    expect(web1.cgroup?.cpu).toMatchObject({ someAvg10: 43, someStallUs: 500_000, fullStallUs: 0 });
    // The fake's fresh files for memory and io read as zero pressure.
    expect(web1.cgroup?.memory).toMatchObject({ someStallUs: 0, someTotalUs: 0 });
    expect(web1.cpu).toEqual(web1.cgroup?.cpu);
    expect(web1.cgroupUnavailable).toBeUndefined();

    const batch = out.batch.psi as PsiTargetWindow;
    expect(batch.cgroup).toBeUndefined();
    expect(batch.cpu).toBeUndefined();
    expect(batch.host.cpu?.someStallUs).toBe(300_000);
    expect(batch.cgroupUnavailable).toMatch(/cgroup v1 keeps no per-cgroup pressure/);
    expect((out.proc.psi as PsiTargetWindow).cgroupUnavailable).toMatch(/pid target/);
    s.close();
    s.close();
  });

  it('reports PSI as unavailable instead of failing when the host has none', async () => {
    proc = fs.mkdtempSync(path.join(os.tmpdir(), 'ebpf-tuner-psi-'));
    const s = new PsiSignal({ procDir: path.join(proc, 'missing') });
    await s.start({ log: silentLogger, targets: [], cgroupVersion: 2 });
    s.collect(Date.now(), {});
    expect(s.hostWindow()?.unavailable).toMatch(/PSI is off/);
    expect(s.hostWindow()?.cpu).toBeUndefined();
    s.close();
  });

  it('a cgroup that disappears leaves its resources out rather than failing the tick', async () => {
    fake = createFakeCgroup2();
    const gone = fake.mkdir('gone');
    const s = new PsiSignal();
    await s.start({ log: silentLogger, targets: [{ name: 'g', role: 'protect', slot: 0, scope: { kind: 'cgroup', path: gone, version: 2, id: 1n } }], cgroupVersion: 2 });
    fake.rmdir('gone');
    const out: Record<string, TargetSignals> = {};
    s.collect(Date.now(), out);
    expect((out.g.psi as PsiTargetWindow).cgroup).toEqual({});
    s.close();
  });
});
