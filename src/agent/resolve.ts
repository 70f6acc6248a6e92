/**
 * Turns configured targets into live ones, and keeps them live: each cgroup must exist on a cgroup filesystem and lie
 * in the hierarchy the cpu controller is attached to (that is where run-queue attribution and cpu knobs live); each
 * pid must exist. Process targets find their processes again as they come and go; a cgroup pattern makes every
 * matching cgroup a target of its own, picked up when it appears and let go of when it vanishes.
 *
 * The kernel side's per-target arrays are sized once, at start: each configured target owns a fixed range of slots —
 * one, or `max_matches` for a pattern — so a match that appears later takes a free slot in its pattern's range.
 * Errors name the target, the path or pid, and the fix — and are raised before anything is written.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join, relative, resolve as resolvePath } from 'node:path';
import { minimatch } from 'minimatch';
import { errnoCode, TunerError } from '../core/errors.js';
import type { ProcessSource, Role, SlotCapacity, Target } from '../core/types.js';
import { findProcesses, readPidfile } from './processes.js';
import type { Config, TargetConfig } from '../config/types.js';
import { cgroupId, cgroupVersionOf, isPathUnder, type CgroupLayout, type CgroupProbe } from '../cgroup/layout.js';

export function cpuHierarchy(layout: CgroupLayout): { version: 1 | 2; mount: string } {
  const cpu = layout.controllers.cpu;
  if (!cpu) {
    throw new TunerError(
      'CGROUP_UNSUPPORTED',
      'find the cpu controller: no cgroup hierarchy has it — fix: mount a v1 cpu hierarchy or enable "+cpu" in the v2 root cgroup.subtree_control',
    );
  }
  return cpu;
}

/** One configured `cgroup_pattern` target and the slots its matches hold. */
interface Pattern {
  name: string;
  role: Role;
  /** The pattern's leading components without wildcards: where matching starts, and what match names are relative to. */
  prefix: string;
  /** The components below the prefix, each a literal name or a glob. */
  parts: string[];
  base: number;
  max: number;
  /** Matched cgroup path → its target. */
  held: Map<string, Target>;
  /** Matches left out because every slot was taken (reported once each). */
  overflow: Set<string>;
}

/** What one refresh changed, for the log. */
export interface TargetChanges {
  added: string[];
  removed: string[];
  /** Matches a pattern could not take: all of its slots are in use. */
  overflow: string[];
}

const hasMagic = (s: string): boolean => /[*?[\]{}]/.test(s);

export class TargetSet {
  private constructor(
    /** Every configured target in config order: a resolved target, or a pattern that stands for its matches. */
    private readonly entries: (Target | Pattern)[],
    readonly capacity: SlotCapacity,
    private readonly probe: CgroupProbe,
  ) {}

  /** Resolves every configured target; throws (before anything is changed) on the first that cannot be. */
  static resolve(config: Config, layout: CgroupLayout, probe: CgroupProbe = {}): TargetSet {
    const cpu = config.targets.some((t) => t.cgroup !== undefined || t.cgroupPattern !== undefined) ? cpuHierarchy(layout) : undefined;
    const entries: (Target | Pattern)[] = [];
    let next = 0;
    config.targets.forEach((t, i) => {
      const where = `target ${t.name} (${config.source})`;
      if (t.cgroupPattern !== undefined) {
        entries.push(pattern(t, i, where, next, cpu!));
        next += t.maxMatches ?? 1;
      } else {
        entries.push(resolveOne(t, i, where, next, cpu, probe));
        next += 1;
      }
    });
    const set = new TargetSet(
      entries,
      {
        slots: next,
        cgroups: config.targets.some((t) => t.cgroup !== undefined || t.cgroupPattern !== undefined),
        pids: config.targets.some((t) => t.cgroup === undefined && t.cgroupPattern === undefined),
      },
      probe,
    );
    set.refreshPatterns();
    return set;
  }

  /** The live targets, in config order (a pattern's matches by path). */
  get list(): Target[] {
    return this.entries.flatMap((e) => (isPattern(e) ? [...e.held.values()] : [e]));
  }

  /** The patterns, for the start-up log: how many cgroups each matches now. */
  patterns(): { name: string; pattern: string; matches: number; max: number }[] {
    return this.entries.filter(isPattern).map((p) => ({ name: p.name, pattern: join(p.prefix, ...p.parts), matches: p.held.size, max: p.max }));
  }

  /**
   * Finds every target's members again: process targets re-read their pidfile, re-match their name, follow children
   * (pid lists drop processes that exited); patterns pick up new cgroups and let go of removed ones.
   */
  refresh(): TargetChanges {
    for (const [i, e] of this.entries.entries()) {
      if (isPattern(e) || e.scope.kind !== 'pids') continue;
      const s = e.scope;
      this.entries[i] = { ...e, scope: { ...s, pids: s.source ? findProcesses(s.source) : s.pids.filter((p) => existsSync(`/proc/${p}`)) } };
    }
    return this.refreshPatterns();
  }

  private refreshPatterns(): TargetChanges {
    const changes: TargetChanges = { added: [], removed: [], overflow: [] };
    for (const p of this.entries.filter(isPattern)) {
      const now = new Set(matchCgroups(p.prefix, p.parts));
      for (const [path, t] of p.held) {
        if (now.has(path)) continue;
        p.held.delete(path);
        changes.removed.push(t.name);
      }
      for (const path of p.overflow) if (!now.has(path)) p.overflow.delete(path);
      const used = new Set([...p.held.values()].map((t) => t.slot));
      for (const path of [...now].sort()) {
        if (p.held.has(path)) continue;
        let slot = p.base;
        while (slot < p.base + p.max && used.has(slot)) slot++;
        if (slot >= p.base + p.max) {
          if (!p.overflow.has(path)) changes.overflow.push(path);
          p.overflow.add(path);
          continue;
        }
        let id: bigint;
        let version: 1 | 2;
        try {
          id = cgroupId(path);
          version = cgroupVersionOf(path, this.probe);
        } catch {
          continue; // removed while we looked: the next refresh will not see it either
        }
        used.add(slot);
        const t: Target = { name: `${p.name}/${relative(p.prefix, path)}`, role: p.role, slot, scope: { kind: 'cgroup', path, version, id } };
        p.held.set(path, t);
        changes.added.push(t.name);
      }
    }
    return changes;
  }
}

function isPattern(e: Target | Pattern): e is Pattern {
  return 'held' in e;
}

function resolveOne(
  t: TargetConfig,
  index: number,
  where: string,
  slot: number,
  cpu: { mount: string } | undefined,
  probe: CgroupProbe,
): Target {
  if (t.cgroup !== undefined) {
    const path = resolvePath(t.cgroup);
    if (!existsSync(path)) {
      throw new TunerError('CGROUP_NOT_FOUND', `resolve ${where}: cgroup ${path} does not exist — fix: create it (mkdir) or correct targets[${index}].cgroup`);
    }
    const version = cgroupVersionOf(path, probe);
    if (cpu && !isPathUnder(path, cpu.mount)) {
      throw new TunerError(
        'CGROUP_UNSUPPORTED',
        `resolve ${where}: ${path} is outside the cpu controller's hierarchy (${cpu.mount}) — fix: name the target's cgroup under ${cpu.mount}`,
      );
    }
    return { name: t.name, role: t.role, slot, scope: { kind: 'cgroup', path, version, id: cgroupId(path) } };
  }
  for (const pid of t.pids ?? []) {
    if (!existsSync(`/proc/${pid}`)) {
      throw new TunerError('PID_NOT_FOUND', `resolve ${where}: process ${pid} does not exist — fix: correct targets[${index}].pids or use a cgroup target for short-lived processes`);
    }
  }
  if (t.pidfile !== undefined) {
    // A pidfile that names nothing at start is a config that cannot mean what it says: refused like one (exit 2),
    // so a typo in the path is not mistaken for a service that is merely down for now.
    const problem = pidfileProblem(t.pidfile);
    if (problem !== undefined) {
      throw new TunerError(
        'CONFIG_INVALID',
        `resolve ${where}: targets[${index}].pidfile ${t.pidfile} ${problem} — fix: start the service first, or correct targets[${index}].pidfile`,
      );
    }
  }
  // A comm target may match nothing yet: it follows processes of that name as they start.
  const source: ProcessSource = { pids: t.pids, pidfile: t.pidfile, comm: t.comm, children: t.children };
  return { name: t.name, role: t.role, slot, scope: { kind: 'pids', pids: findProcesses(source), source } };
}

function pattern(t: TargetConfig, index: number, where: string, base: number, cpu: { mount: string }): Pattern {
  const parts = resolvePath(t.cgroupPattern!).split('/').filter(Boolean);
  const fixed = parts.findIndex(hasMagic);
  const prefix = '/' + parts.slice(0, fixed < 0 ? parts.length : fixed).join('/');
  if (!isPathUnder(prefix, cpu.mount)) {
    throw new TunerError(
      'CGROUP_UNSUPPORTED',
      `resolve ${where}: ${t.cgroupPattern} is outside the cpu controller's hierarchy (${cpu.mount}) — fix: write a pattern under ${cpu.mount}`,
    );
  }
  if (!existsSync(prefix)) {
    throw new TunerError(
      'CGROUP_NOT_FOUND',
      `resolve ${where}: ${prefix}, the fixed part of cgroup_pattern ${t.cgroupPattern}, does not exist — fix: create it, or correct targets[${index}].cgroup_pattern`,
    );
  }
  return { name: t.name, role: t.role, prefix, parts: fixed < 0 ? [] : parts.slice(fixed), base, max: t.maxMatches ?? 1, held: new Map(), overflow: new Set() };
}

/** Every directory below `dir` whose path components match `parts` (literal names or globs), one per level. */
function matchCgroups(dir: string, parts: readonly string[]): string[] {
  if (parts.length === 0) return existsSync(dir) ? [dir] : [];
  const [head, ...rest] = parts;
  if (!hasMagic(head)) return matchCgroups(join(dir, head), rest);
  let names: string[];
  try {
    names = readdirSync(dir, { withFileTypes: true })
      .filter((e) => e.isDirectory() && minimatch(e.name, head))
      .map((e) => e.name);
  } catch {
    return []; // removed while we walk
  }
  return names.flatMap((n) => matchCgroups(join(dir, n), rest));
}

/** Why a pidfile names no running process, or undefined when it does. */
function pidfileProblem(file: string): string | undefined {
  if (readPidfile(file) !== undefined) return undefined;
  let text: string;
  try {
    text = readFileSync(file, 'utf8').trim();
  } catch (e) {
    const code = errnoCode(e);
    return code === 'ENOENT' ? 'does not exist' : `cannot be read (${code ?? String(e)})`;
  }
  return /^\d+$/.test(text) ? `names process ${text}, which is not running` : `holds ${JSON.stringify(text.slice(0, 40))}, not a process id`;
}

/** Resolves the configured targets as they are now (see TargetSet.resolve). */
export function resolveTargets(config: Config, layout: CgroupLayout, probe: CgroupProbe = {}): Target[] {
  return TargetSet.resolve(config, layout, probe).list;
}

/**
 * Every configured target that TargetSet.resolve would refuse now, each with its index and the error it would throw
 * (resolve stops at the first), for `ebpf-tuner config check`. Reads the cgroup tree, /proc and pidfiles; writes
 * nothing. A pattern that matches nothing yet, or a comm that names no process yet, is not a problem (run accepts both).
 */
export function targetProblems(config: Config, layout: CgroupLayout, probe: CgroupProbe = {}): { index: number; error: unknown }[] {
  const problems: { index: number; error: unknown }[] = [];
  let cpu: { mount: string } | undefined;
  let noCpu: unknown;
  if (config.targets.some((t) => t.cgroup !== undefined || t.cgroupPattern !== undefined)) {
    try {
      cpu = cpuHierarchy(layout);
    } catch (e) {
      noCpu = e;
    }
  }
  config.targets.forEach((t, i) => {
    const where = `target ${t.name} (${config.source})`;
    try {
      if (noCpu !== undefined && (t.cgroup !== undefined || t.cgroupPattern !== undefined)) throw noCpu;
      if (t.cgroupPattern !== undefined) pattern(t, i, where, 0, cpu!);
      else resolveOne(t, i, where, 0, cpu, probe);
    } catch (e) {
      problems.push({ index: i, error: e });
    }
  });
  return problems;
}
