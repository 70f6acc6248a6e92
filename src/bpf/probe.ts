/**
 * What this kernel lets us load and attach, found by trying: each probe program of probe.bpf.o is loaded and
 * attached on its own. Results are cached for the process. Signals use `chooseVariant` to pick the cheapest attach
 * type that works here (tp_btf, else raw_tp, else tracepoint).
 */
import { isTunerError, TunerError } from '../core/errors.js';
import type { Logger } from '../core/log.js';
import { BpfObject } from './object.js';
import { bpfObjectPath } from './paths.js';

export type AttachKind = 'tp_btf' | 'raw_tp' | 'tracepoint' | 'fentry' | 'kprobe';

export interface ProbeResult {
  ok: boolean;
  /** Why not, when !ok: the kernel's answer in words. */
  error?: string;
}

const PROBES: Record<AttachKind | 'ringbuf_task_storage', string> = {
  tp_btf: 'probe_tp_btf',
  raw_tp: 'probe_raw_tp',
  tracepoint: 'probe_tracepoint',
  fentry: 'probe_fentry',
  kprobe: 'probe_kprobe',
  ringbuf_task_storage: 'probe_maps',
};

const cache = new Map<string, ProbeResult>();

export function probe(what: keyof typeof PROBES, log?: Logger): ProbeResult {
  const hit = cache.get(what);
  if (hit) return hit;
  let res: ProbeResult;
  let obj: BpfObject | undefined;
  try {
    obj = BpfObject.open(bpfObjectPath('probe'), log);
    obj.selectPrograms([PROBES[what]]);
    obj.load();
    obj.attach(PROBES[what]);
    res = { ok: true };
  } catch (e) {
    const msg = e instanceof Error ? e.message : String(e);
    const detail = isTunerError(e) && e.log ? lastMeaningfulLine(e.log) : undefined;
    res = { ok: false, error: detail ? `${msg} (${detail})` : msg };
  } finally {
    obj?.close();
  }
  cache.set(what, res);
  return res;
}

function lastMeaningfulLine(log: string): string | undefined {
  const lines = log.split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('--') && !/^processed \d+ insns/.test(l));
  return lines.find((l) => /failed|error|invalid|not supported|denied|unknown/i.test(l))?.replace(/^libbpf: /, '');
}

export const ATTACH_ORDER: readonly AttachKind[] = ['tp_btf', 'raw_tp', 'tracepoint'];

/**
 * Opens and loads `objectName` with the first of `variants` (program names keyed by attach kind, in preference
 * order) whose attach kind this kernel supports and that loads and attaches; configure() runs on each fresh open.
 */
export function loadFirstWorking(
  objectName: string,
  variants: Partial<Record<AttachKind, string>>,
  configure: (obj: BpfObject) => void,
  log?: Logger,
): { obj: BpfObject; kind: AttachKind; program: string } {
  const errors: string[] = [];
  for (const kind of [...ATTACH_ORDER, 'fentry', 'kprobe'] as AttachKind[]) {
    const program = variants[kind];
    if (!program) continue;
    const p = probe(kind, log);
    if (!p.ok) {
      errors.push(`${kind}: ${p.error}`);
      continue;
    }
    const obj = BpfObject.open(bpfObjectPath(objectName), log);
    try {
      obj.selectPrograms([program]);
      configure(obj);
      obj.load();
      obj.attach(program);
      return { obj, kind, program };
    } catch (e) {
      obj.close();
      if (isTunerError(e, 'BPF_VERIFIER')) throw e; // a bug in our program, not a missing kernel feature
      errors.push(`${kind}: ${e instanceof Error ? e.message : String(e)}`);
    }
  }
  throw new TunerError('BPF_NOT_SUPPORTED', `attach ${objectName}: no attach type works on this kernel — ${errors.join('; ')}`);
}
