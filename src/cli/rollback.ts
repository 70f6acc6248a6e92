/** `ebpf-tuner rollback`: put every journaled knob back without starting the agent (after a crash, or by hand). */
import { createLogger } from '../core/log.js';
import { Journal } from '../journal/journal.js';
import { restoreAll, type RestoreItem } from '../journal/restore.js';
import { knobIO } from '../actions/knob-writer.js';
import { KnobClaims, StateDirLock } from '../journal/ownership.js';
import { stateDbIfAny } from './state-access.js';
// Registers every action's knob schemes (thread affinity...), so their journaled originals can be put back.
import '../actions/index.js';

export async function rollbackCommand(opts: { stateDir: string; json?: boolean }): Promise<number> {
  const log = createLogger({ fd: 2 });
  if (stateDbIfAny(opts.stateDir, 'rollback', true) === undefined) {
    const msg = `nothing to restore: no journal in ${opts.stateDir}`;
    process.stdout.write(opts.json ? JSON.stringify({ ok: true, restored: [], overridden: [], vanished: [], failed: [], note: msg }) + '\n' : msg + '\n');
    return 0;
  }
  // Never under a live agent: it owns these knobs, and restores them itself when it stops.
  const lock = StateDirLock.acquire(opts.stateDir, 'roll back');
  const claims = new KnobClaims({ stateDir: opts.stateDir });
  let journal: Journal | undefined;
  try {
    journal = Journal.open(opts.stateDir, log);
    // A knob another live agent (with another state directory) holds is left to it and reported as failed.
    const report = restoreAll(journal, log, { io: knobIO(), claims });
    const brief = (i: RestoreItem) => ({ target: i.target, action: i.action, path: i.path, original: i.original, observed: i.observed, error: i.error?.message });
    if (opts.json) {
      process.stdout.write(
        JSON.stringify({
          ok: report.failed.length === 0,
          restored: report.restored.map(brief),
          overridden: report.overridden.map(brief),
          vanished: report.vanished.map(brief),
          failed: report.failed.map(brief),
        }) + '\n',
      );
    } else {
      const lines: string[] = [];
      for (const i of report.restored) lines.push(`restored   ${i.path} = ${i.original.trim()} (target ${i.target})`);
      for (const i of report.overridden) lines.push(`left alone ${i.path}: changed by someone else to ${i.observed?.trim()} (original ${i.original.trim()})`);
      for (const i of report.vanished) lines.push(`vanished   ${i.path}: the cgroup is gone`);
      for (const i of report.failed) lines.push(`FAILED     ${i.path}: ${i.error?.message}`);
      if (lines.length === 0) lines.push('nothing to restore: every change was already undone');
      process.stdout.write(lines.join('\n') + '\n');
    }
    return report.failed.length === 0 ? 0 : 1;
  } finally {
    journal?.close();
    claims.releaseAll();
    lock.release();
  }
}
