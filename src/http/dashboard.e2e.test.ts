/**
 * The dashboard in a real browser: Debian's Chromium driven by playwright-core against the real server, fed by a
 * fake control and synthetic bus traffic. Needs /usr/bin/chromium (Debian package `chromium`); without it the test
 * fails and says so.
 */
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { silentLogger } from '../core/log.js';
import { FakeControl, publishDecision, publishTick, syntheticSnapshot } from './fake-control.js';
import { startHttpServer, type HttpServerHandle } from './server.js';
import type { DecisionEvent } from './types.js';

const CHROMIUM = '/usr/bin/chromium';
const TOKEN = 'e2e-token-0123456789abcdef';
const RESULTS = fileURLToPath(new URL('../../test-results/', import.meta.url));

function decision(over: Partial<DecisionEvent> & Pick<DecisionEvent, 'id' | 'time'>): DecisionEvent {
  return {
    kind: 'applied',
    action: 'cpu-weight',
    target: 'batch',
    rule: 'noisy-neighbor',
    reason: 'web run-queue p99 above 1 ms for 3 ticks',
    from: '100',
    to: '80',
    evidence: { p99Us: 1450 },
    ...over,
  };
}

describe('dashboard', () => {
  let server: HttpServerHandle;
  let control: FakeControl;
  let context: BrowserContext;
  let page: Page;
  let profile: string;
  const errors: string[] = [];
  let i = 0;
  const now = Date.now();
  const tick = (time: number): void => {
    publishTick(syntheticSnapshot(time, i++));
  };
  const liveTick = (): void => {
    control.runPrograms(40_000, 180 + (i % 7) * 6);
    tick(Date.now());
  };

  beforeAll(async () => {
    if (!existsSync(CHROMIUM)) {
      throw new Error(
        `run the dashboard browser test: ${CHROMIUM} is missing; install it with \`apt-get install -y chromium\``,
      );
    }
    control = new FakeControl();
    server = await startHttpServer({ listen: '127.0.0.1:0', token: TOKEN, control, log: silentLogger });
    // Two minutes of history, with the agent's earlier decisions inside it.
    for (let t = now - 120_000; t < now; t += 1000) tick(t);
    publishDecision(
      decision({ id: 'h1', time: now - 85_000, kind: 'dry-run', reason: 'web p99 1.2 ms > 1 ms (dry run)' }),
    );
    publishDecision(decision({ id: 'h2', time: now - 60_000, reason: 'web p99 above 1 ms for 3 ticks' }));
    publishDecision(
      decision({
        id: 'h3',
        time: now - 40_000,
        kind: 'refused',
        reason: 'cooldown: batch changed 20 s ago',
        from: undefined,
        to: undefined,
      }),
    );
    control.write({
      knobId: 'batch/cpu.weight',
      target: 'batch',
      action: 'cpu-weight',
      path: '/sys/fs/cgroup/tuner.slice/batch/cpu.weight',
      original: '100',
      value: '80',
      time: now - 60_000,
    });

    mkdirSync(RESULTS, { recursive: true });
    profile = mkdtempSync(join(tmpdir(), 'ebpf-tuner-chromium-'));
    context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      viewport: { width: 1440, height: 900 },
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
    });
    page = context.pages()[0] ?? (await context.newPage());
    page.on('console', (m) => {
      if (m.type() === 'error') errors.push(m.text());
    });
    page.on('pageerror', (e) => errors.push(String(e)));
  }, 60_000);

  afterAll(async () => {
    await context?.close();
    await server?.close();
    if (profile) rmSync(profile, { recursive: true, force: true });
  });

  it('draws history, takes live ticks and decisions, and reverts a change with the token', async () => {
    await page.goto(server.url);
    await page.waitForSelector('body[data-ready="true"]', { timeout: 15_000 });

    // One card per target, each with uPlot charts holding the two minutes of history.
    expect(
      await page.locator('section.target').evaluateAll((els) => els.map((e) => (e as HTMLElement).dataset.target)),
    ).toEqual(['web', 'batch', 'host']);
    const webCharts = page.locator('section.target[data-target="web"] .chart');
    expect(await webCharts.count()).toBeGreaterThanOrEqual(3);
    expect(await page.locator('section.target .chart canvas').count()).toBeGreaterThanOrEqual(7);
    const titles = await webCharts.locator('h3').allTextContents();
    expect(titles).toEqual(expect.arrayContaining(['runqlat · latency', 'runqlat · time', 'oncpu · ratio']));
    const points = async (): Promise<number[]> =>
      page
        .locator('section.target .chart')
        .evaluateAll((els) => els.map((e) => Number((e as HTMLElement).dataset.points)));
    expect(Math.min(...(await points()))).toBe(120);
    expect(await page.locator('section.target[data-target="web"] .now').textContent()).toMatch(/p99 \d/);

    // Live ticks arrive over the stream, spaced so the overhead sampler sees real time pass.
    for (let k = 0; k < 4; k++) {
      liveTick();
      await new Promise((r) => setTimeout(r, 1000));
    }
    await expect.poll(async () => Math.min(...(await points())), { timeout: 5000 }).toBe(124);
    await expect.poll(() => page.locator('#overhead-charts .chart canvas').count(), { timeout: 5000 }).toBe(3);
    expect(await page.locator('#kpi-rss').textContent()).toMatch(/MiB/);

    // History decisions are listed; a new one shows up live.
    expect(await page.locator('#decisions tbody tr').count()).toBe(3);
    publishDecision(
      decision({
        id: 'live1',
        time: Date.now(),
        reason: 'web p99 2.1 ms above 1 ms for 3 ticks',
        from: '80',
        to: '64',
      }),
    );
    await expect.poll(() => page.locator('#decisions tbody tr').count(), { timeout: 5000 }).toBe(4);
    const first = page.locator('#decisions tbody tr').first();
    expect(await first.textContent()).toContain('web p99 2.1 ms above 1 ms for 3 ticks');
    expect(await first.locator('.kind').textContent()).toBe('applied');
    await new Promise((r) => setTimeout(r, 1000));
    liveTick();
    await expect.poll(() => page.locator('#kpi-bpf-ns').textContent(), { timeout: 5000 }).toMatch(/ns/);

    // The change in effect can be reverted; the page asks for the token first.
    const row = page.locator('#changes tbody tr[data-state="active"]');
    expect(await row.count()).toBe(1);
    await page.screenshot({ path: join(RESULTS, 'dashboard.png'), fullPage: true });
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
    await page.evaluate(() => window.scrollTo(0, 0));
    await new Promise((r) => setTimeout(r, 200));
    await page.screenshot({ path: join(RESULTS, 'dashboard-dark.png'), fullPage: true });

    // The one failed request the browser logs is the deliberate wrong token.
    expect(errors.filter((e) => !/status of 401/.test(e))).toEqual([]);
  }, 60_000);
});
