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

/** The programs one attach variant needs (all attached, in order) and may add (attached where this kernel has them). */
export interface ProgramSet {
  /** The attach type its programs use, probed before loading; default: the variant's name (an AttachKind). */
  attach?: AttachKind;
  required: readonly string[];
  optional?: readonly string[];
  /** Maps only other variants use: not created for this one (see BpfObject.skipMaps). */
  unusedMaps?: readonly string[];
}

/** The variants to try: `auto` → the signal's own order (cheapest first); a pinned kind → that one alone. */
export function attachOrder<K extends string>(attach: 'auto' | K | undefined, auto: readonly K[]): readonly K[] {
  return attach === undefined || attach === 'auto' ? auto : [attach];
}

export interface LoadFirstOptions<K extends string = AttachKind> {
  /** Variants to try, in order; default ATTACH_ORDER then fentry and kprobe. */
  order?: readonly K[];
  /**
   * Try the next variant when the verifier rejects one. Off by default (a rejection is a bug in our program), on for
   * signals whose cheaper variant relies on helpers older kernels lack (task storage, BTF task pointers).
   */
  nextOnVerifierError?: boolean;
  /** What the signal needs, for the error when nothing works, e.g. "v5.11 with BTF". */
  needs?: string;
}

export interface Loaded<K extends string = AttachKind> {
  obj: BpfObject;
  /** The variant loaded. */
  kind: K;
  /** The first required program (signals with one program per variant). */
  program: string;
  /** Every program attached: the required ones and the optional ones this kernel took. */
  programs: string[];
}

/**
 * Opens and loads `objectName` with the first of `variants` whose attach kind this kernel supports and whose programs
 * load and attach (a variant's name is its attach kind unless its ProgramSet says otherwise); configure() runs on each fresh open (rodata, map sizes). Every object it opens and does not return
 * is closed.
 */
export function loadFirstWorking<K extends string = AttachKind>(
  objectName: string,
  variants: Partial<Record<K, string | ProgramSet>>,
  configure: (obj: BpfObject) => void,
  log?: Logger,
  opts: LoadFirstOptions<K> = {},
): Loaded<K> {
  const errors: string[] = [];
  for (const kind of opts.order ?? ([...ATTACH_ORDER, 'fentry', 'kprobe'] as unknown as K[])) {
    const v: string | ProgramSet | undefined = variants[kind];
    if (!v) continue;
    const set: ProgramSet = typeof v === 'string' ? { required: [v] } : v;
    const attach = set.attach ?? (kind as string as AttachKind);
    if (!(attach in PROBES)) throw new TunerError('INTERNAL', `attach ${objectName}: variant ${kind} names no attach type`);
    const p = probe(attach, log);
    if (!p.ok) {
      errors.push(`${kind}: ${p.error}`);
      continue;
    }
    const obj = BpfObject.open(bpfObjectPath(objectName), log);
    try {
      obj.selectPrograms([...set.required, ...(set.optional ?? [])]);
      obj.skipMaps(set.unusedMaps ?? []);
      configure(obj);
      obj.load();
      const programs: string[] = [];
      for (const prog of set.required) {
        obj.attach(prog);
        programs.push(prog);
      }
      for (const prog of set.optional ?? []) {
        try {
          obj.attach(prog);
          programs.push(prog);
        } catch (e) {
          log?.debug({ object: objectName, program: prog, err: e instanceof Error ? e.message : String(e) }, 'optional program not attached');
        }
      }
      return { obj, kind, program: set.required[0], programs };
    } catch (e) {
      obj.close();
      // Without the option a rejection is a bug in our program, not a missing kernel feature.
      if (isTunerError(e, 'BPF_VERIFIER') && !opts.nextOnVerifierError) throw e;
      const detail = isTunerError(e) && e.log ? lastMeaningfulLine(e.log) : undefined;
      errors.push(`${kind}: ${e instanceof Error ? e.message : String(e)}${detail ? ` (${detail})` : ''}`);
    }
  }
  throw new TunerError(
    'BPF_NOT_SUPPORTED',
    `attach ${objectName}: no attach type works on this kernel${opts.needs ? ` (needs ${opts.needs})` : ''} — ${errors.join('; ')}`,
  );
}
