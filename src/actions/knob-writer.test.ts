import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { silentLogger } from '../core/log.js';
import { kernelKnobIO, type KnobIO } from '../cgroup/cgroup.js';
import { createFakeCgroup2, type FakeCgroup2 } from '../cgroup/fake-cgroup2.js';
import { Journal } from '../journal/journal.js';
import { KnobWriter, defaultDenyList } from './knob-writer.js';
import type { BlockDevice } from '../block/devices.js';

let fake: FakeCgroup2;
let stateDir: string;
let journal: Journal;
const extra: string[] = [];

beforeEach(() => {
  fake = createFakeCgroup2();
  stateDir = fs.mkdtempSync(path.join(os.tmpdir(), 'ebpf-tuner-writer-test-'));
  journal = Journal.open(stateDir, silentLogger);
});
afterEach(() => {
  journal.close();
  fake.remove();
  fs.rmSync(stateDir, { recursive: true, force: true });
  for (const d of extra.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

function writer(opts: { dryRun?: boolean; scope?: string[]; io?: KnobIO; devices?: BlockDevice[] } = {}): KnobWriter {
  return new KnobWriter({
    journal,
    log: silentLogger,
    scope: opts.scope ?? [fake.path('app.slice')],
    layout: fake.layout,
    ...(opts.dryRun !== undefined ? { dryRun: opts.dryRun } : {}),
    ...(opts.io !== undefined ? { io: opts.io } : {}),
    ...(opts.devices !== undefined ? { devices: opts.devices } : {}),
  });
}

function knob(rel: string, file = 'cpu.weight') {
  const p = path.join(fake.path(rel), file);
  return { id: `cpu_weight:${p}`, path: p, target: rel };
}

/** Path → sha256 of every file in the tree, to prove a run touched nothing. */
function snapshot(root: string): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (d: string): void => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else out.set(p, createHash('sha256').update(fs.readFileSync(p)).digest('hex'));
    }
  };
  walk(root);
  return out;
}

const read = (p: string): string => fs.readFileSync(p, 'utf8');

describe('KnobWriter scope', () => {
  it('refuses paths outside every target', () => {
    fake.mkdir('app.slice/a');
    fake.mkdir('other');
    const w = writer();
    expect(() => w.set(knob('other'), 'cpu_weight', '50')).toThrow(expect.objectContaining({ code: 'OUT_OF_SCOPE' }));
    expect(() => w.set(knob('other'), 'cpu_weight', '50')).toThrow(/is outside every configured target .* — add its cgroup as a target/);
    expect(() => w.set({ ...knob('other'), path: 'relative/cpu.weight' }, 'x', '1')).toThrow(/not an absolute path/);
    // `..` cannot climb out of scope.
    const sneaky = { ...knob('app.slice/a'), path: fake.path('app.slice/a') + '/../../other/cpu.weight' };
    expect(() => w.set(sneaky, 'cpu_weight', '50')).toThrow(expect.objectContaining({ code: 'OUT_OF_SCOPE' }));
    expect(read(fake.path('other/cpu.weight'))).toBe('100\n');
    expect(journal.all()).toEqual([]);
  });

  it('refuses a symlink that points out of scope', () => {
    fake.mkdir('app.slice/a');
    fake.mkdir('other');
    const link = fake.path('app.slice/a/link.weight');
    fs.symlinkSync(fake.path('other/cpu.weight'), link);
    expect(() => writer().set({ id: 'x', path: link, target: 'a' }, 'cpu_weight', '5')).toThrow(
      expect.objectContaining({ code: 'OUT_OF_SCOPE' }),
    );
  });

  it('denies the controller root, init.scope, system.slice and the agent cgroup even when in scope', () => {
    fake.mkdir('init.scope');
    fake.mkdir('system.slice/foo.service');
    const w = writer({ scope: [fake.root] });
    for (const rel of ['.', 'init.scope', 'system.slice', 'system.slice/foo.service']) {
      const k = rel === '.' ? { id: 'root', path: path.join(fake.root, 'cgroup.subtree_control'), target: 'r' } : knob(rel);
      expect(() => w.set(k, 'cpu_weight', '5'), rel).toThrow(/which the agent never changes/);
    }
    fake.mkdir('app.slice/ok');
    expect(w.set(knob('app.slice/ok'), 'cpu_weight', '5').status).toBe('written');
  });

  it("default deny list holds the agent's own cgroup and its ancestors, found through /proc/<pid>/cgroup", () => {
    const procRoot = fs.mkdtempSync(path.join(os.tmpdir(), 'ebpf-tuner-proc-'));
    extra.push(procRoot);
    fs.mkdirSync(path.join(procRoot, '77'));
    fs.writeFileSync(path.join(procRoot, '77', 'cgroup'), '0::/agent.slice/ebpf-tuner.service\n');
    const rules = defaultDenyList(fake.layout, { pid: 77, procRoot });
    expect(rules).toContainEqual({ path: fake.root, subtree: false, reason: 'a cgroup controller root', tasks: false });
    expect(rules).toContainEqual({ path: path.join(fake.root, 'agent.slice/ebpf-tuner.service'), subtree: false, reason: "the agent's own cgroup", tasks: false });
    expect(rules).toContainEqual({ path: path.join(fake.root, 'agent.slice'), subtree: false, reason: "an ancestor of the agent's cgroup", tasks: false });

    fake.mkdir('agent.slice/ebpf-tuner.service');
    fake.mkdir('agent.slice/sibling.service');
    const w = new KnobWriter({ journal, log: silentLogger, scope: [fake.root], deny: rules });
    expect(() => w.set(knob('agent.slice/ebpf-tuner.service'), 'cpu_weight', '5')).toThrow(/the agent's own cgroup/);
    expect(() => w.set(knob('agent.slice'), 'cpu_weight', '5')).toThrow(/an ancestor/);
    expect(w.set(knob('agent.slice/sibling.service'), 'cpu_weight', '5').status).toBe('written');
  });
});

describe('KnobWriter files declared outside the cgroup tree', () => {
  function device(): { dir: string; knob: string; link: string } {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ebpf-tuner-fake-sysfs-'));
    extra.push(dir);
    fs.mkdirSync(path.join(dir, 'devices/loop0/queue'), { recursive: true });
    const knob = path.join(dir, 'devices/loop0/queue/read_ahead_kb');
    fs.writeFileSync(knob, '128\n');
    fs.mkdirSync(path.join(dir, 'block'));
    const link = path.join(dir, 'block/loop0');
    fs.symlinkSync(path.join(dir, 'devices/loop0'), link);
    return { dir, knob, link };
  }
  const ref = (p: string, target = 'reader') => ({ id: `io_prefetch:${p}`, path: p, target });

  it('lets only the declaring action write only the declared files, for only that target', () => {
    const d = device();
    const other = path.join(d.dir, 'devices/loop0/queue/nr_requests');
    fs.writeFileSync(other, '128\n');
    const w = writer({ devices: [{ name: 'loop0', dev: '7:0', sysfs: path.join(d.dir, 'devices/loop0') }] });
    expect(() => w.set(ref(d.knob), 'io_prefetch', '1024')).toThrow(/io_prefetch declared no file of device loop0 for reader — a device knob is written only for a target that does I\/O on it/);
    w.allowOutside('io_prefetch', 'reader', [d.knob]);
    // Reached through a symlink, the file is still the declared one.
    expect(w.set(ref(path.join(d.link, 'queue/read_ahead_kb')), 'io_prefetch', '1024').status).toBe('written');
    expect(read(d.knob)).toBe('1024\n');
    expect(() => w.set(ref(d.knob, 'someone-else'), 'io_prefetch', '512')).toThrow(expect.objectContaining({ code: 'OUT_OF_SCOPE' }));
    expect(() => w.set(ref(d.knob), 'cpu_weight', '512')).toThrow(expect.objectContaining({ code: 'OUT_OF_SCOPE' }));
    expect(() => w.set(ref(other), 'io_prefetch', '4')).toThrow(/not among the 1 io_prefetch declared for reader/);
    expect(read(other)).toBe('128\n');
    // A new declaration replaces the old one.
    w.allowOutside('io_prefetch', 'reader', []);
    expect(() => w.set(ref(d.knob), 'io_prefetch', '2048')).toThrow(expect.objectContaining({ code: 'OUT_OF_SCOPE' }));
    expect(read(d.knob)).toBe('1024\n');
    // Restores are not limited by scope, so a knob changed under an old declaration can always go back.
    expect(w.restoreAll().restored).toHaveLength(1);
    expect(read(d.knob)).toBe('128\n');
  });

  it('refuses every file of a device not in the configured devices, declared or not, and journals nothing', () => {
    const d = device();
    for (const devices of [[], [{ name: 'loop1', dev: '7:1', sysfs: path.join(d.dir, 'devices/loop1') }]]) {
      const w = writer({ devices });
      w.allowOutside('io_prefetch', 'reader', [d.knob]);
      expect(() => w.set(ref(d.knob), 'io_prefetch', '1024')).toThrow(
        expect.objectContaining({ code: 'OUT_OF_SCOPE', message: expect.stringMatching(/device loop0 is not among the configured devices \((none listed|loop1)\) — fix: add it to devices:/) }),
      );
      // Through a symlink, the file is still that device's.
      expect(() => w.set(ref(path.join(d.link, 'queue/read_ahead_kb')), 'io_prefetch', '1024')).toThrow(expect.objectContaining({ code: 'OUT_OF_SCOPE' }));
    }
    expect(read(d.knob)).toBe('128\n');
    expect(journal.active()).toEqual([]);
  });

  it('refuses to declare a file inside a cgroup tree, or a relative path', () => {
    fake.mkdir('other');
    const w = writer();
    expect(() => w.allowOutside('io_prefetch', 'reader', [path.join(fake.path('other'), 'cpu.weight')])).toThrow(
      /lies in the cgroup tree .*where only the targets' own cgroups are in scope/,
    );
    expect(() => w.allowOutside('io_prefetch', 'reader', ['queue/read_ahead_kb'])).toThrow(/not an absolute path/);
    expect(() => w.set(knob('other'), 'io_prefetch', '5')).toThrow(expect.objectContaining({ code: 'OUT_OF_SCOPE' }));
  });

  it('still applies the deny list to declared files', () => {
    const d = device();
    const w = new KnobWriter({
      journal,
      log: silentLogger,
      scope: [],
      layout: fake.layout,
      deny: [{ path: path.dirname(d.knob), subtree: true, reason: 'a denied device' }],
    });
    w.allowOutside('io_prefetch', 'reader', [d.knob]);
    expect(() => w.set(ref(d.knob), 'io_prefetch', '1024')).toThrow(/a denied device/);
    expect(read(d.knob)).toBe('128\n');
  });

  it('exposes the state directory the journal lives in', () => {
    expect(writer().stateDir).toBe(path.resolve(stateDir));
  });
});

describe('KnobWriter writes', () => {
  it('journals the original durably before the first write', () => {
    fake.mkdir('app.slice/a');
    const k = knob('app.slice/a');
    const seen: string[] = [];
    const io: KnobIO = {
      read: kernelKnobIO.read,
      write: (p, v) => {
        // At the moment of the write, a fresh connection must already see the original and the intended value.
        const other = Journal.open(stateDir, silentLogger);
        const e = other.get(k.id);
        other.close();
        seen.push(`${e?.original}->${e?.pending}`);
        kernelKnobIO.write(p, v);
      },
    };
    const r = writer({ io }).set(k, 'cpu_weight', '50');
    expect(r).toMatchObject({ status: 'written', previous: '100', value: '50', firstWrite: true });
    expect(seen).toEqual(['100->50']);
    expect(read(k.path)).toBe('50\n');
    expect(journal.get(k.id)).toMatchObject({ original: '100', lastWritten: '50', pending: null, state: 'active', action: 'cpu_weight' });
  });

  it('keeps the first original over later writes and skips no-op writes', () => {
    fake.mkdir('app.slice/a');
    const k = knob('app.slice/a');
    const w = writer();
    w.set(k, 'cpu_weight', '50');
    expect(w.set(k, 'cpu_weight', '25')).toMatchObject({ status: 'written', previous: '50', firstWrite: false });
    expect(w.set(k, 'cpu_weight', '25').status).toBe('unchanged');
    expect(journal.get(k.id)).toMatchObject({ original: '100', lastWritten: '25' });
    expect(w.set(knob('app.slice/a', 'cpu.max'), 'cpu_max', 'max 100000').status).toBe('unchanged');
    expect(journal.get(knob('app.slice/a', 'cpu.max').id)).toBeUndefined();
  });

  it('journals the value as the kernel shows it after the write', () => {
    fake.mkdir('app.slice/a');
    const k = knob('app.slice/a', 'cpu.max');
    // The kernel expands a bare "max" to "max <period>".
    const io: KnobIO = { read: kernelKnobIO.read, write: (p, v) => kernelKnobIO.write(p, v === 'max' ? 'max 100000' : v) };
    fs.writeFileSync(k.path, '50000 100000\n');
    const w = writer({ io });
    w.set(k, 'cpu_max', 'max');
    expect(journal.get(k.id)?.lastWritten).toBe('max 100000');
    expect(w.isOverridden(k.id)).toBe(false);
  });

  it('stops writing a knob another writer changed, and says so', () => {
    fake.mkdir('app.slice/a');
    const k = knob('app.slice/a');
    const w = writer();
    w.set(k, 'cpu_weight', '50');
    fs.writeFileSync(k.path, '300\n');
    expect(w.set(k, 'cpu_weight', '25')).toMatchObject({ status: 'overridden', previous: '300' });
    expect(read(k.path)).toBe('300\n');
    expect(journal.get(k.id)).toMatchObject({ state: 'overridden', observed: '300' });
    expect(w.isOverridden(k.id)).toBe(true);
    // Even once the other writer's value matches ours again, the knob stays theirs.
    fs.writeFileSync(k.path, '50\n');
    expect(w.set(k, 'cpu_weight', '25').status).toBe('overridden');
    expect(read(k.path)).toBe('50\n');
    expect(w.restore(k.id)).toBeUndefined();
  });

  it('isOverridden checks the live value', () => {
    fake.mkdir('app.slice/a');
    const k = knob('app.slice/a');
    const w = writer();
    expect(w.isOverridden(k.id)).toBe(false);
    w.set(k, 'cpu_weight', '50');
    expect(w.isOverridden(k.id)).toBe(false);
    fs.writeFileSync(k.path, '51\n');
    expect(w.isOverridden(k.id)).toBe(true);
    expect(journal.get(k.id)?.state).toBe('overridden');
  });

  it('a failed first write leaves nothing to restore; a failed later write keeps the last value', () => {
    fake.mkdir('app.slice/a');
    const k = knob('app.slice/a');
    let fail = true;
    const io: KnobIO = {
      read: kernelKnobIO.read,
      write: (p, v) => {
        if (fail) throw Object.assign(new Error('EINVAL'), { code: 'EINVAL' });
        kernelKnobIO.write(p, v);
      },
    };
    const w = writer({ io });
    expect(() => w.set(k, 'cpu_weight', '50')).toThrow('EINVAL');
    expect(journal.get(k.id)?.state).toBe('restored');
    fail = false;
    w.set(k, 'cpu_weight', '50');
    fail = true;
    expect(() => w.set(k, 'cpu_weight', '25')).toThrow();
    expect(journal.get(k.id)).toMatchObject({ state: 'active', original: '100', lastWritten: '50', pending: null });
    expect(read(k.path)).toBe('50\n');
  });

  it('restore(knobId) puts the original back', () => {
    fake.mkdir('app.slice/a');
    const k = knob('app.slice/a');
    const w = writer();
    w.set(k, 'cpu_weight', '50');
    expect(w.restore(k.id)).toMatchObject({ outcome: 'restored', wrote: true });
    expect(read(k.path)).toBe('100\n');
    expect(w.restore(k.id)).toBeUndefined();
    // A knob can be taken again after a restore, with a fresh original.
    fs.writeFileSync(k.path, '120\n');
    w.set(k, 'cpu_weight', '60');
    expect(journal.get(k.id)?.original).toBe('120');
    expect(w.restoreAll().restored).toHaveLength(1);
    expect(read(k.path)).toBe('120\n');
  });

  it('restore is not limited by the current scope', () => {
    fake.mkdir('app.slice/a');
    const k = knob('app.slice/a');
    const w = writer();
    w.set(k, 'cpu_weight', '50');
    w.updateScope([]);
    expect(w.restore(k.id)?.outcome).toBe('restored');
    expect(read(k.path)).toBe('100\n');
  });
});

describe('KnobWriter dry-run', () => {
  it('reports what it would do and leaves every file byte-identical and the journal empty', () => {
    fake.mkdir('app.slice/a');
    fake.mkdir('app.slice/b');
    const before = snapshot(fake.root);
    const w = writer({ dryRun: true });
    expect(w.set(knob('app.slice/a'), 'cpu_weight', '50')).toMatchObject({ status: 'dry-run', previous: '100', value: '50', firstWrite: true });
    expect(w.set(knob('app.slice/b', 'cpu.max'), 'cpu_max', '20000 100000').status).toBe('dry-run');
    expect(w.set(knob('app.slice/b'), 'cpu_weight', '100').status).toBe('unchanged');
    expect(() => w.set(knob('.'), 'cpu_weight', '1')).toThrow(expect.objectContaining({ code: 'OUT_OF_SCOPE' }));
    expect(snapshot(fake.root)).toEqual(before);
    expect(journal.all()).toEqual([]);
  });

  it('detects an override without recording it', () => {
    fake.mkdir('app.slice/a');
    const k = knob('app.slice/a');
    writer().set(k, 'cpu_weight', '50');
    fs.writeFileSync(k.path, '300\n');
    const before = snapshot(fake.root);
    const dry = writer({ dryRun: true });
    expect(dry.set(k, 'cpu_weight', '25').status).toBe('overridden');
    expect(dry.isOverridden(k.id)).toBe(true);
    expect(dry.restore(k.id)?.outcome).toBe('overridden');
    expect(journal.get(k.id)?.state).toBe('active');
    expect(snapshot(fake.root)).toEqual(before);
  });
});
