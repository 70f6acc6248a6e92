/** Where the project's built artifacts live, found from this module's location (works from src/ and dist/). */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { TunerError } from '../core/errors.js';

function findRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const pkg = join(dir, 'package.json');
    if (existsSync(pkg)) {
      try {
        if ((JSON.parse(readFileSync(pkg, 'utf8')) as { name?: string }).name === 'ebpf-tuner') return dir;
      } catch {
        // not ours; keep walking
      }
    }
    const up = dirname(dir);
    if (up === dir) throw new TunerError('INTERNAL', 'locate project root: no package.json named ebpf-tuner above ' + import.meta.url);
    dir = up;
  }
}

export const projectRoot = findRoot();

export function bpfObjectPath(name: string): string {
  const p = join(process.env.EBPF_TUNER_BPF_DIR ?? join(projectRoot, 'bpf', '.output'), `${name}.bpf.o`);
  if (!existsSync(p)) {
    throw new TunerError('BPF_LOAD', `open BPF object ${p}: not built — fix: run scripts/setup.sh (or make -C bpf)`);
  }
  return p;
}

export function toolPath(name: string): string {
  return join(projectRoot, 'tools', 'bin', name);
}
