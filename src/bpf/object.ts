/**
 * A BPF object's life: open (parse the ELF, same on every host) → configure (rodata, map sizes, which programs
 * load) → load (the kernel verifies) → attach → close. Kernel-dependent choices happen between open and load via
 * set_autoload, never by building different objects. close() is idempotent and detaches everything this object
 * attached; it is also run by the process-exit safety net.
 */
import { TunerError } from '../core/errors.js';
import type { Logger } from '../core/log.js';
import { bpf, koffi, strerror, withSignalsBlocked, type Ptr } from './libbpf.js';
import { BpfMap } from './map.js';
import { routeLibbpfLog, withCapturedLog } from './print.js';
import { withTracefs } from './tracefs.js';

const live = new Set<BpfObject>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  // The kernel detaches programs when the last fd closes, i.e. at process exit anyway; closing explicitly keeps
  // the order deterministic (links before objects) and lets tests see a clean state before the process ends.
  process.once('exit', () => {
    for (const o of live) o.close();
  });
}

export interface ProgramInfo {
  name: string;
  section: string;
}

export class BpfObject {
  readonly path: string;
  private handle: Ptr | null;
  private loaded = false;
  private readonly links: Ptr[] = [];
  private readonly programs = new Map<string, Ptr>();
  private readonly maps = new Map<string, BpfMap>();
  private readonly log?: Logger;

  private constructor(path: string, handle: Ptr, log?: Logger) {
    this.path = path;
    this.handle = handle;
    this.log = log;
    let p: Ptr = null;
    while ((p = bpf.bpf_object__next_program(handle, p))) this.programs.set(String(bpf.bpf_program__name(p)), p);
    live.add(this);
    installExitHook();
  }

  static open(path: string, log?: Logger): BpfObject {
    if (log) routeLibbpfLog(log);
    const { result, log: text } = withCapturedLog(() => bpf.bpf_object__open_file(path, null) as Ptr);
    if (!result) {
      const err = koffi.errno();
      throw new TunerError('BPF_LOAD', `open BPF object ${path}: ${strerror(err)}`, { log: text });
    }
    return new BpfObject(path, result, log);
  }

  private get h(): Ptr {
    if (!this.handle) throw new TunerError('INTERNAL', `use BPF object ${this.path}: already closed`);
    return this.handle;
  }

  programNames(): ProgramInfo[] {
    return [...this.programs].map(([name, p]) => ({ name, section: String(bpf.bpf_program__section_name(p)) }));
  }

  private program(name: string): Ptr {
    const p = this.programs.get(name);
    if (!p) throw new TunerError('INTERNAL', `find program ${name} in ${this.path}: no such program`);
    return p;
  }

  /** Load only these programs (every other one is skipped at load). */
  selectPrograms(names: readonly string[]): void {
    for (const n of names) this.program(n);
    for (const [name, p] of this.programs) bpf.bpf_program__set_autoload(p, names.includes(name));
  }

  /**
   * Writes `bytes` over the initial value of a read-only data section (a `const volatile` variable placed in its own
   * section, e.g. SEC(".rodata.cfg"), so it sits at offset 0). Only before load.
   */
  setRodata(section: string, bytes: Uint8Array): void {
    if (this.loaded) throw new TunerError('INTERNAL', `set ${section} of ${this.path}: already loaded`);
    const m = bpf.bpf_object__find_map_by_name(this.h, section) as Ptr;
    if (!m) throw new TunerError('INTERNAL', `set ${section} of ${this.path}: no such data section`);
    const size = [0];
    const ptr = bpf.bpf_map__initial_value(m, size) as Ptr;
    if (!ptr || size[0] < bytes.length) {
      throw new TunerError('INTERNAL', `set ${section} of ${this.path}: section is ${size[0]} bytes, value is ${bytes.length}`);
    }
    new Uint8Array(koffi.view(ptr, size[0])).set(bytes);
  }

  /**
   * Do not create these maps at load: they belong to programs that are not loaded. libbpf creates every map of an
   * object otherwise, and a map type the kernel lacks (task storage before 5.11) would fail a variant that never uses it.
   */
  skipMaps(names: readonly string[]): void {
    for (const name of names) {
      const m = bpf.bpf_object__find_map_by_name(this.h, name) as Ptr;
      if (!m) throw new TunerError('INTERNAL', `skip map ${name} of ${this.path}: no such map`);
      const rc = bpf.bpf_map__set_autocreate(m, false) as number;
      if (rc < 0) throw new TunerError('BPF_MAP', `skip map ${name}: ${strerror(rc)}`);
    }
  }

  setMaxEntries(mapName: string, n: number): void {
    const m = bpf.bpf_object__find_map_by_name(this.h, mapName) as Ptr;
    if (!m) throw new TunerError('INTERNAL', `size map ${mapName} of ${this.path}: no such map`);
    const rc = bpf.bpf_map__set_max_entries(m, n) as number;
    if (rc < 0) throw new TunerError('BPF_MAP', `size map ${mapName}: ${strerror(rc)}`);
  }

  load(): void {
    const { result: rc, log } = withCapturedLog(() => withSignalsBlocked(() => bpf.bpf_object__load(this.h) as number));
    if (rc < 0) {
      const verifier = /BEGIN PROG LOAD LOG/.test(log);
      const which = /prog '([^']+)': (?:BPF program load failed|failed to load)/.exec(log)?.[1];
      throw new TunerError(
        verifier ? 'BPF_VERIFIER' : 'BPF_LOAD',
        `load BPF object ${this.path}${which ? ` (program ${which})` : ''}: ${strerror(rc)}${verifier ? ' — the verifier log is attached' : ''}`,
        { log },
      );
    }
    this.loaded = true;
    this.log?.debug({ object: this.path }, 'bpf object loaded');
  }

  /** Attaches a loaded program where its section says (tp_btf/…, raw_tp/…, tracepoint/…/…). */
  attach(name: string): void {
    const prog = this.program(name);
    const section = String(bpf.bpf_program__section_name(prog));
    const attach = () => withCapturedLog(() => bpf.bpf_program__attach(prog) as Ptr);
    // A classic tracepoint is found by the id tracefs gives (see tracefs.ts); every other kind needs no mount.
    const { result: link, log } = /^(tracepoint|tp)\//.test(section) ? withTracefs(attach, this.log) : attach();
    if (!link) {
      const err = koffi.errno();
      throw new TunerError('BPF_ATTACH', `attach program ${name}: ${strerror(err)}`, { log });
    }
    this.links.push(link);
  }

  programFd(name: string): number {
    return bpf.bpf_program__fd(this.program(name)) as number;
  }

  map(name: string): BpfMap {
    let m = this.maps.get(name);
    if (!m) {
      const h = bpf.bpf_object__find_map_by_name(this.h, name) as Ptr;
      if (!h) throw new TunerError('INTERNAL', `find map ${name} in ${this.path}: no such map`);
      m = new BpfMap(h);
      this.maps.set(name, m);
    }
    return m;
  }

  get attachedCount(): number {
    return this.links.length;
  }

  /** Detaches every link, then frees the object (and with it its maps and program fds). Safe to call twice. */
  close(): void {
    if (!this.handle) return;
    for (const l of this.links.splice(0)) bpf.bpf_link__destroy(l);
    bpf.bpf_object__close(this.handle);
    this.handle = null;
    this.maps.clear();
    live.delete(this);
  }
}
