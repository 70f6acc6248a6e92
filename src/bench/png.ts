/**
 * SVG → PNG without a network: one headless Chromium (playwright-core driving the system /usr/bin/chromium, with a
 * fresh profile directory and every background service off) screenshots each chart. The browser is owned by the
 * bench's Resources, so an interrupted run closes it too.
 */
import { existsSync, writeFileSync } from 'node:fs';
import { TunerError } from '../core/errors.js';
import type { Resources } from './resources.js';

export const CHROMIUM = process.env.EBPF_TUNER_CHROMIUM ?? '/usr/bin/chromium';

const ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

export interface SvgImage {
  file: string;
  svg: string;
  width: number;
  height: number;
}

/** Writes each SVG as a PNG at `file`. Throws when no browser can be started; the SVGs are the fallback. */
export async function renderPngs(res: Resources, images: SvgImage[]): Promise<void> {
  if (images.length === 0) return;
  if (!existsSync(CHROMIUM)) throw new TunerError('INTERNAL', `draw charts: ${CHROMIUM} is missing — fix: apt-get install chromium`);
  let pw: typeof import('playwright-core');
  try {
    pw = await import('playwright-core');
  } catch (e) {
    throw new TunerError('INTERNAL', `draw charts: playwright-core is not installed (${e instanceof Error ? e.message : String(e)}) — fix: npm ci`);
  }
  const profile = res.tempDir('chromium');
  const ctx = await pw.chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    args: ARGS,
    headless: true,
    viewport: { width: 960, height: 400 },
    offline: true,
  });
  const close = res.own('chromium', async () => {
    await ctx.close().catch(() => undefined);
  });
  try {
    const page = await ctx.newPage();
    for (const img of images) {
      await page.setViewportSize({ width: img.width, height: img.height });
      await page.setContent(`<!doctype html><html><body style="margin:0;background:#fff">${img.svg}</body></html>`);
      const png = await page.screenshot({ type: 'png', clip: { x: 0, y: 0, width: img.width, height: img.height } });
      writeFileSync(img.file, png);
    }
  } finally {
    await close();
    res.removeTempDir(profile);
  }
}
