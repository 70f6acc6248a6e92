/**
 * Turns configured targets into live ones: each cgroup must exist on a cgroup filesystem and lie in the hierarchy
 * the cpu controller is attached to (that is where run-queue attribution and cpu knobs live); each pid must exist.
 * Errors name the target, the path or pid, and the fix — and are raised before anything is written.
 */
import { existsSync, readFileSync } from 'node:fs';
import { resolve as resolvePath } from 'node:path';
import { errnoCode, TunerError } from '../core/errors.js';
import type { ProcessSource, Target } from '../core/types.js';
import { findProcesses, readPidfile } from './processes.js';
import type { Config } from '../config/types.js';
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

export function resolveTargets(config: Config, layout: CgroupLayout, probe: CgroupProbe = {}): Target[] {
  const cpu = config.targets.some((t) => t.cgroup) ? cpuHierarchy(layout) : undefined;
  return config.targets.map((t, slot): Target => {
    const where = `target ${t.name} (${config.source})`;
    if (t.cgroup !== undefined) {
      const path = resolvePath(t.cgroup);
      if (!existsSync(path)) {
        throw new TunerError('CGROUP_NOT_FOUND', `resolve ${where}: cgroup ${path} does not exist — fix: create it (mkdir) or correct targets[${slot}].cgroup`);
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
    const pids = t.pids ?? [];
    for (const pid of pids) {
      if (!existsSync(`/proc/${pid}`)) {
        throw new TunerError('PID_NOT_FOUND', `resolve ${where}: process ${pid} does not exist — fix: correct targets[${slot}].pids or use a cgroup target for short-lived processes`);
      }
    }
    if (t.pidfile !== undefined) {
      // A pidfile that names nothing at start is a config that cannot mean what it says: refused like one (exit 2),
      // so a typo in the path is not mistaken for a service that is merely down for now.
      const problem = pidfileProblem(t.pidfile);
      if (problem !== undefined) {
        throw new TunerError(
          'CONFIG_INVALID',
          `resolve ${where}: targets[${slot}].pidfile ${t.pidfile} ${problem} — fix: start the service first, or correct targets[${slot}].pidfile`,
        );
      }
    }
    // A comm target may match nothing yet: it follows processes of that name as they start.
    const source: ProcessSource = { pids: t.pids, pidfile: t.pidfile, comm: t.comm, children: t.children };
    return { name: t.name, role: t.role, slot, scope: { kind: 'pids', pids: findProcesses(source), source } };
  });
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
