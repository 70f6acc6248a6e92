/**
 * The `ebpf-tuner` command line. Each subcommand parses its options through commander, turns every failure into
 * one line "ebpf-tuner <cmd>: <message>" on stderr with a non-zero exit, and never writes anything on bad input.
 */
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { isTunerError, TunerError } from '../core/errors.js';
import { projectRoot } from '../bpf/paths.js';
import { parseDurationMs } from '../config/schema.js';
import { registerReferenceCommands } from './reference.js';

const pkg = JSON.parse(readFileSync(join(projectRoot, 'package.json'), 'utf8')) as { version: string };

export const DEFAULT_STATE_DIR = '/var/lib/ebpf-tuner';

function positiveSeconds(v: string): number {
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0) throw new InvalidArgumentError(`expected a positive number of seconds, got "${v}"`);
  return n;
}

/**
 * Exit codes: 0 success; 1 a failure at run time (a knob that could not be restored, permission denied, a kernel
 * without a feature); 2 a usage or config error, found before anything changed; 3 busy — another live agent holds
 * the state directory (or the knobs) this command needs.
 */
export function exitCodeOf(code: string): number {
  if (code === 'CONFIG_INVALID' || code === 'CLI_USAGE') return 2;
  if (code === 'BUSY') return 3;
  return 1;
}

function fail(cmd: string, e: unknown, json = false): never {
  const code = isTunerError(e) ? e.code : 'INTERNAL';
  const message = e instanceof Error ? e.message : String(e);
  if (json) process.stdout.write(JSON.stringify({ ok: false, error: { code, message, ...(isTunerError(e) && 'issues' in e ? { issues: (e as { issues: unknown }).issues } : {}) } }) + '\n');
  process.stderr.write(`ebpf-tuner ${cmd}: ${message}\n`);
  if (isTunerError(e) && e.log && process.env.EBPF_TUNER_LOG_LEVEL === 'debug') process.stderr.write(e.log + '\n');
  else if (isTunerError(e, 'BPF_VERIFIER') && e.log) process.stderr.write(e.log.split('\n').slice(-30).join('\n') + '\n');
  process.exit(exitCodeOf(code));
}

export function buildCli(): Command {
  const program = new Command('ebpf-tuner')
    .description('Always-on Linux tuner: eBPF telemetry, small safe reversible cgroup nudges')
    .version(pkg.version)
    .showHelpAfterError()
    .exitOverride();

  program
    .command('run')
    .description('run the agent: watch the targets, nudge their knobs, restore every original on exit')
    .option('-c, --config <file>', 'YAML config (default: built-in: observe the host, no targets)')
    .option('--dry-run', 'decide and log, write nothing')
    .option('--duration <seconds>', 'stop cleanly (restoring everything) after this many seconds', positiveSeconds)
    .option('--state-dir <dir>', 'journal and audit database', DEFAULT_STATE_DIR)
    .option('--listen <host:port>', 'HTTP address for /metrics, the API and the dashboard (off unless given)')
    .option('--token-file <file>', 'bearer token for state-changing HTTP requests, and off loopback for every request but /healthz and /readyz (required to listen beyond loopback)')
    .option('--public-metrics', 'off loopback, serve /metrics without the token')
    .option('--log-level <level>', 'trace, debug, info, warn, error', logLevel, 'info')
    .option('--bpf-stats', 'count run time per BPF program (costs ~20 ns per event) for /metrics')
    .action(async (opts) => {
      try {
        const { runCommand } = await import('./run.js');
        await runCommand(opts);
      } catch (e) {
        fail('run', e);
      }
    });

  program
    .command('check')
    .description('probe every requirement (privileges, BTF, attach types, cgroups, PSI...) and say how to fix what is missing')
    .option('--json', 'machine-readable output')
    .action(async (opts: { json?: boolean }) => {
      try {
        const { runCheck, formatCheck } = await import('../check/check.js');
        const report = await runCheck();
        process.stdout.write((opts.json ? JSON.stringify(report, bigintJson, 2) : formatCheck(report)) + '\n');
        process.exitCode = report.ok ? 0 : 1;
      } catch (e) {
        fail('check', e, opts.json);
      }
    });

  const config = program.command('config').description('work with a config file without running the agent');
  config
    .command('check')
    .argument('<file>', 'the YAML config to check')
    .description('validate a config as `run` would at start, without running anything: every problem at once; exit 0 when valid, 2 when not')
    .option('--schema-only', 'check the file alone (syntax, keys, values, cross-references), not this host: for checking a config meant for another machine')
    .option('--json', 'machine-readable output')
    .addHelpText(
      'after',
      `
Checks, in the order \`run\` makes them, each reported with its key path, what is wrong and the fix:
  file    a regular file that neither it nor a directory above it is writable by group/other or owned by
          another user than root
  schema  YAML syntax, every key, type, range and cross-reference (the loader \`run\` uses)
  host    (not with --schema-only) each target as \`run\` resolves it at start: a cgroup exists in the cpu
          controller's hierarchy, listed pids run, a pidfile names a running process, a cgroup_pattern's fixed
          part exists (a pattern or comm that matches nothing yet is fine, as for \`run\`); each device is a whole
          disk of this host; a PSI trigger's target is a cgroup v2 target

Not checked: what depends on the kernel or on the privileges \`run\` has — BPF support (\`ebpf-tuner check\`) and
whether a PSI trigger window that is not a multiple of 2s is allowed (it needs CAP_SYS_RESOURCE) — nor \`run\`'s
options (--state-dir, --listen, --token-file).

It loads no BPF program, creates no state directory and writes to no cgroup: everything it does only reads.
Exit codes: 0 valid; 2 \`run\` would refuse this config (every problem is listed); 1 the check itself failed.`,
    )
    .action(async (file: string, opts: { schemaOnly?: boolean; json?: boolean }) => {
      try {
        const { checkConfigFile, formatOk, formatProblems } = await import('./config-check.js');
        const report = checkConfigFile(file, { schemaOnly: opts.schemaOnly === true });
        if (opts.json) process.stdout.write(JSON.stringify(report) + '\n');
        if (report.ok) {
          if (!opts.json) process.stdout.write(formatOk(report) + '\n');
        } else {
          const text = formatProblems(report);
          process.stderr.write((opts.json ? text.split('\n')[0]! : text) + '\n');
        }
        process.exitCode = report.ok ? 0 : 2;
      } catch (e) {
        fail('config check', e, opts.json);
      }
    });

  program
    .command('rollback')
    .description('restore every knob the agent changed to its journaled original, without starting the agent')
    .option('--state-dir <dir>', 'journal and audit database', DEFAULT_STATE_DIR)
    .option('--json', 'machine-readable output')
    .action(async (opts: { stateDir: string; json?: boolean }) => {
      try {
        const { rollbackCommand } = await import('./rollback.js');
        process.exitCode = await rollbackCommand(opts);
      } catch (e) {
        fail('rollback', e, opts.json);
      }
    });

  const stateDirOption = ['--state-dir <dir>', 'journal and audit database', DEFAULT_STATE_DIR] as const;

  program
    .command('log')
    .description('the audit trail: every decision (applied, dry-run, refused, reverted, kept, overridden) with its reason')
    .option(...stateDirOption)
    .option('--since <duration>', 'only decisions this recent, e.g. 10m, 1h', durationOption)
    .option('--target <name>', 'only decisions about this target')
    .option('--limit <n>', 'at most this many (newest)', positiveInt, 200)
    .option('--json', 'machine-readable output')
    .action(async (opts: { stateDir: string; since?: number; target?: string; limit: number; json?: boolean }) => {
      try {
        const { logCommand } = await import('./audit.js');
        process.stdout.write(logCommand(opts) + '\n');
      } catch (e) {
        fail('log', e, opts.json);
      }
    });

  program
    .command('status')
    .description('whether the agent runs, every change it has in effect right now, and why one is held')
    .option(...stateDirOption)
    .option('--json', 'machine-readable output')
    .action(async (opts: { stateDir: string; json?: boolean }) => {
      try {
        const { statusCommand } = await import('./audit.js');
        process.stdout.write(statusCommand(opts) + '\n');
      } catch (e) {
        fail('status', e, opts.json);
      }
    });

  program
    .command('explain')
    .argument('<id>', 'a decision id from `ebpf-tuner log`')
    .description('why a decision was made, in words, with the numbers behind it and what came of it')
    .option(...stateDirOption)
    .option('--json', 'machine-readable output')
    .action(async (id: string, opts: { stateDir: string; json?: boolean }) => {
      try {
        const { explainCommand } = await import('./audit.js');
        process.stdout.write(explainCommand({ ...opts, id }) + '\n');
      } catch (e) {
        fail('explain', e, opts.json);
      }
    });

  program
    .command('top')
    .description('live view of every target\'s signals, values above the policies\' thresholds highlighted; acts on nothing')
    .option('-c, --config <file>', 'YAML config (targets and signals; its policy thresholds decide what is highlighted)')
    .option('--once', 'print one snapshot after one window and exit')
    .option('--json', 'JSON instead of the table (one object per tick; with --once, exactly one)')
    .option('--width <columns>', 'fit the table to this many columns (default: the terminal\'s, 80 when not a terminal)', positiveInt)
    .addOption(new Option('--color <when>', 'highlight values above their thresholds').choices(['auto', 'always', 'never']).default('auto'))
    .action(async (opts: { config?: string; once?: boolean; json?: boolean; width?: number; color?: 'auto' | 'always' | 'never' }) => {
      try {
        const { topCommand } = await import('./top.js');
        await topCommand(opts);
      } catch (e) {
        fail('top', e, opts.json);
      }
    });

  const model = program.command('model').description('the learned strategy\'s model in the state directory');
  model
    .command('show')
    .description('what the learner has learned: per action, its estimate and uncertainty, and how often it was tried')
    .option(...stateDirOption)
    .option('--json', 'machine-readable output')
    .action(async (opts: { stateDir: string; json?: boolean }) => {
      try {
        const { modelShow } = await import('../engine/learned/cli.js');
        process.stdout.write(modelShow(opts.stateDir, opts.json === true) + '\n');
      } catch (e) {
        fail('model show', e, opts.json);
      }
    });
  model
    .command('reset')
    .description('forget everything the learner has learned (the next run starts from its priors)')
    .option(...stateDirOption)
    .action(async (opts: { stateDir: string }) => {
      try {
        const { modelReset } = await import('../engine/learned/cli.js');
        modelReset(opts.stateDir);
        process.stdout.write(`model reset in ${opts.stateDir}\n`);
      } catch (e) {
        fail('model reset', e);
      }
    });

  program
    .command('bench')
    .description('measure the agent: BPF cost per event, workload slowdown, agent CPU/RSS vs targets, reaction and effect, effect on nginx and redis, memory under target churn')
    .option('--quick', 'a few seconds per section: a smoke test, numbers not judged')
    .option('--out <dir>', 'where results.json, summary.md and the charts go', 'bench-results')
    .option('--sections <list>', 'comma-separated ids or numbers: bpf-cost, overhead, agent-cost, reaction, servers, learner, soak')
    .option('--soak-duration <seconds>', 'length of the soak section (default 600; 20 with --quick)', positiveSeconds)
    .option('--policy <yaml>', "policy settings for the agents of the reaction and servers sections, as the config's policy: mapping spells them, e.g. 'noisy_neighbor: {min_weight: 100}' (default: the built-in policy)")
    .action(async (opts: { quick?: boolean; out: string; sections?: string; soakDuration?: number; policy?: string }) => {
      try {
        const { runBench } = await import('../bench/index.js');
        await runBench({
          quick: opts.quick === true,
          out: opts.out,
          sections: opts.sections ? opts.sections.split(',') : undefined,
          soakSeconds: opts.soakDuration,
          ...(opts.policy === undefined ? {} : { policy: opts.policy }),
        });
        setImmediate(() => process.exit(process.exitCode ?? 0));
      } catch (e) {
        fail('bench', e);
      }
    });

  program
    .command('record')
    .description('store every tick\'s signal snapshots (gzip\'d JSON lines) for replay; acts on nothing')
    .requiredOption('-o, --out <file>', 'recording to write')
    .option('-c, --config <file>', 'YAML config (targets and signals to record)')
    .option('--duration <seconds>', 'stop after this many seconds (default: at Ctrl-C)', positiveSeconds)
    .option('--log-level <level>', 'trace, debug, info, warn, error', logLevel, 'warn')
    .action(async (opts: { out: string; config?: string; duration?: number; logLevel: string }) => {
      try {
        const { recordCommand } = await import('./record.js');
        await recordCommand(opts);
      } catch (e) {
        fail('record', e);
      }
    });

  program
    .command('replay')
    .argument('<file>', 'a recording made by `ebpf-tuner record`')
    .description('run the strategies over a recording, touching nothing, and print the decisions they would make')
    .option('-c, --config <file>', 'config to replay with (default: the one the recording was made under)')
    .option('--json', 'one JSON object per decision')
    .action(async (file: string, opts: { config?: string; json?: boolean }) => {
      try {
        const { replayCommand } = await import('./record.js');
        await replayCommand(file, opts);
      } catch (e) {
        fail('replay', e, opts.json);
      }
    });

  program
    .command('demo')
    .description('see it help: a victim beside a noisy neighbour, before and after the agent acts, with the live dashboard')
    .option('--seconds <n>', 'seconds per phase', positiveSeconds, 10)
    .option('--listen <host:port>', 'dashboard address (default: a free loopback port)')
    .option('--json', 'print one JSON summary instead of the progress display')
    .action(async (opts: { seconds: number; listen?: string; json?: boolean }) => {
      try {
        const { runDemo } = await import('../demo/demo.js');
        process.exitCode = await runDemo(opts);
        setImmediate(() => process.exit(process.exitCode));
      } catch (e) {
        fail('demo', e, opts.json);
      }
    });

  // Last, so that they list every command above: `completion bash|zsh` and `man`, generated from this program.
  registerReferenceCommands(program, pkg.version);

  // commander's own errors (an unknown option, a bad value) in the one line every other error uses.
  const reword = (cmd: Command, path: string): void => {
    cmd.configureOutput({
      outputError: (str, write) => {
        const what = str.replace(/^error: /, '').trim().replace(/\.$/, '');
        write(`ebpf-tuner${path ? ` ${path}` : ''}: parse command line: ${what} — fix: see \`ebpf-tuner${path ? ` ${path}` : ''} --help\`\n`);
      },
    });
    for (const sub of cmd.commands) reword(sub, path ? `${path} ${sub.name()}` : sub.name());
  };
  reword(program, '');
  return program;
}

const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'];

function logLevel(v: string): string {
  if (!LOG_LEVELS.includes(v)) throw new InvalidArgumentError(`expected one of ${LOG_LEVELS.join(', ')}, got "${v}"`);
  return v;
}

function durationOption(v: string): number {
  const ms = parseDurationMs(v);
  if (ms === undefined) throw new InvalidArgumentError(`expected a duration like 10m, 1h or 30s, got "${v}"`);
  return ms;
}

function positiveInt(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n <= 0) throw new InvalidArgumentError(`expected a positive whole number, got "${v}"`);
  return n;
}

export function bigintJson(_k: string, v: unknown): unknown {
  return typeof v === 'bigint' ? v.toString() : v;
}

export async function main(argv: string[]): Promise<void> {
  const program = buildCli();
  try {
    await program.parseAsync(argv);
  } catch (e) {
    if (e instanceof CommanderError) {
      // commander already printed the message (and help); help and --version exit 0.
      process.exit(e.exitCode === 0 ? 0 : 2);
    }
    fail(program.args[0] ?? '', e instanceof TunerError ? e : new TunerError('INTERNAL', String(e)));
  }
}

const invokedDirectly = process.argv[1] && /(?:^|\/)(?:main\.(?:js|ts)|ebpf-tuner)$/.test(process.argv[1]);
if (invokedDirectly) await main(process.argv);
