/**
 * Reading the state directory from the command line (`rollback`, `status`, `log`, `explain`): a journal that is
 * missing means there is nothing to report, but one that cannot be read — most often a root-only directory read by
 * another user — must never pass for an empty one, or a rollback would say "nothing to restore" over a host that
 * still holds the agent's values.
 */
import { accessSync, constants, statSync } from 'node:fs';
import { join } from 'node:path';
import { errnoCode, TunerError } from '../core/errors.js';

export const STATE_DB = 'state.db';

/**
 * The journal file (or another database, `name`) in `stateDir` when it exists and this user may open it (`write`: for writing too); undefined when
 * the directory or the file does not exist. Any other failure throws PERMISSION (or JOURNAL) naming the path and the
 * fix. `cmd` is the command as typed, for the fix.
 */
export function stateDbIfAny(stateDir: string, cmd: string, write = false, name = STATE_DB): string | undefined {
  const file = join(stateDir, name);
  const asRoot = `run it as root (\`sudo ebpf-tuner ${cmd} --state-dir ${stateDir}\`)`;
  const check = (p: string, what: () => void): boolean => {
    try {
      what();
      return true;
    } catch (e) {
      const code = errnoCode(e);
      if (code === 'ENOENT') return false;
      if (code === 'EACCES' || code === 'EPERM') {
        throw new TunerError('PERMISSION', `read ${p}: permission denied (${code}) — fix: ${asRoot}; the state directory is root's by design`, {
          cause: e,
        });
      }
      if (code === 'ENOTDIR') {
        throw new TunerError('CLI_USAGE', `read ${p}: ${stateDir} is not a directory — fix: pass the agent's state directory with --state-dir`, {
          cause: e,
        });
      }
      throw new TunerError('JOURNAL', `read ${p}: ${code ?? String(e)} — fix: check --state-dir ${stateDir}`, { cause: e });
    }
  };
  if (!check(stateDir, () => statSync(stateDir))) return undefined;
  if (!statSync(stateDir).isDirectory()) {
    throw new TunerError('CLI_USAGE', `read ${stateDir}: not a directory — fix: pass the agent's state directory with --state-dir`);
  }
  if (!check(file, () => statSync(file))) return undefined;
  check(file, () => accessSync(file, write ? constants.R_OK | constants.W_OK : constants.R_OK));
  // SQLite in WAL mode needs the directory too (for the -wal and -shm files), even to read.
  check(stateDir, () => accessSync(stateDir, write ? constants.R_OK | constants.W_OK | constants.X_OK : constants.R_OK | constants.X_OK));
  return file;
}
