/** The action conformance suite (src/testing/conformance.ts) on the fake cgroup v2 tree: every registered action. */
import { createFakeCgroup2 } from '../cgroup/fake-cgroup2.js';
import type { Target } from '../core/types.js';
import { conformanceSuite } from '../testing/conformance.js';
import { ACTIONS } from './index.js';

conformanceSuite(ACTIONS, () => {
  const fake = createFakeCgroup2();
  const mk = (rel: string, name: string): Target => ({
    name,
    role: 'noisy',
    slot: 0,
    scope: { kind: 'cgroup', path: fake.mkdir(rel), version: 2, id: 0n },
  });
  const target = mk('app.slice/noisy', 'noisy');
  return {
    layout: fake.layout,
    target,
    outside: mk('other.slice/x', 'x'),
    scope: [target.scope.kind === 'cgroup' ? target.scope.path : ''],
    files: () => [fake.root],
    foreign: (_knob, current) => current + '1',
    remove: () => fake.remove(),
  };
});
