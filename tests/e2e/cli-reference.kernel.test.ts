/**
 * `completion bash|zsh` and `man`, through the real CLI: the scripts parse in their shells, the bash one completes
 * what the program has, and the man page renders without a warning.
 */
import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { CLI, runCli, tempDir } from './helpers.js';

function has(cmd: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;
}

/** What the bash completion offers for a command line whose last word is being completed. */
function complete(words: string[]): string[] {
  const script = `source <(${CLI} completion bash)
COMP_WORDS=(${words.map((w) => `'${w}'`).join(' ')}); COMP_CWORD=${words.length - 1}
_ebpf_tuner; printf '%s\\n' "\${COMPREPLY[@]}"`;
  const r = spawnSync('bash', ['-c', script], { encoding: 'utf8', cwd: '/' });
  expect(r.status, r.stderr).toBe(0);
  return r.stdout.split('\n').filter(Boolean);
}

describe('completion and man page', () => {
  it('bash: the script parses, and completes commands, subcommands, options and their values', () => {
    const r = runCli(['completion', 'bash']);
    expect(r.code, r.stderr).toBe(0);
    const n = spawnSync('bash', ['-n'], { input: r.stdout, encoding: 'utf8' });
    expect(n.status, n.stderr).toBe(0);
    expect(n.stderr).toBe('');
    expect(complete(['ebpf-tuner', 'ro'])).toEqual(['rollback']);
    expect(complete(['ebpf-tuner', 'model', ''])).toEqual(expect.arrayContaining(['show', 'reset']));
    expect(complete(['ebpf-tuner', 'top', '--'])).toEqual(expect.arrayContaining(['--once', '--json', '--width', '--color', '--config', '--help']));
    expect(complete(['ebpf-tuner', 'top', '--color', ''])).toEqual(['auto', 'always', 'never']);
    expect(complete(['ebpf-tuner', 'completion', ''])).toEqual(expect.arrayContaining(['bash', 'zsh']));
    // An option's value is not taken for a command: "log" here is a config file's name.
    expect(complete(['ebpf-tuner', 'top', '-c', 'log', '--o'])).toEqual(['--once']);
    // A directory option completes directories.
    expect(complete(['ebpf-tuner', 'status', '--state-dir', '/pro'])).toEqual(['/proc']);
  });

  it.runIf(has('zsh'))('zsh: the script parses', () => {
    const r = runCli(['completion', 'zsh']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.startsWith('#compdef ebpf-tuner\n')).toBe(true);
    const n = spawnSync('zsh', ['-n'], { input: r.stdout, encoding: 'utf8' });
    expect(n.status, n.stderr).toBe(0);
    expect(n.stderr).toBe('');
  });

  it('an unknown shell is a usage error', () => {
    const r = runCli(['completion', 'fish']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^ebpf-tuner completion: parse command line: .*fish/);
    expect(r.stdout).toBe('');
  });

  it('the man page renders without a warning and documents what --help does', () => {
    const r = runCli(['man']);
    expect(r.code, r.stderr).toBe(0);
    const dir = tempDir();
    try {
      const page = dir.file('ebpf-tuner.1', r.stdout);
      // groff with every warning on; man -l as a user would read it.
      const g = spawnSync('groff', ['-man', '-Tutf8', '-ww', '-z', page], { encoding: 'utf8' });
      expect(g.status, g.stderr).toBe(0);
      expect(g.stderr).toBe('');
      const m = spawnSync('man', ['--warnings', '-l', page], { encoding: 'utf8', env: { ...process.env, MANWIDTH: '80', MANPAGER: 'cat', PAGER: 'cat' } });
      expect(m.status, m.stderr).toBe(0);
      expect(m.stderr).toBe('');
      const text = m.stdout.replace(/.\x08/g, '');
      expect(text).toMatch(/^NAME\n\s+ebpf-tuner\s+-\s+Always-on/m);
      // Every option --help lists for top is in the page.
      const help = runCli(['top', '--help']).stdout;
      for (const flag of help.match(/--[a-z-]+/g)!) expect(text).toContain(flag);
      expect(text).toMatch(/ebpf-tuner completion/);
    } finally {
      dir.remove();
    }
  });
});
