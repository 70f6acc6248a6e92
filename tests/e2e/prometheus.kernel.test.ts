/**
 * /metrics as a real Prometheus reads it. The agent runs through the CLI with a cgroup target holding more busy
 * threads than the host has CPUs, so they wait in the run queue; Debian's `prometheus` scrapes it every second on
 * loopback with its own config, data directory and port; the test then asks Prometheus's HTTP API:
 *
 * - `histogram_quantile(0.99, ...)` over the run-queue latency histogram agrees with the agent's own p99, computed
 *   the agent's way from the histogram in its /api/signals, within one log2 bucket (a factor of 2), both over the
 *   whole run and over the last 10 s (against the p99s of the agent's ticks in that window);
 * - a counter increases, and stays within the kernel's own count (/proc/<pid>/task/<tid>/status);
 * - `promtool check metrics` finds nothing to say about the page, and `promtool check rules` accepts the shipped
 *   recording and alerting rules.
 *
 * Prometheus and the workload are ended by pid; the cgroup and the temp dir are removed.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { projectRoot, toolPath } from '../../src/bpf/paths.js';
import { histPercentile } from '../../src/stats/histogram.js';
import {
  cleanupAll,
  killAndWait,
  makeTestCgroup,
  spawnInCgroup,
  spawnTracked,
  type SpawnedProcess,
} from '../../src/testing/cgroups.js';
import { startAgent, tempDir } from './helpers.js';

const PROMETHEUS = '/usr/bin/prometheus';
const PROMTOOL = '/usr/bin/promtool';
const RULES = join(projectRoot, 'deploy', 'prometheus', 'rules.yml');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

afterAll(async () => {
  await cleanupAll();
});

function needPrometheus(): void {
  for (const bin of [PROMETHEUS, PROMTOOL]) {
    if (!existsSync(bin)) {
      throw new Error(`${bin} is missing — fix: apt-get install prometheus (listed in scripts/apt-packages.txt; scripts/setup.sh installs it)`);
    }
  }
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

/** CPU seconds the process's threads have run, from the kernel's own accounting (first field of schedstat, ns). */
function onCpuSeconds(pid: number): number {
  let ns = 0;
  for (const tid of readdirSync(`/proc/${pid}/task`)) ns += Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ')[0]);
  return ns / 1e9;
}

function involuntarySwitches(pid: number): number {
  let n = 0;
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    n += Number(/^nonvoluntary_ctxt_switches:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/task/${tid}/status`, 'utf8'))![1]);
  }
  return n;
}

interface Hist {
  counts: number[];
  count: number;
}
interface Snapshot {
  time: number;
  targets: Record<string, { runqlat?: { p99: number; count: number; hist: Hist } }>;
}

describe('metrics through a real Prometheus', () => {
  it('promtool accepts the shipped rules', () => {
    needPrometheus();
    const r = spawnSync(PROMTOOL, ['check', 'rules', RULES], { encoding: 'utf8' });
    expect(r.status, r.stdout + r.stderr).toBe(0);
  });

  it('scrapes histograms whose p99 matches the agent and counters that increase; promtool finds the page clean', async () => {
    needPrometheus();
    const dir = tempDir('ebpf-tuner-prom-');
    const cg = makeTestCgroup('cpu');
    const procs: SpawnedProcess[] = [];
    try {
      // Three spinning threads on two CPUs: at any moment one of them waits in the run queue.
      const hog = await spawnInCgroup(cg.path, toolPath('hog'), ['--threads', '3']);
      procs.push(hog);
      const config = dir.file('c.yaml', `targets:\n  - {name: web, cgroup: ${cg.path}, role: protect}\n`);
      const agent = startAgent(['-c', config, '--dry-run', '--state-dir', join(dir.path, 'state'), '--listen', '127.0.0.1:0']);
      procs.push(agent);
      const url = String((await agent.waitFor((l) => l.msg === 'serve http: listening')).url);
      const agentHost = new URL(url).host;

      // promtool lints the page as a scraper sees it: names, suffixes, units, HELP and TYPE lines.
      await sleep(2500);
      const page = await (await fetch(`${url}/metrics`)).text();
      const lint = spawnSync(PROMTOOL, ['check', 'metrics'], { input: page, encoding: 'utf8' });
      expect(lint.status, lint.stdout + lint.stderr).toBe(0);
      expect((lint.stdout + lint.stderr).trim(), 'promtool check metrics').toBe('');

      const port = await freePort();
      const promConfig = dir.file(
        'prometheus.yml',
        `global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files: ['${RULES}']\nscrape_configs:\n  - job_name: ebpf-tuner\n    static_configs:\n      - targets: ['${agentHost}']\n`,
      );
      const prom = spawnTracked(
        PROMETHEUS,
        [
          `--config.file=${promConfig}`,
          `--storage.tsdb.path=${join(dir.path, 'data')}`,
          `--web.listen-address=127.0.0.1:${port}`,
          '--log.level=warn',
        ],
        { stdio: ['ignore', 'ignore', 'pipe'] },
      );
      procs.push(prom);
      let promLog = '';
      prom.child.stderr!.on('data', (d: Buffer) => (promLog += d.toString()));
      const api = `http://127.0.0.1:${port}`;
      const query = async (q: string): Promise<number[]> => {
        const res = await fetch(`${api}/api/v1/query?query=${encodeURIComponent(q)}`);
        const body = (await res.json()) as { status: string; data?: { result: { value: [number, string] }[] }; error?: string };
        if (body.status !== 'success') throw new Error(`query ${q}: ${body.error}; prometheus log: ${promLog}`);
        return body.data!.result.map((r) => Number(r.value[1]));
      };
      for (let i = 0; ; i++) {
        const ready = await fetch(`${api}/-/ready`).then((r) => r.ok, () => false);
        if (ready) break;
        if (i > 100) throw new Error(`prometheus not ready on ${api}; log: ${promLog}`);
        await sleep(200);
      }

      const before = await (async () => {
        for (let i = 0; i < 50; i++) {
          const v = await query('ebpf_tuner_context_switches_total{target="web",kind="involuntary"}');
          if (v.length === 1) return v[0]!;
          await sleep(200);
        }
        throw new Error(`no context switch counter scraped; prometheus log: ${promLog}`);
      })();
      // The on-CPU counter as scraped, and the kernel's count for the same threads, at both ends of the same wait.
      const onCpu = async () => (await query('sum(ebpf_tuner_oncpu_seconds_total{target="web"})'))[0]!;
      const cpuStart = { prom: await onCpu(), kernel: onCpuSeconds(hog.pid) };
      await sleep(12_000);
      const cpuEnd = { prom: await onCpu(), kernel: onCpuSeconds(hog.pid) };

      // Over the whole run: Prometheus's quantile of the cumulative buckets, and the agent's own percentile of the
      // same cumulative histogram read from its API a moment later.
      const [promAll] = await query('histogram_quantile(0.99, sum by (le) (ebpf_tuner_runqueue_latency_seconds_bucket{target="web"}))');
      const signals = (await (await fetch(`${url}/api/signals`)).json()) as { history: Snapshot[]; last: Snapshot };
      const web = signals.last.targets.web!.runqlat!;
      const agentAll = histPercentile(web.hist.counts, 0.99) / 1e6;
      // Over the last 10 s: rate() of the buckets, against the agent's per-tick p99s in the same span.
      const [promRecent] = await query('histogram_quantile(0.99, sum by (le) (rate(ebpf_tuner_runqueue_latency_seconds_bucket{target="web"}[10s])))');
      const recent = signals.history
        .filter((s) => s.time > signals.last.time - 10_000)
        .map((s) => s.targets.web?.runqlat)
        .filter((q) => q !== undefined && q.count > 0)
        .map((q) => q!.p99 / 1e6)
        .sort((a, b) => a - b);
      const agentRecent = recent[Math.floor(recent.length / 2)]!;
      console.log(
        `run-queue p99: Prometheus ${fmt(promAll)} over the run vs agent ${fmt(agentAll)}; ` +
          `Prometheus ${fmt(promRecent)} over 10 s vs agent's median tick p99 ${fmt(agentRecent)} (ticks ${recent.map(fmt).join(' ')})`,
      );
      expect(web.hist.count, 'run-queue waits seen').toBeGreaterThan(100);
      for (const [p, a, what] of [
        [promAll, agentAll, 'whole run'],
        [promRecent, agentRecent, 'last 10 s'],
      ] as const) {
        expect(p, what).toBeGreaterThan(0);
        expect(p! / a, `${what}: Prometheus ${p} vs agent ${a}`).toBeGreaterThanOrEqual(0.5);
        expect(p! / a, `${what}: Prometheus ${p} vs agent ${a}`).toBeLessThanOrEqual(2);
      }

      // A counter increases, and never past what the kernel counted for the same threads (since they started).
      const [after] = await query('ebpf_tuner_context_switches_total{target="web",kind="involuntary"}');
      const kernel = involuntarySwitches(hog.pid);
      console.log(`involuntary switches: ${before} then ${after} in Prometheus; kernel ${kernel} since the hog started`);
      expect(after!).toBeGreaterThan(before);
      expect(after!).toBeLessThanOrEqual(kernel * 1.05 + 5);
      // On-CPU seconds over the 12 s wait, against schedstat over the same wait. Both ends of the scraped counter lag by
      // up to a tick and a scrape, the same lag at each end, so the two agree within about a tick's worth of CPU time.
      const promCpu = cpuEnd.prom - cpuStart.prom;
      const kernelCpu = cpuEnd.kernel - cpuStart.kernel;
      console.log(`on-CPU seconds over 12 s: Prometheus ${promCpu.toFixed(2)}, schedstat ${kernelCpu.toFixed(2)}`);
      expect(kernelCpu).toBeGreaterThan(1);
      expect(promCpu / kernelCpu).toBeGreaterThan(0.75);
      expect(promCpu / kernelCpu).toBeLessThan(1.25);
      const [rate] = await query('sum(rate(ebpf_tuner_oncpu_seconds_total{target="web"}[10s]))');
      expect(rate!).toBeGreaterThan(0);

      // The shipped recording rules evaluate against this data.
      const [recorded] = await query('ebpf_tuner:runqueue_latency_seconds:p99_1m{target="web"}');
      expect(recorded, 'recording rule ebpf_tuner:runqueue_latency_seconds:p99_1m').toBeGreaterThan(0);

      agent.child.kill('SIGTERM');
      expect((await agent.exited).code).toBe(0);
    } finally {
      for (const p of procs.reverse()) await killAndWait(p);
      cg.remove();
      dir.remove();
    }
  }, 90_000);
});

function fmt(s: number | undefined): string {
  return s === undefined ? '-' : `${(s * 1e6).toFixed(0)}µs`;
}
