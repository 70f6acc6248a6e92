/**
 * One error taxonomy for the whole agent. Every failure that reaches a user carries a stable code and a message
 * that reads "verb object: cause" and, where there is one, the fix.
 */
export type TunerErrorCode =
  | 'BPF_NOT_SUPPORTED' // a program type, attach point or map type this kernel lacks
  | 'BPF_LOAD' // libbpf could not open or load an object
  | 'BPF_VERIFIER' // the verifier rejected a program; `log` carries its output
  | 'BPF_ATTACH'
  | 'BPF_MAP'
  | 'CONFIG_INVALID'
  | 'CLI_USAGE'
  | 'CGROUP_NOT_FOUND'
  | 'CGROUP_UNSUPPORTED'
  | 'PID_NOT_FOUND'
  | 'ACTION_EPERM'
  | 'ACTION_FAILED'
  | 'OUT_OF_SCOPE'
  | 'JOURNAL'
  | 'PERMISSION'
  | 'BUSY' // another live agent holds the state directory or the knob
  | 'INTERNAL';

export class TunerError extends Error {
  readonly code: TunerErrorCode;
  /** Verifier log or other long diagnostic text that does not belong in the one-line message. */
  readonly log?: string;

  constructor(code: TunerErrorCode, message: string, options?: { cause?: unknown; log?: string }) {
    super(message, options?.cause !== undefined ? { cause: options.cause } : undefined);
    this.name = 'TunerError';
    this.code = code;
    if (options?.log !== undefined) this.log = options.log;
  }
}

export function isTunerError(e: unknown, code?: TunerErrorCode): e is TunerError {
  return e instanceof TunerError && (code === undefined || e.code === code);
}

/** The errno name of a Node system error (ENOENT, EACCES, ...), or undefined. */
export function errnoCode(e: unknown): string | undefined {
  return typeof e === 'object' && e !== null && 'code' in e && typeof (e as { code: unknown }).code === 'string'
    ? (e as { code: string }).code
    : undefined;
}
