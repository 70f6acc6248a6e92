/**
 * `ebpf-tuner bench`: benchmarks that show the agent's overhead is low and its effect real, in one run on this
 * host — per-event BPF cost against a floor and against libbpf-tools/bpftrace, end-to-end workload overhead, the
 * agent's own CPU and memory as targets grow, reaction/effect in the noisy-neighbour scenario and on real servers
 * (nginx, redis) as their own clients measure it (plus the learner's regret when that exists). Writes results.json,
 * summary.md and one PNG chart per section to `out`.
 *
 * Everything it creates (processes, cgroups, temp dirs, BPF programs) is removed at the end, on an error and on
 * Ctrl-C/SIGTERM.
 */
import { existsSync, mkdirSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { TunerError } from '../core/errors.js';
import { projectRoot } from '../bpf/paths.js';
import { renderSvg } from './chart.js';
import { describeMachine } from './machine.js';
import { renderPngs, type SvgImage } from './png.js';
import { parsePolicyOption } from './peers.js';
import { Progress } from './progress.js';
import { renderSummary } from './report.js';
import { Resources } from './resources.js';
import { agentCost } from './sections/agent-cost.js';
import { bpfCost } from './sections/bpf-cost.js';
import { learner } from './sections/learner.js';
import { overhead } from './sections/overhead.js';
import { reaction } from './sections/reaction.js';
import { servers } from './sections/servers.js';
import { soak } from './sections/soak.js';
import { SECTION_IDS, type Section, type SectionId, type SectionResult } from './types.js';

export { SECTION_IDS, type SectionId, type SectionResult } from './types.js';

export interface BenchOptions {
  /** 1 round and short runs of every section: a smoke test whose numbers are printed, never judged. */
  quick: boolean;
  /** Output directory (created if missing). */
  out: string;
  /** Section ids (bpf-cost, overhead, agent-cost, reaction, servers, learner, soak) or numbers 1–7; all when absent. */
  sections?: string[];
  /** Length of the soak section (default 600 s; 20 s with `quick`). */
  soakSeconds?: number;
  /**
   * `--policy`: YAML as the config's `policy:` mapping spells it, laid over the policy of the agents the reaction and
   * servers sections start. Checked before anything runs.
   */
  policy?: string;
  /** Progress display; stderr by default. */
  progress?: Progress;
}

/** Every section, in report order. Adding one is one line here. */
const SECTIONS: Section[] = [bpfCost, overhead, agentCost, reaction, servers, learner, soak];

export function selectSections(names?: string[]): Section[] {
  if (!names || names.length === 0) return SECTIONS;
  const out: Section[] = [];
  for (const raw of names.flatMap((n) => n.split(',')).map((n) => n.trim()).filter(Boolean)) {
    const byNumber = /^\d+$/.test(raw) ? SECTIONS[Number(raw) - 1] : undefined;
    const s = byNumber ?? SECTIONS.find((x) => x.id === raw);
    if (!s) throw new TunerError('CLI_USAGE', `select benchmark section "${raw}": no such section — use one of ${SECTION_IDS.join(', ')} or 1–${SECTIONS.length}`);
    if (!out.includes(s)) out.push(s);
  }
  return SECTIONS.filter((s) => out.includes(s));
}

/** Artifacts the bench runs: each missing one is named with the command that builds it. */
function checkPrerequisites(): string[] {
  if (process.geteuid?.() !== 0) {
    throw new TunerError('PERMISSION', 'run the benchmarks: they load BPF programs and create cgroups — fix: run as root');
  }
  const need: [string, string][] = [
    [path.join(projectRoot, 'dist', 'cli', 'main.js'), 'npx tsc -p tsconfig.json'],
    [path.join(projectRoot, 'bpf', '.output', 'probe.bpf.o'), 'make -C bpf'],
    [path.join(projectRoot, 'bpf', '.output', 'runqlat.bpf.o'), 'make -C bpf'],
    [path.join(projectRoot, 'tools', 'bin', 'victim'), 'make -C tools'],
    [path.join(projectRoot, 'tools', 'bin', 'hog'), 'make -C tools'],
  ];
  const missing = need.filter(([f]) => !existsSync(f));
  if (missing.length) {
    throw new TunerError(
      'INTERNAL',
      `run the benchmarks: ${missing.map(([f]) => path.relative(projectRoot, f)).join(', ')} not built — fix: ${[...new Set(missing.map(([, c]) => c))].join(' && ')}`,
    );
  }
  // The agent under test is dist/; numbers from a build older than the source describe the older code.
  const built = statSync(path.join(projectRoot, 'dist', 'cli', 'main.js')).mtimeMs;
  const newer = newestTs(path.join(projectRoot, 'src'), built);
  return newer ? [`dist/ is older than ${path.relative(projectRoot, newer)}: the agent measured is the last build — run npx tsc -p tsconfig.json to measure the current source`] : [];
}

function newestTs(dir: string, than: number): string | undefined {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) {
      const f = newestTs(p, than);
      if (f) return f;
    } else if (e.name.endsWith('.ts') && !e.name.endsWith('.test.ts') && !p.includes(`${path.sep}bench${path.sep}`) && statSync(p).mtimeMs > than) {
      return p;
    }
  }
  return undefined;
}

function commandLine(opts: BenchOptions): string {
  const parts = ['ebpf-tuner bench'];
  if (opts.quick) parts.push('--quick');
  parts.push('--out', opts.out);
  if (opts.sections?.length) parts.push('--sections', opts.sections.join(','));
  if (opts.soakSeconds !== undefined) parts.push('--soak-duration', String(opts.soakSeconds));
  if (opts.policy !== undefined) parts.push('--policy', `'${opts.policy}'`);
  return parts.join(' ');
}

export async function runBench(opts: BenchOptions): Promise<void> {
  const sections = selectSections(opts.sections);
  const policy = opts.policy === undefined ? undefined : parsePolicyOption(opts.policy);
  const warnings = checkPrerequisites();
  const out = path.resolve(opts.out);
  mkdirSync(out, { recursive: true });
  const progress = opts.progress ?? new Progress();
  const res = new Resources();
  const t0 = Date.now();
  const startedAt = new Date(t0).toISOString();
  const machine = describeMachine();

  let interrupted: NodeJS.Signals | undefined;
  // Settles only by exiting the process: whoever awaits it after an interruption never resumes.
  let stopping: Promise<never> | undefined;
  const onSignal = (sig: NodeJS.Signals): void => {
    if (interrupted) return;
    interrupted = sig;
    progress.log(`${sig}: stopping every process, removing cgroups and temporary files…`);
    stopping = res
      .abort()
      .catch((e) => progress.log(String(e instanceof Error ? e.message : e)))
      .then(() => {
        progress.finish();
        process.exit(sig === 'SIGINT' ? 130 : 143);
      });
  };
  const onExit = (): void => res.cleanupSync();
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  process.on('exit', onExit);

  const results: SectionResult[] = [];
  const charts: Record<string, string> = {};
  const write = (finishedAt?: string): void => {
    const doc = {
      version: 1,
      command: commandLine(opts),
      quick: opts.quick,
      startedAt,
      finishedAt: finishedAt ?? null,
      seconds: (Date.now() - t0) / 1000,
      machine,
      warnings,
      sections: Object.fromEntries(results.map((s) => [s.id, { ...s, chart: charts[s.id] ?? null }])),
      created: { processes: res.started, cgroups: res.madeCgroups, tempDirs: res.madeTempDirs },
    };
    writeFileSync(path.join(out, 'results.json'), JSON.stringify(doc, null, 2) + '\n');
  };

  try {
    const stale = res.sweepStale();
    if (stale.length) warnings.push(`removed ${stale.length} cgroup(s) left by an earlier bench run that was killed: ${stale.join(', ')}`);
    for (const w of warnings) progress.log(`warning: ${w}`);
    progress.setSectionCount(sections.length);
    for (const s of sections) {
      progress.begin(s.title, s.steps(opts.quick));
      const s0 = Date.now();
      let r: SectionResult;
      try {
        const body = await s.run({ quick: opts.quick, soakSeconds: opts.soakSeconds, res, progress, ...(policy === undefined ? {} : { policy }) });
        r = { id: s.id, title: s.title, status: 'ok', ...body, seconds: (Date.now() - s0) / 1000 };
      } catch (e) {
        if (stopping) await stopping;
        r = {
          id: s.id,
          title: s.title,
          status: 'failed',
          reason: e instanceof Error ? e.message : String(e),
          params: {},
          tables: [],
          goals: [],
          notes: [],
          charts: [],
          data: null,
          seconds: (Date.now() - s0) / 1000,
        };
        // A failed section may leave its processes behind; the next one must start from a clean host.
        await res.cleanup().catch((ce) => warnings.push(String(ce instanceof Error ? ce.message : ce)));
      }
      results.push(r);
      progress.log(sectionLine(r));
      write();
    }

    progress.log('drawing charts');
    const images: SvgImage[] = [];
    for (const r of results) {
      if (r.status !== 'ok' || r.charts.length === 0) continue;
      const { svg, width, height } = renderSvg(r.charts, r.title);
      writeFileSync(path.join(out, `${r.id}.svg`), svg);
      images.push({ file: path.join(out, `${r.id}.png`), svg, width, height });
      charts[r.id] = `${r.id}.png`;
    }
    try {
      await renderPngs(res, images);
    } catch (e) {
      if (stopping) await stopping;
      warnings.push(`PNG charts not drawn (${e instanceof Error ? e.message : String(e)}); the SVG files next to them have the same charts`);
      for (const r of results) if (charts[r.id]) charts[r.id] = `${r.id}.svg`;
    }

    const finishedAt = new Date().toISOString();
    write(finishedAt);
    writeFileSync(
      path.join(out, 'summary.md'),
      renderSummary({ command: commandLine(opts), quick: opts.quick, startedAt, seconds: (Date.now() - t0) / 1000, machine, sections: results, charts, warnings }),
    );
    progress.log(`results: ${path.join(out, 'summary.md')}, results.json and ${Object.keys(charts).length} chart(s) in ${out}`);
  } finally {
    if (!interrupted) {
      try {
        await res.cleanup();
      } finally {
        process.off('SIGINT', onSignal);
        process.off('SIGTERM', onSignal);
        process.off('exit', onExit);
        progress.finish();
      }
    }
  }
  const failed = results.filter((r) => r.status === 'failed');
  if (failed.length) {
    throw new TunerError('INTERNAL', `run the benchmarks: ${failed.length} section(s) failed — ${failed.map((f) => `${f.id}: ${f.reason}`).join('; ')}`);
  }
}

function sectionLine(r: SectionResult): string {
  if (r.status !== 'ok') return `  ${r.status}: ${r.reason}`;
  const goals = r.goals.map((g) => `${g.met === null ? '?' : g.met ? 'met' : 'NOT met'}: ${g.goal} — ${g.measured}`);
  return [`  done in ${Math.round(r.seconds)} s`, ...goals.map((g) => `  ${g}`)].join('\n');
}

/** `node dist/bench/index.js [--quick] [--out DIR] [--sections a,b]`: the same as `ebpf-tuner bench`, without the CLI. */
async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      quick: { type: 'boolean', default: false },
      out: { type: 'string', default: 'bench-results' },
      sections: { type: 'string' },
      'soak-duration': { type: 'string' },
      policy: { type: 'string' },
    },
  });
  try {
    const soak = values['soak-duration'];
    const soakSeconds = soak === undefined ? undefined : Number(soak);
    if (soakSeconds !== undefined && !(Number.isFinite(soakSeconds) && soakSeconds > 0)) {
      throw new TunerError('CLI_USAGE', `read --soak-duration "${soak}": not a positive number of seconds — fix: e.g. --soak-duration 600`);
    }
    await runBench({
      quick: values.quick === true,
      out: values.out ?? 'bench-results',
      sections: values.sections ? [values.sections] : undefined,
      soakSeconds,
      ...(values.policy === undefined ? {} : { policy: values.policy }),
    });
  } catch (e) {
    process.stderr.write(`ebpf-tuner bench: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exitCode = e instanceof TunerError && e.code === 'CLI_USAGE' ? 2 : 1;
  }
}

if (process.argv[1] && /(?:^|\/)bench\/index\.(?:js|ts)$/.test(process.argv[1])) await main();
