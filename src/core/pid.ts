/** Whether a process id is in use, asked with the null signal. */
import { errnoCode } from './errors.js';

/** True while `pid` exists: EPERM means it does, but belongs to a user this process may not signal. */
export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return errnoCode(e) === 'EPERM';
  }
}
