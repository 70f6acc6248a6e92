/**
 * The dashboard against the real agent on the real kernel, in headless Chromium: ten cgroup targets the test creates
 * (a victim and a CPU hog sharing CPU 1, eight light services), a 100 ms tick so the default history of 600 ticks
 * fills in a minute. The overview's rows are checked against `ebpf-tuner status` and the API, one target's details
 * against the cgroup's own files, a decision's text against `ebpf-tuner explain ID`; the bytes the browser fetches
 * to show the overview are measured and printed. With UPDATE_SCREENSHOTS=1 it writes docs/dashboard/*.png.
 */
import { existsSync, mkdirSync, mkdtempSync, realpathSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { afterAll, describe, expect, it } from 'vitest';
import { projectRoot, toolPath } from '../../src/bpf/paths.js';
import { cleanupAll, killAndWait, makeTestCgroup, spawnInCgroup, type SpawnedProcess, type TestCgroup } from '../../src/testing/cgroups.js';
import type { Overview } from '../../src/http/overview.js';
import type { TargetDetails } from '../../src/http/details.js';
import { runCli, spawnHogs, spawnVictim, startAgent, tempDir } from './helpers.js';

const CHROMIUM = '/usr/bin/chromium';
const SHOTS = join(projectRoot, 'docs', 'dashboard');
const UPDATE = process.env.UPDATE_SCREENSHOTS === '1';
const HISTORY = 600;

const procs: SpawnedProcess[] = [];
let base: TestCgroup | undefined;
let state: ReturnType<typeof tempDir> | undefined;
let context: BrowserContext | undefined;
let profile: string | undefined;

afterAll(async () => {
  await context?.close();
  if (profile) rmSync(profile, { recursive: true, force: true });
  for (const p of procs.splice(0)) await killAndWait(p);
  base?.remove();
  state?.remove();
  await cleanupAll();
});

function realpathOrSame(p: string): string {
  try {
    return realpathSync(p);
  } catch {
    return p;
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function getJson<T>(url: string): Promise<T> {
  const r = await fetch(url);
  if (!r.ok) throw new Error(`${url}: HTTP ${r.status}`);
  return (await r.json()) as T;
}

describe('dashboard on the real agent', () => {
  it('shows ten real targets in an overview under 300 KB, one target and one decision as the CLI does', async () => {
    expect(existsSync(CHROMIUM), `${CHROMIUM} is missing; install it with apt-get install -y chromium`).toBe(true);
    base = makeTestCgroup('cpu');
    state = tempDir();
    const names = ['web', 'batch', ...Array.from({ length: 8 }, (_, k) => `svc-${k + 1}`)];
    const cgs = new Map(names.map((n) => [n, base!.child(n)]));
    // The victim and the hog share CPU 1, so the noisy-neighbor rule acts; the others wake up now and then.
    procs.push(await spawnVictim(cgs.get('web')!.path));
    procs.push(await spawnHogs(cgs.get('batch')!.path));
    for (const n of names.slice(2)) {
      procs.push(await spawnInCgroup(cgs.get(n)!.path, toolPath('victim'), ['--period-us', '50000', '--work-us', '200', '--quiet']));
    }
    const config = state.file(
      'config.yaml',
      `tick: 100ms
policy:
  noisy_neighbor: {p99_threshold_us: 3000, trigger_ticks: 3, calm_ticks: 100000}
  pressure_backoff: {enabled: false}
  cpuset_spread: {enabled: false}
  numa_rebalance: {enabled: false}
  io_prefetch: {enabled: false}
targets:
${names.map((n) => `  - {name: ${n}, cgroup: ${cgs.get(n)!.path}, role: ${n === 'batch' ? 'noisy' : 'protect'}}`).join('\n')}
`,
    );
    const agent = startAgent(['--config', config, '--state-dir', state.path, '--listen', '127.0.0.1:0']);
    procs.push(agent);
    const url = String((await agent.waitFor((l) => l.msg === 'http listening', 30_000)).url);

    // Fill the default history (600 ticks of 100 ms), with a change made on the way.
    await agent.waitFor((l) => l.kind === 'applied' && l.action === 'cpu_weight', 60_000);
    for (let k = 0; k < 120; k++) {
      const o = await getJson<Overview>(`${url}/api/overview`);
      if (o.spark.points >= HISTORY) break;
      await sleep(1000);
    }
    const api = await getJson<Overview>(`${url}/api/overview`);
    expect(api.spark.points).toBe(HISTORY);
    expect(api.targets.map((t) => t.name)).toEqual(names);

    profile = mkdtempSync(join(tmpdir(), 'ebpf-tuner-chromium-'));
    context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      viewport: { width: 1280, height: 860 },
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
    const page: Page = context.pages()[0] ?? (await context.newPage());
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(String(e)));
    page.on('console', (m) => {
      if (m.type() === 'error') errors.push(m.text());
    });
    const ready = (view: string) => page.waitForSelector(`body[data-view="${view}"][data-ready="true"]`, { timeout: 20_000 });

    // The initial load: every response the page needs to show the overview (the event stream excepted: it never ends;
    // its first bytes are a few dozen).
    const loaded: { url: string; bytes: number }[] = [];
    const onDone = async (req: import('playwright-core').Request): Promise<void> => {
      const s = await req.sizes();
      loaded.push({ url: req.url(), bytes: s.responseBodySize + s.responseHeadersSize });
    };
    page.on('requestfinished', (r) => void onDone(r));
    await page.goto(url);
    await ready('overview');
    await sleep(300);
    page.removeAllListeners('requestfinished');
    const initial = loaded.filter((l) => !l.url.includes('/api/stream'));
    const bytes = initial.reduce((a, l) => a + l.bytes, 0);
    const full = Buffer.byteLength(await (await fetch(`${url}/api/signals`)).text());
    console.log(
      `dashboard initial load, ${names.length} targets, ${HISTORY} ticks kept: ${bytes} bytes in ${initial.length} responses ` +
        `(${initial.map((l) => `${new URL(l.url).pathname}${new URL(l.url).search} ${l.bytes}`).join(', ')}); ` +
        `the whole /api/signals the previous page loaded: ${full} bytes`,
    );
    expect(bytes).toBeLessThan(300 * 1024);
    expect(initial.some((l) => l.url.includes('uPlot'))).toBe(false);

    // The rows match the API and the CLI's status.
    const rows = page.locator('#overview tbody tr');
    expect(await rows.evaluateAll((els) => els.map((e) => (e as HTMLElement).dataset.target))).toEqual(names);
    for (const t of api.targets) {
      expect(await page.locator(`#overview tr[data-target="${t.name}"] .badge`).textContent()).toBe(t.role);
    }
    const st = runCli(['status', '--json', '--state-dir', state.path]);
    expect(st.code, st.stderr).toBe(0);
    const status = JSON.parse(st.stdout) as {
      running: boolean;
      changes: { target: string; action: string; original: string; value: string }[];
      lastDecision?: { id: string; target: string };
    };
    expect(status.running).toBe(true);
    expect(status.changes.length).toBeGreaterThan(0);
    for (const c of status.changes) {
      const knobs = await page.locator(`#overview tr[data-target="${c.target}"] .knob-line`).allTextContents();
      expect(knobs, c.target).toContain(`${c.action} ${c.original} → ${c.value}`);
    }
    for (const n of names) {
      const changed = status.changes.filter((c) => c.target === n).length;
      expect(await page.locator(`#overview tr[data-target="${n}"] .knob-line`).count(), n).toBe(changed);
    }
    // Every target that ran has a p99 and an on-CPU share (the hog's four threads share one CPU, so each waits).
    for (const n of names) {
      expect(await page.locator(`#overview tr[data-target="${n}"] .p99-now`).textContent(), n).toMatch(/^\d+(\.\d+)? (µs|ms)$/);
      expect(await page.locator(`#overview tr[data-target="${n}"] .oncpu`).textContent(), n).toMatch(/^\d+(\.\d)?%$/);
    }
    if (UPDATE) {
      mkdirSync(SHOTS, { recursive: true });
      await page.screenshot({ path: join(SHOTS, 'overview-light.png') });
    }

    // One target: the hog. A part this host cannot give it is a gap with the agent's reason, checked against the
    // cgroup file system: the test made only a cpu cgroup, and a host that mounts memory apart has no twin there.
    await page.click('#overview tr[data-target="batch"] td.name a');
    await ready('target');
    const details = await getJson<TargetDetails>(`${url}/api/signals?target=batch`);
    expect(await page.locator('.chart[data-chart="runq"]').getAttribute('data-empty')).toBe('false');
    expect(Number(await page.locator('.chart[data-chart="runq"]').getAttribute('data-points'))).toBeGreaterThanOrEqual(HISTORY);
    const rel = cgs.get('batch')!.path.slice(base.root.length);
    const memoryTwin = `/sys/fs/cgroup/memory${rel}`;
    const memoryGap = details.charts.find((c) => c.id === 'memory')!.gaps.at(-1)?.reason;
    if (!existsSync(memoryTwin) && realpathOrSame('/sys/fs/cgroup/memory') !== realpathOrSame(base.root)) {
      expect(memoryGap).toMatch(/^memory: /);
      expect(details.charts.find((c) => c.id === 'memory')!.series.every((s) => s.values.every((v) => v === null))).toBe(true);
      expect(await page.locator('.chart[data-chart="memory"] .gap-note').last().textContent()).toContain(memoryGap);
    } else {
      expect(memoryGap).toBeUndefined();
    }
    expect(await page.locator('#target-charts .chart h3').allTextContents()).toEqual(expect.arrayContaining(['Run-queue latency · time']));
    if (UPDATE) await page.screenshot({ path: join(SHOTS, 'target-light.png') });

    // One decision: the text is what `ebpf-tuner explain ID` prints.
    await page.goto(`${url}/#/`);
    await ready('overview');
    await page.click('#overview tr[data-target="batch"] .last-decision a');
    await ready('decision');
    // The decision the link led to (a newer one may have replaced the link's text since).
    const id = String(await page.locator('#decision-id').textContent());
    expect(id).toMatch(/\S/);
    const shown = await page.locator('#explain').textContent();
    const cli = runCli(['explain', id, '--state-dir', state.path]);
    expect(cli.code, cli.stderr).toBe(0);
    expect(shown).toBe(cli.stdout.trimEnd());
    if (UPDATE) await page.screenshot({ path: join(SHOTS, 'decision-light.png') });

    if (UPDATE) {
      await page.emulateMedia({ colorScheme: 'dark' });
      await page.goto(`${url}/#/`);
      await ready('overview');
      await page.screenshot({ path: join(SHOTS, 'overview-dark.png') });
      await page.goto(`${url}/#/target/web`);
      await ready('target');
      await page.screenshot({ path: join(SHOTS, 'target-dark.png') });
      await page.goto(`${url}/#/decision/${encodeURIComponent(id)}`);
      await ready('decision');
      await page.screenshot({ path: join(SHOTS, 'decision-dark.png') });
      await page.emulateMedia({ colorScheme: 'light' });
      await page.setViewportSize({ width: 390, height: 844 });
      await page.goto(`${url}/#/`);
      await ready('overview');
      expect(await page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth + 1)).toBe(true);
      await page.screenshot({ path: join(SHOTS, 'overview-phone.png') });
      await page.goto(`${url}/#/target/web`);
      await ready('target');
      await page.screenshot({ path: join(SHOTS, 'target-phone.png') });
      for (const f of ['overview', 'target', 'decision'].flatMap((v) => [`${v}-light`, `${v}-dark`]).concat(['overview-phone', 'target-phone'])) {
        const size = statSync(join(SHOTS, `${f}.png`)).size;
        console.log(`docs/dashboard/${f}.png: ${size} bytes`);
      }
    }
    expect(errors).toEqual([]);

    agent.child.kill('SIGTERM');
    expect((await agent.exited).code).toBe(0);
  }, 240_000);
});
