/**
 * What every BPF-backed signal shares: the object it loaded, the hook variant that worked and the programs attached,
 * and the first steps of `start` (slot capacity, the host aggregate's slot, the config's target filter).
 */
import type { Logger } from '../core/log.js';
import type { SignalContext, SlotCapacity, Target } from '../core/types.js';
import type { BpfObject } from '../bpf/object.js';
import type { Loaded } from '../bpf/probe.js';
import { capacityFor, targetFilter } from './membership.js';

export abstract class BpfSignal<K extends string> {
  abstract readonly name: string;
  protected obj?: BpfObject;
  protected log?: Logger;
  protected targets: Target[] = [];
  /** Where the host aggregate lives: one past the last slot reserved for targets. */
  protected hostSlot = 0;
  protected kind?: K;
  protected programNames: readonly string[] = [];

  get attachedAs(): { kind: K; programs: readonly string[] } | undefined {
    return this.kind ? { kind: this.kind, programs: [...this.programNames] } : undefined;
  }

  /** The BPF programs attached, for per-program cost (run_time_ns / run_cnt). Empty before start and after close. */
  programs(): { name: string; fd: number }[] {
    const obj = this.obj;
    return obj ? this.programNames.map((name) => ({ name, fd: obj.programFd(name) })) : [];
  }

  /**
   * The first steps of `start`: the slots this signal may use, and its `.rodata.cfg` of `cfgSize` bytes, which begins
   * with the target filter (whether targets are matched by cgroup, by process, and the host aggregate).
   */
  protected begin(
    ctx: SignalContext,
    cfgSize: number,
    host: boolean,
    cgroupVersion = ctx.cgroupVersion,
  ): { capacity: SlotCapacity; cfg: Buffer; log: Logger } {
    const capacity = capacityFor(ctx, this.name);
    this.hostSlot = capacity.slots;
    const log = (this.log = ctx.log.child({ signal: this.name }));
    this.targets = ctx.targets;
    const cfg = Buffer.alloc(cfgSize);
    targetFilter(capacity, cgroupVersion, host).copy(cfg, 0);
    return { capacity, cfg, log };
  }

  /** Keeps what `loadFirstWorking` loaded and attached; returns its object. */
  protected attached(loaded: Loaded<K>): BpfObject {
    this.obj = loaded.obj;
    this.kind = loaded.kind;
    this.programNames = loaded.programs;
    return loaded.obj;
  }
}
