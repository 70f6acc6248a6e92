/**
 * Every documented config key is real, every real key is documented, and every one is exercised through the front
 * door at least once.
 *
 * 1. The keys are read from the tables under "## Settings" in `src/config/README.md` (a row's first cell, e.g.
 *    `signals.psi.triggers[].kind`) and compared both ways with the keys the zod schema accepts (walked with
 *    `knownKeysAt`; a list of mappings contributes `name[]`).
 *
 * 2. A key is exercised when a test that drives the real agent writes it in a config. The rule:
 *    - the test files are `tests/e2e/*.kernel.test.ts`, `tests/vm/*.vm.test.ts` and `src/**\/*.kernel.test.ts` that
 *      start the CLI or the agent (`startAgent(`, `startVmAgent(`, `runCli(`, `spawn…(CLI`, `new Agent(`);
 *    - every string and template literal in such a file is read as YAML (JSON is YAML), each `${…}` standing for a
 *      plain scalar, or for nothing when it starts a line (a spliced-in block of lines);
 *    - a key is exercised when some literal that parses to a mapping or list holds it with at least its enclosing
 *      key or list item: `noisy_neighbor: {min_weight: 5}` covers `policy.noisy_neighbor.min_weight`,
 *      `- {name: a, comm: x}` covers `targets[].comm`; a top-level key must be written at the top of the literal.
 *    A camelCase `Config` object handed to the Agent class does not count: it skips the file's spelling, which is
 *    what this test checks. There is no allowlist: what this host cannot run belongs in a tests/vm test, which CI runs.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';
import { isMap, isScalar, isSeq, parseDocument, type Node } from 'yaml';
import { projectRoot } from '../bpf/paths.js';
import { knownKeysAt } from './schema.js';

const README = join(projectRoot, 'src', 'config', 'README.md');

/** `a.b[].c` → ['a', 'b', '[]', 'c']. */
function segments(key: string): string[] {
  return key.split('.').flatMap((s) => (s.endsWith('[]') ? [s.slice(0, -2), '[]'] : [s]));
}

function documentedKeys(): string[] {
  const text = readFileSync(README, 'utf8');
  const start = text.indexOf('\n## Settings');
  const end = text.indexOf('\n## ', start + 1);
  const section = text.slice(start, end < 0 ? undefined : end);
  return [...section.matchAll(/^\|\s*`([^`]+)`\s*\|/gm)].map((m) => m[1]!);
}

function schemaKeys(path: PropertyKey[] = [], name = ''): string[] {
  const out: string[] = [];
  for (const k of knownKeysAt(path) ?? []) {
    const key = name ? `${name}.${k}` : k;
    out.push(key);
    if (knownKeysAt([...path, k])) out.push(...schemaKeys([...path, k], key));
    else if (knownKeysAt([...path, k, 0])) out.push(...schemaKeys([...path, k, 0], `${key}[]`));
  }
  return out;
}

function walk(dir: string, match: (f: string) => boolean): string[] {
  return readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile())
    .map((e) => join(e.parentPath, e.name))
    .filter(match);
}

const DRIVES_AGENT = /\b(?:startAgent|startVmAgent|runCli)\(|\bspawn\w*\(\s*CLI\b|\bnew Agent\(/;

function agentTestFiles(): string[] {
  const files = [
    ...walk(join(projectRoot, 'tests', 'e2e'), (f) => f.endsWith('.kernel.test.ts')),
    ...walk(join(projectRoot, 'tests', 'vm'), (f) => f.endsWith('.vm.test.ts')),
    ...walk(join(projectRoot, 'src'), (f) => f.endsWith('.kernel.test.ts')),
  ];
  return files.filter((f) => DRIVES_AGENT.test(readFileSync(f, 'utf8')));
}

const HOLE = '\u0000';

/** Each string or template literal's text, a `${…}` written as HOLE. */
function literals(file: string): string[] {
  const src = ts.createSourceFile(file, readFileSync(file, 'utf8'), ts.ScriptTarget.Latest);
  const out: string[] = [];
  const visit = (n: ts.Node): void => {
    if (ts.isStringLiteral(n) || ts.isNoSubstitutionTemplateLiteral(n)) out.push(n.text);
    else if (ts.isTemplateExpression(n)) out.push(n.head.text + n.templateSpans.map((s) => HOLE + s.literal.text).join(''));
    ts.forEachChild(n, visit);
  };
  visit(src);
  return out;
}

/** The key paths a literal writes, as segment lists from its top; none when it is not a YAML mapping or list. */
function keyPaths(text: string): string[][] {
  const yamlText = text.replace(new RegExp(`^([ \\t]*)${HOLE}`, 'gm'), '$1').replaceAll(HOLE, 'x_hole');
  const doc = parseDocument(yamlText, { uniqueKeys: false });
  if (doc.errors.length > 0) return [];
  const out: string[][] = [];
  const visit = (node: unknown, path: string[]): void => {
    if (isMap(node)) {
      for (const pair of node.items) {
        if (!isScalar(pair.key)) continue;
        const p = [...path, String(pair.key.value)];
        out.push(p);
        visit(pair.value, p);
      }
    } else if (isSeq(node)) {
      for (const item of node.items) visit(item as Node, [...path, '[]']);
    }
  };
  visit(doc.contents, []);
  return out;
}

/** `written` (from a literal's top) shows `key`: the whole key, or its tail with at least the enclosing key or list. */
function shows(written: string[], key: string[]): boolean {
  if (written.length > key.length) return false;
  if (written.length < Math.min(2, key.length)) return false;
  if (key.length === 1) return written.length === 1 && written[0] === key[0];
  const tail = key.slice(key.length - written.length);
  return tail.every((s, i) => s === written[i]);
}

describe('documented config keys', () => {
  const documented = documentedKeys();

  it('the README documents keys (the tables were found)', () => {
    expect(documented.length).toBeGreaterThan(50);
  });

  it('every documented key is in the schema, and every schema key is documented', () => {
    const schema = new Set(schemaKeys());
    const docs = new Set(documented);
    const notInSchema = documented.filter((k) => !schema.has(k));
    // A mapping such as `policy.noisy_neighbor` is documented by the rows of the keys beneath it.
    const notDocumented = [...schema].filter((k) => !docs.has(k) && !documented.some((d) => d.startsWith(`${k}.`)));
    expect(notInSchema, 'documented in src/config/README.md but unknown to src/config/schema.ts — fix: rename or remove the row').toEqual([]);
    expect(notDocumented, 'accepted by src/config/schema.ts but missing from src/config/README.md — fix: add a table row').toEqual([]);
  });

  it('every documented key is written in a config by a test that runs the CLI or the agent', () => {
    const written = agentTestFiles().map((f) => ({ file: relative(projectRoot, f), paths: literals(f).flatMap(keyPaths) }));
    expect(written.length).toBeGreaterThan(5);
    const untested = documented.filter((k) => !written.some((w) => w.paths.some((p) => shows(p, segments(k)))));
    expect(
      untested,
      'documented keys that no test writes into a config given to `bin/ebpf-tuner` or the agent — fix: add a test in ' +
        'tests/e2e/*.kernel.test.ts (or tests/vm/*.vm.test.ts when this host cannot show it) that writes the key, with ' +
        'its enclosing key, in the YAML config it runs with, and checks its effect against a kernel source',
    ).toEqual([]);
  });
});
