/**
 * What the knob writer may touch: every cgroup target's directory — and, for v1, the same relative path in the other
 * hierarchies (cpuset, memory...), which is the same target — and every pid target's processes. Finding a v1
 * cgroup's twins costs a stat per hierarchy, so they are remembered per directory and looked up again once every
 * LOOKUP_EVERY calls (a minute at the agent's membership refresh), or at once for a target that is new.
 */
import { existsSync } from 'node:fs';
import { join, relative } from 'node:path';
import type { Target } from '../core/types.js';
import type { CgroupLayout } from '../cgroup/layout.js';

const LOOKUP_EVERY = 12;

export class WriteScope {
  readonly #layout: CgroupLayout;
  readonly #known = new Map<string, string[]>();
  #calls = 0;

  constructor(layout: CgroupLayout) {
    this.#layout = layout;
  }

  of(targets: readonly Target[]): { cgroupDirs: string[]; pids: number[] } {
    if (++this.#calls % LOOKUP_EVERY === 0) this.#known.clear();
    const live = new Set(targets.flatMap((t) => (t.scope.kind === 'cgroup' ? [t.scope.path] : [])));
    for (const dir of this.#known.keys()) if (!live.has(dir)) this.#known.delete(dir);
    return {
      cgroupDirs: targets.flatMap((t) => (t.scope.kind === 'cgroup' ? this.#dirsOf(t.scope.path) : [])),
      pids: targets.flatMap((t) => (t.scope.kind === 'pids' ? t.scope.pids : [])),
    };
  }

  #dirsOf(dir: string): string[] {
    let dirs = this.#known.get(dir);
    if (!dirs) this.#known.set(dir, (dirs = sameCgroupEverywhere(dir, this.#layout)));
    return dirs;
  }
}

/** `dir` and, when it is in a v1 hierarchy, the directories of the same relative path in the other v1 hierarchies. */
export function sameCgroupEverywhere(dir: string, layout: CgroupLayout): string[] {
  const out = [dir];
  const home = layout.mounts.filter((m) => dir === m.mount || dir.startsWith(m.mount + '/')).sort((a, b) => b.mount.length - a.mount.length)[0];
  if (!home || home.version !== 1) return out;
  const rel = relative(home.mount, dir);
  for (const m of layout.mounts) {
    if (m.version !== 1 || m.mount === home.mount) continue;
    const other = join(m.mount, rel);
    if (existsSync(other)) out.push(other);
  }
  return out;
}
