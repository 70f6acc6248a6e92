/**
 * `ebpf-tuner config check FILE`: validate a config as `run` would at start, without running anything — like
 * `nginx -t`. Every problem is reported at once (run stops at the first), each with its key path, what is wrong and
 * the fix. It checks, in run's order: the file itself (a regular file nobody but root can change), the schema (the
 * same loader as run), and then — unless --schema-only — the config against this host as run resolves it at start:
 * targets, devices, and PSI triggers on a target. It loads no BPF, creates no state directory, binds nothing and
 * writes to no cgroup: everything here only reads.
 */
import { readFileSync, statSync } from 'node:fs';
import { resolve as resolvePath } from 'node:path';
import { targetProblems } from '../agent/resolve.js';
import { deviceProblems } from '../block/devices.js';
import { cgroupVersionOf, detectLayout, type CgroupLayout } from '../cgroup/layout.js';
import { isTunerError } from '../core/errors.js';
import { ConfigError, keyPosition, loadConfig, type ConfigIssue } from '../config/load.js';
import { snakeCase } from '../config/schema.js';
import type { Config, TargetConfig } from '../config/types.js';
import { assertSafeConfigFile } from '../security/perms.js';

export interface ConfigSummary {
  targets: number;
  /** How many targets of each kind: cgroup, cgroup_pattern, pids, pidfile, comm. */
  targetKinds: Record<string, number>;
  devices: number;
  tickMs: number;
  /** The policy rules that are on, by their config key. */
  rules: string[];
  /** How many rules the policy section has, on or off. */
  ruleCount: number;
  strategy: string;
  psiTriggers: number;
}

export interface ConfigCheckReport {
  ok: boolean;
  source: string;
  /** Whether the config was checked against this host (targets, devices, PSI trigger targets). */
  hostChecked: boolean;
  /** Every problem found, in file order; empty when ok. */
  issues: ConfigIssue[];
  /** What the config sets up; present when the schema accepted it. */
  summary?: ConfigSummary;
}

/** The key that says what a target is: the one written in the file. */
function targetKey(t: TargetConfig): string {
  if (t.cgroupPattern !== undefined) return 'cgroup_pattern';
  if (t.cgroup !== undefined) return 'cgroup';
  if (t.pidfile !== undefined) return 'pidfile';
  if (t.comm !== undefined) return 'comm';
  return 'pids';
}

function summarize(c: Config): ConfigSummary {
  const targetKinds: Record<string, number> = {};
  for (const t of c.targets) targetKinds[targetKey(t)] = (targetKinds[targetKey(t)] ?? 0) + 1;
  return {
    targets: c.targets.length,
    targetKinds,
    devices: c.devices.length,
    tickMs: c.tickMs,
    rules: Object.entries(c.policy)
      .filter(([, p]) => p.enabled)
      .map(([k]) => snakeCase(k)),
    ruleCount: Object.keys(c.policy).length,
    strategy: c.strategy?.kind ?? 'heuristic',
    psiTriggers: c.signals.psi.triggers.length,
  };
}

function messageOf(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** The checks of the config against this host that run makes at start, every problem rather than the first. */
function hostIssues(config: Config, text: string | undefined): ConfigIssue[] {
  const found: { path: (string | number)[]; message: string }[] = [];
  let layout: CgroupLayout | undefined;
  const broken = new Set<number>();
  if (config.targets.length > 0) {
    try {
      layout = detectLayout();
    } catch (e) {
      found.push({ path: ['targets'], message: messageOf(e) });
    }
  }
  if (layout !== undefined) {
    for (const { index, error } of targetProblems(config, layout)) {
      broken.add(index);
      found.push({ path: ['targets', index, targetKey(config.targets[index]!)], message: messageOf(error) });
    }
  }
  for (const { index, error } of deviceProblems(config.devices, {}, config.source)) {
    found.push({ path: ['devices', index], message: error.message });
  }
  // As the psi signal checks when it starts: only a cgroup v2 target has pressure files of its own.
  config.signals.psi.triggers.forEach((trigger, i) => {
    if (trigger.target === undefined) return;
    const ti = config.targets.findIndex((t) => t.name === trigger.target);
    const t = config.targets[ti];
    if (t === undefined || broken.has(ti) || layout === undefined) return; // the schema, or the target's own problem, says it
    let v2 = false;
    if (t.cgroup !== undefined) {
      try {
        v2 = cgroupVersionOf(resolvePath(t.cgroup)) === 2;
      } catch {
        return;
      }
    }
    if (!v2) {
      found.push({
        path: ['signals', 'psi', 'triggers', i, 'target'],
        message:
          `arm PSI trigger on target ${trigger.target}: it is not a cgroup v2 target, and only cgroup v2 keeps pressure per cgroup — ` +
          'fix: name a cgroup v2 target, or drop target for host-wide pressure',
      });
    }
  });
  return found.map(({ path, message }) => {
    const issue: ConfigIssue = { path: formatKeyPath(path), message };
    const pos = text !== undefined ? keyPosition(text, path) : undefined;
    if (pos !== undefined) {
      issue.line = pos.line;
      issue.column = pos.column;
    }
    return issue;
  });
}

function formatKeyPath(path: readonly (string | number)[]): string {
  return path.map((s, i) => (typeof s === 'number' ? `[${s}]` : i === 0 ? s : `.${s}`)).join('');
}

/** Checks `file` as `run -c FILE` would before it attaches anything; never throws for a problem with the config. */
export function checkConfigFile(file: string, opts: { schemaOnly?: boolean } = {}): ConfigCheckReport {
  const issues: ConfigIssue[] = [];
  let regular = false;
  try {
    regular = statSync(file).isFile();
  } catch {
    // the loader names what is wrong with the path
  }
  if (regular) {
    try {
      assertSafeConfigFile(file);
    } catch (e) {
      if (!isTunerError(e)) throw e;
      issues.push({ path: '', message: e.message });
    }
  }
  let config: Config;
  try {
    config = loadConfig(file);
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e;
    return { ok: false, source: file, hostChecked: false, issues: [...issues, ...e.issues] };
  }
  const hostChecked = opts.schemaOnly !== true;
  if (hostChecked) {
    let text: string | undefined;
    try {
      text = readFileSync(file, 'utf8');
    } catch {
      text = undefined; // positions are a convenience
    }
    const host = hostIssues(config, text);
    host.sort((a, b) => (a.line ?? Infinity) - (b.line ?? Infinity) || (a.column ?? 0) - (b.column ?? 0));
    issues.push(...host);
  }
  return { ok: issues.length === 0, source: file, hostChecked, issues, summary: summarize(config) };
}

function plural(n: number, one: string, many = `${one}s`): string {
  return `${n} ${n === 1 ? one : many}`;
}

/** One line for a valid config. */
export function formatOk(r: ConfigCheckReport): string {
  const s = r.summary!;
  const kinds = Object.entries(s.targetKinds)
    .map(([k, n]) => `${n} ${k}`)
    .join(', ');
  const tick = s.tickMs % 1000 === 0 ? `${s.tickMs / 1000}s` : `${s.tickMs}ms`;
  return (
    `ebpf-tuner config check: ${r.source}: OK — ${plural(s.targets, 'target')}${kinds ? ` (${kinds})` : ''}, ` +
    `${plural(s.devices, 'device')}, ${plural(s.psiTriggers, 'PSI trigger')}, tick ${tick}, ` +
    `${s.rules.length} of ${s.ruleCount} rules on, strategy ${s.strategy}; ` +
    (r.hostChecked ? 'checked against this host' : 'not checked against this host (--schema-only)')
  );
}

/** A summary line (as `run` would print for the first problem), then every problem on a line of its own. */
export function formatProblems(r: ConfigCheckReport): string {
  const n = r.issues.length;
  const first = r.issues[0];
  const lines = [
    `ebpf-tuner config check: ${r.source}: ${plural(n, 'problem')}${first ? `, first: ${first.path ? `${first.path}: ` : ''}${first.message}` : ''}`,
  ];
  for (const i of r.issues) {
    const pos = i.line !== undefined && !/^line \d+/.test(i.message) ? `line ${i.line}, column ${i.column ?? 1}: ` : '';
    lines.push(`  ${pos}${i.path ? `${i.path}: ` : ''}${i.message}`);
  }
  return lines.join('\n');
}
