/** What counts as a usage error on the command line. */
import { isTunerError, TunerError } from '../core/errors.js';

/**
 * Runs a check of something the user named (a config file, a state directory, a token file): whatever its code
 * (an unsafe mode is PERMISSION, a bad directory JOURNAL), a refusal there is a usage or config error and exits 2.
 */
export function asUsage<T>(fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    if (isTunerError(e) && e.code !== 'CONFIG_INVALID' && e.code !== 'CLI_USAGE') throw new TunerError('CONFIG_INVALID', e.message, { cause: e });
    throw e;
  }
}
