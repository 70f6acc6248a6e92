/**
 * `ebpf-tuner check`: every requirement of the agent, probed on this host, each with the fix when it is missing.
 * Required items decide the exit status; optional ones say which feature they enable.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { release } from 'node:os';
import type { Logger } from '../core/log.js';
import { silentLogger } from '../core/log.js';
import { detectLayout, type CgroupLayout } from '../cgroup/layout.js';

export interface CheckItem {
  name: string;
  ok: boolean;
  required: boolean;
  detail: string;
  fix?: string;
}

export interface CheckReport {
  ok: boolean;
  kernel: string;
  items: CheckItem[];
  cgroup?: CgroupLayout;
}

const CAP_SYS_ADMIN = 21;
const CAP_PERFMON = 38;
const CAP_BPF = 39;

function capEff(): bigint {
  const m = /^CapEff:\s*([0-9a-f]+)/m.exec(readFileSync('/proc/self/status', 'utf8'));
  return m ? BigInt('0x' + m[1]) : 0n;
}

function has(caps: bigint, bit: number): boolean {
  return (caps & (1n << BigInt(bit))) !== 0n;
}

export async function runCheck(log: Logger = silentLogger): Promise<CheckReport> {
  const items: CheckItem[] = [];
  const add = (i: CheckItem): void => void items.push(i);

  const caps = capEff();
  const bpfOk = has(caps, CAP_SYS_ADMIN) || (has(caps, CAP_BPF) && has(caps, CAP_PERFMON));
  add({
    name: 'privileges',
    ok: bpfOk,
    required: true,
    detail: `uid ${process.getuid?.() ?? '?'}; CAP_BPF ${has(caps, CAP_BPF) ? 'yes' : 'no'}, CAP_PERFMON ${has(caps, CAP_PERFMON) ? 'yes' : 'no'}, CAP_SYS_ADMIN ${has(caps, CAP_SYS_ADMIN) ? 'yes' : 'no'}`,
    fix: 'run as root, or grant CAP_BPF, CAP_PERFMON, CAP_SYS_RESOURCE, CAP_SYS_NICE and CAP_DAC_OVERRIDE (CAP_SYS_ADMIN before 5.8)',
  });

  /** A kernel build option the agent cannot run without, seen as a file it adds; true when the file exists. */
  const kernelFile = (name: string, file: string, detail: { present: string; missing: string }, fix: string): boolean => {
    const ok = existsSync(file);
    add({ name, ok, required: true, detail: ok ? detail.present : detail.missing, fix });
    return ok;
  };
  const btf = kernelFile(
    'btf',
    '/sys/kernel/btf/vmlinux',
    { present: '/sys/kernel/btf/vmlinux present', missing: '/sys/kernel/btf/vmlinux missing' },
    'use a kernel built with CONFIG_DEBUG_INFO_BTF=y (most distribution kernels since 5.4)',
  );
  kernelFile(
    'sched_info',
    '/proc/self/schedstat',
    { present: 'CONFIG_SCHED_INFO on (/proc/self/schedstat)', missing: 'no /proc/self/schedstat' },
    'use a kernel with CONFIG_SCHED_INFO=y (set by CONFIG_SCHEDSTATS or CONFIG_TASK_DELAY_ACCT)',
  );

  let libbpfOk = false;
  try {
    const { bpf } = await import('../bpf/libbpf.js');
    const v = `${bpf.libbpf_major_version()}.${bpf.libbpf_minor_version()}`;
    libbpfOk = Number(bpf.libbpf_major_version()) >= 1;
    add({ name: 'libbpf', ok: libbpfOk, required: true, detail: `libbpf ${v}`, fix: 'install libbpf 1.0 or newer (apt-get install libbpf1)' });
  } catch (e) {
    add({ name: 'libbpf', ok: false, required: true, detail: (e as Error).message, fix: 'apt-get install libbpf1' });
  }

  if (libbpfOk && bpfOk && btf) {
    const { probe } = await import('../bpf/probe.js');
    const kinds = [
      ['tp_btf', 'BTF-typed tracepoints (v5.5+): the cheapest way to run the sched programs'],
      ['raw_tp', 'raw tracepoints (v4.17+): the fallback for the sched programs'],
      ['tracepoint', 'classic tracepoints: syscall-level signals'],
      ['fentry', 'fentry/fexit (v5.5+): optional, not needed by any default signal'],
      ['kprobe', 'kprobes: optional, not needed by any default signal'],
    ] as const;
    const results = new Map<string, boolean>();
    for (const [kind, what] of kinds) {
      try {
        const r = probe(kind, log);
        results.set(kind, r.ok);
        add({ name: `attach:${kind}`, ok: r.ok, required: false, detail: r.ok ? `works — ${what}` : `unavailable: ${r.error}` });
      } catch (e) {
        results.set(kind, false);
        add({ name: `attach:${kind}`, ok: false, required: false, detail: (e as Error).message, fix: 'build the BPF objects: scripts/setup.sh' });
      }
    }
    add({
      name: 'attach:sched',
      ok: results.get('tp_btf') === true || results.get('raw_tp') === true,
      required: true,
      detail: 'the sched programs need tp_btf or raw_tp',
      fix: 'use a kernel with BTF and raw tracepoints (v4.17+, v5.5+ for tp_btf)',
    });
    const maps = probe('ringbuf_task_storage', log);
    add({
      name: 'maps:ringbuf+task_storage',
      ok: maps.ok,
      required: false,
      detail: maps.ok ? 'BPF ring buffer (v5.8+) and task storage (v5.11+) work' : `unavailable: ${maps.error}`,
    });
    try {
      const { enableBpfStats } = await import('../bpf/stats.js');
      const off = enableBpfStats();
      off();
      add({ name: 'bpf_stats', ok: true, required: false, detail: 'BPF_ENABLE_STATS works: per-program run time can be measured' });
    } catch (e) {
      add({ name: 'bpf_stats', ok: false, required: false, detail: (e as Error).message, fix: 'sysctl kernel.bpf_stats_enabled=1 (v5.1+)' });
    }
  }

  let layout: CgroupLayout | undefined;
  try {
    layout = detectLayout();
    const where = Object.entries(layout.controllers)
      .filter(([n]) => ['cpu', 'cpuacct', 'cpuset', 'memory', 'pids', 'io', 'blkio'].includes(n))
      .map(([n, c]) => `${n}: v${c.version} at ${c.mount}`)
      .join('; ');
    const cpu = layout.controllers.cpu;
    add({
      name: 'cgroup',
      ok: cpu !== undefined,
      required: true,
      detail: `${layout.mode}${layout.unified ? ` (v2 at ${layout.unified})` : ''} — ${where || 'no controllers found'}`,
      fix: cpu ? undefined : 'mount the cpu controller (cgroup v2 with "+cpu" in cgroup.subtree_control, or a v1 cpu hierarchy)',
    });
  } catch (e) {
    add({ name: 'cgroup', ok: false, required: true, detail: (e as Error).message, fix: 'mount cgroupfs at /sys/fs/cgroup' });
  }

  const psi = ['cpu', 'memory', 'io'].filter((r) => {
    try {
      readFileSync(`/proc/pressure/${r}`, 'utf8');
      return true;
    } catch {
      return false;
    }
  });
  add({
    name: 'psi',
    ok: psi.length === 3,
    required: false,
    detail: psi.length ? `/proc/pressure: ${psi.join(', ')}` : 'no /proc/pressure',
    fix: psi.length === 3 ? undefined : 'boot with psi=1 (CONFIG_PSI=y, v4.20+)',
  });

  let nodes: string[] = [];
  try {
    nodes = readdirSync('/sys/devices/system/node').filter((n) => /^node\d+$/.test(n));
  } catch {
    // no NUMA sysfs: a single node
  }
  add({ name: 'numa', ok: true, required: false, detail: `${Math.max(1, nodes.length)} node(s)${nodes.length > 1 ? '' : ' — numa_rebalance has nothing to do'}` });

  let statsSysctl = '?';
  try {
    statsSysctl = readFileSync('/proc/sys/kernel/bpf_stats_enabled', 'utf8').trim();
  } catch {
    // older kernel
  }
  add({ name: 'bpf_stats_sysctl', ok: true, required: false, detail: `kernel.bpf_stats_enabled=${statsSysctl}` });

  return { ok: items.every((i) => !i.required || i.ok), kernel: release(), items, cgroup: layout };
}

export function formatCheck(r: CheckReport): string {
  const lines = [`kernel ${r.kernel}`];
  for (const i of r.items) {
    const mark = i.ok ? 'ok  ' : i.required ? 'FAIL' : 'no  ';
    lines.push(`${mark} ${i.name.padEnd(26)} ${i.detail}${!i.ok && i.fix ? `\n       fix: ${i.fix}` : ''}`);
  }
  lines.push(r.ok ? 'ready: the agent can run with eBPF here' : 'not ready: fix the FAIL lines above');
  return lines.join('\n');
}
