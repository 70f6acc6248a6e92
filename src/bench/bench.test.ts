/**
 * The benchmark harness's pure parts: statistics, parsers of what perf, bpftool, /proc and the workloads print,
 * the per-section summaries (which decide "met"/"not met"), the Markdown report and the SVG charts.
 */
import { describe, expect, it } from 'vitest';
import { fitLine, fmtChange, median, ratio, spread } from './stats.js';
import { parsePipeUsPerOp, parseTotalSeconds, type Workload } from './workloads.js';
import { parseBpftoolProgs, progDeltas, progIdOfFdinfo } from './bpf-progs.js';
import { parseStatTicks, statusKb, summarize as summarizeCost } from './sections/agent-cost.js';
import { firstNudge, parseVictimLines, summarize as summarizeReaction } from './sections/reaction.js';
import { hookOf, summarize as summarizeBpf } from './sections/bpf-cost.js';
import { summarize as summarizeOverhead, summarizePerSignal } from './sections/overhead.js';
import { choicesOf, judge as judgeLearner, summarize as summarizeLearner, type Incident } from './sections/learner.js';
import {
  appliedActions,
  explainAgent,
  missingBinaries,
  nginxConfig,
  parseRedisBenchmarkCsv,
  parseWrk,
  quotaCpus,
  summarize as summarizeServers,
  tickP99s,
  type ServerRun,
} from './sections/servers.js';
import { fitSlope, heapAfterFullGc, summarize as summarizeSoak, type Sample } from './sections/soak.js';
import { markdownTable, renderSummary } from './report.js';
import { niceTicks, renderSvg, wrap } from './chart.js';
import { selectSections } from './index.js';
import { unitEnvironment } from './peers.js';

describe('stats', () => {
  it('takes medians of finite values only', () => {
    expect(median([3, 1, 2])).toBe(2);
    expect(median([4, 1, 3, 2])).toBe(2.5);
    expect(median([NaN, 5])).toBe(5);
    expect(median([])).toBeNaN();
    expect(spread([3, NaN, 1, 2])).toEqual([1, 3]);
  });

  it('refuses ratios to nothing', () => {
    expect(ratio(3, 2)).toBe(1.5);
    expect(ratio(3, 0)).toBeNaN();
    expect(ratio(NaN, 2)).toBeNaN();
    expect(fmtChange(1.031)).toBe('+3.1%');
    expect(fmtChange(0.9)).toBe('-10.0%');
  });

  it('fits a line exactly through collinear points and reports r²', () => {
    const f = fitLine([10, 100, 1000], [120, 300, 2100]);
    expect(f.slope).toBeCloseTo(2, 10);
    expect(f.intercept).toBeCloseTo(100, 8);
    expect(f.r2).toBeCloseTo(1, 10);
    const g = fitLine([1, 2, 3, 4], [1, 3, 2, 4]);
    expect(g.slope).toBeCloseTo(0.8, 10);
    expect(g.r2).toBeGreaterThan(0);
    expect(g.r2).toBeLessThan(1);
    expect(fitLine([5, 5], [1, 3])).toMatchObject({ slope: 0, intercept: 2 });
  });
});

describe('parsers', () => {
  it('reads perf bench sched pipe and messaging output', () => {
    const pipe = "# Running 'sched/pipe' benchmark:\n# Executed 200000 pipe operations between two processes\n\n     Total time: 1.090 [sec]\n\n       5.451810 usecs/op\n         183425 ops/sec\n";
    expect(parsePipeUsPerOp(pipe)).toBeCloseTo(5.45181, 6);
    expect(parseTotalSeconds(pipe)).toBeCloseTo(1.09, 6);
    expect(() => parsePipeUsPerOp('nothing')).toThrow(/usecs\/op/);
    expect(() => parseTotalSeconds('nothing')).toThrow(/Total time/);
  });

  it('reads bpftool prog show --json and per-program deltas', () => {
    const before = parseBpftoolProgs('[{"id":7,"type":"tracing","name":"a","run_time_ns":100,"run_cnt":2},{"id":8,"type":"tracepoint","name":"b"}]');
    const after = parseBpftoolProgs('[{"id":7,"type":"tracing","name":"a","run_time_ns":1100,"run_cnt":12},{"id":8,"type":"tracepoint","name":"b","run_time_ns":50,"run_cnt":1}]');
    expect(progDeltas(before, after, [7, 8, 9])).toEqual([
      { id: 7, name: 'a', type: 'tracing', runTimeNs: 1000, runCnt: 10 },
      { id: 8, name: 'b', type: 'tracepoint', runTimeNs: 50, runCnt: 1 },
    ]);
  });

  it('finds the program id in an fdinfo text', () => {
    expect(progIdOfFdinfo('pos:\t0\nflags:\t02000002\nprog_type:\t26\nprog_id:\t334\nrun_time_ns:\t5\n')).toBe(334);
    expect(progIdOfFdinfo('pos:\t0\nflags:\t02\nmap_type:\t2\n')).toBeUndefined();
  });

  it('reads utime+stime past a command name with spaces and parentheses', () => {
    const fields = Array.from({ length: 50 }, (_, i) => String(i + 3));
    fields[11] = '40'; // utime (field 14)
    fields[12] = '2'; // stime (field 15)
    expect(parseStatTicks(`123 (node (x) y) ${fields.join(' ')}`)).toBe(42);
    expect(statusKb('Name:\tnode\nVmHWM:\t  90000 kB\nVmRSS:\t   81234 kB\n', 'VmRSS')).toBe(81234);
    expect(statusKb('Name:\tnode\n', 'VmRSS')).toBeNaN();
  });

  it('reads victim report lines and the first applied nudge', () => {
    const lines = parseVictimLines([
      '{"t":0.500,"count":50,"p50_us":2100.0,"p90_us":2200.0,"p99_us":2500.0,"max_us":2600.0}',
      'victim: calibrating',
      '{"t":1.000,"count":50,"p50_us":2100.0,"p90_us":2200.0,"p99_us":9000.0,"max_us":9100.0}',
      '{"t":1.000,"count":100,"p50_us":2100.0,"p90_us":2200.0,"p99_us":9000.0,"max_us":9100.0,"final":true,"work_iters":5}',
    ]);
    expect(lines).toHaveLength(3);
    expect(lines[2]!.final).toBe(true);
    const log = [
      { time: 1000, kind: 'applied', action: 'cpu_weight' },
      { time: 3000, kind: 'refused', action: 'cpu_weight' },
      { time: 4000, kind: 'applied', action: 'other' },
      { time: 5000, kind: 'applied', action: 'cpu_weight' },
    ];
    expect(firstNudge(log, 2000)?.time).toBe(5000);
    expect(firstNudge(log, 6000)).toBeUndefined();
  });

  it('reads wrk --latency output, and refuses a run the server answered with errors', () => {
    // Captured on the project's CI machine kind: wrk 4.1.0 (Debian), nginx 1.22 serving a static file on loopback.
    const ok = [
      'Running 3s test @ http://127.0.0.1:18080/index.html',
      '  1 threads and 2 connections',
      '  Thread Stats   Avg      Stdev     Max   +/- Stdev',
      '    Latency   113.52us  340.17us   5.09ms   96.14%',
      '    Req/Sec    34.68k     5.60k   39.79k    80.65%',
      '  Latency Distribution',
      '     50%   49.00us',
      '     75%   50.00us',
      '     90%   85.00us',
      '     99%    2.05ms',
      '  106863 requests in 3.10s, 76.43MB read',
      'Requests/sec:  34480.08',
      'Transfer/sec:     24.66MB',
      '',
    ].join('\n');
    const r = parseWrk(ok);
    expect(r.p50Us).toBeCloseTo(49, 6);
    expect(r.p75Us).toBeCloseTo(50, 6);
    expect(r.p90Us).toBeCloseTo(85, 6);
    expect(r.p99Us).toBeCloseTo(2050, 6);
    expect(r.rps).toBeCloseTo(34480.08, 6);
    expect(r.requests).toBe(106863);
    // The same client against a path that does not exist: every answer a 404.
    const notFound = [
      'Running 1s test @ http://127.0.0.1:18080/missing',
      '  1 threads and 2 connections',
      '  Thread Stats   Avg      Stdev     Max   +/- Stdev',
      '    Latency    57.05us   66.41us   2.25ms   98.57%',
      '    Req/Sec    34.13k     2.18k   36.91k    81.82%',
      '  Latency Distribution',
      '     50%   51.00us',
      '     75%   60.00us',
      '     90%   66.00us',
      '     99%  153.00us',
      '  37233 requests in 1.10s, 10.94MB read',
      '  Non-2xx or 3xx responses: 37233',
      'Requests/sec:  33843.14',
      'Transfer/sec:      9.94MB',
      '',
    ].join('\n');
    expect(() => parseWrk(notFound)).toThrow(/Non-2xx or 3xx responses: 37233/);
    expect(() => parseWrk(ok.replace(/ {2}Socket.*|\n {2}Latency Distribution[\s\S]*?2\.05ms/, ''))).toThrow(/no latency distribution/);
    expect(() => parseWrk(ok.replace('Requests/sec:', '  Socket errors: connect 0, read 2, write 0, timeout 0\nRequests/sec:'))).toThrow(/Socket errors: connect 0, read 2/);
    expect(parseWrk(ok.replace('    2.05ms', '    1.50s')).p99Us).toBeCloseTo(1_500_000, 6);
  });

  it('reads redis-benchmark --csv output by column name', () => {
    // Captured on the project's CI machine kind: redis-benchmark 7.0.15 (Debian) -c 2 -n 5000 -t set,get --csv.
    const csv = [
      '"test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms","p99_latency_ms","max_latency_ms"',
      '"SET","35971.22","0.042","0.008","0.039","0.063","0.111","1.335"',
      '"GET","32467.53","0.049","0.008","0.047","0.079","0.095","0.207"',
      '',
    ].join('\n');
    const get = parseRedisBenchmarkCsv(csv);
    expect(get.rps).toBeCloseTo(32467.53, 6);
    expect(get.p50Us).toBeCloseTo(47, 6);
    expect(get.p95Us).toBeCloseTo(79, 6);
    expect(get.p99Us).toBeCloseTo(95, 6);
    expect(get.maxUs).toBeCloseTo(207, 6);
    expect(parseRedisBenchmarkCsv(csv, 'SET').p99Us).toBeCloseTo(111, 6);
    expect(() => parseRedisBenchmarkCsv(csv, 'LPUSH')).toThrow(/no "LPUSH" row/);
    expect(() => parseRedisBenchmarkCsv('Could not connect to Redis at 127.0.0.1:1: Connection refused')).toThrow(/redis-benchmark --csv/);
  });

  it("reads the server's run-queue p99 per tick from the agent's debug lines", () => {
    const log = [
      { time: 1000, msg: 'tick', tick: 1, targets: { nginx: 'p99=5100us n=40', neighbour: 'p99=9000us n=900' } },
      { time: 2000, msg: 'tick', tick: 2, targets: { nginx: 'p99=2723us n=1480' } },
      { time: 3000, msg: 'tick', tick: 3, targets: { neighbour: 'p99=9000us n=900' } },
      { time: 3000, msg: 'signals', targets: { nginx: 'p99=1us n=1' } },
      { time: 4000, msg: 'tick', tick: 4, targets: { nginx: 'p99=3187us n=1500' } },
    ];
    expect(tickP99s(log, 'nginx', 1500, 4000)).toEqual([2723, 3187]);
    expect(tickP99s(log, 'redis', 0, 5000)).toEqual([]);
  });

  it('names every missing server binary with its package and the fix', () => {
    expect(missingBinaries(() => true)).toBeUndefined();
    const msg = missingBinaries((f) => !f.includes('redis'))!;
    expect(msg).toContain('/usr/bin/redis-server (package redis-server)');
    expect(msg).toContain('/usr/bin/redis-benchmark (package redis-tools)');
    expect(msg).not.toContain('nginx');
    expect(msg).toMatch(/— fix: scripts\/setup\.sh .*apt-get install redis-server redis-tools$/);
  });

  it("keeps nginx's files in the bench's directory", () => {
    const conf = nginxConfig('/tmp/x', 40123);
    for (const line of ['master_process on;', 'worker_processes 1;', 'daemon off;', 'pid /tmp/x/nginx.pid;', 'error_log /tmp/x/error.log warn;', 'access_log off;', 'listen 127.0.0.1:40123;', 'root /tmp/x/www;']) {
      expect(conf).toContain(line);
    }
    expect(conf.match(/_temp_path \/tmp\/x\//g)).toHaveLength(5);
  });

  it('names the hook of a program from its name, else from its run count', () => {
    expect(hookOf({ name: 'sched_wakeup_ne', runCnt: 3 }, 100)).toBe('sched_wakeup_new');
    expect(hookOf({ name: 'handle_sched_wakeup', runCnt: 60 }, 100)).toBe('sched_wakeup');
    expect(hookOf({ name: 'runqlat_switch_btf', runCnt: 100 }, 100)).toBe('sched_switch');
    expect(hookOf({ name: 'mystery', runCnt: 101 }, 100)).toBe('sched_switch');
    expect(hookOf({ name: 'mystery', runCnt: 0 }, 100)).toBe('idle in this load');
  });
});

describe('section summaries', () => {
  it('bpf-cost: ratios to the floor and per-switch totals decide the goals', () => {
    const w = (round: number, condition: string, programs: [string, number, number][]) => ({
      round,
      condition,
      switches: 1000,
      floor: { runTimeNs: 50_000, runCnt: 1000 },
      programs: programs.map(([name, ns, cnt], i) => ({ id: i + 1, name, type: 'tracing', runTimeNs: ns, runCnt: cnt })),
    });
    const s = summarizeBpf(
      [
        w(1, 'agent-host', [
          ['runqlat_switch_btf', 90_000, 1000],
          ['futex_enter_tp', 40_000, 400],
        ]),
        w(1, 'agent-targets', [['runqlat_switch_btf', 80_000, 1000]]),
        w(1, 'bcc', [
          ['sched_wakeup', 50_000, 500],
          ['sched_switch', 200_000, 1000],
        ]),
        w(1, 'bpftrace', [['sched_switch', 500_000, 1000]]),
      ],
      { rounds: 1, loops: 1 },
    );
    expect(s.data.floorNsPerEvent).toBe(50);
    expect(s.data.perSwitchNs['bcc']).toBe(250);
    expect(s.data.schedNsPerSwitch['bcc']).toBe(250);
    // A program on another hook counts in the agent's total, not in the part comparable with runqlat.
    expect(s.data.perSwitchNs['agent-host']).toBe(130);
    expect(s.data.schedNsPerSwitch['agent-host']).toBe(90);
    expect(s.goals[0]!.met).toBe(true); // 90 ns ≤ 2 × 50 ns
    expect(s.goals[1]!.met).toBe(false); // 90 / 250 > ¼
    expect(s.tables[0]!.rows.length).toBe(1 + 2 + 1 + 2 + 1);
  });

  it('overhead: ratio of medians to "no observer"', () => {
    const wls: Workload[] = ['pipe-pinned', 'pipe', 'messaging'].map((id) => ({ id, label: id, unit: 'us/op', run: async () => 0 }));
    const samples = [1, 2, 3].flatMap((round) =>
      ['none', 'agent', 'bcc', 'bpftrace'].flatMap((condition) =>
        wls.map((w) => ({ round, condition, workload: w.id, value: (condition === 'agent' ? 1.04 : condition === 'none' ? 1 : 1.3) * (5 + round) })),
      ),
    );
    const s = summarizeOverhead(samples, wls, { rounds: 3 });
    expect(s.goals[0]!.met).toBe(true);
    expect(s.goals[0]!.measured).toMatch(/^\+4\.0%/);
  });

  it('overhead per signal: one row per condition, the syscall goal from all default signals', () => {
    const wls: Workload[] = ['syscall-pinned', 'pipe-pinned'].map((id) => ({ id, label: id, unit: 'us/op', run: async () => 0 }));
    const conditions = ['none', 'runqlat', 'futex', 'futex-tracepoint', 'blkio', 'net', 'agent'];
    const samples = [1, 2, 3].flatMap((round) =>
      conditions.flatMap((condition) => wls.map((w) => ({ round, condition, workload: w.id, value: (condition === 'futex-tracepoint' ? 1.4 : condition === 'agent' ? 1.03 : 1) * 0.23 }))),
    );
    const s = summarizePerSignal(samples, wls);
    expect(s.tables[0]!.rows.map((r) => r[0])).toEqual(['no agent', 'runqlat alone', 'futex alone', 'futex alone (attach: tracepoint)', 'blkio alone', 'net alone', 'all default signals']);
    expect(s.tables[0]!.rows[3]![2]).toBe('+40.0%');
    expect(s.goals[0]!.met).toBe(true);
    expect(s.goals[0]!.measured).toMatch(/^\+3\.0%/);
  });

  it('agent-cost: fits µs per tick against targets', () => {
    const runs = [10, 100, 1000].flatMap((n) =>
      ['1s', '100ms'].map((tick) => ({ round: 1, tick, targets: n, seconds: 8, cpuPctStat: 0.5, cpuPctSched: 0.4, perTickUs: 200 + 3 * n, rssMiB: 70, hwmMiB: 80, opensPerTick: 40 })),
    );
    const s = summarizeCost(runs, { ticks: ['1s', '100ms'], targetCounts: [10, 100, 1000], windowS: 8 });
    expect(s.data.fits['1s']!.slope).toBeCloseTo(3, 8);
    expect(s.data.fits['1s']!.intercept).toBeCloseTo(200, 6);
    expect(s.goals.map((g) => g.goal)).toEqual([
      'agent ≤ 1% of one core at 1 s tick with 100 targets',
      'agent RSS ≤ 100 MiB at 1 s tick with 100 targets',
      'agent ≤ 3% of one core at 1 s tick with 1000 targets',
      'agent RSS ≤ 150 MiB at 1 s tick with 1000 targets',
    ]);
    expect(s.goals.map((g) => g.met)).toEqual([true, true, true, true]);
    const heavy = summarizeCost(
      runs.map((r) => (r.targets === 1000 ? { ...r, cpuPctStat: 7, rssMiB: 200 } : r)),
      { ticks: ['1s', '100ms'], targetCounts: [10, 100, 1000], windowS: 8 },
    );
    expect(heavy.goals.map((g) => g.met)).toEqual([true, true, false, false]);
  });

  it('reaction: reaction time and p99 against the isolated run', () => {
    const run = (condition: string, p99: number, reactionMs?: number) => ({
      round: 1,
      condition,
      steadyP50: 2100,
      steadyP99: p99,
      leadP99: 2500,
      runP99: p99,
      intervals: [{ t: 1, p50: 2100, p99 }],
      reactionMs,
      nudges: reactionMs === undefined ? 0 : 1,
      reverts: 0,
      decisions: [],
    });
    const s = summarizeReaction(
      [run('isolated', 2500), run('neighbour', 9000), run('agent', 3100, 2000), run('agent-event', 3000, 2500), run('agent-100ms', 2600, 400), run('agent-idle', 2550, 2100)],
      { steadyFromS: 6, durationS: 12, leadS: 1 },
    );
    expect(s.goals[0]!.met).toBe(false); // 2.5 s > 1 s
    expect(s.goals[1]!.met).toBe(false); // 2.5 s > 300 ms
    expect(s.goals[2]!.met).toBe(true); // 3100 ≤ 1.3 × 2500
    expect(s.tables[0]!.rows.map((r) => r[6])).toEqual(['—', '—', '2.00 s', '2.50 s', '0.40 s', '2.10 s']);
    expect(s.goals[2]!.measured).toContain('1.02× with min_weight 100 (cpu.idle first, 2.10 s to it)');
    const fast = summarizeReaction([run('isolated', 2500), run('agent-event', 3000, 250)], { steadyFromS: 6, durationS: 12, leadS: 1 });
    expect(fast.goals.slice(0, 2).map((g) => g.met)).toEqual([true, true]);
  });

  it('servers: p99 against the isolated run per pair, and what the agent did', () => {
    const run = (pair: 'nginx' | 'redis', condition: 'isolated' | 'neighbour' | 'agent', round: number, p99Us: number, extra: Partial<ServerRun> = {}): ServerRun => ({
      round,
      pair,
      condition,
      p50Us: 45,
      p99Us,
      rps: condition === 'isolated' ? 36000 : 25000,
      requests: 1000,
      clientS: 10,
      serverCpusStart: '0',
      serverCpusEnd: '0',
      ...(condition === 'isolated' ? {} : { neighbourWeightStart: 1024, neighbourWeightEnd: 1024, neighbourQuotaStart: null, neighbourQuotaEnd: null }),
      ...extra,
    });
    const runs: ServerRun[] = [1, 2, 3].flatMap((r) => [
      run('nginx', 'isolated', r, 100 + r),
      run('nginx', 'neighbour', r, 4400),
      // The agent spread the server to both CPUs: nginx's p99 within 1.3× of the isolated run.
      run('nginx', 'agent', r, 125, {
        applied: { cpuset_spread: 1, pressure_backoff: r - 1 },
        reverts: 0,
        reactionMs: 2100,
        serverCpusStart: '0-1',
        serverCpusEnd: '0-1',
        neighbourQuotaStart: r === 1 ? null : 0.5,
        neighbourQuotaEnd: r === 1 ? null : 0.25,
        agentP99s: [4500, 1200, 900],
      }),
      run('redis', 'isolated', r, 100),
      run('redis', 'neighbour', r, 1200),
      // No action: the agent saw run-queue p99 under its threshold and no pile-up.
      run('redis', 'agent', r, 1100, { applied: {}, reverts: 0, agentP99s: [1000, 1100] }),
    ]);
    const s = summarizeServers(runs, { rounds: 3, measureS: 10, settleS: 5 });
    expect(s.goals.map((g) => g.met)).toEqual([true, false]);
    expect(s.goals[0]!.measured).toBe('1.23× (125 vs 102 µs); no agent: 43.14× (4400 µs)');
    expect(s.tables).toHaveLength(2);
    expect(s.tables[0]!.rows.map((r) => r[0])).toEqual(['server alone', 'with neighbour, no agent', 'with neighbour + agent']);
    expect(s.tables[0]!.rows[2]!.slice(1, 4)).toEqual(['45', '125', '1.23×']);
    expect(s.tables[0]!.rows[2]!.slice(7)).toEqual(['0-1 → 0-1', '1024 → 1024', '0.50 CPU → 0.25 CPU', '2.10 s', 'cpuset_spread 1.0, pressure_backoff 1.0', '1200; 3 of 9']);
    expect(s.tables[0]!.rows[1]![9]).toBe('none → none');
    expect(s.tables[1]!.rows[1]![5]).toBe('0.69×');
    expect(s.tables[1]!.rows[2]!.slice(10, 12)).toEqual(['— s (none in 3 of 3 runs)', 'none']);
    const [nginxNote, redisNote] = s.notes.filter((n) => / goal (met|missed) — /.test(n));
    expect(nginxNote).toMatch(/^nginx \+ wrk: goal met — p99 1\.23× isolated with the agent, 43\.14× without; actions applied per run \(median\): cpuset_spread 1\.0, pressure_backoff 1\.0; at the end of the measured run \(median\) the server's CPUs were 0-1, the neighbour's weight 1024 and its CPU quota 0\.25 CPU/);
    expect(nginxNote).toContain('99% of the p99 the neighbour added is gone');
    expect(nginxNote).toContain('could run on CPU 1 too');
    expect(redisNote).toMatch(/^redis-server \+ redis-benchmark: goal missed — p99 11\.00× isolated with the agent, 12\.00× without; the agent applied no action in any run, so the difference between the two is run-to-run variation/);
    expect(redisNote).toContain('1050 µs in the median tick of the measured runs, over the cpu_weight threshold of 4 ms in 0 of 6 ticks');
    expect(s.charts.map((c) => c.kind)).toEqual(['bar', 'bar']);
    expect(s.charts[0]!.refLine?.value).toBeCloseTo(1.3 * 102, 6);
    // The agent acted and the server no longer waited for a CPU, yet the client's p99 stayed high.
    const capped = runs.map((r) => (r.pair === 'nginx' && r.condition === 'agent' ? { ...r, p99Us: 3800, agentP99s: [6, 2] } : r));
    const note = explainAgent('nginx', capped, 3800 / 102, 4400 / 102);
    expect(note).toMatch(/^nginx \+ wrk: goal missed — p99 37\.25× isolated with the agent, 43\.14× without; actions applied per run/);
    expect(note).toContain('14% of the p99 the neighbour added is gone');
    expect(note).toContain("so the p99 that is left is not the server's threads waiting for a CPU");
    expect(explainAgent('redis', runs, 11, 12)).not.toContain('is left');
  });

  it('reads a CPU quota in CPUs from cgroup v1 and v2 files', () => {
    const cg = (files: Record<string, string>) => ({ has: (f: string) => f in files, read: (f: string) => files[f]! });
    expect(quotaCpus(cg({ 'cpu.cfs_quota_us': '-1', 'cpu.cfs_period_us': '100000' }))).toBeNull();
    expect(quotaCpus(cg({ 'cpu.cfs_quota_us': '26000', 'cpu.cfs_period_us': '100000' }))).toBeCloseTo(0.26, 9);
    expect(quotaCpus(cg({ 'cpu.max': 'max 100000' }))).toBeNull();
    expect(quotaCpus(cg({ 'cpu.max': '50000 100000' }))).toBeCloseTo(0.5, 9);
  });

  it('counts applied decisions per action from the agent log', () => {
    const log = [
      { time: 1000, kind: 'applied', action: 'cpu_weight' },
      { time: 3000, kind: 'applied', action: 'cpuset_spread' },
      { time: 4000, kind: 'refused', action: 'cpu_weight' },
      { time: 5000, kind: 'applied', action: 'cpu_weight' },
      { time: 6000, kind: 'reverted', action: 'cpuset_spread' },
    ];
    expect(appliedActions(log)).toEqual({ cpu_weight: 2, cpuset_spread: 1 });
    expect(appliedActions(log, 2000)).toEqual({ cpu_weight: 1, cpuset_spread: 1 });
  });

  it('soak: slopes per hour over the second half decide "levelled off"', () => {
    const churn = { cgroupsCreated: 300, cgroupsRemoved: 300, processesStarted: 900, processesEnded: 900, reloads: 40 };
    // Warm-up climb in the first half, then flat with alternating noise: level.
    const flat: Sample[] = Array.from({ length: 121 }, (_, i) => ({ t: i * 5, rssMiB: i < 60 ? 80 + i * 0.2 : 92 + (i % 2 ? 0.5 : -0.5), anonMiB: 40, fileMiB: 40, fds: 83, heapMiB: i < 3 ? NaN : 30 }));
    const level = summarizeSoak(flat, churn, 600, { durationS: 600 });
    expect(level.data.analysis.rss.slope).toBeLessThan(1);
    expect(level.data.analysis.rssLevel).toBe(true);
    expect(level.data.analysis.fdLevel).toBe(true);
    expect(level.data.analysis.rssMax).toBeCloseTo(92.5, 6);
    expect(level.goals.map((g) => g.met)).toEqual([true, true]);
    expect(level.tables[1]!.rows[0]!.at(-1)).toBe('244');
    // 1 MiB every minute for the whole run: 60 MiB/h, and the budget is crossed.
    const rising: Sample[] = Array.from({ length: 121 }, (_, i) => ({ t: i * 5, rssMiB: 80 + i / 12, anonMiB: 40 + i / 12, fileMiB: 40, fds: 83 + Math.floor(i / 12), heapMiB: 30 + i / 12 }));
    const leak = summarizeSoak(rising, churn, 600, { durationS: 600 });
    expect(leak.data.analysis.rss.slope).toBeCloseTo(60, 6);
    expect(leak.data.analysis.fd.slope).toBeGreaterThan(50);
    expect(leak.goals.map((g) => g.met)).toEqual([true, false]);
    expect(leak.data.analysis.heap.slope).toBeCloseTo(60, 6);
    expect(leak.data.analysis.anon.slope.slope).toBeCloseTo(60, 6);
    expect(leak.data.analysis.file.slope.slope).toBeCloseTo(0, 6);
    expect(leak.tables[0]!.rows.map((r) => r[0])).toContain('  of which anonymous (RssAnon) MiB');
    expect(level.data.analysis.heapStart).toBe(30);
    expect(fitSlope([0, 1, 2], [1, 3, 5])).toEqual({ slope: 2, stderr: 0, n: 3 });
    expect(fitSlope([0, 1], [1, 3]).slope).toBeNaN();
    expect(heapAfterFullGc('[1:0x1]  9 ms: Mark-Compact 40.1 (45.2) -> 35.2 (46.0) MB, 12.1 / 0.0 ms  (average mu = 0.9)')).toBe(35.2);
    expect(heapAfterFullGc('[1:0x1]  5 ms: Scavenge 3.8 (4.0) -> 3.4 (5.0) MB, 4.71 / 0.00 ms')).toBeUndefined();
  });

  it('learner: judges each policy on the uniformly logged incidents only', () => {
    const inc = (i: number, arm: string, reward: number, uniform = true): Incident => ({
      incident: i,
      threads: 4,
      pinned: true,
      arm,
      eligible: ['noop', 'cpu_weight', 'pressure_backoff'],
      features: { 'psi.cpu': 0.3 },
      reward,
      improvement: reward,
      lost: 0,
      verdict: arm === 'noop' ? 'self' : 'kept',
      uniform,
      decisions: [],
    });
    const incidents = [inc(1, 'noop', 0), inc(2, 'cpu_weight', 0.4), inc(3, 'pressure_backoff', -0.2), inc(4, 'cpu_weight', 0.6), inc(5, 'cpu_weight', 9, false)];
    const values = judgeLearner(incidents, 20);
    expect(values.map((v) => v.policy)).toEqual([
      'the rule (cpu_weight when it applies, else nothing)',
      'the learner (fresh, default exploration)',
      'always noop',
      'always pressure_backoff when it applies',
    ]);
    // The rule: both uniform cpu_weight incidents, not the one the model chose.
    expect(values[0]!.matched).toBe(2);
    expect(values[0]!.mean).toBeCloseTo(0.5, 9);
    expect(values[2]!.mean).toBe(0);
    const sim = { rows: [1, 2].map((episode) => ({ scenario: 'a', episode, learner: 1, heuristic: 0.5, regret: 0 })), summary: {} };
    const s = summarizeLearner(incidents.slice(0, 4), values, sim, {});
    expect(s.tables.map((t) => t.rows.length)).toEqual([3, 3, 4, 0, 1]);
    expect(s.goals[0]!.goal).toContain('real logged outcomes');
  });

  it('learner: pairs each acting choice with its outcome by the time it was chosen', () => {
    const est = (arm: string, eligible: boolean) => ({ arm, eligible });
    const log = [
      { time: 1, msg: 'learner choice', arm: 'cpu_weight', acting: true, uniform: true, chosenAt: 100, estimates: [est('noop', true), est('cpu_weight', true), est('pressure_backoff', false)] },
      { time: 2, msg: 'learner choice', arm: 'noop', acting: false, uniform: true, chosenAt: 150, estimates: [] },
      { time: 3, msg: 'learner choice', arm: 'noop', acting: true, uniform: true, chosenAt: 200, estimates: [est('noop', true)] },
      { time: 4, msg: 'learner outcome', arm: 'noop', onPolicy: true, chosenAt: 200 },
      { time: 5, msg: 'learner outcome', arm: 'cpu_weight', onPolicy: false, chosenAt: 100 },
    ];
    expect(choicesOf(log)).toEqual([
      { arm: 'cpu_weight', eligible: ['noop', 'cpu_weight'], uniform: true, outcome: false },
      { arm: 'noop', eligible: ['noop'], uniform: true, outcome: true },
    ]);
  });
});

describe('report', () => {
  it('escapes pipes in Markdown tables', () => {
    expect(markdownTable({ columns: ['a', 'b'], rows: [['x|y', 1]] })).toBe('| a | b |\n| --- | --- |\n| x\\|y | 1 |');
  });

  it('lists every goal and every section', () => {
    const md = renderSummary({
      command: 'ebpf-tuner bench --quick --out x',
      quick: true,
      startedAt: '2026-01-01T00:00:00Z',
      seconds: 75,
      machine: { kernel: 'Linux 6.18', cpuModel: 'cpu', vcpus: 2, memoryGiB: 24, numaNodes: 1, node: 'v20', tools: {} },
      sections: [
        { id: 'overhead', title: 'Overhead', status: 'ok', params: {}, tables: [{ title: 't', columns: ['a'], rows: [[1]] }], goals: [{ goal: 'g', measured: 'm', met: false }], notes: ['n'], charts: [], data: null, seconds: 3 },
        { id: 'learner', title: 'Learner', status: 'failed', reason: 'absent', params: {}, tables: [], goals: [], notes: [], charts: [], data: null, seconds: 0 },
      ],
      charts: { overhead: 'overhead.png' },
      warnings: [],
    });
    expect(md).toContain('Command: `ebpf-tuner bench --quick --out x`');
    expect(md).toContain('| Overhead | g | m | not met |');
    expect(md).toContain('## 2. Overhead');
    expect(md).toContain('## 6. Learner');
    expect(md).toContain('![Overhead](overhead.png)');
    expect(md).toContain('took 1 min 15 s');
  });

  it('selects sections by id or number, and refuses unknown ones', () => {
    expect(selectSections(['2', 'reaction']).map((s) => s.id)).toEqual(['overhead', 'reaction']);
    expect(selectSections(['bpf-cost,agent-cost']).map((s) => s.id)).toEqual(['bpf-cost', 'agent-cost']);
    expect(selectSections().length).toBe(7);
    expect(selectSections(['5', 'reaction']).map((s) => s.id)).toEqual(['reaction', 'servers']);
    expect(selectSections(['7']).map((s) => s.id)).toEqual(['soak']);
    expect(() => selectSections(['nope'])).toThrow(/no such section/);
  });
});

describe('charts', () => {
  it('draws every bar and point, escaped, with round ticks', () => {
    const { svg, height } = renderSvg(
      [
        { kind: 'bar', title: 'a <b>', yLabel: 'ns', series: ['x', 'y'], groups: [{ label: 'g1', values: [1, 2] }, { label: 'g2', values: [3, null] }], refLine: { value: 2, label: 'goal' } },
        { kind: 'line', title: 'l', xLabel: 'x', yLabel: 'y', logY: true, series: [{ label: 's', points: [[0, 10], [1, 1000]] }], vlines: [{ x: 0.5, label: 'v' }] },
      ],
      'T',
    );
    expect(svg.startsWith('<svg')).toBe(true);
    expect(svg).toContain('a &lt;b&gt;');
    expect(svg.match(/<rect x=/g)?.length).toBe(3 + 2 + 1); // 3 bars, 2 bar-legend and 1 line-legend swatches
    expect(svg.match(/<circle /g)?.length).toBe(2);
    expect(height).toBe(36 + 2 * 380);
    expect(niceTicks(0, 97)).toEqual([0, 20, 40, 60, 80, 100]);
    expect(wrap('ebpf-tuner (targets): runqlat_switch_btf', 12).every((l) => l.length <= 12)).toBe(true);
  });
});

describe('unitEnvironment', () => {
  it('reads Environment= lines as systemd does: words, quoted ones with spaces, a later value winning', () => {
    const text = '[Service]\nEnvironment="NODE_OPTIONS=--a=1 --b" X=2\n# Environment=IGNORED=1\nEnvironment=X=3\nExecStart=/bin/true\n';
    expect(unitEnvironment(text)).toEqual({ NODE_OPTIONS: '--a=1 --b', X: '3' });
  });
});
