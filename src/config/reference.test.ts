/**
 * The generated reference never drifts from the declaration, and the example configurations shipped in the repository
 * are valid: against the committed JSON Schema (with a real JSON Schema validator, as an editor would check them) and
 * through the loader the agent uses.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { z } from 'zod';
import { projectRoot } from '../bpf/paths.js';
import { ConfigError, parseConfig } from './load.js';
import { defaultConfig } from './defaults.js';
import {
  CONFIG_README,
  CONFIG_SCHEMA_JSON,
  configJsonSchemaText,
  configSections,
  keyReference,
  referencedSections,
  renderReadme,
} from './reference.js';
import { configKey, configSchema, fileSchema, knownKeysAt, snakeCase, unwrap } from './schema.js';

const read = (file: string) => readFileSync(join(projectRoot, file), 'utf8');
const REGENERATE = 'fix: run npm run gen:config-docs and commit the result';

describe('generated config reference', () => {
  it(`${CONFIG_SCHEMA_JSON} is what the schema generates`, () => {
    expect(read(CONFIG_SCHEMA_JSON), REGENERATE).toBe(configJsonSchemaText());
  });

  it(`the key tables in ${CONFIG_README} are what the schema generates`, () => {
    const readme = read(CONFIG_README);
    expect(readme, REGENERATE).toBe(renderReadme(readme));
  });

  it('the README has a generated table for the top level and for every section with keys below it', () => {
    expect(referencedSections(read(CONFIG_README)).sort()).toEqual(['top', ...configSections()].sort());
  });

  it('refuses a marker for a section the file does not have', () => {
    expect(() => keyReference('no_such_section')).toThrow(/no config section/);
  });
});

/** Every YAML example of a config file in the repository, with where it is. */
interface Example {
  where: string;
  text: string;
  /** A documentation snippet shows part of a file: targets it names may be defined in the part left out. */
  snippet: boolean;
}

function examples(): Example[] {
  const out: Example[] = [
    { where: 'deploy/systemd/config.yaml', text: read('deploy/systemd/config.yaml'), snippet: false },
    {
      where: 'deploy/kubernetes/20-configmap.yaml data.config.yaml',
      text: (parse(read('deploy/kubernetes/20-configmap.yaml')) as { data: Record<string, string> }).data['config.yaml']!,
      snippet: false,
    },
  ];
  const topKeys = new Set(knownKeysAt([]));
  const docs = [
    'README.md',
    'src/config/README.md',
    'docs/kubernetes.md',
    'src/actions/pressure-backoff/README.md',
    'src/actions/io-prefetch/README.md',
    'src/engine/learned/README.md',
  ];
  for (const file of docs) {
    for (const m of read(file).matchAll(/^([ \t]*)```yaml\n([\s\S]*?)^\1```/gm)) {
      const text = m[2]!.replace(new RegExp(`^${m[1]}`, 'gm'), '');
      const value: unknown = parse(text);
      // A block is a config example when every top-level key is a config key (not a manifest or an annotation).
      if (typeof value !== 'object' || value === null || Array.isArray(value)) continue;
      if (!Object.keys(value).every((k) => topKeys.has(k))) continue;
      const line = read(file).slice(0, m.index).split('\n').length;
      out.push({ where: `${file}:${line}`, text, snippet: true });
    }
  }
  return out;
}

/** Every key path written in `value`, as [YAML path, the same path in Config's spelling]. */
function writtenKeys(schema: z.core.$ZodType, value: unknown, yaml: PropertyKey[], cfg: PropertyKey[]): [PropertyKey[], PropertyKey[]][] {
  const s = unwrap(schema);
  if (s instanceof z.ZodArray && Array.isArray(value)) {
    return value.flatMap((v, i) => writtenKeys(s.element as z.core.$ZodType, v, [...yaml, i], [...cfg, i]));
  }
  if (!(s instanceof z.ZodObject) || typeof value !== 'object' || value === null) return [];
  const shape = s.shape as Record<string, z.core.$ZodType>;
  return Object.entries(value).flatMap(([k, v]) => {
    const y = [...yaml, k];
    const c = [...cfg, configKey(k, shape[k])];
    return [[y, c] as [PropertyKey[], PropertyKey[]], ...writtenKeys(shape[k]!, v, y, c)];
  });
}

describe('the camelCase Config', () => {
  // The hand-written mapping this replaced once dropped three kinds of target: a key written in the file must arrive.
  it('carries every key written in a file, each target scope included', () => {
    const text = read(CONFIG_README)
      .match(/```yaml\n([\s\S]*?)```/)![1]!
      .replace(
        '\ndevices:',
        `
  - {name: pat, role: noisy, cgroup_pattern: /sys/fs/cgroup/app.slice/*.service, max_matches: 8}
  - {name: pf, role: noisy, pidfile: /run/x.pid, children: true}
  - {name: cm, role: noisy, comm: postgres}
devices:`,
      );
    const value: unknown = parse(text);
    const config = parseConfig(text, 'example');
    const at = (o: unknown, path: PropertyKey[]) => path.reduce<unknown>((x, k) => (x as Record<PropertyKey, unknown>)?.[k], o);
    const keys = writtenKeys(fileSchema, value, [], []);
    expect(keys.map(([y]) => y.join('.'))).toEqual(expect.arrayContaining(['targets.2.cgroup_pattern', 'targets.3.children', 'targets.4.comm']));
    for (const [yaml, cfg] of keys) expect(at(config, cfg), `${yaml.join('.')} → ${cfg.join('.')}`).toBeDefined();
    expect(config.signals.psi.triggers[0]).toMatchObject({ stallUs: 200_000, windowUs: 2_000_000 });
  });

  it('spells each policy rule back as the file does', () => {
    const rules = knownKeysAt(['policy'])!;
    expect(rules).toContain('noisy_neighbor');
    expect(Object.keys(defaultConfig().policy).map(snakeCase)).toEqual(rules);
  });
});

describe('example configurations', () => {
  const all = examples();
  const ajv = new Ajv2020({ allErrors: true, strict: true });
  const validate = ajv.compile(JSON.parse(read(CONFIG_SCHEMA_JSON)) as object);

  it('are found in the deploy files and the documentation', () => {
    expect(all.length).toBeGreaterThanOrEqual(10);
  });

  it.each(all.map((e) => [e.where, e.text] as const))('%s is valid against the JSON Schema', (_, text) => {
    expect(validate(parse(text)), ajv.errorsText(validate.errors)).toBe(true);
  });

  it.each(all.map((e) => [e.where, e] as const))('%s loads', (where, e) => {
    try {
      parseConfig(e.text, where);
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
      const left = err.issues.filter((i) => !(e.snippet && /is not a configured target/.test(i.message)));
      expect(left).toEqual([]);
    }
  });

  it('the JSON Schema refuses what the loader refuses for the same reason', () => {
    for (const text of [
      'tick: 1 s x',
      'tick: 50',
      'policy: {noisy_neighbour: {}}',
      'targets: [{name: Web!, role: protect, cgroup: /x}]',
      'signals: {runqlat: {attach: kprobe}}',
      'closed_loop: {margin: 1}',
    ]) {
      expect(validate(parse(text)), text).toBe(false);
      expect(configSchema.safeParse(parse(text)).success, text).toBe(false);
    }
  });
});
