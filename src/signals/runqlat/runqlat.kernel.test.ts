/**
 * Run-queue latency on the real kernel: the program loads and attaches, a target's latency rises when CPU hogs the
 * test starts compete with it, and the wait the program measures matches the kernel's own per-task accounting
 * (/proc/<pid>/task/<tid>/schedstat run_delay).
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, rmdirSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { silentLogger } from '../../core/log.js';
import type { Target, TargetSignals } from '../../core/types.js';
import { cgroupId } from '../../cgroup/layout.js';
import { toolPath } from '../../bpf/paths.js';
import { cleanupAll, killAndWait, makeTestCgroup, spawnInCgroup } from '../../testing/cgroups.js';
import { RunqlatSignal, type RunqlatWakeEvent, type RunqlatWindow } from './runqlat.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function runDelayNs(pid: number): number {
  let sum = 0;
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    sum += Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ')[1]);
  }
  return sum;
}

afterAll(async () => {
  await cleanupAll();
});

describe('runqlat on the real kernel', () => {
  it('attaches, sees contention raise a target p99, and agrees with schedstat', async () => {
    const base = makeTestCgroup('cpu');
    const victimCg = base.child('victim');
    const hogCg = base.child('sibling');
    const signal = new RunqlatSignal({ perThread: true, host: true, ewmaAlpha: 0.5 });
    // Victim and hogs share one CPU, so the contention is the same on any machine and unaffected by other load.
    const victim = await spawnInCgroup(victimCg.path, 'taskset', ['-c', '1', toolPath('victim'), '--period-us', '4000', '--work-us', '2400', '--quiet']);
    let hog: Awaited<ReturnType<typeof spawnInCgroup>> | undefined;
    try {
      const targets: Target[] = [
        { name: 'victim', role: 'protect', slot: 0, scope: { kind: 'cgroup', path: victimCg.path, version: 1, id: cgroupId(victimCg.path) } },
        { name: 'sibling', role: 'noisy', slot: 1, scope: { kind: 'cgroup', path: hogCg.path, version: 1, id: cgroupId(hogCg.path) } },
      ];
      signal.start({ log: silentLogger, targets, cgroupVersion: 1 });
      expect(signal.attachedAs?.kind).toBe('tp_btf');

      const windows = async (n: number): Promise<{ victim: RunqlatWindow[]; delayNs: number; waitNs: number }> => {
        const out: RunqlatWindow[] = [];
        let delayNs = 0;
        let waitNs = 0;
        for (let i = 0; i < n; i++) {
          const d0 = runDelayNs(victim.pid);
          const snap: Record<string, TargetSignals> = {};
          signal.collect(Date.now(), snap);
          await sleep(1000);
          const after: Record<string, TargetSignals> = {};
          signal.collect(Date.now(), after);
          delayNs += runDelayNs(victim.pid) - d0;
          const w = after.victim.runqlat as RunqlatWindow;
          waitNs += w.waitUs * 1000;
          out.push(w);
        }
        return { victim: out, delayNs, waitNs };
      };

      const quiet = await windows(3);
      hog = await spawnInCgroup(hogCg.path, 'taskset', ['-c', '1', toolPath('hog'), '--threads', '4']);
      await sleep(300);
      const busy = await windows(3);

      const median = (xs: number[]) => xs.slice().sort((a, b) => a - b)[Math.floor(xs.length / 2)];
      const quietP99 = median(quiet.victim.map((w) => w.p99));
      const busyP99 = median(busy.victim.map((w) => w.p99));
      console.log(`victim run-queue p99: quiet ${quietP99.toFixed(0)} µs, beside 4 hogs ${busyP99.toFixed(0)} µs`);
      const meanWait = (r: typeof quiet) => r.waitNs / r.victim.reduce((a, w) => a + w.count, 0);
      console.log(`victim mean wait: quiet ${(meanWait(quiet) / 1e3).toFixed(0)} µs, beside 4 hogs ${(meanWait(busy) / 1e3).toFixed(0)} µs`);
      console.log(`victim wait: bpf ${(busy.waitNs / 1e6).toFixed(2)} ms vs schedstat ${(busy.delayNs / 1e6).toFixed(2)} ms`);

      // The victim wakes ~250 times a second: every window has samples (fewer when other load shares its CPU).
      for (const w of [...quiet.victim, ...busy.victim]) expect(w.count).toBeGreaterThan(20);
      expect(meanWait(busy)).toBeGreaterThan(meanWait(quiet) * 2);
      expect(busyP99).toBeGreaterThan(quietP99);
      expect(busyP99).toBeGreaterThan(1000);
      // Same events, same clock as the kernel's own accounting: within 10% (window edges differ by a few µs).
      expect(busy.waitNs).toBeGreaterThan(busy.delayNs * 0.9);
      expect(busy.waitNs).toBeLessThan(busy.delayNs * 1.1);
      // The hogs' own cgroup is attributed: 4 spinning threads on 2 CPUs are on-CPU most of the time and preempted.
      await sleep(500);
      const snap: Record<string, TargetSignals> = {};
      signal.collect(Date.now(), snap);
      expect(snap.sibling.runqlat?.oncpuUs).toBeGreaterThan(0);
      expect(signal.hostWindow()?.count).toBeGreaterThan(0);
      expect((snap.victim.runqlat as RunqlatWindow).threads?.[0]?.tgid).toBe(victim.pid);
    } finally {
      signal.close();
      if (hog) await killAndWait(hog);
      await killAndWait(victim);
      base.remove();
    }
  });

  it('attributes tasks by their cgroup v2 id (the unified hierarchy of this hybrid host)', async () => {
    const dir = `/sys/fs/cgroup/unified/ebpf-tuner-test-${process.pid}-v2`;
    mkdirSync(dir);
    const signal = new RunqlatSignal({ perThread: false, host: false, ewmaAlpha: 0.5 });
    let victim: Awaited<ReturnType<typeof spawnInCgroup>> | undefined;
    try {
      victim = await spawnInCgroup(dir, toolPath('victim'), ['--period-us', '2000', '--work-us', '200', '--quiet']);
      signal.start({
        log: silentLogger,
        targets: [{ name: 'v2', role: 'protect', slot: 0, scope: { kind: 'cgroup', path: dir, version: 2, id: cgroupId(dir) } }],
        cgroupVersion: 2,
      });
      // Moving every thread between the two CPUs migrates each of them: the window must count those migrations.
      for (let i = 0; i < 10; i++) {
        execFileSync('taskset', ['-a', '-p', '-c', String(i % 2), String(victim.pid)], { stdio: 'ignore' });
        await sleep(100);
      }
      const snap: Record<string, TargetSignals> = {};
      signal.collect(Date.now(), snap);
      const w = snap.v2.runqlat as RunqlatWindow;
      expect(w.count).toBeGreaterThan(100);
      expect(w.oncpuUs).toBeGreaterThan(0);
      expect(w.migrations).toBeGreaterThanOrEqual(8);
      // The victim sleeps between requests: nearly every switch-in follows a wakeup.
      expect(w.wakeups).toBeGreaterThan(w.count * 0.5);
    } finally {
      signal.close();
      if (victim) await killAndWait(victim);
      rmdirSync(dir);
    }
  });

  it('wakes user space on a protect target\'s long waits only, at most once per gap, each wake backed by schedstat', async () => {
    const base = makeTestCgroup('cpu');
    const victimCg = base.child('victim');
    const hogCg = base.child('sibling');
    const aboveUs = 2000;
    const signal = new RunqlatSignal({ perThread: false, host: false, ewmaAlpha: 0.5, wake: { aboveUs, min: 2, gapMs: 100 } });
    const victim = await spawnInCgroup(victimCg.path, 'taskset', ['-c', '1', toolPath('victim'), '--period-us', '4000', '--work-us', '2400', '--quiet']);
    let hog: Awaited<ReturnType<typeof spawnInCgroup>> | undefined;
    const fdsBefore = readdirSync('/proc/self/fd').length;
    const events: RunqlatWakeEvent[] = [];
    try {
      const targets: Target[] = [
        { name: 'victim', role: 'protect', slot: 0, scope: { kind: 'cgroup', path: victimCg.path, version: 1, id: cgroupId(victimCg.path) } },
        { name: 'sibling', role: 'noisy', slot: 1, scope: { kind: 'cgroup', path: hogCg.path, version: 1, id: cgroupId(hogCg.path) } },
      ];
      signal.start({ log: silentLogger, targets, cgroupVersion: 1 });
      const off = signal.onWakeEvent((ev) => events.push(ev));
      expect(off).toBeTypeOf('function');
      await sleep(500);
      const quiet = events.length;
      const delay0 = runDelayNs(victim.pid);
      const t0 = Date.now();
      hog = await spawnInCgroup(hogCg.path, 'taskset', ['-c', '1', toolPath('hog'), '--threads', '4']);
      await sleep(2000);
      const delayNs = runDelayNs(victim.pid) - delay0;
      const during = events.slice(quiet);
      console.log(
        `wakes: ${quiet} before the hogs, ${during.length} in 2 s beside them; first ${during[0] ? during[0].time - t0 : '-'} ms after the hogs were started; ` +
          `waits reported ${during.map((e) => (e.waitUs / 1000).toFixed(1)).join(', ')} ms; victim run_delay ${(delayNs / 1e6).toFixed(0)} ms`,
      );
      // Only the armed (protect) slot wakes: the hogs wait far longer than the victim, but they are not protected.
      expect(new Set(events.map((e) => e.target))).toEqual(new Set(['victim']));
      expect(during.length).toBeGreaterThanOrEqual(2);
      for (const e of during) {
        expect(e.waitUs).toBeGreaterThanOrEqual(aboveUs);
        expect(e.over).toBeGreaterThanOrEqual(2);
      }
      // The kernel's own accounting saw at least the waits the wakes reported (2 waits ≥ 2 ms per wake, at least).
      expect(delayNs).toBeGreaterThanOrEqual(during.length * 2 * aboveUs * 1000);
      // At most one wake per 100 ms of the kernel's clock.
      for (let i = 1; i < events.length; i++) expect(events[i]!.kernelNs - events[i - 1]!.kernelNs).toBeGreaterThanOrEqual(100_000_000n);
      off!();
    } finally {
      signal.close();
      if (hog) await killAndWait(hog);
      await killAndWait(victim);
      base.remove();
    }
    // The worker ends and its fds (a duplicate of the ring buffer's, an eventfd) are closed.
    for (let i = 0; i < 50 && readdirSync('/proc/self/fd').length > fdsBefore; i++) await sleep(20);
    expect(readdirSync('/proc/self/fd').length).toBeLessThanOrEqual(fdsBefore);
  });

  it('close() detaches and is idempotent', () => {
    const signal = new RunqlatSignal({ perThread: false, host: true, ewmaAlpha: 0.3 });
    signal.start({ log: silentLogger, targets: [], cgroupVersion: 1 });
    signal.close();
    signal.close();
    expect(signal.attachedAs?.kind).toBe('tp_btf');
  });
});
