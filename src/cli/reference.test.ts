/** Completion scripts and the man page list every command and option of the commander program, and nothing else. */
import { Command } from 'commander';
import { describe, expect, it } from 'vitest';
import { buildCli } from './main.js';
import { bashCompletion, manPage, zshCompletion } from './reference.js';

interface Walked {
  path: string[];
  flags: string[];
  subcommands: string[];
}

/** The program's commands and options read straight from commander (not through the generator's own walk). */
function walk(cmd: Command, path: string[] = []): Walked[] {
  const flags = cmd.options.filter((o) => !o.hidden).flatMap((o) => [o.short, o.long].filter((f): f is string => !!f));
  flags.push('-h', '--help');
  const subs = cmd.commands.filter((c) => !(c as unknown as { _hidden?: boolean })._hidden);
  return [{ path, flags, subcommands: subs.map((c) => c.name()) }, ...subs.flatMap((c) => walk(c, [...path, c.name()]))];
}

/** The words the bash script offers after `<program> <path...>`. */
function bashWords(script: string, path: string[]): string[] {
  const key = '/' + path.join('/');
  const m = new RegExp(`^    '${key.replace(/[/]/g, '\\/')}'\\) words='([^']*)'`, 'm').exec(script);
  expect(m, `no completion case for "${key}"`).not.toBeNull();
  return m![1].split(' ').filter(Boolean);
}

/** The body of the zsh function for a command path. */
function zshFunction(script: string, path: string[]): string {
  const name = ['_ebpf_tuner', ...path.map((p) => p.replace(/[^A-Za-z0-9]/g, '_'))].join('__');
  const m = new RegExp(`^${name}\\(\\) \\{\\n([\\s\\S]*?)^\\}`, 'm').exec(script);
  expect(m, `no zsh function ${name}`).not.toBeNull();
  return m![1];
}

/** The man page as plain text, cut into the sections of each command ("ebpf-tuner model show" → its text). */
function manSections(page: string): Map<string, string> {
  const plain = page.replace(/\\-/g, '-').replace(/\\f[BIR]/g, '').replace(/\\&/g, '');
  const out = new Map<string, string>();
  const parts = plain.split(/^\.SS "([^"]+)"$/m);
  out.set('', parts[0]);
  for (let i = 1; i < parts.length; i += 2) out.set(parts[i], parts[i + 1]);
  return out;
}

function checkEverything(program: Command): void {
  const bash = bashCompletion(program);
  const zsh = zshCompletion(program);
  const man = manSections(manPage(program, { version: '1.2.3' }));
  for (const c of walk(program)) {
    const words = bashWords(bash, c.path);
    for (const f of [...c.flags, ...c.subcommands]) expect(words, `bash: ${c.path.join(' ') || '(program)'} ${f}`).toContain(f);
    const fn = zshFunction(zsh, c.path);
    for (const f of c.flags) expect(fn, `zsh: ${c.path.join(' ')} ${f}`).toMatch(new RegExp(`[{,'(\\s]${f}[,}\\['\\s)]`));
    for (const s of c.subcommands) expect(fn, `zsh: ${c.path.join(' ')} ${s}`).toContain(`'${s}:`);
    const section = c.path.length === 0 ? man.get('')! : man.get(['ebpf-tuner', ...c.path].join(' '));
    expect(section, `man: no section for ${c.path.join(' ')}`).toBeDefined();
    for (const f of c.flags) expect(section, `man: ${c.path.join(' ')} ${f}`).toMatch(new RegExp(`(^|[\\s,])${f}([\\s,]|$)`, 'm'));
  }
  // Nothing extra: every command the man page has a section for is one of the program's.
  // (commander adds `help [command]` to every command that has subcommands).
  const known = new Set(walk(program).flatMap((c) => [c.path, ...(c.subcommands.length > 0 ? [[...c.path, 'help']] : [])].map((p) => ['ebpf-tuner', ...p].join(' '))));
  for (const title of man.keys()) if (title) expect(known, `man has a section for "${title}"`).toContain(title);
}

describe('completion and man page', () => {
  it('list every command and option of the real program', () => {
    const program = buildCli();
    expect(walk(program).map((c) => c.path.join(' '))).toEqual(expect.arrayContaining(['run', 'top', 'model show', 'completion', 'man']));
    checkEverything(program);
  });

  it('pick up a command added to the program later, with its options and arguments', () => {
    const program = buildCli();
    program
      .command('plugin')
      .description('plugins')
      .command('lint')
      .argument('<file>', 'a config file')
      .option('--strict', 'refuse unknown keys')
      .option('-o, --output <dir>', 'where to write');
    checkEverything(program);
    const bash = bashCompletion(program);
    expect(bash).toContain(`'/plugin lint') path='/plugin/lint'`);
    expect(bash).toMatch(/'\/plugin\/lint' '--output'|'\/plugin\/lint --output'/);
    expect(manPage(program)).toContain('.SS "ebpf\\-tuner plugin lint"');
  });

  it('describe each option as --help does, defaults included, in valid roff', () => {
    const program = buildCli();
    const page = manPage(program, { version: '9.9.9' });
    expect(page).toMatch(/^\.TH EBPF\\-TUNER 1 "" "ebpf\\-tuner 9\.9\.9"/m);
    expect(page).toContain('journal and audit database (default: "/var/lib/ebpf\\-tuner")');
    // No text line may start with a control character, and non-ASCII goes by code point.
    for (const line of page.split('\n')) {
      if (!line.startsWith('.')) expect(line).not.toMatch(/^'/);
      expect(line).not.toMatch(/[^\x00-\x7f]/);
    }
  });
});
