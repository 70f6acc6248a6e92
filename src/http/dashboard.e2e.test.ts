/**
 * The dashboard in a real browser: Debian's Chromium driven by playwright-core against the real server, fed by a
 * fake control and synthetic bus traffic. The overview with 2, 1 and 20 targets, one target's details, one decision,
 * light and dark, desktop and phone width. Screenshots go to test-results/. Needs /usr/bin/chromium (Debian package
 * `chromium`); without it the test fails and says so.
 */
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { silentLogger } from '../core/log.js';
import { FakeControl, publishDecision, publishTick, syntheticDecision, syntheticFleet, syntheticSnapshot } from './fake-control.js';
import { startHttpServer, type HttpServerHandle } from './server.js';
import type { DecisionEvent } from '../core/events.js';
import type { TargetInfo } from './types.js';

const CHROMIUM = '/usr/bin/chromium';
const TOKEN = 'e2e-token-0123456789abcdef';
const RESULTS = fileURLToPath(new URL('../../test-results/', import.meta.url));

function decision(over: Partial<DecisionEvent> & Pick<DecisionEvent, 'id' | 'time'>): DecisionEvent {
  return syntheticDecision({ reason: 'web run-queue p99 above 1 ms for 3 ticks', evidence: { p99Us: 1450 }, ...over });
}

let context: BrowserContext;
let page: Page;
let profile: string;
const errors: string[] = [];

beforeAll(async () => {
  if (!existsSync(CHROMIUM)) {
    throw new Error(`run the dashboard browser test: ${CHROMIUM} is missing; install it with \`apt-get install -y chromium\``);
  }
  mkdirSync(RESULTS, { recursive: true });
  profile = mkdtempSync(join(tmpdir(), 'ebpf-tuner-chromium-'));
  context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    viewport: { width: 1440, height: 900 },
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  page = context.pages()[0] ?? (await context.newPage());
  page.on('console', (m) => {
    if (m.type() === 'error') errors.push(m.text());
  });
  page.on('pageerror', (e) => errors.push(String(e)));
}, 60_000);

afterAll(async () => {
  await context?.close();
  if (profile) rmSync(profile, { recursive: true, force: true });
});

async function ready(view: string): Promise<void> {
  await page.waitForSelector(`body[data-view="${view}"][data-ready="true"]`, { timeout: 15_000 });
}

/** True when nothing on the page is wider than the viewport (no sideways scrolling on a phone). */
async function fitsWidth(): Promise<boolean> {
  return page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth + 1);
}

describe('dashboard with two targets', () => {
  let server: HttpServerHandle;
  let control: FakeControl;
  let i = 0;
  const now = Date.now();
  const liveTick = (): void => {
    control.runPrograms(40_000, 180 + (i % 7) * 6);
    publishTick(syntheticSnapshot(Date.now(), i++));
  };

  beforeAll(async () => {
    control = new FakeControl();
    server = await startHttpServer({ listen: '127.0.0.1:0', token: TOKEN, control, log: silentLogger });
    for (let t = now - 120_000; t < now; t += 1000) publishTick(syntheticSnapshot(t, i++));
    publishDecision(decision({ id: 'h1', time: now - 85_000, kind: 'dry-run', reason: 'web p99 1.2 ms > 1 ms (dry run)' }));
    publishDecision(decision({ id: 'h2', time: now - 60_000, reason: 'web p99 above 1 ms for 3 ticks' }));
    publishDecision(decision({ id: 'h3', time: now - 40_000, kind: 'refused', reason: 'cooldown: batch changed 20 s ago', from: undefined, to: undefined }));
    control.write({ knobId: 'batch/cpu.weight', target: 'batch', action: 'cpu-weight', path: '/sys/fs/cgroup/tuner.slice/batch/cpu.weight', original: '100', value: '80', time: now - 60_000 });
  });

  afterAll(async () => {
    // Leave the page first: its event stream would reconnect to the closed server, and the browser logs the refused
    // connection as an error into the next test's list.
    await page.goto('about:blank');
    await server?.close();
  });

  it('starts with one row per target, follows the stream, opens a target and a decision, and reverts with the token', async () => {
    await page.setViewportSize({ width: 1440, height: 900 });
    await page.emulateMedia({ colorScheme: 'light' });
    await page.goto(server.url);
    await ready('overview');

    const rows = page.locator('#overview tbody tr');
    expect(await rows.evaluateAll((els) => els.map((e) => (e as HTMLElement).dataset.target))).toEqual(['web', 'batch']);
    const batch = page.locator('#overview tr[data-target="batch"]');
    expect(await batch.locator('.badge').textContent()).toBe('noisy');
    expect(await batch.locator('.knob-line').textContent()).toBe('cpu-weight 100 → 80');
    expect(await batch.locator('.last-decision a').textContent()).toBe('h3');
    expect(await page.locator('#overview tr[data-target="web"] .p99-now').textContent()).toMatch(/^\d+(\.\d+)? (µs|ms)$/);
    expect(await page.locator('#overview tr[data-target="web"] svg.spark path').count()).toBe(1);
    // No uPlot, no charts: the overview draws sparklines itself.
    expect(await page.locator('script[src*="uPlot"]').count()).toBe(0);
    // Host pressure once, not per target.
    expect(await page.locator('#host-pressure .pressure-item').count()).toBe(3);
    expect(await page.locator('#decisions tbody tr').count()).toBe(3);

    for (let k = 0; k < 3; k++) {
      liveTick();
      await new Promise((r) => setTimeout(r, 1000));
    }
    await expect.poll(() => page.locator('#kpi-rss').textContent(), { timeout: 5000 }).toMatch(/MiB/);
    publishDecision(decision({ id: 'live1', time: Date.now(), target: 'web', reason: 'web p99 2.1 ms above 1 ms for 3 ticks', from: '80', to: '64' }));
    await expect.poll(() => page.locator('#overview tr[data-target="web"] .last-decision a').textContent(), { timeout: 5000 }).toBe('live1');
    await page.screenshot({ path: join(RESULTS, 'dashboard-overview.png'), fullPage: true });

    // Details on demand: human titles with units, and the history.
    await page.click('#overview tr[data-target="web"] td.name a');
    await ready('target');
    const titles = await page.locator('#target-charts .chart h3').allTextContents();
    expect(titles).toEqual(expect.arrayContaining(['Run-queue latency · time', 'On-CPU share · % of time']));
    expect(titles.every((t) => !/[a-z][A-Z]|\./.test(t.split(' · ')[0]!))).toBe(true);
    await expect
      .poll(async () => Number(await page.locator('.chart[data-chart="runq"]').getAttribute('data-points')), { timeout: 5000 })
      .toBeGreaterThanOrEqual(123);
    const n0 = Number(await page.locator('.chart[data-chart="runq"]').getAttribute('data-points'));
    liveTick();
    await expect
      .poll(async () => Number(await page.locator('.chart[data-chart="runq"]').getAttribute('data-points')), { timeout: 5000 })
      .toBe(n0 + 1);
    // This fake reports no cgroup statistics: said once, not drawn as charts of zeros.
    expect(await page.locator('.chart[data-chart="memory"]').count()).toBe(0);
    expect(await page.locator('#target-absent').textContent()).toMatch(/Not reported for this target.*Memory/);
    await page.screenshot({ path: join(RESULTS, 'dashboard-target.png'), fullPage: true });

    // A decision shows what `explain` prints.
    await page.goto(`${server.url}/#/decision/h2`);
    await ready('decision');
    const text = await page.locator('#explain').textContent();
    expect(text).toMatch(/^h2 at \d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ: applied — cpu-weight on batch, by noisy-neighbor\nwhy: web p99 above 1 ms for 3 ticks\nchange: 100 → 80/);
    expect(text).toContain('p99Us = 1450');
    await page.screenshot({ path: join(RESULTS, 'dashboard-decision.png'), fullPage: true });

    // The change in effect can be reverted; the page asks for the token first.
    await page.goto(`${server.url}/#/`);
    await ready('overview');
    const row = page.locator('#changes tbody tr[data-state="active"]');
    expect(await row.count()).toBe(1);
    await row.getByRole('button', { name: 'Revert' }).click();
    await page.locator('#token-dialog[open]').waitFor();
    await page.fill('#token-input', 'not-the-token-at-all');
    await page.click('#token-submit');
    await expect.poll(() => page.locator('#token-error').textContent()).toMatch(/not accepted/);
    expect(control.knobs.get('batch/cpu.weight')?.state).toBe('active');
    await page.fill('#token-input', TOKEN);
    await page.click('#token-submit');
    await expect.poll(() => control.knobs.get('batch/cpu.weight')?.state).toBe('restored');
    await page.locator('#changes tbody tr[data-state="restored"]').waitFor({ timeout: 5000 });

    await page.emulateMedia({ colorScheme: 'dark' });
    await new Promise((r) => setTimeout(r, 200));
    await page.screenshot({ path: join(RESULTS, 'dashboard-overview-dark.png'), fullPage: true });
    await page.emulateMedia({ colorScheme: 'light' });

    // The one failed request the browser logs is the deliberate wrong token.
    expect(errors.filter((e) => !/status of 401/.test(e))).toEqual([]);
  }, 60_000);
});

describe.each([
  { n: 1, width: 1440 },
  { n: 20, width: 1440 },
  { n: 20, width: 390 },
])('dashboard with $n target(s) at $width px', ({ n, width }) => {
  let server: HttpServerHandle;
  const targets: TargetInfo[] = Array.from({ length: n }, (_, k) => ({ name: `svc-${String(k + 1).padStart(2, '0')}`, role: k % 3 === 2 ? 'noisy' : 'protect' }));

  beforeAll(async () => {
    const control = new FakeControl(targets);
    server = await startHttpServer({ listen: '127.0.0.1:0', control, log: silentLogger });
    const now = Date.now();
    let i = 0;
    for (let t = now - 300_000; t < now; t += 1000) publishTick(syntheticFleet(t, i++, targets));
    publishDecision(decision({ id: 'd-1', time: now - 30_000, target: targets[0]!.name, kind: 'dry-run' }));
  });

  afterAll(async () => {
    // Leave the page first: its event stream would reconnect to the closed server, and the browser logs the refused
    // connection as an error into the next test's list.
    await page.goto('about:blank');
    await server?.close();
  });

  it('shows every target in one overview row and one target in light and dark', async () => {
    await page.setViewportSize({ width, height: width < 600 ? 844 : 900 });
    for (const scheme of ['light', 'dark'] as const) {
      await page.emulateMedia({ colorScheme: scheme });
      await page.goto(`${server.url}/#/`);
      await ready('overview');
      expect(await page.locator('#overview tbody tr').count()).toBe(n);
      expect(await fitsWidth()).toBe(true);
      await page.screenshot({ path: join(RESULTS, `dashboard-${n}-targets-${width}px-${scheme}.png`), fullPage: true });
    }
    await page.goto(`${server.url}/#/target/${targets[0]!.name}`);
    await ready('target');
    // Memory is unavailable on this (fake v1) host: a gap with the reason, not a line at 0.
    expect(await page.locator('.chart[data-chart="memory"]').getAttribute('data-empty')).toBe('true');
    expect(await page.locator('.chart[data-chart="memory"] .gap-note').textContent()).toMatch(/memory: the target has no cgroup in the memory hierarchy/);
    expect(await page.locator('.chart[data-chart="pressure"] .gap-note').textContent()).toMatch(/cgroup v1 keeps no per-cgroup pressure/);
    expect(await page.locator('#target-facts dt').allTextContents()).toEqual(expect.arrayContaining(['CPUs allowed', 'busiest CPU']));
    expect(await page.locator('.chart[data-chart="cpu"]').getAttribute('data-empty')).toBe('false');
    expect(await fitsWidth()).toBe(true);
    await page.screenshot({ path: join(RESULTS, `dashboard-${n}-targets-${width}px-target.png`), fullPage: true });
    expect(errors.filter((e) => !/status of 401/.test(e))).toEqual([]);
  }, 60_000);
});
