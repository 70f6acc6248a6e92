/**
 * A fresh v2 host as users have it: `check` passes and describes it, and attaching the classic tracepoints (which
 * need tracefs for their ids) leaves the host without tracefs, as it was found.
 */
import { existsSync } from 'node:fs';
import { beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../e2e/helpers.js';
import { kernelRelease, report, requireVm } from './helpers.js';

beforeAll(() => requireVm());

describe('check on a fresh cgroup v2 host', () => {
  it('passes, reports pure v2 with the cpu controller, and leaves tracefs unmounted', () => {
    expect(existsSync('/sys/kernel/tracing/events')).toBe(false);
    const r = runCli(['check', '--json']);
    expect(r.code, r.stderr).toBe(0);
    const rep = JSON.parse(r.stdout) as { ok: boolean; items: { name: string; ok: boolean; detail: string }[] };
    const item = (n: string) => rep.items.find((i) => i.name === n)!;
    expect(rep.ok).toBe(true);
    expect(item('cgroup').detail).toMatch(/^v2 /);
    expect(item('cgroup').detail).toMatch(/cpu: v2 at \/sys\/fs\/cgroup/);
    // The classic tracepoint probe attached (tracefs mounted for the attach) and tracefs is gone again.
    expect(item('attach:tracepoint').ok, item('attach:tracepoint').detail).toBe(true);
    expect(existsSync('/sys/kernel/tracing/events')).toBe(false);
    const kinds = Object.fromEntries(rep.items.filter((i) => i.name.startsWith('attach:')).map((i) => [i.name.slice(7), i.ok]));
    report('check', { kernel: kernelRelease(), attach: kinds });
    console.log(`${kernelRelease()}: ${JSON.stringify(kinds)}`);
  });
});
