/**
 * The agent: resolves targets, restores whatever a crashed run left behind, attaches the signals, and on every tick
 * collects one snapshot, publishes it, asks the decision engine what to do and hands the decisions to the executor
 * (executor.ts), which carries them out through the actions — or, in dry-run, only records them in the state
 * directory's dry-run audit (never judged: nothing changed). stop() is idempotent and puts every original value back.
 */
import type Database from 'better-sqlite3';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { channels, publish } from '../core/events.js';
import { TunerError } from '../core/errors.js';
import type { Logger } from '../core/log.js';
import type { HostSignals, Signal, Target, TargetSignals, TickSnapshot } from '../core/types.js';
import type { Config } from '../config/types.js';
import { detectLayout, type CgroupLayout, type CgroupProbe } from '../cgroup/layout.js';
import { Journal, type JournalEntry } from '../journal/journal.js';
import { restoreAll, type RestoreReport } from '../journal/restore.js';
import { KnobClaims, StateDirLock } from '../journal/ownership.js';
import { KnobWriter, defaultDenyList, knobIO } from '../actions/knob-writer.js';
import { ACTION_BOUNDS, ACTIONS } from '../actions/index.js';
import { AuditLog, type AuditRecord } from '../audit/audit.js';
import { HoldTable } from '../audit/holds.js';
import { auditTime } from '../audit/explain.js';
import { ClosedLoop } from '../engine/closed-loop.js';
import { DecisionEngine } from '../engine/engine.js';
import type { Hold, HoldChange } from '../engine/holds.js';
import { Guardrails } from '../engine/guardrails.js';
import type { KnobValues } from '../engine/strategy.js';
import { createStrategies } from '../engine/registry.js';
import { createSignals } from '../signals/index.js';
import { sharedMembership } from '../signals/membership.js';
import { waitShare } from '../signals/runqlat/runqlat.js';
import { Executor } from './executor.js';
import { TargetSet } from './resolve.js';
import { WriteScope } from './write-scope.js';
import { DeviceScope, resolveDevices } from '../block/devices.js';

/** Written in the state directory while a (non-dry) run is alive, for `ebpf-tuner status`. */
export const PID_FILE = 'agent.pid';

export interface AgentOptions {
  config: Config;
  log: Logger;
  stateDir: string;
  dryRun?: boolean;
  /**
   * A dry run keeps its decisions in `<stateDir>/dry-run.db` for `log` and `explain` (the default). False: a
   * throwaway run (`top`, `record`) that decides only to show what it would do, and keeps nothing.
   */
  dryRunAudit?: boolean;
  /** Injected for tests (a fake cgroup2 tree); probed when absent. */
  layout?: CgroupLayout;
  probe?: CgroupProbe;
  /** Injected for tests; built from the config when absent. */
  signals?: Signal[];
  /** Creates or checks the state directory, after targets resolve and before the journal opens. */
  prepareStateDir?: (dir: string) => void;
  /** Where host-wide knob claims are kept (see journal/ownership.ts); default EBPF_TUNER_RUN_DIR or /run/ebpf-tuner. */
  runDir?: string;
}

/** How many ticks between rescans of target membership (new child cgroups, exited pids). */
const MEMBERSHIP_EVERY_TICKS = 5;
/** How many ticks between info-level summaries of the signals (every tick is logged at debug). */
const SUMMARY_EVERY_TICKS = 10;

export class Agent {
  readonly config: Config;
  readonly dryRun: boolean;
  private readonly dryRunAudit: boolean;
  private readonly log: Logger;
  private readonly stateDir: string;
  private layout?: CgroupLayout;
  private readonly probe: CgroupProbe;
  private readonly injectedSignals?: Signal[];
  private readonly prepareStateDir?: (dir: string) => void;
  private readonly runDir?: string;
  private stateLock?: StateDirLock;
  private claims?: KnobClaims;
  private targetSet?: TargetSet;
  private targets: Target[] = [];
  private signals: Signal[] = [];
  private journal?: Journal;
  private tempStateDir?: string;
  private dryRunDb?: Database.Database;
  private writer?: KnobWriter;
  private audit?: AuditLog;
  private engine?: DecisionEngine;
  private guardrails?: Guardrails;
  private timer?: NodeJS.Timeout;
  private ticks = 0;
  private writeScope?: WriteScope;
  private lastTick = 0;
  private stopping?: Promise<RestoreReport | undefined>;
  private started = false;
  private executor?: Executor;
  /** Where `status` reads the holds from; a real run only. */
  private holdTable?: HoldTable;
  private readonly unwake: (() => void)[] = [];
  private closedLoop?: ClosedLoop;
  /** The last snapshot, for the HTTP API and `top`. */
  last?: TickSnapshot;
  /** What the agent is doing now; also published on the lifecycle channel as it changes. */
  lifecycle: 'starting' | 'ready' | 'stopping' | 'stopped' = 'starting';
  /** What start() restored from a previous run. */
  recovered?: RestoreReport;

  constructor(opts: AgentOptions) {
    this.config = opts.config;
    this.log = opts.log;
    this.stateDir = opts.stateDir;
    this.dryRun = opts.dryRun === true;
    this.dryRunAudit = opts.dryRunAudit !== false;
    this.layout = opts.layout;
    this.probe = opts.probe ?? {};
    this.injectedSignals = opts.signals;
    this.prepareStateDir = opts.prepareStateDir;
    this.runDir = opts.runDir;
  }

  get targetList(): readonly Target[] {
    return this.targets;
  }

  get ready(): boolean {
    return this.started && !this.stopping;
  }

  get paused(): boolean {
    return this.guardrails?.paused ?? false;
  }

  /** One decision of this run's audit trail and the later ones that refer to it (what `explain ID` shows). */
  decision(id: string): { decision: AuditRecord; related: AuditRecord[] } | undefined {
    const rec = this.audit?.get(id);
    if (!rec || !this.audit) return undefined;
    const mark = (r: AuditRecord): AuditRecord => (this.dryRunDb ? { ...r, dryRun: true } : r);
    return { decision: mark(rec), related: this.audit.related(id).map(mark) };
  }

  pause(reason = 'paused by request'): void {
    this.guardrails?.pause(reason);
    this.log.warn({ reason }, 'acting paused: every change is reverted and no new one is made');
    this.writer?.restoreAll();
  }

  resume(): void {
    this.guardrails?.resume();
    this.log.info('acting resumed');
  }

  /** Every knob change the journal knows of: in effect (active) first, then recently restored or overridden. */
  changes(): JournalEntry[] {
    if (!this.journal?.isOpen) return [];
    const all = this.journal.all();
    return [...all.filter((e) => e.state === 'active'), ...all.filter((e) => e.state !== 'active').slice(-50)];
  }

  /** The changes a strategy keeps in effect on purpose, with why and since when (engine/holds.ts). */
  holds(): Hold[] {
    return this.engine?.holds() ?? [];
  }

  /** Put one knob back to its original now (an operator's request). False when no change of ours is in effect there. */
  revert(knobId: string): boolean {
    if (!this.writer || this.journal?.get(knobId)?.state !== 'active') return false;
    const item = this.writer.restore(knobId);
    this.log.info({ knob: knobId, outcome: item?.outcome }, 'knob reverted on request');
    return item !== undefined && (item.outcome === 'restored' || item.outcome === 'vanished');
  }

  /** Every target's knob values in each action's units, where the action can read them (for recordings). */
  knobValues(): Record<string, Record<string, KnobValues>> {
    const out: Record<string, Record<string, KnobValues>> = {};
    for (const t of this.targets) {
      for (const a of ACTIONS) {
        try {
          (out[t.name] ??= {})[a.name] = a.read(t);
        } catch {
          // not applicable to this target (e.g. a pid target for a cgroup knob)
        }
      }
    }
    return out;
  }

  /** The BPF programs attached by every signal. */
  programs(): { name: string; fd: number }[] {
    return this.signals.flatMap((s) => s.programs?.() ?? []);
  }

  /** Everything up to attaching: a failure here leaves the host exactly as it was. */
  async start(): Promise<void> {
    const layout = (this.layout ??= detectLayout());
    // Resolution first: a bad target is reported before anything is written, restored or attached.
    this.targetSet = TargetSet.resolve(this.config, layout, this.probe);
    this.targets = this.targetSet.list;
    // Devices too: a name that is not a whole disk of this host is a config error, found before anything changes.
    const devices = new DeviceScope(resolveDevices(this.config.devices, {}, this.config.source));
    for (const p of this.targetSet.patterns()) {
      this.log.info(p, p.matches ? 'cgroup pattern matches' : 'cgroup pattern matches nothing yet; matching cgroups are picked up as they appear');
    }

    if (this.dryRun) {
      // Dry-run touches no knob, no journal and no lock of a real run, so it may run beside a live agent on the same
      // state directory. Its decisions go to a database of their own there (for `log` and `explain`); the writer
      // reads an empty journal in a throwaway directory, in which nothing is ever written.
      if (this.dryRunAudit) {
        this.prepareStateDir?.(this.stateDir);
        this.dryRunDb = AuditLog.openDryRun(this.stateDir);
      }
      this.tempStateDir = mkdtempSync(join(tmpdir(), 'ebpf-tuner-dry-'));
      this.journal = Journal.open(this.tempStateDir, this.log);
    } else {
      this.prepareStateDir?.(this.stateDir);
      // One agent per state directory: a second one would restore knobs under the live one's feet.
      this.stateLock = StateDirLock.acquire(this.stateDir, 'run the agent');
      this.claims = new KnobClaims({ stateDir: this.stateDir, ...(this.runDir !== undefined ? { runDir: this.runDir } : {}) });
      this.journal = Journal.open(this.stateDir, this.log);
      writeFileSync(join(this.stateDir, PID_FILE), `${process.pid}\n`, { mode: 0o600 });
      if (this.journal.active().length > 0) {
        // knobIO: thread affinities and other non-file knobs are restored through their own schemes.
        this.recovered = restoreAll(this.journal, this.log, { io: knobIO(), claims: this.claims });
        this.log.warn(
          {
            restored: this.recovered.restored.length,
            overridden: this.recovered.overridden.length,
            vanished: this.recovered.vanished.length,
            failed: this.recovered.failed.length,
          },
          'restored knobs left changed by a previous run',
        );
      }
    }
    this.audit = new AuditLog(this.dryRunDb ?? this.journal.db);
    if (!this.dryRun) {
      // A previous run's holds ended with it.
      this.holdTable = new HoldTable(this.journal.db);
      this.holdTable.replace([]);
    }
    if (!this.dryRun) for (const a of ACTIONS) a.start?.({ stateDir: this.stateDir, dryRun: this.dryRun });

    this.writeScope = new WriteScope(layout);
    const { cgroupDirs, pids } = this.writeScope.of(this.targets);
    const deny = [
      ...defaultDenyList(layout),
      ...this.config.guardrails.denyCgroups.map((p) => ({ path: p, subtree: true, reason: 'in guardrails.deny_cgroups' })),
    ];
    this.writer = new KnobWriter({
      journal: this.journal,
      log: this.log,
      dryRun: this.dryRun,
      scope: cgroupDirs,
      pids,
      devices: devices.devices,
      deny,
      layout,
      ...(this.claims !== undefined ? { claims: this.claims } : {}),
    });

    const closedLoop = (this.closedLoop = new ClosedLoop(this.config.closedLoop));
    this.guardrails = new Guardrails(this.config.guardrails, ACTION_BOUNDS, {
      cgroupOf: (name) => {
        const t = this.targets.find((x) => x.name === name);
        return t?.scope.kind === 'cgroup' ? t.scope.path : undefined;
      },
      penalties: closedLoop,
      devices,
    });
    this.engine = new DecisionEngine({
      strategies: createStrategies(this.config, { actions: ACTIONS, stateDir: this.stateDir, dryRun: this.dryRun, log: this.log }),
      guardrails: this.guardrails,
      closedLoop,
      // One strategy failing (a learner's model, a rule on an unexpected snapshot) must not stop the others.
      onStrategyError: (strategy, error) => this.log.error({ strategy, err: error }, 'strategy failed; skipped this tick'),
      idPrefix: Date.now().toString(36),
    });

    this.executor = new Executor({
      log: this.log,
      dryRun: this.dryRun,
      journal: this.journal,
      writer: this.writer,
      audit: this.audit,
      engine: this.engine,
      target: (name: string) => this.target(name),
    });

    const cgroupVersion = layout.controllers.cpu?.version ?? (layout.unified ? 2 : 1);
    this.signals = this.injectedSignals ?? createSignals(this.config, this.targets.length === 0);
    try {
      for (const s of this.signals) await s.start({ log: this.log, targets: this.targets, cgroupVersion, capacity: this.targetSet.capacity });
    } catch (e) {
      for (const s of this.signals) s.close();
      throw e;
    }
    this.started = true;
    this.lastTick = Date.now();
    this.timer = setInterval(() => this.tickSafely(), this.config.tickMs);
    // A pressure spike seen by a trigger is acted on now, not at the next tick; at most one early tick per 100 ms so a
    // storm of triggers cannot turn into a busy loop.
    for (const s of this.signals) {
      const off = s.onWake?.((reason) => {
        if (!this.started || this.stopping || Date.now() - this.lastTick < 100) return;
        // Early ticks detect; a change being judged is judged over regular ticks, whose windows match the ones its
        // baseline was taken from, not over the short windows a burst of wakes would cut.
        if ((this.closedLoop?.awaitingVerdict ?? 0) > 0) return;
        this.log.debug({ signal: s.name, reason }, 'early tick');
        this.tickSafely();
      });
      if (off) this.unwake.push(off);
    }
    for (const why of sharedMembership(this.targets)) this.log.warn({ why }, 'targets overlap: one of them does not see some tasks');
    if (this.config.policy.ioPrefetch.enabled && this.config.targets.length > 0) {
      // Said once: every refused raise is recorded too, but the reason it can never act belongs at the start.
      if (devices.devices.length === 0) {
        this.log.info(
          { devices: [] },
          'io_prefetch only observes: no devices are listed, so no read_ahead_kb is changed — fix: list the disks it may tune under devices:, e.g. devices: [sda]',
        );
      } else {
        this.log.info({ devices: devices.devices.map((d) => `${d.name} (${d.dev})`) }, 'io_prefetch may change the read-ahead of these devices only');
      }
    }
    this.lifecycle = 'ready';
    publish(channels.lifecycle, () => ({ state: 'ready' }));
    this.log.info(
      {
        targets: this.targets.map((t) => `${t.name}:${t.role}`),
        tickMs: this.config.tickMs,
        dryRun: this.dryRun,
        config: this.config.source,
      },
      this.targets.length ? 'agent running' : 'agent running with no targets: observing the host only',
    );
  }

  private tickSafely(): void {
    try {
      this.tick(Date.now());
    } catch (e) {
      // One bad tick (a target vanished mid-read, a transient EBUSY) must not take the agent down.
      this.log.error({ err: e }, 'tick failed');
    }
  }

  /** One tick: collect → publish → decide → act. Public so tests can drive time. */
  tick(now: number): TickSnapshot {
    const out: Record<string, TargetSignals> = {};
    for (const t of this.targets) out[t.name] = { name: t.name, role: t.role };
    for (const s of this.signals) s.collect(now, out);
    const snapshot: TickSnapshot = { time: now, windowMs: now - this.lastTick, targets: out };
    const host: HostSignals = {};
    for (const s of this.signals) {
      const h = s.hostWindow?.();
      if (h !== undefined) host[s.name] = h;
    }
    if (Object.keys(host).length) snapshot.host = host;
    this.lastTick = now;
    this.last = snapshot;
    this.ticks++;
    publish(channels.tick, () => snapshot);
    this.log.debug({ tick: this.ticks, targets: summarize(snapshot) }, 'tick');
    if (this.ticks % SUMMARY_EVERY_TICKS === 0) this.log.info({ targets: summarize(snapshot), host: summarizeHost(snapshot) }, 'signals');

    if (this.ticks % MEMBERSHIP_EVERY_TICKS === 0) this.refreshMembership();
    if (this.engine && this.targets.length > 0) {
      const decisions = this.engine.tick({ now, snapshot, targets: this.targets, ...this.executor!.tickView() });
      for (const d of decisions) this.executor!.carryOut(d, now);
      const changes = this.engine.holdChanges;
      if (changes.length > 0) this.reportHolds(changes);
      // Rewritten on a change, and every few ticks while anything is held, so `status` reads fresh numbers.
      if (changes.length > 0 || (this.ticks % SUMMARY_EVERY_TICKS === 0 && this.holdTable !== undefined && this.engine.heldCount > 0)) {
        this.saveHolds();
      }
    }
    return snapshot;
  }

  /** Once per change of a hold's state: the log and the bus (the dashboard, the HTTP stream). */
  private reportHolds(changes: readonly HoldChange[]): void {
    for (const c of changes) {
      const h = c.hold;
      const fields = { target: h.target, action: h.action, rule: h.rule, cause: h.cause, since: auditTime(h.since) };
      if (c.kind === 'held') this.log.info({ ...fields, evidence: h.evidence }, `holding ${h.target} ${h.action}: ${h.reason}`);
      else this.log.info(fields, `no longer holding ${h.target} ${h.action} (held since ${auditTime(h.since)}: ${h.reason})`);
      publish(channels.hold, () => c);
    }
  }

  private saveHolds(): void {
    if (!this.holdTable || !this.engine) return;
    try {
      this.holdTable.replace(this.engine.holds());
    } catch (e) {
      // Only what `status` shows is lost; the tick and its decisions stand.
      this.log.warn({ err: e }, 'save holds for status: failed');
    }
  }

  private refreshMembership(): void {
    if (!this.targetSet || !this.layout) return;
    // The kernel's membership maps, the writer's scope and the target list move together.
    const changes = this.targetSet.refresh();
    this.targets = this.targetSet.list;
    if (changes.added.length || changes.removed.length) this.log.info({ added: changes.added, removed: changes.removed }, 'targets changed');
    if (changes.overflow.length) {
      this.log.warn({ cgroups: changes.overflow }, 'a cgroup pattern matches more cgroups than its max_matches; these are left out — fix: raise max_matches');
    }
    for (const s of this.signals) s.updateTargets?.(this.targets);
    const { cgroupDirs, pids } = this.writeScope!.of(this.targets);
    this.writer?.updateScope(cgroupDirs, pids);
  }

  private target(name: string): Target {
    const t = this.targets.find((x) => x.name === name);
    if (!t) throw new TunerError('INTERNAL', `find target ${name}: not configured`);
    return t;
  }

  /** Stops ticking, restores every original (unless dry-run), detaches every program. Idempotent. */
  stop(): Promise<RestoreReport | undefined> {
    this.stopping ??= (async () => {
      if (this.timer) clearInterval(this.timer);
      this.timer = undefined;
      for (const off of this.unwake.splice(0)) off();
      this.lifecycle = 'stopping';
      publish(channels.lifecycle, () => ({ state: 'stopping' }));
      let report: RestoreReport | undefined;
      try {
        if (this.writer && !this.dryRun) report = this.writer.restoreAll();
      } finally {
        for (const s of this.signals) {
          try {
            s.close();
          } catch (e) {
            this.log.error({ err: e, signal: s.name }, 'closing signal failed');
          }
        }
        try {
          if (this.journal?.isOpen) this.holdTable?.replace([]);
        } catch (e) {
          this.log.warn({ err: e }, 'clear holds: failed');
        }
        this.journal?.close();
        this.dryRunDb?.close();
        if (!this.dryRun && this.journal) rmSync(join(this.stateDir, PID_FILE), { force: true });
        // Only once every original is back (or left to its new owner): the knobs and the directory are free now.
        this.claims?.releaseAll();
        this.stateLock?.release();
        if (this.tempStateDir) rmSync(this.tempStateDir, { recursive: true, force: true });
      }
      if (report) {
        this.log.info(
          { restored: report.restored.length, overridden: report.overridden.length, vanished: report.vanished.length, failed: report.failed.length },
          'agent stopped; originals restored',
        );
      } else this.log.info('agent stopped');
      this.lifecycle = 'stopped';
      publish(channels.lifecycle, () => ({ state: 'stopped' }));
      return report;
    })();
    return this.stopping;
  }
}

function summarizeHost(s: TickSnapshot): Record<string, string> | undefined {
  const r = s.host?.runqlat;
  return r ? { runqlat: `p50=${r.p50.toFixed(0)}us p99=${r.p99.toFixed(0)}us n=${r.count}` } : undefined;
}

function summarize(s: TickSnapshot): Record<string, string> {
  const o: Record<string, string> = {};
  for (const [n, t] of Object.entries(s.targets)) {
    const r = t.runqlat;
    if (r) o[n] = `p99=${r.p99.toFixed(0)}us n=${r.count} wait=${(waitShare(r) * 100).toFixed(1)}%`;
  }
  return o;
}
