/**
 * Section 6 — the learned strategy against the rule, on real outcomes. The agent runs with `strategy.kind: learned`
 * and `exploration.uniform_share: 1` beside a real noisy-neighbour incident, repeated: the latency-sensitive victim
 * (tools/bin/victim, pinned to one CPU) as the protect target, and CPU hogs started in a sibling cgroup, in several
 * shapes (how many threads, pinned to the victim's CPU or free). In each incident the learner takes one of the arms
 * that apply, at random; the real actions make the change, the closed loop measures it, and the agent logs the
 * outcome with its context and reward. The hogs then stop and the agent restores everything before the next.
 *
 * That log is then replayed (src/engine/learned/offline.ts, the replay method): a fresh learner, the rule (its
 * cpu_weight step whenever it applies) and each fixed arm are judged on the same real outcomes, with no model of the
 * world in between. The simulator's results follow, labelled for what they are: a check that the learner finds
 * answers the simulator was written with.
 */
import { ACTIONS } from '../../actions/index.js';
import { toolPath } from '../../bpf/paths.js';
import { TunerError } from '../../core/errors.js';
import { LearnedStrategy, type LoggedOutcome } from '../../engine/learned/learner.js';
import { NOOP_ARM } from '../../engine/learned/candidates.js';
import { fixedArm, replayLog, replayShuffled } from '../../engine/learned/offline.js';
import { runLearnerBench, type LearnerBenchRow } from '../../engine/learned/bench.js';
import { learnerSettings } from '../../engine/learned/factory.js';
import { parseConfig } from '../../config/load.js';
import { startAgent, type AgentConfig, type AgentLogLine, type RunningAgent } from '../peers.js';
import { fmt, median } from '../stats.js';
import type { ChartPanel } from '../chart.js';
import type { BenchContext, Goal, Section, Table } from '../types.js';
import type { Proc } from '../resources.js';
import { CONTENTION_CPU, parseVictimLines } from './reaction.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The rule's arm: the noisy-neighbor rule steps the neighbour's weight whenever it can. */
export const RULE_ARM = 'cpu_weight';

/** Shapes of the neighbour, taken in turn: the context the learner may tell apart. */
export const SHAPES: readonly { threads: number; pinned: boolean }[] = [
  { threads: 4, pinned: true },
  { threads: 1, pinned: true },
  { threads: 4, pinned: false },
];

/** The reaction section's victim: 5 ms of work every 20 ms, its run-queue waits beside the hogs over the 4 ms threshold. */
const VICTIM = { periodUs: 20_000, workUs: 5_000 };

/** The agent's configuration, but for its targets; the replayed learner is built from it too. */
const AGENT_CONFIG = {
  tick: '1s',
  strategy: { kind: 'learned', exploration: { uniform_share: 1 } },
  // Fewer calm ticks before the restore than by default, so more incidents fit in the run.
  policy: { noisy_neighbor: { calm_ticks: 5 } },
  // A reverted arm is offered again at the next incident: a penalty (5 min by default) would leave most incidents
  // with "do nothing" alone to choose from.
  closed_loop: { penalty: '0s' },
} satisfies AgentConfig;

/**
 * The learner the replay judges: as the agent's configuration builds it, but with the default exploration (no
 * uniform choices) and a seed per shuffle.
 */
function replayedLearner(seed: number): LearnedStrategy {
  const { strategy, ...rest } = AGENT_CONFIG;
  const config = parseConfig(JSON.stringify({ ...rest, strategy: { kind: strategy.kind, seed } }), 'the learner section');
  return new LearnedStrategy(learnerSettings(config, ACTIONS));
}

function params(quick: boolean) {
  // settleMs: how long to wait for the agent's restores after an incident.
  return quick ? { incidents: 3, shuffles: 50, settleMs: 30_000 } : { incidents: 36, shuffles: 500, settleMs: 120_000 };
}

/** One incident's logged outcome, with what the agent saw and what the bench did. */
export interface Incident extends LoggedOutcome {
  incident: number;
  threads: number;
  pinned: boolean;
  improvement: number | null;
  lost: number;
  verdict: string;
  uniform: boolean;
  /** The agent's decisions from the hogs' start until everything was restored, seconds from that start. */
  decisions: { t: number; kind: string; action: string; target: string; from?: string; to?: string }[];
}

/** Every acting choice of the run and whether its outcome was logged: a choice that never took has none. */
export interface ChoiceRecord {
  arm: string;
  eligible: string[];
  uniform: boolean;
  outcome: boolean;
}

export const learner: Section = {
  id: 'learner',
  title: 'Learned strategy vs the rule: real outcomes, replayed',
  steps: (quick) => params(quick).incidents + 2,
  async run(ctx) {
    const p = params(ctx.quick);
    const { incidents, choices, unsettled } = await collect(ctx, p);
    ctx.progress.step('replaying the logged outcomes');
    const replayed = judge(incidents, p.shuffles);
    ctx.progress.tick();
    ctx.progress.step('the simulated host');
    const sim = await runLearnerBench({ quick: ctx.quick, seed: 1, actions: ACTIONS });
    ctx.progress.tick();
    return summarize(incidents, replayed, sim, { ...p, victim: VICTIM, shapes: SHAPES, ruleArm: RULE_ARM, unsettled }, choices);
  },
};

/** Runs the incidents with one agent and returns the outcome it logged for each (incidents with none are left out). */
async function collect(
  ctx: BenchContext,
  p: ReturnType<typeof params>,
): Promise<{ incidents: Incident[]; choices: ChoiceRecord[]; unsettled: string[] }> {
  const { res, progress } = ctx;
  const cg = res.makeCgroup('learner');
  const victimCg = cg.child('victim');
  const noisyCg = cg.child('noisy');
  let agent: RunningAgent | undefined;
  let victim: Proc | undefined;
  let hog: Proc | undefined;
  const out: Incident[] = [];
  let choices: ChoiceRecord[] = [];
  const unsettled: string[] = [];
  try {
    agent = await startAgent(res, {
      logLevel: 'debug',
      config: {
        ...AGENT_CONFIG,
        targets: [
          { name: 'victim', role: 'protect', cgroup: victimCg.path },
          { name: 'neighbour', role: 'noisy', cgroup: noisyCg.path },
        ],
      },
    });
    victim = res.spawn(
      toolPath('victim'),
      ['--period-us', String(VICTIM.periodUs), '--work-us', String(VICTIM.workUs), '--report-ms', '1000', '--duration-s', '7200', '--quiet'],
      { cpu: CONTENTION_CPU, cgroup: victimCg.path, name: 'victim' },
    );
    await sleep(3000);
    for (let i = 0; i < p.incidents; i++) {
      const shape = SHAPES[i % SHAPES.length]!;
      progress.step(`incident ${i + 1}/${p.incidents} · hog --threads ${shape.threads}${shape.pinned ? ` on CPU ${CONTENTION_CPU}` : ''}`);
      const seen = agent.log().length;
      const started = Date.now();
      hog = res.spawn(toolPath('hog'), ['--threads', String(shape.threads)], {
        ...(shape.pinned ? { cpu: CONTENTION_CPU } : {}),
        cgroup: noisyCg.path,
        name: 'hog',
      });
      // The outcome of a choice made in this incident: one made in the last one's tail (the victim still hot for a
      // tick after its hogs stopped) may be judged after this one began, in another context.
      const o = await waitFor(agent, seen, 40_000, (l) => l.msg === 'learner outcome' && l.onPolicy === true && Number(l.chosenAt) >= started);
      await hog.stop('SIGTERM', 5000);
      hog = undefined;
      // Before the next incident, every change the agent made is put back (the restore after calm, or the revert).
      const left = await settled(agent, p.settleMs);
      if (left.length > 0) unsettled.push(`incident ${i + 1}: ${left.join(', ')}`);
      if (o !== undefined) {
        const decisions = agent
          .log()
          .slice(seen)
          .filter((l) => typeof l.decision === 'string' && typeof l.kind === 'string' && typeof l.action === 'string')
          .map((l) => ({ t: (l.time - started) / 1000, kind: String(l.kind), action: String(l.action), target: String(l.target), ...(l.from !== undefined ? { from: l.from } : {}), ...(l.to !== undefined ? { to: l.to } : {}) }));
        out.push({ ...incidentOf(o, i + 1, shape), decisions });
      }
      // Past the guardrails' cooldown after the restore, so the arms on the neighbour are offered again.
      await sleep(5000);
      progress.tick();
    }
    choices = choicesOf(agent.log());
    if (!victim.running) throw new TunerError('INTERNAL', `run the victim: it exited early — ${victim.stderrTail(3)}`);
    if (parseVictimLines(victim.lines).length === 0) throw new TunerError('INTERNAL', 'run the victim: it reported nothing');
  } finally {
    await hog?.stop('SIGKILL', 5000);
    await victim?.stop('SIGKILL', 5000);
    await agent?.stop();
    res.removeCgroup(cg);
  }
  return { incidents: out, choices, unsettled };
}

/** Every acting choice in the agent's log, and whether an outcome of it (by the time it was chosen) was logged too. */
export function choicesOf(log: readonly AgentLogLine[]): ChoiceRecord[] {
  const judged = new Set(log.filter((l) => l.msg === 'learner outcome' && l.onPolicy === true).map((l) => Number(l.chosenAt)));
  return log
    .filter((l) => l.msg === 'learner choice' && l.acting === true)
    .map((l) => ({
      arm: String(l.arm),
      eligible: Array.isArray(l.estimates) ? l.estimates.filter((e: { eligible?: boolean }) => e.eligible === true).map((e: { arm?: unknown }) => String(e.arm)) : [],
      uniform: l.uniform === true,
      outcome: judged.has(Number(l.chosenAt)),
    }));
}

/** The first log line after `seen` that `match` accepts, or undefined after `timeoutMs`. */
async function waitFor(agent: RunningAgent, seen: number, timeoutMs: number, match: (l: AgentLogLine) => boolean): Promise<AgentLogLine | undefined> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const l = agent.log().slice(seen).find(match);
    if (l !== undefined || Date.now() > deadline) return l;
    await sleep(200);
  }
}

/**
 * Waits until every change the agent applied has been reverted or restored (by its log). Returns what is still
 * changed after `timeoutMs`: a restore waits for the victim to stay calm for calm_ticks in a row, which other load on
 * the CPU can keep breaking. The next incident then starts with that change in place, which its logged context and
 * eligible arms record.
 */
async function settled(agent: RunningAgent, timeoutMs: number): Promise<string[]> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const open = new Set<string>();
    for (const l of agent.log()) {
      const key = `${String(l.action)} on ${String(l.target)}`;
      if (l.kind === 'applied') open.add(key);
      else if (l.kind === 'reverted' || l.kind === 'restored') open.delete(key);
    }
    if (open.size === 0 || Date.now() > deadline) return [...open];
    await sleep(250);
  }
}

function incidentOf(l: AgentLogLine, incident: number, shape: { threads: number; pinned: boolean }): Omit<Incident, 'decisions'> {
  const { arm, eligible, features, reward } = l;
  if (typeof arm !== 'string' || !Array.isArray(eligible) || typeof features !== 'object' || features === null || typeof reward !== 'number') {
    throw new TunerError('INTERNAL', `read the learner's outcome: the log line lacks arm, eligible, features or reward: ${JSON.stringify(l)}`);
  }
  return {
    incident,
    threads: shape.threads,
    pinned: shape.pinned,
    arm,
    eligible: eligible.map(String),
    features: Object.fromEntries(Object.entries(features).filter((e): e is [string, number] => typeof e[1] === 'number')),
    reward,
    improvement: typeof l.improvement === 'number' ? l.improvement : null,
    lost: typeof l.lost === 'number' ? l.lost : 0,
    verdict: String(l.verdict),
    uniform: l.uniform === true,
  };
}

export interface PolicyValue {
  policy: string;
  /** Matched events (per shuffle, median, for the learner). */
  matched: number;
  mean: number;
  /** 90% interval: over shuffles for the learner; mean ± 1.645 standard errors for a fixed policy. */
  lo: number;
  hi: number;
}

/** Every policy's value on the uniformly logged incidents. */
export function judge(incidents: readonly Incident[], shuffles: number): PolicyValue[] {
  const log = incidents.filter((i) => i.uniform);
  const arms = [...new Set(log.flatMap((i) => i.eligible))].sort((a, b) => (a === NOOP_ARM ? -1 : b === NOOP_ARM ? 1 : a < b ? -1 : 1));
  const out: PolicyValue[] = [];
  const fixed = (name: string, arm: string): PolicyValue => {
    const r = replayLog(log, fixedArm(arm, NOOP_ARM));
    const kept = log.filter((e) => e.arm === (e.eligible.includes(arm) ? arm : NOOP_ARM)).map((e) => e.reward);
    const se = kept.length > 1 ? Math.sqrt(variance(kept) / kept.length) : NaN;
    return { policy: name, matched: r.matched, mean: r.meanReward, lo: r.meanReward - 1.645 * se, hi: r.meanReward + 1.645 * se };
  };
  out.push(fixed(`the rule (${RULE_ARM} when it applies, else nothing)`, RULE_ARM));
  // Arms no logged incident could take are never eligible, so they draw nothing.
  const learned = replayShuffled(log, (i) => replayedLearner(i + 1), { shuffles, seed: 7 });
  const sorted = [...learned.means].sort((a, b) => a - b);
  out.push({
    policy: 'the learner (fresh, default exploration)',
    matched: median(learned.matched),
    mean: sorted.reduce((a, b) => a + b, 0) / Math.max(1, sorted.length),
    lo: quantile(sorted, 0.05),
    hi: quantile(sorted, 0.95),
  });
  for (const a of arms) if (a !== RULE_ARM) out.push(fixed(`always ${a}${a === NOOP_ARM ? '' : ' when it applies'}`, a));
  return out;
}

function variance(xs: readonly number[]): number {
  const m = xs.reduce((a, b) => a + b, 0) / xs.length;
  return xs.reduce((a, b) => a + (b - m) ** 2, 0) / (xs.length - 1);
}

function quantile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.round(q * (sorted.length - 1))));
  return sorted[i]!;
}

export function summarize(
  incidents: readonly Incident[],
  values: readonly PolicyValue[],
  sim: { rows: LearnerBenchRow[]; summary: unknown },
  p: Record<string, unknown>,
  choices: readonly ChoiceRecord[] = [],
) {
  const arms = [...new Set(incidents.map((i) => i.arm))].sort();
  const chosenArms = [...new Set(choices.map((c) => c.arm))].sort();
  const taken: Table = {
    title: 'every choice the agent acted on in the run (also later ones within an incident), and how many of them were judged',
    columns: ['arm', 'chosen', 'expected if uniform', 'judged (an outcome logged)'],
    rows: chosenArms.map((a) => {
      const xs = choices.filter((c) => c.arm === a);
      const expected = choices.reduce((t, c) => t + (c.eligible.includes(a) ? 1 / Math.max(1, c.eligible.length) : 0), 0);
      return [a, xs.length, fmt(expected, 1), xs.filter((c) => c.outcome).length];
    }),
  };
  const byArm: Table = {
    title: 'real outcomes logged by the agent, per arm taken (reward = improvement − 0.5 × CPU the neighbour lost − 0.02 per change)',
    columns: ['arm', 'incidents', 'expected if uniform', 'mean reward', 'median improvement', 'median CPU lost', 'kept / reverted'],
    rows: arms.map((a) => {
      const xs = incidents.filter((i) => i.arm === a);
      const imp = xs.map((i) => i.improvement).filter((v): v is number => v !== null);
      const expected = incidents.reduce((t, i) => t + (i.eligible.includes(a) ? 1 / i.eligible.length : 0), 0);
      return [
        a,
        xs.length,
        fmt(expected, 1),
        fmt(xs.reduce((s, i) => s + i.reward, 0) / xs.length, 3),
        fmt(median(imp), 3),
        fmt(median(xs.map((i) => i.lost)), 3),
        a === NOOP_ARM ? '—' : `${xs.filter((i) => i.verdict === 'kept').length} / ${xs.filter((i) => i.verdict === 'revert').length}`,
      ];
    }),
  };
  const shapes: Table = {
    title: 'mean reward per neighbour shape and arm (incidents)',
    columns: ['neighbour', ...arms],
    rows: SHAPES.map((s) => [
      `hog --threads ${s.threads}${s.pinned ? ` on CPU ${CONTENTION_CPU}` : ', free'}`,
      ...arms.map((a) => {
        const xs = incidents.filter((i) => i.arm === a && i.threads === s.threads && i.pinned === s.pinned);
        return xs.length > 0 ? `${fmt(xs.reduce((t, i) => t + i.reward, 0) / xs.length, 3)} (${xs.length})` : '—';
      }),
    ]),
  };
  const rule = values[0]!;
  const replay: Table = {
    title: 'each policy replayed on the logged incidents (the replay method: an event counts where the policy picks the logged arm)',
    columns: ['policy', 'events kept', 'mean reward', '90% interval', 'vs the rule'],
    rows: values.map((v) => [v.policy, v.matched, fmt(v.mean, 3), `${fmt(v.lo, 3)} … ${fmt(v.hi, 3)}`, v === rule ? '—' : fmt(v.mean - rule.mean, 3)]),
  };
  const simScenarios = [...new Set(sim.rows.map((r) => r.scenario))];
  const simTable: Table = {
    title: 'the simulated host (src/engine/learned/simulate.ts: the right answers are written into it, so this checks the code, not the learner\'s worth)',
    columns: ['scenario', 'episodes', 'learner (median)', 'rule (median)', 'regret (median)'],
    rows: simScenarios.map((s) => {
      const rs = sim.rows.filter((r) => r.scenario === s);
      return [s, rs.length, fmt(median(rs.map((r) => r.learner)), 3), fmt(median(rs.map((r) => r.heuristic)), 3), fmt(median(rs.map((r) => r.regret)), 3)];
    }),
  };
  const learnerValue = values[1]!;
  const best = [...values].sort((a, b) => b.mean - a.mean)[0]!;
  const goals: Goal[] = [
    {
      goal: 'the learner, replayed on real logged outcomes, earns more per incident than the rule',
      measured: `learner ${fmt(learnerValue.mean, 3)} (90% of shuffles ${fmt(learnerValue.lo, 3)} … ${fmt(learnerValue.hi, 3)}, ${learnerValue.matched} events kept) vs the rule ${fmt(rule.mean, 3)} (${rule.matched} events); best fixed policy: ${best.policy} ${fmt(best.mean, 3)}; ${incidents.length} incidents logged`,
      met: Number.isFinite(learnerValue.mean) && Number.isFinite(rule.mean) ? learnerValue.mean > rule.mean : null,
    },
  ];
  const charts: ChartPanel[] = [
    {
      kind: 'bar',
      title: 'Mean reward per incident, replayed on real outcomes',
      yLabel: 'reward',
      series: ['mean reward'],
      groups: values.map((v) => ({ label: v.policy.replace(/ \(.*\)$/, ''), values: [v.mean] })),
      digits: 3,
    },
  ];
  return {
    params: p,
    tables: [byArm, shapes, replay, taken, simTable],
    goals,
    notes: [
      `The agent: tick 1 s, strategy kind learned with exploration.uniform_share 1 (every arm that applies equally likely), policy.noisy_neighbor.calm_ticks 5, otherwise defaults; victim (${VICTIM.workUs} µs of work every ${VICTIM.periodUs} µs) pinned to CPU ${CONTENTION_CPU} as the protect target, hogs in a sibling cgroup as the noisy one. Each incident lasts until the agent logs the outcome of its choice (at most 40 s); the hogs then stop and the next incident starts 5 s after the agent has restored every change. closed_loop.penalty is 0 s, so an arm the closed loop reverted is offered again at the next incident (the default 5 min would leave most incidents with \"do nothing\" alone).`,
      ...(Array.isArray(p.unsettled) && p.unsettled.length > 0
        ? [`Not yet restored ${Number(p.settleMs) / 1000} s after the hogs stopped, so the next incident began with the change in place (its context and eligible arms record it): ${p.unsettled.join('; ')}.`]
        : []),
      'Reward is the learner\'s own: the closed loop\'s measured relative improvement of the victim\'s run-queue p99 (capped at ±1), minus half the fraction of on-CPU time the neighbour lost, minus 0.02 per knob change; "do nothing" is judged by the learner over the same window.',
      'The replay method (Li et al., 2011) is unbiased when the log\'s arms were drawn uniformly among those that applied; it keeps about one event in three here, so its intervals are wide. The learner is replayed over shuffled orders of the log (fresh model and seed each time); the interval is the 5th–95th percentile over shuffles. A fixed policy\'s interval is its mean ± 1.645 standard errors.',
    ],
    charts,
    data: { incidents, choices, values, simulator: sim },
  };
}
