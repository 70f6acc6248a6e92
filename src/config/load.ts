/**
 * Reading the configuration: file → YAML document → schema → Config. Every way this can fail ends in one
 * CONFIG_INVALID error whose message leads with the first problem in file order (file, field, what is wrong, the
 * fix) and whose `issues` list all of them, with line and column where known, for machine-readable output.
 */
import { closeSync, constants, fstatSync, openSync, readFileSync } from 'node:fs';
import { isMap, isScalar, isSeq, LineCounter, parseDocument, type Document } from 'yaml';
import { errnoCode, TunerError } from '../core/errors.js';
import { BUILT_IN_SOURCE, defaultConfig } from './defaults.js';
import { configSchema, explainIssues, formatPath, type ConfigIssue } from './schema.js';
import type { Config } from './types.js';

export type { ConfigIssue } from './schema.js';

/** A config file is a few dozen lines; anything this large is the wrong file. */
export const MAX_CONFIG_BYTES = 1024 * 1024;

const MAX_SYNTAX_ISSUES = 10;

/** Deeper than any valid document; beyond it values are left as parsed and the schema rejects them whole. */
const MAX_DEPTH = 16;

export class ConfigError extends TunerError {
  /** Where the config came from: a path, or a label such as '<built-in>' or '<stdin>'. */
  readonly source: string;
  /** Every problem found, in file order; the message leads with the first. */
  readonly issues: readonly ConfigIssue[];

  constructor(source: string, issues: readonly ConfigIssue[], options?: { cause?: unknown }) {
    super('CONFIG_INVALID', summarize(source, issues), options);
    this.source = source;
    this.issues = issues;
  }

  toJSON(): { code: string; message: string; source: string; issues: readonly ConfigIssue[] } {
    return { code: this.code, message: this.message, source: this.source, issues: this.issues };
  }
}

function summarize(source: string, issues: readonly ConfigIssue[]): string {
  const first = issues[0];
  if (first === undefined) return `load config ${source}: invalid`;
  const more = issues.length > 1 ? ` (and ${issues.length - 1} more issue${issues.length > 2 ? 's' : ''})` : '';
  return `load config ${source}: ${first.path === '' ? '' : `${first.path}: `}${first.message}${more}`;
}

/**
 * The configuration from `file`, or the built-in defaults when no file is given. Throws ConfigError
 * (CONFIG_INVALID) when the file cannot be read or is not a valid configuration.
 */
export function loadConfig(file?: string): Config {
  if (file === undefined) return defaultConfig(BUILT_IN_SOURCE);
  return parseConfig(readConfigFile(file), file);
}

/** The configuration in `text`; `source` names it in error messages. Empty text is the built-in defaults. */
export function parseConfig(text: string, source: string): Config {
  const { doc, lineCounter, value } = readYaml(text, source);
  const result = configSchema.safeParse(absentAsUndefined(value ?? {}, 0));
  if (result.success) return { source, ...result.data };

  const issues: ConfigIssue[] = explainIssues(result.error.issues).map((iss) => {
    const pos = locate(doc, lineCounter, iss.path);
    const out: ConfigIssue = { path: formatPath(iss.path), message: iss.message };
    if (pos !== undefined) {
      out.line = pos.line;
      out.column = pos.col;
    }
    return out;
  });
  // Sort is stable, so issues on the same spot keep the schema's order.
  issues.sort((a, b) => (a.line ?? Infinity) - (b.line ?? Infinity) || (a.column ?? 0) - (b.column ?? 0));
  throw new ConfigError(source, issues);
}

/**
 * The YAML document in `text` and its value, unchecked; a syntax error is a ConfigError naming `source` and the
 * line and column in `text`.
 */
export function readYaml(text: string, source: string): { doc: Document.Parsed; lineCounter: LineCounter; value: unknown } {
  const lineCounter = new LineCounter();
  let doc: Document.Parsed;
  let value: unknown;
  try {
    // 'error' rather than 'silent': it still mutes warnings printed to the process, but keeps the check that the
    // file holds a single document.
    doc = parseDocument(text, { lineCounter, prettyErrors: false, logLevel: 'error', uniqueKeys: true });
    if (doc.errors.length > 0) {
      // After the first few, syntax errors are mostly echoes of the first (one unclosed bracket can yield hundreds).
      throw new ConfigError(
        source,
        doc.errors.slice(0, MAX_SYNTAX_ISSUES).map((e) => {
          const { line, col } = lineCounter.linePos(e.pos[0]);
          const what = e.code === 'RESOURCE_EXHAUSTION' ? 'the document is nested too deeply' : firstLine(e.message);
          return {
            path: '',
            message: `line ${line}, column ${col}: ${what} — fix: ${yamlFix(e.code, e.message)}`,
            line,
            column: col,
          };
        }),
      );
    }
    value = doc.toJS({ maxAliasCount: 100 });
  } catch (e) {
    if (e instanceof ConfigError) throw e;
    // Aliases are only expanded here; a dangling or runaway alias, or nesting deeper than the parser's stack,
    // is still a problem with the file rather than with the agent.
    const message =
      e instanceof RangeError
        ? `the document is nested too deeply — fix: ${yamlFix('RESOURCE_EXHAUSTION', '')}`
        : `cannot read the YAML: ${firstLine(e instanceof Error ? e.message : String(e))} — ` +
          'fix: define each &anchor before its *alias, and use few aliases';
    throw new ConfigError(source, [{ path: '', message }], { cause: e });
  }
  return { doc, lineCounter, value };
}

/**
 * Where the key at `path` (schema path, e.g. ['targets', 1, 'pidfile']) is written in `text`, or its nearest enclosing
 * key; undefined when the text does not parse. For problems found after loading (`ebpf-tuner config check`'s host
 * checks), so they carry a line and column like the schema's own.
 */
export function keyPosition(text: string, path: readonly PropertyKey[]): { line: number; column: number } | undefined {
  const lineCounter = new LineCounter();
  try {
    const doc = parseDocument(text, { lineCounter, prettyErrors: false, logLevel: 'silent', uniqueKeys: true });
    if (doc.errors.length > 0) return undefined;
    const pos = locate(doc, lineCounter, path);
    return pos !== undefined ? { line: pos.line, column: pos.col } : undefined;
  } catch {
    return undefined;
  }
}

/**
 * A key written with no value (`targets:` followed by only comments) means "use the default", as it does in most
 * YAML-configured tools. Turning it into undefined rather than deleting the key keeps unknown keys visible to the
 * strict schema even when they have no value.
 */
function absentAsUndefined(v: unknown, depth: number): unknown {
  if (depth > MAX_DEPTH || typeof v !== 'object' || v === null) return v;
  if (Array.isArray(v)) return v.map((x) => absentAsUndefined(x, depth + 1));
  if (Object.getPrototypeOf(v) !== Object.prototype) return v;
  const out: Record<string, unknown> = {};
  for (const [k, x] of Object.entries(v)) {
    // defineProperty, not assignment: a YAML key "__proto__" must stay an (unknown) key, not become the prototype.
    Object.defineProperty(out, k, {
      value: x === null ? undefined : absentAsUndefined(x, depth + 1),
      enumerable: true,
      writable: true,
      configurable: true,
    });
  }
  return out;
}

/** Where `path` is in the file, or its nearest enclosing node; a key's position rather than its value's. */
function locate(
  doc: Document.Parsed,
  lc: LineCounter,
  path: readonly PropertyKey[],
): { line: number; col: number } | undefined {
  for (let n = path.length; n > 0; n--) {
    const parent = n === 1 ? doc.contents : doc.getIn(path.slice(0, n - 1), true);
    const seg = path[n - 1];
    if (isMap(parent)) {
      const pair = parent.items.find((p) => isScalar(p.key) && String(p.key.value) === String(seg));
      const range = pair && isScalar(pair.key) ? pair.key.range : undefined;
      if (range) return lc.linePos(range[0]);
    } else if (isSeq(parent) && typeof seg === 'number') {
      const item = parent.items[seg] as { range?: [number, number, number] } | null | undefined;
      if (item?.range) return lc.linePos(item.range[0]);
    }
  }
  const root = doc.contents as { range?: [number, number, number] } | null;
  return root?.range ? lc.linePos(root.range[0]) : undefined;
}

/** The fix for a YAML syntax error; by message where one code covers several mistakes. */
function yamlFix(code: string, message: string): string {
  if (/quote/i.test(message)) return 'close the quote';
  if (/end with a \]/.test(message)) return 'close the [ with ] and indent any continuation lines';
  if (/end with a \}/.test(message)) return 'close the { with } and indent any continuation lines';
  if (/without - indicator/.test(message)) return 'start each list item with "- " and line the items up';
  if (/same column/.test(message)) return 'line up the keys of one mapping at the same column';
  switch (code) {
    case 'DUPLICATE_KEY':
      return 'keep only one of the repeated keys';
    case 'TAB_AS_INDENT':
      return 'indent with spaces, not tabs';
    case 'MULTIPLE_DOCS':
      return 'keep a single document (remove the extra ---)';
    case 'BAD_SCALAR_START':
      return 'quote the value';
    case 'BLOCK_AS_IMPLICIT_KEY':
      return 'put a nested mapping on its own, further indented lines, or quote a value that contains ": "';
    case 'MULTILINE_IMPLICIT_KEY':
      return 'keep each key and its colon on one line';
    case 'RESOURCE_EXHAUSTION':
      return 'check that this is the config file; its settings nest only a few levels deep';
    default:
      return 'correct the YAML syntax there';
  }
}

function firstLine(s: string): string {
  const line = s.split('\n', 1)[0] ?? '';
  return line.replace(/ at line \d+, column \d+:?$/, '').replace(/[.:]$/, '');
}

function readConfigFile(file: string): string {
  const fail = (what: string, cause?: unknown): never => {
    throw new ConfigError(file, [{ path: '', message: what }], cause === undefined ? undefined : { cause });
  };
  let fd: number;
  try {
    // O_NONBLOCK so that pointing at a FIFO fails fast instead of hanging the agent at startup.
    fd = openSync(file, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (e) {
    const code = errnoCode(e);
    if (code === 'ENOENT') return fail('file not found — fix: check the path', e);
    if (code === 'EACCES' || code === 'EPERM')
      return fail('permission denied — fix: make the file readable by the user the agent runs as', e);
    if (code === 'ENOTDIR') return fail('a parent of this path is not a directory — fix: check the path', e);
    return fail(`cannot open it (${code ?? String(e)}) — fix: check the path`, e);
  }
  try {
    const st = fstatSync(fd);
    if (st.isDirectory()) return fail('is a directory — fix: point at the YAML file inside it');
    if (!st.isFile()) return fail('is not a regular file — fix: point at a YAML file');
    if (st.size > MAX_CONFIG_BYTES) {
      return fail(`is larger than ${MAX_CONFIG_BYTES} bytes — fix: point at the YAML config file`);
    }
    return readFileSync(fd, 'utf8');
  } catch (e) {
    if (e instanceof ConfigError) throw e;
    return fail(`cannot read it (${errnoCode(e) ?? String(e)}) — fix: check the file`, e);
  } finally {
    closeSync(fd);
  }
}
