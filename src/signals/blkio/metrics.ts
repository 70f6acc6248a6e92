/** The Prometheus metrics the block I/O signal feeds: its latency histograms, bytes moved, queue depth and bursts. */
import { latencyHistograms, num, perTarget, type MetricDecl } from '../metrics.js';
import type { BlkioWindow } from './blkio.js';

export const BLKIO_METRICS: readonly MetricDecl[] = [
  ...latencyHistograms('blkio', 'block_io_latency', 'Block I/O request latency, issue to completion,'),
  {
    name: 'ebpf_tuner_block_io_bytes_total',
    type: 'counter',
    source: 'delta',
    unit: 'bytes',
    help: 'Bytes each target read from and wrote to block devices, counted at request issue.',
    read: perTarget<BlkioWindow, number>('blkio', (w) => [
      [{ direction: 'read' }, w.readBytes],
      [{ direction: 'write' }, w.writeBytes],
    ]),
  },
  {
    name: 'ebpf_tuner_block_io_queue_depth_max',
    type: 'gauge',
    unit: '',
    help: 'Deepest request queue, over the last tick, among the devices each target used.',
    read: perTarget<BlkioWindow, number>('blkio', (w) => num(w.maxInflight)),
  },
  {
    name: 'ebpf_tuner_block_io_burst',
    type: 'gauge',
    unit: '',
    help: "1 while a target's I/O per tick is well above its own baseline.",
    read: perTarget<BlkioWindow, number>('blkio', (w) => num(w.burst)),
  },
];
