/**
 * Child process for the crash-durability kernel test: it journals and writes one knob through the real KnobWriter,
 * reports it on stdout, then idles until the test SIGKILLs it. Run as
 * `node --import tsx src/testing/crash-child.ts '<json>'` with {stateDir, knobPath, value}.
 */
import path from 'node:path';
import { silentLogger } from '../core/log.js';
import { Journal } from '../journal/journal.js';
import { KnobWriter } from '../actions/knob-writer.js';

interface Args {
  stateDir: string;
  knobPath: string;
  value: string;
}

const args = JSON.parse(process.argv[2] ?? '{}') as Args;
const journal = Journal.open(args.stateDir, silentLogger);
const writer = new KnobWriter({ journal, log: silentLogger, scope: [path.dirname(args.knobPath)] });
const result = writer.set({ id: `crash:${args.knobPath}`, path: args.knobPath, target: 'crash' }, 'crash_test', args.value);
process.stdout.write(JSON.stringify(result) + '\n');
// Stay alive, journal still open, until killed: the test is about what survives a SIGKILL.
setInterval(() => undefined, 60_000);
