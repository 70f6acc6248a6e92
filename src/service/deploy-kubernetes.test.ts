/**
 * Every document under deploy/kubernetes/, validated offline against the Kubernetes object schema in two ways:
 * kubernetes-models' validators (types, required fields, enums, formats; they ignore unknown fields, as the API
 * server's non-strict mode does) and a TypeScript type check of each document against the same package's
 * interfaces, whose excess-property check catches unknown and misspelt fields at any depth (a `readonly:` that
 * should have been `readOnly:` would silently mount a host path read-write). Then the properties the agent relies
 * on, and the container's entrypoint script, run for real under /bin/sh with a stand-in agent.
 */
import { spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { parseAllDocuments } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DaemonSet, type IDaemonSet } from 'kubernetes-models/apps/v1/DaemonSet';
import { ConfigMap, type IConfigMap } from 'kubernetes-models/v1/ConfigMap';
import { Namespace } from 'kubernetes-models/v1/Namespace';
import { ResourceQuota } from 'kubernetes-models/v1/ResourceQuota';
import { ServiceAccount } from 'kubernetes-models/v1/ServiceAccount';
import type { IContainer } from 'kubernetes-models/v1/Container';
import { parseConfig } from '../config/load.js';
import { SYSTEMD_UNIT, unitEnvironment } from '../bench/peers.js';

const REPO = fileURLToPath(new URL('../../', import.meta.url));
const DIR = join(REPO, 'deploy/kubernetes');
const NAMESPACE = 'ebpf-tuner';

/** Every kind the manifests may use: its runtime model and the module and interface its type lives in. */
const KINDS: Record<string, { model: new (data: never) => { validate(): void }; module: string; iface: string }> = {
  'v1/Namespace': { model: Namespace, module: 'kubernetes-models/v1/Namespace', iface: 'INamespace' },
  'v1/ServiceAccount': { model: ServiceAccount, module: 'kubernetes-models/v1/ServiceAccount', iface: 'IServiceAccount' },
  'v1/ConfigMap': { model: ConfigMap, module: 'kubernetes-models/v1/ConfigMap', iface: 'IConfigMap' },
  'v1/ResourceQuota': { model: ResourceQuota, module: 'kubernetes-models/v1/ResourceQuota', iface: 'IResourceQuota' },
  'apps/v1/DaemonSet': { model: DaemonSet, module: 'kubernetes-models/apps/v1/DaemonSet', iface: 'IDaemonSet' },
};

interface Doc {
  /** file#index, for messages. */
  where: string;
  file: string;
  obj: Record<string, unknown> & { apiVersion?: string; kind?: string; metadata?: { name?: string; namespace?: string } };
}

function manifestFiles(dir = DIR): string[] {
  return readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile() && /\.ya?ml$/.test(e.name))
    .map((e) => join(e.parentPath, e.name))
    .sort();
}

/** YAML 1.1, as Kubernetes reads manifests: `0444` is octal, `yes` is true. */
function parseManifest(file: string, text: string): Doc[] {
  const docs: Doc[] = [];
  parseAllDocuments(text, { version: '1.1', uniqueKeys: true }).forEach((d, i) => {
    if (d.errors.length > 0) throw new Error(`${file}#${i}: ${d.errors[0].message}`);
    const obj = d.toJS() as Doc['obj'] | null;
    if (obj !== null) docs.push({ where: `${relative(REPO, file)}#${i}`, file, obj });
  });
  return docs;
}

function schemaErrors(doc: Doc): string[] {
  const kind = KINDS[`${doc.obj.apiVersion}/${doc.obj.kind}`];
  if (kind === undefined) return [`${doc.where}: no schema for ${doc.obj.apiVersion}/${doc.obj.kind}; add it to KINDS`];
  try {
    new kind.model(doc.obj as never).validate();
    return [];
  } catch (e) {
    return [`${doc.where}: ${(e as Error).message}`];
  }
}

/**
 * Type-checks each document as an object literal of its kind's interface. One program for all documents: building
 * it is the expensive part (about a second).
 */
function strictErrors(docs: Doc[]): string[] {
  const file = join(REPO, '__manifests__.ts');
  const imports = new Set<string>();
  const lines: string[] = [];
  const owner: string[] = [];
  docs.forEach((doc, i) => {
    const kind = KINDS[`${doc.obj.apiVersion}/${doc.obj.kind}`];
    if (kind === undefined) return;
    imports.add(`import type { ${kind.iface} } from '${kind.module}';`);
    for (const l of `const d${i}: ${kind.iface} = ${JSON.stringify(doc.obj, null, 1)};`.split('\n')) {
      lines.push(l);
      owner.push(doc.where);
    }
  });
  const header = [...imports];
  const source = [...header, ...lines].join('\n');
  const options: ts.CompilerOptions = {
    strict: true,
    noEmit: true,
    skipLibCheck: true,
    target: ts.ScriptTarget.ES2022,
    module: ts.ModuleKind.ESNext,
    // The package's .d.ts files import each other without extensions.
    moduleResolution: ts.ModuleResolutionKind.Bundler,
    types: [],
    lib: ['lib.es2022.d.ts'],
  };
  const host = ts.createCompilerHost(options);
  const getSourceFile = host.getSourceFile.bind(host);
  const fileExists = host.fileExists.bind(host);
  host.getSourceFile = (name, lang, ...rest) =>
    name === file ? ts.createSourceFile(name, source, lang) : getSourceFile(name, lang, ...rest);
  host.fileExists = (name) => name === file || fileExists(name);
  const program = ts.createProgram([file], options, host);
  return ts.getPreEmitDiagnostics(program).map((d) => {
    const line = d.file && d.start !== undefined ? d.file.getLineAndCharacterOfPosition(d.start).line : -1;
    const where = line >= header.length ? owner[line - header.length] : '(imports)';
    return `${where}: ${ts.flattenDiagnosticMessageText(d.messageText, ' ')}`;
  });
}

const files = manifestFiles();
const all = files.flatMap((f) => parseManifest(f, readFileSync(f, 'utf8')));
const find = (kind: string, file = '30-daemonset.yaml') =>
  all.filter((d) => d.obj.kind === kind && relative(DIR, d.file) === file);

describe('deploy/kubernetes manifests against the Kubernetes schema', () => {
  it('finds the manifests, named so that `kubectl apply -f deploy/kubernetes/` creates the namespace first', () => {
    expect(files.map((f) => relative(DIR, f))).toEqual([
      '00-namespace.yaml',
      '10-serviceaccount.yaml',
      '20-configmap.yaml',
      '30-daemonset.yaml',
      'fallback-sys-admin/daemonset.yaml',
    ]);
  });

  it('every document passes the object schema', () => {
    expect(all.flatMap(schemaErrors)).toEqual([]);
  });

  it('no document has an unknown or misspelt field', () => {
    expect(strictErrors(all)).toEqual([]);
  });

  describe('a deliberately broken copy fails', () => {
    const text = readFileSync(join(DIR, '30-daemonset.yaml'), 'utf8');
    const broken = (from: string | RegExp, to: string) => {
      const out = text.replace(from, to);
      expect(out, `the edit ${String(from)} must apply`).not.toBe(text);
      return parseManifest(join(DIR, '30-daemonset.yaml'), out);
    };

    it('wrong type: a port number written as a word', () => {
      const errs = broken('containerPort: 9479', 'containerPort: http-port').flatMap(schemaErrors);
      expect(errs.join('\n')).toMatch(/containerPort must be integer/);
    });

    it('missing required field: a container without a name', () => {
      const errs = broken('- name: agent\n', '- tty: false\n').flatMap(schemaErrors);
      expect(errs.join('\n')).toMatch(/containers\/0 must have required property name/);
    });

    it('wrong enum: an unknown hostPath type', () => {
      const errs = broken('type: DirectoryOrCreate', 'type: DirOrCreate').flatMap(schemaErrors);
      expect(errs.join('\n')).toMatch(/hostPath\/type must be equal to one of the allowed values/);
    });

    it('misspelt field: readonly instead of readOnly, which would mount BTF read-write', () => {
      const docs = broken(/(mountPath: \/sys\/kernel\/btf\n\s+)readOnly: true/, '$1readonly: true');
      // The object schema lets unknown fields through, as the API server's non-strict mode does...
      expect(docs.flatMap(schemaErrors)).toEqual([]);
      // ...the strict check does not.
      expect(strictErrors(docs).join('\n')).toMatch(/'"readonly"' does not exist in type 'IVolumeMount'/);
    });

    it('wrong apiVersion', () => {
      const errs = broken('apiVersion: apps/v1', 'apiVersion: extensions/v1beta1').flatMap(schemaErrors);
      expect(errs.join('\n')).toMatch(/no schema for extensions\/v1beta1\/DaemonSet/);
    });
  });
});

describe('what the agent relies on', () => {
  const ds = find('DaemonSet')[0].obj as unknown as IDaemonSet;
  const fallback = find('DaemonSet', 'fallback-sys-admin/daemonset.yaml')[0].obj as unknown as IDaemonSet;
  const pod = ds.spec!.template.spec!;
  const agent = pod.containers.find((c) => c.name === 'agent') as IContainer;
  const mount = (name: string) => agent.volumeMounts!.find((m) => m.name === name)!;
  const volume = (name: string) => pod.volumes!.find((v) => v.name === name)!;

  it('every namespaced object is in the agent namespace, and what the pod references exists', () => {
    for (const d of all) {
      if (d.obj.kind !== 'Namespace') expect(d.obj.metadata?.namespace, d.where).toBe(NAMESPACE);
    }
    expect(find('Namespace', '00-namespace.yaml').map((d) => d.obj.metadata?.name)).toEqual([NAMESPACE]);
    expect(find('ServiceAccount', '10-serviceaccount.yaml')[0].obj.metadata?.name).toBe(pod.serviceAccountName);
    expect(find('ConfigMap', '20-configmap.yaml')[0].obj.metadata?.name).toBe(volume('config').configMap?.name);
  });

  it("sizes the agent's memory as the systemd unit does, which is how the bench measures it", () => {
    const unit = unitEnvironment(readFileSync(SYSTEMD_UNIT, 'utf8'));
    expect(unit).toEqual({ NODE_OPTIONS: '--max-semi-space-size=4', MALLOC_ARENA_MAX: '2' });
    for (const d of [ds, fallback]) {
      const c = d.spec!.template.spec!.containers.find((x) => x.name === 'agent')!;
      const env = Object.fromEntries((c.env ?? []).map((e) => [e.name, e.value]));
      // The pod caps the old generation too, inside its memory limit.
      expect(env.NODE_OPTIONS!.split(' ').filter((f) => !f.startsWith('--max-old-space-size='))).toEqual(unit.NODE_OPTIONS!.split(' '));
      expect(env.MALLOC_ARENA_MAX).toBe(unit.MALLOC_ARENA_MAX);
    }
  });

  it('every container runs the image deploy/image/build.sh builds by default: ebpf-tuner:<package.json version>', () => {
    const version = (JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')) as { version: string }).version;
    const build = readFileSync(join(REPO, 'deploy/image/build.sh'), 'utf8');
    expect(build).toContain('TAG="ebpf-tuner:$VERSION"');
    for (const d of [ds, fallback]) {
      const containers = [...(d.spec!.template.spec!.initContainers ?? []), ...d.spec!.template.spec!.containers];
      expect(containers.map((c) => c.image)).toEqual(containers.map(() => `ebpf-tuner:${version}`));
    }
  });

  it('runs with exactly the five capabilities, unprivileged, and no API access', () => {
    expect(agent.securityContext?.capabilities).toEqual({
      drop: ['ALL'],
      add: ['BPF', 'PERFMON', 'SYS_RESOURCE', 'SYS_NICE', 'DAC_OVERRIDE'],
    });
    for (const c of [...pod.containers, ...(pod.initContainers ?? [])]) {
      expect(c.securityContext?.privileged, c.name).toBe(false);
      expect(c.securityContext?.allowPrivilegeEscalation, c.name).toBe(false);
      expect(c.securityContext?.readOnlyRootFilesystem, c.name).toBe(true);
      expect(c.securityContext?.capabilities?.add, c.name).not.toContain('SYS_ADMIN');
    }
    expect(pod.hostPID).toBe(true);
    expect(pod.hostNetwork).toBeUndefined();
    expect(pod.automountServiceAccountToken).toBe(false);
  });

  it('mounts cgroups read-write, BPF fs and BTF read-only, the journal on the host, and nothing of debugfs', () => {
    expect(volume('cgroup').hostPath).toEqual({ path: '/sys/fs/cgroup', type: 'Directory' });
    expect(mount('cgroup').readOnly).toBeUndefined();
    expect(volume('bpffs').hostPath?.path).toBe('/sys/fs/bpf');
    expect(mount('bpffs').readOnly).toBe(true);
    expect(volume('btf').hostPath?.path).toBe('/sys/kernel/btf');
    expect(mount('btf').readOnly).toBe(true);
    expect(volume('state').hostPath).toEqual({ path: '/var/lib/ebpf-tuner', type: 'DirectoryOrCreate' });
    expect(mount('state').mountPath).toBe('/var/lib/ebpf-tuner');
    expect(mount('config')).toMatchObject({ mountPath: '/etc/ebpf-tuner/config.yaml', subPath: 'config.yaml', readOnly: true });
    // Parsed as YAML 1.1, like the API server: 0444 is octal.
    expect(volume('config').configMap?.defaultMode).toBe(0o444);
    // Beyond loopback the agent serves only with a token; loadToken refuses one that group or others can read.
    expect(mount('token')).toMatchObject({ mountPath: '/etc/ebpf-tuner/token', subPath: 'token', readOnly: true });
    expect(volume('token').secret).toEqual({ secretName: 'ebpf-tuner-token', defaultMode: 0o400 });
    expect(agent.command?.join(' ')).toContain('--token-file /etc/ebpf-tuner/token');
    const hostPaths = pod.volumes!.flatMap((v) => (v.hostPath ? [v.hostPath.path] : []));
    expect(hostPaths.filter((p) => p.startsWith('/sys/kernel/debug') || p.startsWith('/sys/kernel/tracing'))).toEqual([]);
  });

  it('probes /readyz and /healthz on the port Prometheus is told to scrape', () => {
    const port = agent.ports!.find((p) => p.name === 'http')!;
    expect(agent.readinessProbe?.httpGet).toMatchObject({ path: '/readyz', port: 'http' });
    expect(agent.livenessProbe?.httpGet).toMatchObject({ path: '/healthz', port: 'http' });
    expect(ds.spec!.template.metadata?.annotations).toMatchObject({
      'prometheus.io/scrape': 'true',
      'prometheus.io/port': String(port.containerPort),
      'prometheus.io/path': '/metrics',
    });
    expect(agent.command?.join(' ')).toContain(`--listen 0.0.0.0:${port.containerPort}`);
  });

  it('is scheduled everywhere, first, with bounded resources and time to restore', () => {
    expect(pod.tolerations).toEqual([{ operator: 'Exists' }]);
    expect(pod.priorityClassName).toBe('system-node-critical');
    expect(pod.terminationGracePeriodSeconds).toBeGreaterThanOrEqual(30);
    for (const c of [...pod.containers, ...(pod.initContainers ?? [])]) {
      expect(Object.keys(c.resources?.requests ?? {}).sort(), c.name).toEqual(['cpu', 'memory']);
      expect(Object.keys(c.resources?.limits ?? {}).sort(), c.name).toEqual(['cpu', 'memory']);
    }
    const quota = find('ResourceQuota', '00-namespace.yaml')[0].obj as { spec: { scopeSelector: unknown } };
    expect(JSON.stringify(quota.spec.scopeSelector)).toContain('system-node-critical');
  });

  it('restores before a new agent starts: an init container rolls back the same state directory', () => {
    const init = pod.initContainers!.find((c) => c.name === 'rollback')!;
    expect(init.command).toEqual(['ebpf-tuner', 'rollback', '--state-dir', '/var/lib/ebpf-tuner']);
    expect(init.image).toBe(agent.image);
    expect(init.volumeMounts).toEqual(
      expect.arrayContaining([
        { name: 'state', mountPath: '/var/lib/ebpf-tuner' },
        { name: 'cgroup', mountPath: '/sys/fs/cgroup' },
      ]),
    );
  });

  it('ships a sample config the agent accepts, which changes nothing and keeps off the kubelet trees', () => {
    const cm = find('ConfigMap', '20-configmap.yaml')[0].obj as unknown as IConfigMap;
    const config = parseConfig(cm.data!['config.yaml'], '20-configmap.yaml');
    expect(config.targets).toEqual([]);
    expect(config.guardrails.denyCgroups).toEqual(
      expect.arrayContaining(['/sys/fs/cgroup/kubepods.slice', '/sys/fs/cgroup/kubepods']),
    );
  });

  it('the SYS_ADMIN fallback differs from the default only in the agent capabilities', () => {
    const fbAgent = fallback.spec!.template.spec!.containers.find((c) => c.name === 'agent')!;
    expect(fbAgent.securityContext?.capabilities).toEqual({
      drop: ['ALL'],
      add: ['SYS_ADMIN', 'SYS_RESOURCE', 'SYS_NICE', 'DAC_OVERRIDE'],
    });
    const strip = (d: IDaemonSet) => {
      const copy = structuredClone(d);
      const c = copy.spec!.template.spec!.containers.find((x) => x.name === 'agent')!;
      delete c.securityContext!.capabilities;
      return copy;
    };
    expect(strip(fallback)).toEqual(strip(ds));
    // The default manifests never grant SYS_ADMIN.
    const outsideFallback = files.filter((f) => !f.includes('fallback-sys-admin'));
    for (const f of outsideFallback) expect(readFileSync(f, 'utf8'), f).not.toMatch(/add:.*SYS_ADMIN/);
  });
});

describe('the agent container entrypoint, run under /bin/sh with a stand-in agent', () => {
  const ds = find('DaemonSet')[0].obj as unknown as IDaemonSet;
  const agent = ds.spec!.template.spec!.containers.find((c) => c.name === 'agent')!;
  let bin: string;

  beforeAll(() => {
    expect(agent.command?.slice(0, 2)).toEqual(['/bin/sh', '-c']);
    bin = mkdtempSync(join(tmpdir(), 'entrypoint-'));
    // Logs each call; `run` waits to be stopped (restoring on SIGTERM) or exits with $CRASH.
    writeFileSync(
      join(bin, 'ebpf-tuner'),
      `#!/bin/sh
echo "$1" >> "$LOG"
case "$1" in
run)
  echo $$ > "$LOG.pid"
  echo "$*" > "$LOG.args"
  trap 'echo stopped >> "$LOG"; exit 0' TERM
  echo ready >> "$LOG"
  if [ -n "$CRASH" ]; then exit "$CRASH"; fi
  while :; do sleep 0.05; done
  ;;
rollback)
  echo "$*" > "$LOG.rollback-args"
  exit "\${ROLLBACK_RC:-0}"
  ;;
esac
`,
    );
    chmodSync(join(bin, 'ebpf-tuner'), 0o755);
  });
  afterAll(() => rmSync(bin, { recursive: true, force: true }));

  /**
   * Runs the entrypoint in its own process group. `sigterm`: when the shell gets SIGTERM — once the stand-in says
   * `ready`, this many µs after the shell was started, or never. Whatever happens, nothing it started outlives the
   * call.
   */
  async function runEntrypoint(env: Record<string, string>, sigterm: 'ready' | number | false) {
    const log = join(bin, `log${Math.random().toString(36).slice(2)}`);
    const child = spawn(agent.command![0], agent.command!.slice(1), {
      env: { PATH: `${bin}:/usr/bin:/bin`, LOG: log, ...env },
      stdio: 'ignore',
      detached: true,
    });
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    const lines = () => (existsSync(log) ? readFileSync(log, 'utf8').trim().split('\n') : []);
    const standIn = () => (existsSync(`${log}.pid`) ? Number(readFileSync(`${log}.pid`, 'utf8')) : 0);
    try {
      if (sigterm === 'ready') {
        for (let i = 0; i < 250 && !lines().includes('ready'); i++) await new Promise((r) => setTimeout(r, 20));
        expect(lines()).toContain('ready');
        child.kill('SIGTERM');
      } else if (sigterm !== false) {
        const t0 = process.hrtime.bigint();
        while (process.hrtime.bigint() - t0 < BigInt(sigterm * 1000));
        child.kill('SIGTERM');
      }
      const code = await exited;
      // The stand-in is the shell's child: once the shell is gone it must be gone too.
      const pid = standIn();
      const alive = pid > 0 && existsSync(`/proc/${pid}`) && !readFileSync(`/proc/${pid}/stat`, 'utf8').includes(') Z ');
      const read = (suffix: string) => (existsSync(`${log}${suffix}`) ? readFileSync(`${log}${suffix}`, 'utf8').trim() : undefined);
      return { code, lines: lines(), args: read('.args'), rollbackArgs: read('.rollback-args'), standInAlive: alive };
    } finally {
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {
        // the group is gone already
      }
      const pid = standIn();
      if (pid > 0) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // gone already
        }
      }
    }
  }

  it('passes SIGTERM to the agent, waits for it, then rolls back and exits 0', async () => {
    const r = await runEntrypoint({}, 'ready');
    expect(r.lines).toEqual(['run', 'ready', 'stopped', 'rollback']);
    expect(r.code).toBe(0);
    expect(r.standInAlive).toBe(false);
    expect(r.args).toBe(
      'run --config /etc/ebpf-tuner/config.yaml --state-dir /var/lib/ebpf-tuner --listen 0.0.0.0:9479 --token-file /etc/ebpf-tuner/token',
    );
    expect(r.rollbackArgs).toBe('rollback --state-dir /var/lib/ebpf-tuner');
  });

  it('a SIGTERM at any moment of the start either comes before the agent or stops it and rolls back', async () => {
    // Swept over the shell's first milliseconds: before its trap (the shell ends and starts nothing), between the
    // trap and the agent's fork, between the fork and the exec (where a signal to the agent is lost and must be
    // sent again), and after. A trap set only after the agent started left it running in that gap.
    for (let us = 0; us <= 4000; us += 200) {
      const r = await runEntrypoint({}, us);
      const what = `SIGTERM at ${us} µs: ${r.lines.join(',')}, exit ${r.code}`;
      expect(r.standInAlive, what).toBe(false);
      // Nothing logged: the shell ended before its trap, and started nothing.
      if (r.lines.length > 0) {
        expect(r.lines.at(-1), what).toBe('rollback');
        // The stand-in stopped on the signal (0), or got it before its own trap, as a real agent may (143).
        expect([0, 143], what).toContain(r.code);
      }
    }
  }, 90_000);

  it('rolls back at once when the agent crashes, and keeps the crash exit code', async () => {
    const r = await runEntrypoint({ CRASH: '3' }, false);
    expect(r.lines).toEqual(['run', 'ready', 'rollback']);
    expect(r.code).toBe(3);
  });

  it('fails the container when rollback fails after a clean stop', async () => {
    const r = await runEntrypoint({ ROLLBACK_RC: '4' }, 'ready');
    expect(r.lines).toEqual(['run', 'ready', 'stopped', 'rollback']);
    expect(r.code).toBe(4);
  });
});
