/**
 * The Prometheus metrics the network signal feeds: TCP retransmits, failed retransmits and packet drops, for each
 * target's sockets and for the host.
 */
import { host, num, perTarget, type CounterDecl, type MetricDecl } from '../metrics.js';
import type { NetWindow } from './net.js';

export const NET_METRICS: readonly MetricDecl[] = (['', 'host_'] as const).flatMap((scope): CounterDecl[] => {
  const read = (pick: (w: NetWindow) => number) =>
    scope === ''
      ? perTarget<NetWindow, number>('net', (w) => num(pick(w)))
      : host<NetWindow, number>('net', (w) => num(pick(w)));
  const whose = scope === '' ? "each target's sockets" : 'the host';
  const counter = (what: string, help: string, pick: (w: NetWindow) => number): CounterDecl => ({
    name: `ebpf_tuner_${scope}${what}_total`,
    type: 'counter',
    source: 'delta',
    unit: '',
    help,
    read: read(pick),
  });
  return [
    counter('tcp_retransmits', `TCP segments retransmitted by ${whose}.`, (w) => w.retransmits),
    counter('tcp_retransmit_failures', `TCP retransmissions that failed for ${whose}.`, (w) => w.retransmitFailures),
    counter('packet_drops', `Packets of ${whose} the kernel dropped.`, (w) => w.drops),
  ];
});
