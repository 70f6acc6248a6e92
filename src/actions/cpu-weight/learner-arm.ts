/**
 * The learner's cpu_weight arm: lower the busiest noisy target's weight by one step, as the noisy-neighbor rule
 * would (its `step_fraction` and `min_weight`). The rule and the learner share the step, so their verdicts teach
 * the same arm.
 */
import { stepWeight } from '../../engine/heuristic/noisy-neighbor.js';
import { onBusiestNoisy, type ArmSettings, type CandidateTemplate } from '../../engine/learned/candidates.js';

const NAME = 'cpu_weight';

export function cpuWeightArm(settings: ArmSettings): CandidateTemplate {
  return {
    name: NAME,
    action: NAME,
    propose: (ctx) =>
      onBusiestNoisy(
        ctx,
        (t) => {
          const from = ctx.input.current(t.name, NAME)?.weight;
          if (from === undefined || !Number.isFinite(from)) return undefined;
          const to = stepWeight(from, settings.step);
          if (to >= from) return undefined;
          return { target: t.name, desired: { weight: to }, move: `${t.name} cpu.weight ${from} → ${to}` };
        },
        'every busy noisy target is at the weight floor or has no readable weight',
      ),
  };
}
