/** Replay is a pure function of the recording and the config: pinned on a synthetic recording; and reading older ones. */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import type { TickSnapshot } from '../core/types.js';
import { parseConfig } from '../config/load.js';
import { readRecording, type RecordingHeader } from './recording.js';
import { formatReplay, replay } from './replay.js';
import { runqlatWindow } from '../signals/windows.js';

const config = parseConfig('policy: {noisy_neighbor: {p99_threshold_us: 4000, trigger_ticks: 2, calm_ticks: 3}}\nguardrails: {cooldown: 0s}\nclosed_loop: {warmup_ticks: 0}\n', 'test.yaml');
const header: RecordingHeader = {
  format: 'ebpf-tuner-recording',
  version: 1,
  startedAt: 0,
  host: 'h',
  kernel: 'k',
  config,
  targets: [
    { name: 'web', role: 'protect' },
    { name: 'batch', role: 'noisy' },
  ],
  knobs: { web: { cpu_weight: { weight: 100 } }, batch: { cpu_weight: { weight: 100 } } },
};

function tick(i: number, p99: number, batchOncpuUs = 9e5): TickSnapshot {
  const w = (p: number, oncpu: number) => runqlatWindow({ count: 400, p50: 100, p90: p / 2, p99: p, mean: 200, p99Ewma: p, waitUs: 1e4, oncpuUs: oncpu });
  return { time: 1_000_000 + i * 1000, windowMs: 1000, targets: { web: { name: 'web', role: 'protect', runqlat: w(p99, 2e5) }, batch: { name: 'batch', role: 'noisy', runqlat: w(20_000, batchOncpuUs) } } };
}

// Hot for 2 ticks, improving as soon as the nudge of tick 1 takes effect, then calm with batch finished.
const ticks = [...[9000, 9000, 3000, 3000, 3000, 3000, 3000, 3000].map((p, i) => tick(i, p)), ...Array.from({ length: 8 }, (_, i) => tick(8 + i, 200, 0))];

describe('replay', () => {
  it('lowers the noisy weight, keeps it when the victim improved, restores it when calm — the same every time', () => {
    const a = replay(header, ticks, config);
    const b = replay(header, ticks, config);
    expect(a).toEqual(b);
    const applied = a.filter((d) => d.kind === 'proposed' || d.kind === 'revert');
    expect(applied[0]).toMatchObject({ tick: 1, action: 'cpu_weight', target: 'batch', from: { weight: 100 }, to: { weight: 50 } });
    expect(a.some((d) => d.kind === 'kept')).toBe(true);
    expect(applied.at(-1)).toMatchObject({ target: 'batch', to: { weight: 100 } });
    expect(formatReplay(a)).toMatch(/proposed cpu_weight batch weight=100 → weight=50/);
  });
});

describe('readRecording', () => {
  it('gives the blkio devices of a version 1 recording their major and minor, as version 2 writes them', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ebpf-tuner-recording-'));
    try {
      const file = join(dir, 'v1.jsonl.gz');
      const v1 = { time: 1, windowMs: 1000, targets: { web: { name: 'web', role: 'protect', blkio: { devices: [{ dev: '259:3', ios: 4 }, { dev: 'junk' }] } } } };
      writeFileSync(file, gzipSync(`${JSON.stringify(header)}\n${JSON.stringify(v1)}\n`));
      const { ticks: [t] } = await readRecording(file);
      expect(t!.targets.web!.blkio!.devices).toEqual([{ dev: '259:3', major: 259, minor: 3, ios: 4 }, { dev: 'junk' }]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
