/**
 * The learned strategy through the real CLI, with the `strategy:` section of the config: a victim (protect) and two
 * CPU hogs (noisy) in v1 cpu cgroups the test creates.
 *
 * - `kind: canary`, `canary_targets: [one]`: the learner acts on `one` only; the noisy-neighbor rule keeps acting on
 *   `two` (src/engine/learned/README.md: "elsewhere its choice is shadow and the rules keep acting") and no longer on
 *   `one` (its nudges there are dropped). Checked in the cgroups' own cpu.shares against the audit trail
 *   (`ebpf-tuner log`): every value `one` held was written by a `learned:` decision, every value `two` held by the
 *   rule, `web` never changed; every original (cpu.shares and cpu.cfs_quota_us) is back after SIGTERM.
 * - `seed`: the learner's only randomness is the seed's generator, so every draw it logs is replayed here: each
 *   eligible arm of each choice, in order, drawn at mean + explore × sd × z with z the seed's next standard normal,
 *   and the largest draw chosen. Two runs with the same seed draw the same numbers, and the learner's first step on
 *   `one` writes the same value in both.
 * - `exploration`: each arm is drawn at max(min_scale, scale × decay^n) posterior standard deviations, n its outcomes:
 *   `scale` on a fresh model, and after a restart on the saved model (`ebpf-tuner model show`) decayed and floored.
 * - `kind: shadow`: the learner only reports what it would do (pressure_backoff on `one`: cpu.cfs_quota_us stays -1);
 *   the rules act as usual (the rule's cpu.shares step on `one` reaches the kernel).
 * - `kind: learned`, `exploration.uniform_share: 1`: every choice is an eligible arm drawn uniformly from the seed's
 *   generator (after the Thompson draws, which are still logged), whatever the model; the chosen step reaches the
 *   kernel, and its outcome is logged with `uniform: true`, the arms that were eligible and the context, which is
 *   what an offline replay of the learner reads.
 *
 * Which arms are on offer at a choice depends on timing (a hot tick before the hogs have run offers no step on a
 * noisy target), so the test checks the draws against the seed rather than a precomputed first arm.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { toolPath } from '../../src/bpf/paths.js';
import { Prng } from '../../src/engine/learned/prng.js';
import { cleanupAll, killAndWait, makeTestCgroup, spawnInCgroup, type SpawnedProcess, type TestCgroup } from '../../src/testing/cgroups.js';
import { type AgentProcess, runCli, spawnHogs, spawnVictim, startAgent, tempDir, waitUntil } from './helpers.js';
import type { AuditRecord as AuditRow } from '../../src/audit/audit.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const shares = (cg: TestCgroup) => Number(readFileSync(join(cg.path, 'cpu.shares'), 'utf8'));
const quota = (cg: TestCgroup) => Number(readFileSync(join(cg.path, 'cpu.cfs_quota_us'), 'utf8'));

type Line = Record<string, unknown>;
interface Estimate {
  arm: string;
  eligible: boolean;
  mean: number;
  sd: number;
  draw?: number;
  explore?: number;
  target?: string;
}
type Choice = Line & { arm: string; acting: boolean; uniform: boolean; estimates: Estimate[] };

afterAll(async () => {
  await cleanupAll();
});

const isChoice = (l: Line) => l.msg === 'learner choice';
const choicesOf = (agent: AgentProcess) => agent.lines.filter(isChoice) as Choice[];

/**
 * Replays the seed: every eligible arm of every choice, in order, was drawn at mean + explore × sd × z with z the
 * generator's next standard normal, and the largest draw won. Returns the draws, for comparing runs.
 */
function expectSeededDraws(choices: Choice[], seed: number): number[] {
  const prng = Prng.fromSeed(seed);
  const zs: number[] = [];
  for (const c of choices) {
    let best: Estimate | undefined;
    for (const e of c.estimates.filter((x) => x.eligible)) {
      const z = prng.normal();
      zs.push(z);
      expect(e.draw, `${e.arm} draw`).toBe(e.mean + e.explore! * e.sd * z);
      if (best === undefined || e.draw! > best.draw!) best = e;
    }
    expect(c.arm).toBe(best!.arm);
  }
  return zs;
}

/**
 * Replays the seed for choices made with uniform_share 1: the Thompson draws as above (one normal per eligible arm),
 * then one uniform number that is below the share, then one that picks the arm among the eligible ones.
 */
function expectUniformDraws(choices: Choice[], seed: number): void {
  const prng = Prng.fromSeed(seed);
  for (const c of choices) {
    const eligible = c.estimates.filter((x) => x.eligible);
    for (const e of eligible) expect(e.draw, `${e.arm} draw`).toBe(e.mean + e.explore! * e.sd * prng.normal());
    expect(prng.uniform()).toBeLessThan(1);
    expect(c.uniform).toBe(true);
    expect(c.arm).toBe(eligible[Math.floor(prng.uniform() * eligible.length)]!.arm);
  }
}

/** The cgroups and the victim of one scenario; `hogs` starts the noisy load, in which `one` is by far the busiest. */
async function scenario() {
  const base = makeTestCgroup('cpu');
  const web = base.child('web');
  const one = base.child('one');
  const two = base.child('two');
  const procs: SpawnedProcess[] = [];
  // The victim needs 60% of CPU 1, more than its share beside two busy siblings there; `one` also spins on CPU 0.
  procs.push(await spawnVictim(web.path));
  let hogs: SpawnedProcess[] = [];
  return {
    base,
    web,
    one,
    two,
    procs,
    /** The agent's config for these targets, with `strategy` (the YAML strategy section) after the rules. */
    config: (strategy: string) => `tick: 1s
${POLICY}
targets:
  - {name: web, cgroup: ${web.path}, role: protect}
  - {name: one, cgroup: ${one.path}, role: noisy}
  - {name: two, cgroup: ${two.path}, role: noisy}
${strategy}`,
    async startHogs() {
      hogs = [
        await spawnHogs(one.path, '0,1'),
        await spawnInCgroup(two.path, 'taskset', ['-c', '1', toolPath('hog'), '--threads', '1']),
      ];
      procs.push(...hogs);
    },
    async stopHogs() {
      for (const h of hogs) await killAndWait(h);
    },
  };
}

/**
 * Starts the load once the agent has ticked past the closed loop's warm-up, so the first hot tick finds a whole
 * baseline and the first choice is carried out rather than refused for want of one.
 */
async function loadAfterWarmup(agent: AgentProcess, startHogs: () => Promise<void>): Promise<void> {
  await agent.waitFor((l) => l.msg === 'tick' && Number(l.tick) >= 3, 30_000);
  await startHogs();
}

/** Every distinct value `read` returns while it runs: what the kernel held, whoever wrote it. */
function sampler(reads: Record<string, () => number>) {
  const seen: Record<string, Set<number>> = Object.fromEntries(Object.keys(reads).map((k) => [k, new Set<number>()]));
  const take = () => {
    for (const [k, r] of Object.entries(reads)) {
      try {
        seen[k]!.add(r());
      } catch {
        // the cgroup is going away
      }
    }
  };
  take();
  const t = setInterval(take, 100);
  return {
    seen,
    stop: () => (take(), clearInterval(t)),
  };
}

/** SIGTERM, as an operator stops it: exit 0, and every original (cpu.shares, cpu.cfs_quota_us) back in the kernel. */
async function stopRestored(agent: AgentProcess, cgs: readonly TestCgroup[]): Promise<void> {
  agent.child.kill('SIGTERM');
  expect((await agent.exited).code).toBe(0);
  expect(cgs.flatMap((cg) => [shares(cg), quota(cg)])).toEqual(cgs.flatMap(() => [1024, -1]));
}

/** Ends every process the test started, by pid, then removes its cgroups and state directories. */
async function cleanUp(procs: readonly SpawnedProcess[], base: TestCgroup, dirs: readonly { remove(): void }[]): Promise<void> {
  for (const p of procs) await killAndWait(p);
  await sleep(50);
  base.remove();
  for (const d of dirs) d.remove();
}

function auditLog(state: string): AuditRow[] {
  const r = runCli(['log', '--state-dir', state, '--json']);
  expect(r.code, r.stderr).toBe(0);
  return JSON.parse(r.stdout) as AuditRow[];
}

/** The cpu.weight a record left the knob at ("weight=50" → 50); v1 shares are round(weight × 1024 / 100). */
const weightTo = (r: AuditRow) => Number(/weight=(\d+)/.exec(r.to ?? '')?.[1]);
const sharesOf = (weight: number) => Math.round((weight * 1024) / 100);


const POLICY = `policy:
  noisy_neighbor: {p99_threshold_us: 3000, max_noisy_per_step: 2}
  pressure_backoff: {enabled: false}
  cpuset_spread: {enabled: false}
  numa_rebalance: {enabled: false}
  io_prefetch: {enabled: false}`;

describe('learned strategy from the strategy section, through the agent', () => {
  it('canary: the learner lowers only its canary target, the rule only the other; same seed, same first choice; exploration decays', async () => {
    const { base, web, one, two, procs, startHogs, stopHogs, config: configText } = await scenario();
    const fresh = [tempDir(), tempDir()];
    try {
      const config = fresh[0]!.file(
        'c.yaml',
        configText(`strategy:
  kind: canary
  canary_targets: [one]
  seed: 10
  exploration:
    scale: 2
    decay: 0.5
    min_scale: 0.75
`),
      );
      const start = (state: string) => {
        const agent = startAgent(['--config', config, '--state-dir', state, '--log-level', 'debug']);
        procs.push(agent);
        return agent;
      };
      const stop = async (agent: AgentProcess) => {
        await stopRestored(agent, [web, one, two]);
        expect(agent.lines.some((l) => l.msg === 'agent stopped; originals restored')).toBe(true);
        await stopHogs();
      };

      // Run 1, fresh model.
      const kernel = sampler({ web: () => shares(web), one: () => shares(one), two: () => shares(two) });
      const a = start(fresh[0]!.path);
      await loadAfterWarmup(a, startHogs);
      const firstA = (await a.waitFor(isChoice, 45_000)) as Choice;
      console.log(`run 1 first choice: ${JSON.stringify(firstA)}`);
      // Nothing learned yet: every arm on offer is drawn at `scale`.
      for (const e of firstA.estimates.filter((x) => x.eligible)) expect(e.explore, e.arm).toBe(2);
      // The learner's step on `one`, the busiest noisy target and the only canary.
      const stepA = (await a.waitFor((l) => isChoice(l) && l.arm === 'cpu_weight' && l.acting === true, 60_000)) as Choice;
      const moveA = stepA.estimates.find((e) => e.arm === 'cpu_weight')!;
      expect(moveA.target).toBe('one');
      await waitUntil(() => [...kernel.seen.one!].some((v) => v < 1024), 20_000, 'the learner lowers one');
      // The rules keep acting on the targets that are not canaries.
      // The rules keep acting on the targets that are not canaries. The closed loop may already have put the rule's
      // step back by now (a step that did not help is reverted), so this asks what the kernel held, not holds.
      await waitUntil(() => [...kernel.seen.two!].some((v) => v < 1024), 45_000, 'the rule lowers two');
      // An outcome of the cpu_weight arm (its own verdict or the rule's on two, a window later) is saved with the model.
      await waitUntil(() => {
        const m = JSON.parse(runCli(['model', 'show', '--state-dir', fresh[0]!.path, '--json']).stdout) as { status: string; arms?: Record<string, { outcomes: number }> };
        return m.status === 'loaded' && (m.arms?.cpu_weight?.outcomes ?? 0) >= 1;
      }, 30_000, 'the learner learns an outcome');
      kernel.stop();
      const drawsA = expectSeededDraws(choicesOf(a), 10);

      const log = auditLog(fresh[0]!.path);
      console.log(log.map((r) => `${r.kind} ${r.action} ${r.target} ${r.rule} ${r.from} → ${r.to}`).join('\n'));
      const changes = log.filter((r) => r.action === 'cpu_weight' && ['applied', 'reverted', 'restored'].includes(r.kind));
      const onOne = changes.filter((r) => r.target === 'one');
      const onTwo = changes.filter((r) => r.target === 'two');
      // one: the learner's alone (the rule's nudges on a canary target are dropped); two: the rule's alone.
      expect(onOne.length).toBeGreaterThan(0);
      expect(onOne.every((r) => r.rule === 'learned:cpu_weight'), JSON.stringify(onOne)).toBe(true);
      expect(onTwo.length).toBeGreaterThan(0);
      expect(onTwo.every((r) => !r.rule.startsWith('learned:')), JSON.stringify(onTwo)).toBe(true);
      expect(changes.some((r) => r.target === 'web')).toBe(false);
      // What the kernel held: every value of one's cpu.shares is one the learner wrote, of two's one the rule wrote.
      expect([...kernel.seen.web!]).toEqual([1024]);
      const learned = new Set([1024, ...onOne.map((r) => sharesOf(weightTo(r)))]);
      const ruled = new Set([1024, ...onTwo.map((r) => sharesOf(weightTo(r)))]);
      for (const v of kernel.seen.one!) expect(learned, `one cpu.shares ${v}`).toContain(v);
      for (const v of kernel.seen.two!) expect(ruled, `two cpu.shares ${v}`).toContain(v);
      const firstLearned = log.find((r) => r.kind === 'applied' && r.rule === 'learned:cpu_weight')!;
      expect(firstLearned.target).toBe('one');
      expect(firstLearned.reason).toMatch(/learner chose cpu_weight/);
      expect(firstLearned.evidence?.['explore.cpu_weight']).toBe(moveA.explore);
      // The plain `log` names the learner as the source.
      const text = runCli(['log', '--state-dir', fresh[0]!.path, '--target', 'one']);
      expect(text.code, text.stderr).toBe(0);
      expect(text.stdout).toMatch(/applied\s+cpu_weight one .*learner chose cpu_weight/);
      await stop(a);

      // Run 2, fresh model, same seed: the same first choice.
      const kernelB = sampler({ one: () => shares(one) });
      const b = start(fresh[1]!.path);
      await loadAfterWarmup(b, startHogs);
      const firstB = (await b.waitFor(isChoice, 45_000)) as Choice;
      console.log(`run 2 first choice: ${JSON.stringify(firstB)}`);
      const eligible = (c: Choice) => c.estimates.filter((e) => e.eligible).map((e) => e.arm);
      // The same offer gets the same choice.
      if (eligible(firstB).join() === eligible(firstA).join()) expect(firstB.arm).toBe(firstA.arm);
      const appliedB = await b.waitFor((l) => l.decision !== undefined && l.kind === 'applied' && l.target === 'one', 20_000);
      await waitUntil(() => [...kernelB.seen.one!].some((v) => v < 1024), 10_000, 'the learner lowers one again');
      kernelB.stop();
      const fromB = auditLog(fresh[1]!.path).find((r) => r.id === appliedB.decision);
      expect(fromB).toMatchObject({ rule: 'learned:cpu_weight', action: 'cpu_weight', to: firstLearned.to });
      expect(shares(web)).toBe(1024);
      // The same seed, the same numbers.
      const drawsB = expectSeededDraws(choicesOf(b), 10);
      const n = Math.min(drawsA.length, drawsB.length);
      expect(n).toBeGreaterThan(0);
      expect(drawsB.slice(0, n)).toEqual(drawsA.slice(0, n));
      await stop(b);

      // Run 3 on run 1's model: every arm is drawn at max(min_scale, scale × decay^outcomes).
      const model = JSON.parse(runCli(['model', 'show', '--state-dir', fresh[0]!.path, '--json']).stdout) as { arms: Record<string, { outcomes: number }> };
      console.log(`run 1 model outcomes: ${JSON.stringify(Object.fromEntries(Object.entries(model.arms).map(([k, v]) => [k, v.outcomes])))}`);
      const c = start(fresh[0]!.path);
      await loadAfterWarmup(c, startHogs);
      const firstC = (await c.waitFor(isChoice, 45_000)) as Choice;
      console.log(`run 3 first choice: ${JSON.stringify(firstC)}`);
      const offered = firstC.estimates.filter((e) => e.eligible);
      expect(offered.length).toBeGreaterThan(1);
      for (const e of offered) expect(e.explore, e.arm).toBe(Math.max(0.75, 2 * 0.5 ** model.arms[e.arm]!.outcomes));
      // cpu_weight has learned: its spread has shrunk below `scale`.
      const weighC = (await c.waitFor((l) => isChoice(l) && (l as Choice).estimates.some((e) => e.arm === 'cpu_weight' && e.eligible), 45_000)) as Choice;
      expect(weighC.estimates.find((e) => e.arm === 'cpu_weight')!.explore).toBeLessThan(2);
      await stop(c);
    } finally {
      await cleanUp(procs, base, fresh);
    }
  }, 150_000);

  it('shadow: the learner reports what it would do and changes nothing; the rule acts as usual', async () => {
    const { base, web, one, two, procs, startHogs, config: configText } = await scenario();
    const state = tempDir();
    try {
      const config = state.file('c.yaml', configText('strategy: {kind: shadow, seed: 11}\n'));
      const kernel = sampler({ one: () => quota(one), two: () => quota(two), web: () => shares(web), oneShares: () => shares(one) });
      const agent = startAgent(['--config', config, '--state-dir', state.path, '--log-level', 'debug']);
      procs.push(agent);
      await loadAfterWarmup(agent, startHogs);
      // The first choice of a step rather than of doing nothing: only reported.
      const first = (await agent.waitFor((l) => isChoice(l) && l.arm !== 'noop', 45_000)) as Choice;
      console.log(`shadow first step: ${JSON.stringify(first)}`);
      expect(first.acting).toBe(false);
      const would = first.estimates.find((e) => e.arm === first.arm)!;
      const shadow = await agent.waitFor((l) => typeof l.decision === 'string' && String(l.decision).startsWith('shadow-') && l.action === first.arm, 10_000);
      expect(shadow).toMatchObject({ action: first.arm, target: would.target });
      expect(String(shadow.msg)).toMatch(new RegExp(`^shadow: learner would choose ${first.arm}: .*; rules proposed `));
      // The rule acts as it would without the learner, and is judged a window later; by then a learner that acted
      // would have capped one long ago.
      const verdict = await agent.waitFor((l) => l.decision !== undefined && (l.kind === 'kept' || l.kind === 'reverted'), 30_000);
      console.log(`rule verdict: ${JSON.stringify(verdict)}`);
      kernel.stop();
      expectSeededDraws(choicesOf(agent), 11);
      expect([...kernel.seen.one!]).toEqual([-1]);
      expect([...kernel.seen.two!]).toEqual([-1]);
      expect([...kernel.seen.web!]).toEqual([1024]);
      // The rule's step on one reached the kernel (the closed loop may have put it back since).
      expect(Math.min(...kernel.seen.oneShares!)).toBeLessThan(1024);
      const log = auditLog(state.path);
      console.log(log.map((r) => `${r.kind} ${r.action} ${r.target} ${r.rule} ${r.from} → ${r.to}`).join('\n'));
      expect(log.some((r) => r.kind === 'applied' && r.action === 'cpu_weight' && r.target === 'one' && !r.rule.startsWith('learned:'))).toBe(true);
      expect(log.filter((r) => r.rule.startsWith('learned:'))).toEqual([]);
      await stopRestored(agent, [web, one, two]);
    } finally {
      await cleanUp(procs, base, [state]);
    }
  }, 90_000);

  it('learned with uniform_share 1: each choice an eligible arm at random, carried out, and its outcome logged for replay', async () => {
    const { base, web, one, two, procs, startHogs, config: configText } = await scenario();
    const state = tempDir();
    try {
      const config = state.file('c.yaml', configText('strategy:\n  kind: learned\n  seed: 12\n  exploration:\n    uniform_share: 1\n'));
      const kernel = sampler({ one: () => shares(one), two: () => shares(two), oneQuota: () => quota(one), twoQuota: () => quota(two) });
      const agent = startAgent(['--config', config, '--state-dir', state.path, '--log-level', 'debug']);
      procs.push(agent);
      await loadAfterWarmup(agent, startHogs);
      // Two outcomes of the learner's own choices, whichever arms they were.
      await waitUntil(() => agent.lines.filter((l) => l.msg === 'learner outcome' && l.onPolicy === true).length >= 2, 90_000, 'two outcomes of uniform choices');
      // The agent goes on choosing: a step it applies in the tick of the second outcome is in the audit trail read
      // below, and the kernel must be sampled for a while after that read, or the step would be in the trail unseen.
      // Every step is written to the cgroup before its record, and stays at least until the next 1 s tick.
      const applied = auditLog(state.path).filter((r) => r.kind === 'applied' && r.rule.startsWith('learned:'));
      await sleep(400);
      kernel.stop();
      const choices = choicesOf(agent);
      console.log(choices.map((c) => `${c.arm} of ${c.estimates.filter((e) => e.eligible).map((e) => e.arm).join(',')}`).join('\n'));
      expectUniformDraws(choices, 12);
      const outcomes = agent.lines.filter((l) => l.msg === 'learner outcome' && l.onPolicy === true);
      for (const o of outcomes) {
        console.log(`outcome: ${JSON.stringify(o)}`);
        expect(o.uniform).toBe(true);
        expect(o.features).toHaveProperty(['runqlat.severity']);
        expect(o.eligible as string[]).toContain(o.arm);
        expect(typeof o.reward).toBe('number');
      }
      // What the kernel held: every learned step the audit trail records reached the cgroup's own file.
      for (const r of applied.filter((x) => x.action === 'cpu_weight')) {
        const cg = r.target === 'one' ? kernel.seen.one! : kernel.seen.two!;
        expect(cg, `${r.target} cpu.shares after ${r.to}`).toContain(sharesOf(weightTo(r)));
      }
      for (const r of applied.filter((x) => x.action === 'pressure_backoff')) {
        const q = r.target === 'one' ? kernel.seen.oneQuota! : kernel.seen.twoQuota!;
        // The first sample, before the agent started, is the unlimited -1; the cap must be among the later ones.
        expect(Math.max(...q), `${r.target} cpu.cfs_quota_us after ${r.to}: ${[...q].join(', ')}`).toBeGreaterThan(0);
      }
      await stopRestored(agent, [web, one, two]);
    } finally {
      await cleanUp(procs, base, [state]);
    }
  }, 150_000);
});
