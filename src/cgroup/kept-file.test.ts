import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { KeptFile, KeptFiles } from './kept-file.js';
import { childCgroups } from './cgroup.js';

// Plain files stand in for interface files here; the kernel test of cgstat reads real cgroup files through it.
const dirs: string[] = [];
function tmp(): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'kept-file-'));
  dirs.push(d);
  return d;
}
afterEach(() => {
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

const openFds = (): number => fs.readdirSync('/proc/self/fd').length;

describe('KeptFile', () => {
  it('reads the whole file from offset 0 on every read, through one descriptor', () => {
    const f = path.join(tmp(), 'cpu.stat');
    fs.writeFileSync(f, 'usage_usec 1\n');
    const k = new KeptFile(f);
    const before = openFds();
    expect(k.read()).toBe('usage_usec 1\n');
    expect(k.isOpen).toBe(true);
    expect(openFds()).toBe(before + 1);
    // Rewritten in place (same inode): the next read sees the new content, with no new descriptor.
    fs.writeFileSync(f, 'usage_usec 22\n');
    expect(k.read()).toBe('usage_usec 22\n');
    expect(k.read()).toBe('usage_usec 22\n');
    expect(openFds()).toBe(before + 1);
    k.close();
    k.close();
    expect(k.isOpen).toBe(false);
    expect(openFds()).toBe(before);
  });

  it('follows a file removed and made again at its path, and reports one that stays removed as ENOENT', () => {
    const f = path.join(tmp(), 'cpu.stat');
    fs.writeFileSync(f, 'old\n');
    const k = new KeptFile(f);
    expect(k.read()).toBe('old\n');
    fs.rmSync(f);
    expect(() => k.read()).toThrow(expect.objectContaining({ code: 'ENOENT' }));
    expect(k.isOpen).toBe(false);
    fs.writeFileSync(f, 'new\n');
    expect(k.read()).toBe('new\n');
    fs.rmSync(f);
    fs.writeFileSync(f, 'newer\n');
    expect(k.read()).toBe('newer\n');
    k.close();
  });

  it('reads files larger than its buffer whole', () => {
    const f = path.join(tmp(), 'memory.stat');
    const text = Array.from({ length: 5000 }, (_, i) => `key${i} ${i}`).join('\n') + '\n';
    fs.writeFileSync(f, text);
    const k = new KeptFile(f);
    expect(k.read()).toBe(text);
    expect(k.read()).toBe(text);
    k.close();
  });

  it('throws ENOENT like readFileSync for a file that is not there, and holds nothing', () => {
    const k = new KeptFile(path.join(tmp(), 'missing'));
    expect(() => k.read()).toThrow(expect.objectContaining({ code: 'ENOENT' }));
    expect(k.isOpen).toBe(false);
  });
});

describe('KeptFiles', () => {
  it('opens each path once, drops a file that fails, and closes what retain rejects', () => {
    const d = tmp();
    const a = path.join(d, 'a', 'cpu.stat');
    const b = path.join(d, 'b', 'cpu.stat');
    for (const f of [a, b]) {
      fs.mkdirSync(path.dirname(f));
      fs.writeFileSync(f, 'x 1\n');
    }
    const kept = new KeptFiles();
    const before = openFds();
    kept.read(a);
    kept.read(b);
    kept.read(a);
    expect(kept.size).toBe(2);
    expect(openFds()).toBe(before + 2);
    kept.retain((p) => p === a);
    expect(kept.size).toBe(1);
    expect(openFds()).toBe(before + 1);
    expect(() => kept.read(path.join(d, 'c', 'cpu.stat'))).toThrow(expect.objectContaining({ code: 'ENOENT' }));
    expect(kept.size).toBe(1);
    kept.close();
    expect(openFds()).toBe(before);
  });
});

describe('childCgroups', () => {
  it('lists subdirectories, and none for a leaf or a missing directory', () => {
    const d = tmp();
    fs.mkdirSync(path.join(d, 'x'));
    fs.mkdirSync(path.join(d, 'y'));
    fs.writeFileSync(path.join(d, 'tasks'), '');
    expect(childCgroups(d).sort()).toEqual([path.join(d, 'x'), path.join(d, 'y')]);
    expect(childCgroups(path.join(d, 'x'))).toEqual([]);
    expect(childCgroups(path.join(d, 'gone'))).toEqual([]);
  });
});
