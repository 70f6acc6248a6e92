/**
 * Network signal: TCP retransmits and packet drops with the kernel's drop reason, per target and for the host.
 * The kernel half (net.bpf.c) keeps cumulative per-CPU counters per target slot and a per-CPU (slot, reason) hash;
 * each tick this reads both in one batch each, subtracts the previous tick, names the reasons from the running
 * kernel's BTF, and runs a burst detector on each slot's retransmits per tick.
 *
 * Attribution is by the socket's cgroup v2 cgroup (see net.bpf.c). `socketCgroupSlots` decides which v2 cgroup ids
 * stand for which target: a v2 target's whole subtree; for a v1 or pid target, each v2 cgroup that holds only
 * processes of that target (on hybrid hosts systemd mirrors units into both trees, so a service usually has one).
 * Everything else counts for the host only.
 */
import { readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { isTunerError, TunerError } from '../../core/errors.js';
import type { Signal, SignalContext, Target, TargetSignals } from '../../core/types.js';
import { loadFirstWorking, type AttachKind, type ProgramSet } from '../../bpf/probe.js';
import { possibleCpus } from '../../bpf/map.js';
import { cgroupId, detectLayout, isPathUnder, type CgroupLayout } from '../../cgroup/layout.js';
import { childCgroups, readIdsIfAny } from '../../cgroup/cgroup.js';
import { BurstDetector, type BurstOptions } from '../../stats/burst.js';
import { slotCount, subtreeIds, TARGET_FILTER_SIZE, u64 } from '../membership.js';
import { BpfSignal } from '../bpf-signal.js';

// Mirrors net.h.
const COUNTS_SIZE = 32; // sizeof(struct net_counts)
const REASON_KEY_SIZE = 8; // sizeof(struct net_reason_key)
const CFG_SIZE = TARGET_FILTER_SIZE; // sizeof(struct net_cfg)

export type NetHook = 'tp_btf' | 'raw_tp';
export const NET_HOOK_ORDER: readonly NetHook[] = ['tp_btf', 'raw_tp'];
const VARIANTS: Record<NetHook, ProgramSet> = {
  tp_btf: { required: ['net_retransmit_btf', 'net_drop_btf'] },
  raw_tp: { required: ['net_retransmit_raw', 'net_drop_raw'] },
};

export const DEFAULT_BTF_PATH = '/sys/kernel/btf/vmlinux';

export interface NetOptions {
  /** Aggregate every event into an extra slot (host-wide view). */
  host: boolean;
  /** Burst detection on retransmits per tick. Default: 3-tick level, 4× a slow baseline, at least 10 per tick. */
  burst?: Partial<BurstOptions>;
  /** Injected for tests; probed when absent. */
  layout?: CgroupLayout;
  /** Where the kernel's BTF is read from to name drop reasons. */
  btfPath?: string;
  /** Hook variants to try, in order; default NET_HOOK_ORDER. */
  hooks?: readonly NetHook[];
}

export interface NetBurst {
  active: boolean;
  /** Mean retransmits per tick over the detector's short window. */
  level: number;
  /** The detector's long-run retransmits per tick. */
  baseline: number;
  /** Ticks since the current burst began; 0 outside a burst. */
  ticks: number;
}

/** One tick of one slot. Counts are over the window, not per second. */
export interface NetWindow {
  /** Segments retransmitted (the kernel's RetransSegs for these sockets). */
  retransmits: number;
  /** Retransmit attempts that failed locally (kernels from v6.17 report these). */
  retransmitFailures: number;
  /** Packets freed with a drop reason. */
  drops: number;
  /** Drops by reason, named as the kernel's enum skb_drop_reason without the SKB_DROP_REASON_ prefix; non-zero only. */
  dropReasons: Record<string, number>;
  burst: NetBurst;
  /** Targets: whether any socket can be attributed to it at all (see the README). */
  attributable?: boolean;
  /** Host: events whose socket was unknown or belonged to no target. */
  unattributed?: number;
}

interface Cumulative {
  retrans: number;
  failed: number;
  drops: number;
  unattributed: number;
  reasons: Map<number, number>;
}

function newCumulative(): Cumulative {
  return { retrans: 0, failed: 0, drops: 0, unattributed: 0, reasons: new Map() };
}

/**
 * The enumerators of enum `name` in a raw BTF blob (the format of /sys/kernel/btf/vmlinux), value → name; undefined
 * when there is no such enum. Only the type and string sections are walked; nothing is resolved.
 */
export function btfEnum(btf: Buffer, name: string): Map<number, string> | undefined {
  if (btf.length < 24 || btf.readUInt16LE(0) !== 0xeb9f) {
    throw new TunerError('BPF_NOT_SUPPORTED', 'read kernel BTF: not a BTF blob (bad magic)');
  }
  const hdrLen = btf.readUInt32LE(4);
  const typeStart = hdrLen + btf.readUInt32LE(8);
  const typeEnd = typeStart + btf.readUInt32LE(12);
  const strStart = hdrLen + btf.readUInt32LE(16);
  const strEnd = strStart + btf.readUInt32LE(20);
  const strAt = (off: number): string => {
    const s = strStart + off;
    return btf.toString('latin1', s, btf.indexOf(0, s));
  };
  // Find the name once in the string section, then compare offsets: decoding every type's name would dominate.
  const needle = Buffer.from(`\0${name}\0`, 'latin1');
  const wanted = new Set<number>();
  for (let i = btf.indexOf(needle, strStart); i >= 0 && i < strEnd; i = btf.indexOf(needle, i + 1)) wanted.add(i + 1 - strStart);
  if (wanted.size === 0) return undefined;
  for (let p = typeStart; p < typeEnd; ) {
    const nameOff = btf.readUInt32LE(p);
    const info = btf.readUInt32LE(p + 4);
    const vlen = info & 0xffff;
    const kind = (info >>> 24) & 0x1f;
    const signed = info >>> 31 === 1;
    p += 12;
    if ((kind === 6 || kind === 19) && wanted.has(nameOff)) {
      const out = new Map<number, string>();
      const size = kind === 6 ? 8 : 12;
      for (let i = 0; i < vlen; i++, p += size) {
        const lo = signed ? btf.readInt32LE(p + 4) : btf.readUInt32LE(p + 4);
        const v = kind === 6 ? lo : btf.readUInt32LE(p + 4) + btf.readInt32LE(p + 8) * 0x1_0000_0000;
        out.set(v, strAt(btf.readUInt32LE(p)));
      }
      return out;
    }
    switch (kind) {
      case 1: // INT
      case 14: // VAR
      case 17: // DECL_TAG
        p += 4;
        break;
      case 3: // ARRAY
        p += 12;
        break;
      case 4: // STRUCT
      case 5: // UNION
      case 15: // DATASEC
      case 19: // ENUM64
        p += 12 * vlen;
        break;
      case 6: // ENUM
      case 13: // FUNC_PROTO
        p += 8 * vlen;
        break;
      default: // PTR, FWD, TYPEDEF, VOLATILE, CONST, RESTRICT, FUNC, FLOAT, TYPE_TAG: no trailing data
        break;
    }
  }
  return undefined;
}

/**
 * Drop reason value → name for the running kernel, from its BTF. The numbering changes between kernel versions
 * (reasons are inserted in the middle of the enum), so a table frozen into the object would mislabel drops on any
 * other kernel; the names, like every CO-RE relocation, come from the kernel that runs the program.
 */
export function dropReasonNames(btfPath = DEFAULT_BTF_PATH): Map<number, string> {
  let btf: Buffer;
  try {
    btf = readFileSync(btfPath);
  } catch (e) {
    throw new TunerError('BPF_NOT_SUPPORTED', `read kernel BTF ${btfPath}: ${e instanceof Error ? e.message : String(e)} — drop reasons are shown as numbers`, { cause: e });
  }
  const out = new Map<number, string>();
  for (const [v, n] of btfEnum(btf, 'skb_drop_reason') ?? []) {
    if (n === 'SKB_DROP_REASON_MAX' || n === 'SKB_DROP_REASON_SUBSYS_MASK' || v < 0) continue;
    out.set(v, n.startsWith('SKB_DROP_REASON_') ? n.slice('SKB_DROP_REASON_'.length) : n.replace(/^SKB_/, ''));
  }
  return out;
}

/** The name a drop reason is reported under. Reasons of other subsystems (upper 16 bits) keep their numbers. */
export function reasonName(names: ReadonlyMap<number, string>, reason: number): string {
  const n = names.get(reason);
  if (n !== undefined) return n;
  return reason > 0xffff ? `SUBSYS_${reason >>> 16}_${reason & 0xffff}` : `REASON_${reason}`;
}

function subtreeProcs(dir: string, out: Set<number>): void {
  for (const pid of readIdsIfAny(join(dir, 'cgroup.procs'))) out.add(pid);
  for (const child of childCgroups(dir)) subtreeProcs(child, out);
}

/** The v2 cgroup directory of a process, or undefined (gone, or in no v2 cgroup under this mount). */
function v2CgroupOf(pid: number, unified: string, mountRoot: string): string | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/cgroup`, 'utf8');
  } catch {
    return undefined;
  }
  const line = text.split('\n').find((l) => l.startsWith('0::'));
  if (!line) return undefined;
  const p = line.slice(3);
  if (!isPathUnder(p, mountRoot)) return undefined;
  return join(unified, relative(mountRoot, p));
}

/**
 * Which socket cgroup ids (v2) stand for which target slot, as cgroup_slots entries (key hex → slot), and which
 * targets got any. A v2 cgroup target maps its whole subtree. A v1 or pid target maps each v2 cgroup (not the root)
 * whose processes all belong to it; a v2 cgroup shared with anything else would charge others' traffic to it.
 */
export function socketCgroupSlots(
  targets: readonly Target[],
  layout: Pick<CgroupLayout, 'unified' | 'mounts'>,
): { entries: Map<string, Buffer>; attributable: Set<string> } {
  const entries = new Map<string, Buffer>();
  const attributable = new Set<string>();
  const unified = layout.unified;
  const mountRoot = layout.mounts.find((m) => m.version === 2)?.mountRoot ?? '/';
  const put = (id: bigint, t: Target): void => {
    const k = Buffer.alloc(8);
    k.writeBigUInt64LE(id);
    const hex = k.toString('hex');
    if (entries.has(hex)) return;
    const v = Buffer.alloc(4);
    v.writeUInt32LE(t.slot);
    entries.set(hex, v);
    attributable.add(t.name);
  };
  for (const t of targets) {
    if (t.scope.kind === 'cgroup' && t.scope.version === 2) {
      for (const id of subtreeIds(t.scope.path)) put(id, t);
      continue;
    }
    if (unified === undefined) continue;
    const pids = new Set<number>();
    if (t.scope.kind === 'cgroup') subtreeProcs(t.scope.path, pids);
    else for (const p of t.scope.pids) pids.add(p);
    const dirs = new Set<string>();
    for (const pid of pids) {
      const d = v2CgroupOf(pid, unified, mountRoot);
      if (d !== undefined && d !== unified) dirs.add(d);
    }
    for (const d of dirs) {
      const members = readIdsIfAny(join(d, 'cgroup.procs'));
      if (members.length > 0 && members.every((p) => pids.has(p))) {
        try {
          put(cgroupId(d), t);
        } catch {
          // removed while we looked: nothing to attribute
        }
      }
    }
  }
  return { entries, attributable };
}

export class NetSignal extends BpfSignal<AttachKind> implements Signal {
  readonly name = 'net';
  private layout?: CgroupLayout;
  private attributable = new Set<string>();
  private names = new Map<number, string>();
  private cur = new Map<number, Cumulative>();
  private prev = new Map<number, Cumulative>();
  private readonly bursts = new Map<number, BurstDetector>();
  private lastHost?: NetWindow;

  constructor(private readonly opts: NetOptions) {
    super();
  }

  start(ctx: SignalContext): void {
    const { capacity, cfg, log } = this.begin(ctx, CFG_SIZE, this.opts.host, 2);
    this.layout = this.opts.layout ?? detectLayout();
    try {
      this.names = dropReasonNames(this.opts.btfPath);
    } catch (e) {
      log.warn({ err: e }, 'drop reasons will be reported by number');
    }
    // Sockets are matched by cgroup id whatever the target kind; pid_slots stays empty.
    cfg[1] = capacity.slots > 0 ? 1 : 0;
    cfg[2] = 0;
    const loaded = loadFirstWorking(
      'net',
      VARIANTS,
      (o) => {
        o.setRodata('.rodata.cfg', cfg);
        o.setMaxEntries('counts', slotCount(capacity));
      },
      log,
      { order: this.opts.hooks ?? NET_HOOK_ORDER, needs: 'v5.17 with BTF for drop reasons, or raw tracepoints' },
    );
    const obj = this.attached(loaded);
    const counts = obj.map('counts');
    if (counts.valueSize !== COUNTS_SIZE) {
      throw new TunerError('INTERNAL', `decode net counts: value is ${counts.valueSize} bytes, expected ${COUNTS_SIZE}`);
    }
    if (obj.map('reasons').keySize !== REASON_KEY_SIZE) {
      throw new TunerError('INTERNAL', `decode net reasons: key is ${obj.map('reasons').keySize} bytes, expected ${REASON_KEY_SIZE}`);
    }
    this.updateTargets(ctx.targets);
    this.read();
    this.swap();
    log.info(
      { attach: this.kind, targets: ctx.targets.length, attributable: [...this.attributable], host: this.opts.host },
      'net attached',
    );
  }

  /** Rewrites which socket cgroups stand for which target; run again when processes come and go. */
  updateTargets(targets: Target[]): void {
    if (!this.obj || !this.layout) return;
    this.targets = targets;
    const { entries, attributable } = socketCgroupSlots(targets, this.layout);
    this.attributable = attributable;
    this.obj.map('cgroup_slots').sync(entries);
  }

  private read(): void {
    for (const c of this.cur.values()) {
      c.retrans = c.failed = c.drops = c.unattributed = 0;
      c.reasons.clear();
    }
    const slotOf = (s: number): Cumulative => {
      let c = this.cur.get(s);
      if (!c) this.cur.set(s, (c = newCumulative()));
      return c;
    };
    const counts = this.obj!.map('counts');
    const a = counts.readAll();
    const cpuStride = counts.stride / possibleCpus;
    for (let i = 0; i < a.count; i++) {
      const c = slotOf(a.keys.readUInt32LE(i * 4));
      for (let cpu = 0; cpu < possibleCpus; cpu++) {
        const base = i * counts.stride + cpu * cpuStride;
        c.retrans += u64(a.values, base);
        c.failed += u64(a.values, base + 8);
        c.drops += u64(a.values, base + 16);
        c.unattributed += u64(a.values, base + 24);
      }
    }
    const reasons = this.obj!.map('reasons');
    const r = reasons.readAll();
    const rStride = reasons.stride / possibleCpus;
    for (let i = 0; i < r.count; i++) {
      const c = slotOf(r.keys.readUInt32LE(i * REASON_KEY_SIZE));
      const reason = r.keys.readUInt32LE(i * REASON_KEY_SIZE + 4);
      let n = 0;
      for (let cpu = 0; cpu < possibleCpus; cpu++) n += u64(r.values, i * reasons.stride + cpu * rStride);
      c.reasons.set(reason, n);
    }
  }

  private swap(): void {
    const p = this.prev;
    this.prev = this.cur;
    this.cur = p;
  }

  private burstOf(slot: number): BurstDetector {
    let b = this.bursts.get(slot);
    if (!b) {
      b = new BurstDetector({ window: 3, alpha: 0.05, k: 4, floor: 10, ...this.opts.burst });
      this.bursts.set(slot, b);
    }
    return b;
  }

  private windowOf(slot: number): NetWindow {
    const c = this.cur.get(slot) ?? newCumulative();
    const p = this.prev.get(slot) ?? newCumulative();
    const retransmits = Math.max(0, c.retrans - p.retrans);
    const dropReasons: Record<string, number> = {};
    for (const [reason, n] of c.reasons) {
      const d = n - (p.reasons.get(reason) ?? 0);
      if (d > 0) dropReasons[reasonName(this.names, reason)] = d;
    }
    const b = this.burstOf(slot);
    b.update(retransmits);
    return {
      retransmits,
      retransmitFailures: Math.max(0, c.failed - p.failed),
      drops: Math.max(0, c.drops - p.drops),
      dropReasons,
      burst: { active: b.active, level: Number.isFinite(b.level) ? b.level : 0, baseline: b.baseline ?? 0, ticks: b.duration },
    };
  }

  collect(_now: number, out: Record<string, TargetSignals>): void {
    if (!this.obj) return;
    this.read();
    for (const t of this.targets) {
      const sig = (out[t.name] ??= { name: t.name, role: t.role });
      sig.net = { ...this.windowOf(t.slot), attributable: this.attributable.has(t.name) };
    }
    if (this.opts.host) {
      const slot = this.hostSlot;
      const c = this.cur.get(slot);
      const p = this.prev.get(slot);
      this.lastHost = { ...this.windowOf(slot), unattributed: Math.max(0, (c?.unattributed ?? 0) - (p?.unattributed ?? 0)) };
    }
    this.swap();
  }

  /** The host-wide window of the last collect, when `host` is on. */
  hostWindow(): NetWindow | undefined {
    return this.lastHost;
  }

  close(): void {
    this.obj?.close();
    this.obj = undefined;
  }
}

// This signal's part of each tick snapshot, declared beside the signal so the snapshot's type grows with the list of
// signals and readers need no casts.
declare module '../../core/types.js' {
  interface TargetSignals {
    net?: NetWindow & { attributable: boolean };
  }
  interface HostSignals {
    net?: NetWindow;
  }
}
