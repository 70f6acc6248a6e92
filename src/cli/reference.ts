/**
 * Shell completion (bash, zsh) and the man page, generated from the commander program itself — its commands,
 * arguments and options as `--help` shows them (commander's own Help decides what is visible and how each option is
 * described) — so that neither can disagree with `--help`, and a command added to the program appears in both
 * without another change here.
 */
import { Argument, Command, Help, Option } from 'commander';

/** One option as `--help` shows it. */
export interface OptionSpec {
  short?: string;
  long?: string;
  /** The value's placeholder ("file" for `--config <file>`), when it takes one. */
  value?: string;
  optionalValue: boolean;
  choices?: readonly string[];
  /** `--help`'s description, with the default and choices it appends. */
  description: string;
}

export interface ArgumentSpec {
  name: string;
  required: boolean;
  choices?: readonly string[];
  description: string;
}

/** One command (the program itself at the root) as `--help` shows it. */
export interface CommandSpec {
  /** Names from the program down: [] for the program, ['model', 'show'] for `ebpf-tuner model show`. */
  path: string[];
  /** What follows the command's name in its usage line: "[options] <id>". */
  usage: string;
  description: string;
  args: ArgumentSpec[];
  options: OptionSpec[];
  commands: CommandSpec[];
}

/** The program's tree of visible commands, as commander's Help lists them (help options and `help` included). */
export function describeProgram(program: Command): CommandSpec {
  const walk = (cmd: Command, path: string[]): CommandSpec => {
    const help: Help = cmd.createHelp();
    return {
      path,
      usage: cmd.usage(),
      description: help.commandDescription(cmd),
      args: cmd.registeredArguments.map((a: Argument) => ({
        name: a.name(),
        required: a.required,
        choices: a.argChoices,
        description: help.argumentDescription(a),
      })),
      options: help.visibleOptions(cmd).map((o: Option) => ({
        short: o.short,
        long: o.long,
        value: o.required || o.optional ? (/[<[]([^>\]]+)[>\]]/.exec(o.flags)?.[1] ?? 'value') : undefined,
        optionalValue: o.optional,
        choices: o.argChoices,
        description: help.optionDescription(o),
      })),
      commands: help.visibleCommands(cmd).map((c) => walk(c, [...path, c.name()])),
    };
  };
  // commander's own `help [command]` takes the name of a sibling command: offer those.
  const siblings = (spec: CommandSpec): CommandSpec => {
    const names = spec.commands.map((c) => c.path.at(-1)!).filter((n) => n !== 'help');
    for (const c of spec.commands) {
      if (c.path.at(-1) === 'help' && c.commands.length === 0 && c.args.length === 1 && !c.args[0].choices) c.args[0] = { ...c.args[0], choices: names };
      siblings(c);
    }
    return spec;
  };
  return siblings(walk(program, []));
}

/** Every command in the tree, the program first, parents before children. */
export function allCommands(spec: CommandSpec): CommandSpec[] {
  return [spec, ...spec.commands.flatMap(allCommands)];
}

const flagsOf = (o: OptionSpec): string[] => [o.short, o.long].filter((f): f is string => f !== undefined);

type ValueKind = 'file' | 'dir' | 'none';

/** What a value placeholder names: files and directories complete as such, anything else (a number, a host) not. */
function valueKind(placeholder: string): ValueKind {
  if (/dir/i.test(placeholder)) return 'dir';
  if (/file/i.test(placeholder)) return 'file';
  return 'none';
}

const shellWord = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`;
const funcName = (program: string, path: string[]): string => ['_' + program.replace(/[^A-Za-z0-9]/g, '_'), ...path.map((p) => p.replace(/[^A-Za-z0-9]/g, '_'))].join('__');

/**
 * A bash completion script: `source <(ebpf-tuner completion bash)`, or install it as
 * /usr/share/bash-completion/completions/ebpf-tuner. It knows each command's subcommands and options, skips option
 * values while working out which command is being typed, completes files and directories where an option or argument
 * names one, and offers the allowed values where commander has choices.
 */
export function bashCompletion(program: Command): string {
  const root = describeProgram(program);
  const name = program.name();
  const fn = funcName(name, []);
  const cmds = allCommands(root);
  const key = (c: CommandSpec) => '/' + c.path.join('/');
  const lines: string[] = [
    `# bash completion for ${name}, generated from its command definitions by \`${name} completion bash\`.`,
    `${fn}() {`,
    '  local cur="${COMP_WORDS[COMP_CWORD]}" prev="" path="/" w i skip=0',
    '  (( COMP_CWORD > 0 )) && prev="${COMP_WORDS[COMP_CWORD-1]}"',
    '  # Which command is being typed: follow subcommand names, skipping the value after an option that takes one.',
    '  for (( i = 1; i < COMP_CWORD; i++ )); do',
    '    w="${COMP_WORDS[i]}"',
    '    if (( skip )); then skip=0; continue; fi',
    '    case "$path $w" in',
  ];
  const valued = cmds.flatMap((c) => c.options.filter((o) => o.value !== undefined && !o.optionalValue).flatMap((o) => flagsOf(o).map((f) => `${key(c)} ${f}`)));
  if (valued.length > 0) lines.push(`      ${valued.map(shellWord).join('|')}) skip=1 ;;`);
  const subs = cmds.flatMap((c) => c.commands.map((s) => ({ from: `${key(c)} ${s.path.at(-1)!}`, to: key(s) })));
  for (const s of subs) lines.push(`      ${shellWord(s.from)}) path=${shellWord(s.to)} ;;`);
  lines.push('    esac', '  done');

  // The value of an option: its choices, files, directories, or nothing to offer.
  lines.push('  case "$path $prev" in');
  for (const c of cmds) {
    for (const o of c.options) {
      if (o.value === undefined || o.optionalValue) continue;
      const pats = flagsOf(o).map((f) => shellWord(`${key(c)} ${f}`)).join('|');
      if (o.choices) lines.push(`    ${pats}) COMPREPLY=( $(compgen -W ${shellWord(o.choices.join(' '))} -- "$cur") ); return ;;`);
      else if (valueKind(o.value) === 'dir') lines.push(`    ${pats}) compopt -o filenames 2>/dev/null; COMPREPLY=( $(compgen -d -- "$cur") ); return ;;`);
      else if (valueKind(o.value) === 'file') lines.push(`    ${pats}) compopt -o filenames 2>/dev/null; COMPREPLY=( $(compgen -f -- "$cur") ); return ;;`);
      else lines.push(`    ${pats}) COMPREPLY=(); return ;;`);
    }
  }
  lines.push('  esac');

  // Otherwise: the command's subcommands and options, and what its arguments name.
  lines.push('  local words="" files=""', '  case "$path" in');
  for (const c of cmds) {
    const words = [...c.commands.map((s) => s.path.at(-1)!), ...c.options.flatMap(flagsOf)];
    const first = c.args[0];
    const argWords = first?.choices ? [...first.choices] : [];
    const files = first && !first.choices && valueKind(first.name) !== 'none' ? valueKind(first.name) : undefined;
    lines.push(`    ${shellWord(key(c))}) words=${shellWord([...words, ...argWords].join(' '))}${files ? ` files=${files}` : ''} ;;`);
  }
  lines.push(
    '  esac',
    '  COMPREPLY=( $(compgen -W "$words" -- "$cur") )',
    '  if [[ -n "$files" && "$cur" != -* ]]; then',
    '    compopt -o filenames 2>/dev/null',
    '    if [[ "$files" == dir ]]; then COMPREPLY+=( $(compgen -d -- "$cur") ); else COMPREPLY+=( $(compgen -f -- "$cur") ); fi',
    '  fi',
    '}',
    `complete -F ${fn} ${name}`,
  );
  return lines.join('\n') + '\n';
}

/** Text inside a zsh `_arguments` description (`[...]`) or `_describe` item, within single quotes. */
const zshText = (s: string): string => s.replace(/\s+/g, ' ').replace(/([\\[\]:])/g, '\\$1').replace(/'/g, `'\\''`);

function zshOption(o: OptionSpec): string {
  const flags = flagsOf(o);
  const excl = flags.length > 1 ? `'(${flags.join(' ')})'` : '';
  const names = flags.length > 1 ? `{${flags.join(',')}}` : flags[0];
  let value = '';
  if (o.value !== undefined) {
    const action = o.choices ? `(${o.choices.join(' ')})` : valueKind(o.value) === 'file' ? '_files' : valueKind(o.value) === 'dir' ? '_files -/' : ' ';
    value = `:${zshText(o.value)}:${action}`;
    if (o.optionalValue) value = ':' + value;
  }
  return `${excl}${names}'[${zshText(o.description)}]${value}'`;
}

/**
 * A zsh completion function: put it on $fpath as `_ebpf-tuner`, or `source <(ebpf-tuner completion zsh)` after
 * compinit. Each command is a function of its own that offers its options, and its subcommands with their
 * descriptions.
 */
export function zshCompletion(program: Command): string {
  const root = describeProgram(program);
  const name = program.name();
  const out: string[] = [`#compdef ${name}`, `# zsh completion for ${name}, generated from its command definitions by \`${name} completion zsh\`.`, ''];
  for (const c of allCommands(root).reverse()) {
    const fn = funcName(name, c.path);
    const specs = c.options.map(zshOption);
    out.push(`${fn}() {`);
    if (c.commands.length > 0) {
      out.push('  local curcontext="$curcontext" state line', '  typeset -A opt_args', '  local -a subcommands', '  subcommands=(');
      for (const s of c.commands) out.push(`    '${zshText(s.path.at(-1)!)}:${zshText(s.description.split('\n')[0] ?? '')}'`);
      out.push('  )');
      out.push(`  _arguments -C ${[...specs, `'1: :->command'`, `'*:: :->args'`].join(' \\\n    ')}`);
      out.push('  case $state in', `    command) _describe -t commands 'command' subcommands ;;`, '    args)', '      case $words[1] in');
      for (const s of c.commands) out.push(`        ${shellWord(s.path.at(-1)!)}) ${funcName(name, s.path)} ;;`);
      out.push('      esac', '      ;;', '  esac');
    } else {
      const args = c.args.map((a, i) => {
        const action = a.choices ? `(${a.choices.join(' ')})` : valueKind(a.name) === 'file' ? '_files' : valueKind(a.name) === 'dir' ? '_files -/' : ' ';
        return `'${i + 1}:${a.required ? '' : ':'}${zshText(a.name)}:${action}'`;
      });
      const all = [...specs, ...args];
      out.push(all.length > 0 ? `  _arguments ${all.join(' \\\n    ')}` : '  _message "no arguments"');
    }
    out.push('}', '');
  }
  out.push(`if [[ $zsh_eval_context[-1] == loadautofunc ]]; then`, `  ${funcName(name, [])} "$@"`, 'else', `  compdef ${funcName(name, [])} ${name}`, 'fi');
  return out.join('\n') + '\n';
}

/** Plain text for roff: backslashes escaped, a control character at a line's start neutralised, non-ASCII by code point. */
function roff(s: string): string {
  return s
    .replace(/\\/g, '\\e')
    .replace(/-/g, '\\-')
    .replace(/[^\x00-\x7f]/gu, (ch) => `\\[u${ch.codePointAt(0)!.toString(16).toUpperCase().padStart(4, '0')}]`)
    .split('\n')
    .map((l) => (/^[.']/.test(l) ? `\\&${l}` : l))
    .join('\n');
}

const bold = (s: string): string => `\\fB${roff(s)}\\fR`;
const italic = (s: string): string => `\\fI${roff(s)}\\fR`;

function manOptionTerm(o: OptionSpec): string {
  const value = o.value === undefined ? '' : o.optionalValue ? ` [${italic(o.value)}]` : ` ${italic(o.value)}`;
  return flagsOf(o).map(bold).join(', ') + value;
}

/** The exit codes every command uses (see exitCodeOf in main.ts). */
export const EXIT_STATUS: readonly [number, string][] = [
  [0, 'success'],
  [1, 'a failure at run time: a knob that could not be restored, permission denied, a kernel without a feature'],
  [2, 'a usage or config error, found before anything changed'],
  [3, 'busy: another live agent holds the state directory (or the knobs) this command needs'],
];

/**
 * The man page, ebpf-tuner(1), in roff (man macros): `ebpf-tuner man > ebpf-tuner.1`, or read it at once with
 * `ebpf-tuner man | man -l -`. One subsection per command, each with its usage, description, arguments and options.
 */
export function manPage(program: Command, opts: { version?: string; section?: string } = {}): string {
  const root = describeProgram(program);
  const name = program.name();
  const section = opts.section ?? '1';
  const out: string[] = [
    `.\\" Generated from the ${name} command definitions by \`${name} man\`; do not edit.`,
    `.TH ${roff(name.toUpperCase())} ${section} "" "${roff(name)}${opts.version ? ` ${roff(opts.version)}` : ''}" "User Commands"`,
    '.SH NAME',
    `${roff(name)} \\- ${roff(root.description.split('\n')[0] ?? '')}`,
    '.SH SYNOPSIS',
    `${bold(name)} ${roff(root.usage)}`,
  ];
  for (const c of root.commands) out.push('.br', `${bold([name, ...c.path].join(' '))} ${roff(c.usage)}`);
  out.push('.SH DESCRIPTION', roff(root.description));
  if (root.options.length > 0) {
    out.push('.SH OPTIONS');
    for (const o of root.options) out.push('.TP', manOptionTerm(o), roff(o.description));
  }
  out.push('.SH COMMANDS');
  for (const c of allCommands(root).slice(1)) {
    out.push(`.SS "${roff([name, ...c.path].join(' '))}"`, '.PP', `${bold([name, ...c.path].join(' '))} ${roff(c.usage)}`, '.PP', roff(c.description));
    for (const a of c.args) out.push('.TP', a.required ? italic(a.name) : `[${italic(a.name)}]`, roff(a.description || (a.choices ? `one of ${a.choices.join(', ')}` : '')));
    for (const o of c.options) out.push('.TP', manOptionTerm(o), roff(o.description));
  }
  out.push('.SH EXIT STATUS');
  for (const [code, what] of EXIT_STATUS) out.push('.TP', bold(String(code)), roff(what));
  return out.join('\n') + '\n';
}

/**
 * Adds `completion <shell>` and `man` to a program. Both read the program when run, so whatever was registered
 * before or after this call — every command and option — is in what they print.
 */
export function registerReferenceCommands(program: Command, version?: string): void {
  program
    .command('completion')
    .description('print a shell completion script, generated from these command definitions (bash: source <(ebpf-tuner completion bash))')
    .addArgument(new Argument('<shell>', 'bash or zsh').choices(['bash', 'zsh']))
    .action((shell: 'bash' | 'zsh') => {
      process.stdout.write(shell === 'bash' ? bashCompletion(program) : zshCompletion(program));
    });
  program
    .command('man')
    .description('print the man page ebpf-tuner(1) in roff, generated from these command definitions (read it with: ebpf-tuner man | man -l -)')
    .action(() => {
      process.stdout.write(manPage(program, { version }));
    });
}
