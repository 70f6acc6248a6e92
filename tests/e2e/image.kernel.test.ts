/**
 * The OCI image, as an operator gets it: built by deploy/image/build.sh from Debian packages, its config checked with
 * buildah, then run with podman the way the DaemonSet runs it (all capabilities dropped but the five it adds,
 * read-only root, no new privileges, the host's cgroup tree, BTF and bpffs mounted, hostPID): `check` passes, and
 * `run` attaches its programs (ids from the agent's fdinfo on the host, names from bpftool), serves /healthz and /metrics on loopback, and stops
 * cleanly on SIGTERM with its programs gone.
 *
 * Two departures from podman's defaults, both forced by this host rather than by the image: the runtime is runc
 * (crun refuses hybrid cgroup hosts), with rlimits no higher than the host's (this host withholds CAP_SYS_RESOURCE,
 * so raising RLIMIT_NOFILE fails with EPERM); and seccomp is unconfined, because the default profile of Debian 12's
 * containers-common admits bpf() only with CAP_SYS_ADMIN (docs/kubernetes.md, Requirements).
 *
 * The image is built once per run (~2 min, its .debs cached in /var/cache/ebpf-tuner/image) under a tag of its own
 * and removed at the end; EBPF_TUNER_TEST_IMAGE=NAME:TAG uses an image already built instead, and keeps it.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { projectRoot } from '../../src/bpf/paths.js';
import { removeCgroupTree } from '../../src/cgroup/cgroup.js';
import { tempDir } from './helpers.js';

const pkg = JSON.parse(readFileSync(join(projectRoot, 'package.json'), 'utf8')) as { version: string };
const given = process.env.EBPF_TUNER_TEST_IMAGE;
const image = given ?? `localhost/ebpf-tuner-e2e:${process.pid}`;
const container = `ebpf-tuner-e2e-${process.pid}`;

function sh(cmd: string, args: string[], timeout = 120_000): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout, maxBuffer: 64 * 1024 * 1024 });
  return { code: r.status, stdout: r.stdout ?? '', stderr: r.stderr ?? '' };
}

/** podman run with the DaemonSet's security context (see the module comment for the two host-forced options). */
function podmanArgs(stateDir: string, name: string): string[] {
  return [
    '--runtime', 'runc', 'run', '--rm', '--name', name,
    '--ulimit', 'nofile=4096:4096', '--ulimit', 'nproc=4096:4096',
    '--network', 'host', '--pid', 'host',
    '--cap-drop', 'ALL', '--cap-add', 'BPF,PERFMON,SYS_RESOURCE,SYS_NICE,DAC_OVERRIDE',
    '--security-opt', 'no-new-privileges', '--security-opt', 'seccomp=unconfined',
    '--read-only', '--tmpfs', '/tmp',
    '-v', '/sys/fs/cgroup:/sys/fs/cgroup', '-v', '/sys/fs/bpf:/sys/fs/bpf:ro', '-v', '/sys/kernel/btf:/sys/kernel/btf:ro',
    '-v', `${stateDir}:/var/lib/ebpf-tuner`,
    image,
  ];
}

/** Every BPF program loaded on the host, by id (bpftool's view). */
function hostProgs(): Map<number, string> {
  const r = sh('bpftool', ['prog', 'show', '--json']);
  const progs = JSON.parse(r.stdout) as { id: number; name?: string }[];
  return new Map(progs.map((p) => [p.id, p.name ?? '']));
}

/** Ids of the programs `pid` holds, from the kernel's fdinfo of its BPF fds (programs and links carry prog_id). */
function progIdsOf(pid: number): Set<number> {
  const ids = new Set<number>();
  let fds: string[] = [];
  try {
    fds = readdirSync(`/proc/${pid}/fdinfo`);
  } catch {
    return ids;
  }
  for (const fd of fds) {
    try {
      const m = /^prog_id:\s*(\d+)/m.exec(readFileSync(`/proc/${pid}/fdinfo/${fd}`, 'utf8'));
      if (m) ids.add(Number(m[1]));
    } catch {
      // closed meanwhile
    }
  }
  return ids;
}

function progsOf(pid: number): string[] {
  const all = hostProgs();
  return [...progIdsOf(pid)].map((id) => all.get(id) ?? `#${id}`);
}

/**
 * podman's cgroupfs manager (no systemd here) parents every container, and its conmon, under `libpod_parent` in each
 * hierarchy, and leaves that cgroup behind once the containers are gone. Where these are, on v1, hybrid and v2 hosts.
 */
function libpodParents(): { dir: string; root: string }[] {
  const base = '/sys/fs/cgroup';
  const roots = [base, ...readdirSync(base, { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => join(base, e.name))];
  return roots.map((root) => ({ dir: join(root, 'libpod_parent'), root })).filter((p) => existsSync(p.dir));
}

describe('OCI image (deploy/image/build.sh)', () => {
  const dir = tempDir('ebpf-tuner-image-');
  // Only what this test made is removed: a libpod_parent already there belongs to someone else's containers.
  const libpodBefore = new Set(libpodParents().map((p) => p.dir));

  beforeAll(() => {
    if (given) return;
    const t0 = Date.now();
    const r = sh('bash', [join(projectRoot, 'deploy', 'image', 'build.sh'), '--tag', image], 900_000);
    expect(r.code, `build.sh failed:\n${r.stderr.slice(-4000)}`).toBe(0);
    console.log(`image built in ${((Date.now() - t0) / 1000).toFixed(0)} s: ${r.stderr.trim().split('\n').pop()}`);
  }, 900_000);

  afterAll(() => {
    sh('podman', ['rm', '--force', '--ignore', container]);
    if (!given) sh('buildah', ['rmi', '--force', image]);
    for (const p of libpodParents()) if (!libpodBefore.has(p.dir)) removeCgroupTree(p.dir, p.root);
    dir.remove();
  }, 120_000);

  it('carries the entrypoint, environment and labels the manifests rely on', () => {
    const r = sh('buildah', ['inspect', '--type', 'image', image]);
    expect(r.code, r.stderr).toBe(0);
    const cfg = (JSON.parse(r.stdout) as { OCIv1: { config: Record<string, unknown> } }).OCIv1.config as {
      Entrypoint: string[]; Cmd: string[]; Env: string[]; Labels: Record<string, string>; ExposedPorts: Record<string, unknown>;
    };
    expect(cfg.Entrypoint).toEqual(['/usr/local/bin/ebpf-tuner']);
    expect(cfg.Cmd).toEqual(['run']);
    expect(cfg.Env).toContain('NODE_ENV=production');
    expect(cfg.Labels['org.opencontainers.image.version']).toBe(pkg.version);
    expect(cfg.Labels['org.opencontainers.image.licenses']).toBe('MIT');
    expect(cfg.Labels['io.ebpf-tuner.nodejs']).toMatch(/^20\./);
    expect(Object.keys(cfg.ExposedPorts)).toEqual(['9479/tcp']);
  });

  it('holds no test tools, and the DaemonSet shell and the CLI on PATH', () => {
    const r = sh('podman', ['--runtime', 'runc', 'run', '--rm', '--ulimit', 'nofile=4096:4096', '--ulimit', 'nproc=4096:4096',
      '--network', 'none', '--entrypoint', '/bin/sh', image, '-c',
      'command -v ebpf-tuner; ebpf-tuner --version; for t in stress-ng bpftrace perf chromium clang-16 gcc npm; do command -v $t && echo "present: $t"; done; true']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('/usr/local/bin/ebpf-tuner');
    expect(r.stdout).toContain(pkg.version);
    expect(r.stdout).not.toContain('present:');
  });

  it('`check` passes inside the container with the DaemonSet capabilities', () => {
    const r = sh('podman', [...podmanArgs(dir.path, `${container}-check`), 'check']);
    expect(r.code, `${r.stdout}\n${r.stderr}`).toBe(0);
    expect(r.stdout).toContain('ready: the agent can run with eBPF here');
  });

  it('`run` attaches, serves /healthz and /metrics, and stops cleanly on SIGTERM', async () => {
    const child = spawn('podman', [...podmanArgs(dir.path, container), 'run', '--state-dir', '/var/lib/ebpf-tuner', '--listen', '127.0.0.1:0'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    // 'close': the exit code and all of stdout (the last log lines may arrive after 'exit').
    const exited = new Promise<number | null>((resolve) => child.once('close', (code) => resolve(code)));
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    try {
      let url = '';
      for (let i = 0; i < 600 && !url; i++) {
        const line = out.split('\n').find((l) => l.includes('"serve http: listening"'));
        if (line) url = String((JSON.parse(line) as { url: string }).url);
        else await new Promise((r) => setTimeout(r, 100));
        if (child.exitCode !== null) break;
      }
      expect(url, `no listening line; stdout: ${out.slice(-2000)} stderr: ${err.slice(-2000)}`).not.toBe('');
      const health = await fetch(`${url}/healthz`);
      expect(health.status).toBe(200);
      const metrics = await (await fetch(`${url}/metrics`)).text();
      expect(metrics).toMatch(/^ebpf_tuner_/m);

      // The agent's pid on the host (hostPID), and the programs it holds: ids from its fds' fdinfo, names from bpftool.
      const pid = Number(sh('podman', ['inspect', '--format', '{{.State.Pid}}', container]).stdout.trim());
      expect(pid).toBeGreaterThan(1);
      // HTTP is bound before the programs are loaded and attached: wait for them.
      let progs: string[] = [];
      for (let i = 0; i < 300 && !progs.some((n) => n.startsWith('runqlat')); i++) {
        await new Promise((r) => setTimeout(r, 100));
        progs = progsOf(pid);
      }
      expect(progs.some((n) => n.startsWith('runqlat')), `programs held by ${pid}: ${progs.join(', ')}`).toBe(true);
      const ids = [...progIdsOf(pid)];

      const stop = sh('podman', ['stop', '--time', '30', container]);
      expect(stop.code, stop.stderr).toBe(0);
      expect(await exited).toBe(0);
      expect(out).toContain('"why":"SIGTERM"');
      expect(out).toContain('"msg":"agent stopped; originals restored"');
      // Nothing it loaded is left on the host, once the kernel has released what the last closed fds held (it
      // frees programs after an RCU grace period, not at the close).
      let held = ids.filter((id) => hostProgs().has(id));
      for (let i = 0; i < 100 && held.length > 0; i++) {
        await new Promise((r) => setTimeout(r, 100));
        held = ids.filter((id) => hostProgs().has(id));
      }
      expect(held).toEqual([]);
    } finally {
      if (child.exitCode === null) {
        sh('podman', ['rm', '--force', '--ignore', container]);
        await exited;
      }
    }
  });
});
