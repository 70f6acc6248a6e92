/** Every signal the agent can run. Adding one is one line here; the agent never branches on a name. */
import type { Signal } from '../core/types.js';
import type { Config } from '../config/types.js';
import { RunqlatSignal } from './runqlat/runqlat.js';

export function createSignals(config: Config, observeHost: boolean): Signal[] {
  const out: Signal[] = [];
  if (config.signals.runqlat.enabled) {
    out.push(new RunqlatSignal({ perThread: config.signals.runqlat.perThread, host: observeHost, ewmaAlpha: config.ewmaAlpha }));
  }
  return out;
}
