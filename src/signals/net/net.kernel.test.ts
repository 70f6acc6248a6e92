/**
 * The network signal on the real kernel: two network namespaces the test creates, joined by a veth pair on
 * TEST-NET-1 addresses (192.0.2.0/24, reachable only inside them), a TCP transfer from one to the other, and random
 * loss of 20% of the TCP packets arriving in the receiving namespace. Ground truth: the sending namespace's own
 * RetransSegs counter (/proc/net/snmp is per namespace, and only the test's sender sends TCP there) and the drop
 * rule's packet counter.
 *
 * The kernel here has no sch_netem, so loss comes from an nftables rule (`numgen random mod 5 == 0 drop`), which
 * the kernel reports as NETFILTER_DROP. The sender is a cgroup v2 target; the receiver is a v1 cpu cgroup target
 * whose process also sits alone in a v2 cgroup, which is how v1 targets become attributable.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { silentLogger } from '../../core/log.js';
import type { Target, TargetSignals } from '../../core/types.js';
import { cgroupId, detectLayout } from '../../cgroup/layout.js';
import { enableBpfStats, progStats } from '../../bpf/stats.js';
import { TRACEFS, withTracefs } from '../../bpf/tracefs.js';
import { cleanupAll, killAndWait, makeTestCgroup, spawnInCgroup, makeV2TestCgroup, TEST_CGROUP_PREFIX, type SpawnedProcess } from '../../testing/cgroups.js';
import { btfEnum, dropReasonNames, NetSignal, type NetWindow } from './net.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const layout = detectLayout();
const PORT = 5201;
const SERVER_ADDR = '192.0.2.2';
const CLIENT_ADDR = '192.0.2.1';

function sh(cmd: string, args: string[]): string {
  return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

function need(cmd: string, why: string): void {
  try {
    execFileSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' });
  } catch {
    throw new Error(`${cmd} is not installed (${why}) — fix: apt-get install the packages in scripts/apt-packages.txt`);
  }
}

const makeV2Cgroup = () => makeV2TestCgroup('socket attribution', layout);

interface Netns {
  tx: string;
  rx: string;
  remove(): void;
}

function makeNamespaces(): Netns {
  const tag = `${TEST_CGROUP_PREFIX}${process.pid}-${randomBytes(3).toString('hex')}`;
  const tx = `${tag}-tx`;
  const rx = `${tag}-rx`;
  const made: string[] = [];
  const remove = (): void => {
    for (const n of made.splice(0)) {
      try {
        sh('ip', ['netns', 'del', n]);
      } catch {
        // already gone
      }
    }
  };
  try {
    for (const n of [tx, rx]) {
      sh('ip', ['netns', 'add', n]);
      made.push(n);
      sh('ip', ['-n', n, 'link', 'set', 'lo', 'up']);
    }
    sh('ip', ['-n', tx, 'link', 'add', 'veth-tx', 'type', 'veth', 'peer', 'name', 'veth-rx', 'netns', rx]);
    sh('ip', ['-n', tx, 'addr', 'add', `${CLIENT_ADDR}/24`, 'dev', 'veth-tx']);
    sh('ip', ['-n', rx, 'addr', 'add', `${SERVER_ADDR}/24`, 'dev', 'veth-rx']);
    sh('ip', ['-n', tx, 'link', 'set', 'veth-tx', 'up']);
    sh('ip', ['-n', rx, 'link', 'set', 'veth-rx', 'up']);
  } catch (e) {
    remove();
    throw e;
  }
  return { tx, rx, remove };
}

function retransSegs(ns: string): number {
  const lines = sh('ip', ['netns', 'exec', ns, 'cat', '/proc/net/snmp']).split('\n').filter((l) => l.startsWith('Tcp:'));
  const names = lines[0].split(/\s+/);
  const values = lines[1].split(/\s+/);
  return Number(values[names.indexOf('RetransSegs')]);
}

function addLoss(ns: string): void {
  sh('ip', ['netns', 'exec', ns, 'nft', 'add', 'table', 'inet', 'loss']);
  sh('ip', ['netns', 'exec', ns, 'nft', 'add', 'chain', 'inet', 'loss', 'in', '{ type filter hook input priority 0; }']);
  sh('ip', ['netns', 'exec', ns, 'nft', 'add', 'rule', 'inet', 'loss', 'in', 'ip', 'protocol', 'tcp', 'numgen', 'random', 'mod', '5', '==', '0', 'counter', 'drop']);
}

function lossCounter(ns: string): number {
  const text = sh('ip', ['netns', 'exec', ns, 'nft', 'list', 'table', 'inet', 'loss']);
  return Number(/counter packets (\d+)/.exec(text)?.[1] ?? NaN);
}

const SERVER = `
const net = require('net');
const srv = net.createServer((s) => { s.on('data', () => {}); s.on('end', () => s.end()); s.on('error', () => {}); });
srv.listen(${PORT}, '${SERVER_ADDR}', () => console.log('listening'));
setTimeout(() => process.exit(0), 120000).unref();
`;

const client = (ms: number): string => `
const net = require('net');
const chunk = Buffer.alloc(65536, 7);
const end = Date.now() + ${ms};
let sent = 0;
// Paced (at most 64 KiB per 2 ms) so that without loss nothing queues up to the point of dropping.
const s = net.connect(${PORT}, '${SERVER_ADDR}', () => {
  const pump = () => {
    if (Date.now() >= end) return void s.end();
    sent += chunk.length;
    if (s.write(chunk)) setTimeout(pump, 2);
    else s.once('drain', () => setTimeout(pump, 2));
  };
  pump();
});
s.on('close', () => { console.log(JSON.stringify({ sent })); process.exit(0); });
s.on('error', (e) => { console.error(e.message); process.exit(1); });
setTimeout(() => process.exit(2), ${ms} + 30000);
`;

async function untilLine(p: SpawnedProcess, re: RegExp, timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    let buf = '';
    const timer = setTimeout(() => reject(new Error(`no line matching ${re} within ${timeoutMs} ms; got ${JSON.stringify(buf)}`)), timeoutMs);
    p.child.stdout!.on('data', (d: Buffer) => {
      buf += d.toString();
      const m = buf.split('\n').find((l) => re.test(l));
      if (m !== undefined) {
        clearTimeout(timer);
        resolve(m);
      }
    });
  });
}

afterAll(async () => {
  await cleanupAll();
});

describe('net on the real kernel', () => {
  it('names drop reasons from the running kernel BTF', () => {
    const names = dropReasonNames();
    // Cross-check against the tracepoint's own symbol table, which the kernel prints from the same enum.
    const fmt = withTracefs(() => fs.readFileSync(`${TRACEFS}/events/skb/kfree_skb/format`, 'utf8'));
    const symbols = [...fmt.matchAll(/\{ (\d+), "(\w+)" \}/g)].map((m) => [Number(m[1]), m[2]] as const);
    expect(symbols.length).toBeGreaterThan(10);
    for (const [v, n] of symbols) if (n !== 'MAX') expect(names.get(v)).toBe(n);
    expect(btfEnum(fs.readFileSync('/sys/kernel/btf/vmlinux'), 'no_such_enum_here')).toBeUndefined();
  });

  it('counts retransmits and drops with their reason, attributed to the sockets owners', async () => {
    need('nft', 'random loss: this kernel has no sch_netem');
    need('ip', 'network namespaces');
    const ns = makeNamespaces();
    const senderCg = makeV2Cgroup();
    const receiverV2 = makeV2Cgroup();
    const receiverCg = makeTestCgroup('cpu');
    const signal = new NetSignal({ host: true, layout });
    const releaseStats = enableBpfStats();
    let server: SpawnedProcess | undefined;
    try {
      const targets: Target[] = [
        { name: 'sender', role: 'protect', slot: 0, scope: { kind: 'cgroup', path: senderCg.path, version: 2, id: cgroupId(senderCg.path) } },
        { name: 'receiver', role: 'noisy', slot: 1, scope: { kind: 'cgroup', path: receiverCg.path, version: 1, id: cgroupId(receiverCg.path) } },
      ];
      // The receiver's sockets carry its v2 cgroup; its v1 cgroup is what the target names.
      server = await spawnInCgroup(receiverV2.path, 'ip', ['netns', 'exec', ns.rx, process.execPath, '-e', SERVER], { stdio: ['ignore', 'pipe', 'inherit'] });
      receiverCg.moveIn(server.pid);
      await untilLine(server, /listening/, 10_000);
      signal.start({ log: silentLogger, targets, cgroupVersion: 1 });
      expect(signal.attachedAs?.kind).toBe('tp_btf');

      const transfer = async (ms: number) => {
        const before: Record<string, TargetSignals> = {};
        signal.collect(Date.now(), before);
        const snmp0 = retransSegs(ns.tx);
        const c = await spawnInCgroup(senderCg.path, 'ip', ['netns', 'exec', ns.tx, process.execPath, '-e', client(ms)], { stdio: ['ignore', 'pipe', 'inherit'] });
        const line = await untilLine(c, /"sent"/, ms + 40_000);
        await c.exited;
        await sleep(300);
        const snmp = retransSegs(ns.tx) - snmp0;
        const after: Record<string, TargetSignals> = {};
        signal.collect(Date.now(), after);
        return {
          sent: (JSON.parse(line) as { sent: number }).sent,
          snmp,
          sender: after.sender.net as NetWindow,
          receiver: after.receiver.net as NetWindow,
          host: signal.hostWindow()!,
        };
      };

      const quiet = await transfer(1500);
      console.log(`control: sent ${(quiet.sent / 1e6).toFixed(0)} MB, retransmits bpf ${quiet.sender.retransmits} / netns RetransSegs ${quiet.snmp}, receiver drops ${quiet.receiver.drops}`);

      addLoss(ns.rx);
      const lossy = await transfer(3000);
      const ruleDrops = lossCounter(ns.rx);
      console.log(
        `20% loss: sent ${(lossy.sent / 1e6).toFixed(1)} MB, retransmits bpf ${lossy.sender.retransmits} / netns RetransSegs ${lossy.snmp} ` +
          `(failed ${lossy.sender.retransmitFailures}, receiver ${lossy.receiver.retransmits}), ` +
          `rule dropped ${ruleDrops}, host NETFILTER_DROP ${lossy.host.dropReasons.NETFILTER_DROP ?? 0}, ` +
          `receiver drops ${lossy.receiver.drops} ${JSON.stringify(lossy.receiver.dropReasons)}, host unattributed ${lossy.host.unattributed}`,
      );
      for (const { name, fd } of signal.programs()) {
        const st = progStats(fd);
        console.log(`${name}: ${st.runCnt} runs, ${st.runCnt ? (st.runTimeNs / st.runCnt).toFixed(0) : '-'} ns/run`);
      }

      // Retransmits: the sender's segments, as its namespace's own counter sees them.
      expect(lossy.snmp).toBeGreaterThan(10);
      expect(lossy.sender.retransmits).toBeGreaterThanOrEqual(Math.floor(lossy.snmp * 0.9));
      expect(lossy.sender.retransmits).toBeLessThanOrEqual(Math.ceil(lossy.snmp * 1.1) + 3);
      expect(lossy.host.retransmits).toBeGreaterThanOrEqual(lossy.sender.retransmits);
      expect(lossy.sender.attributable).toBe(true);
      // The receiver sends only ACKs and its FIN; a lost ACK of that FIN makes it retransmit the FIN, nothing more.
      expect(lossy.receiver.retransmits).toBeLessThanOrEqual(5);
      // Drops: every packet the rule dropped is seen with its reason; those of established flows reach the receiver.
      expect(ruleDrops).toBeGreaterThan(10);
      // The rule's counter is read after the window closed: a late segment (a FIN retransmitted after the transfer)
      // can be dropped in between, counted by the rule and not yet by the window.
      expect(lossy.host.dropReasons.NETFILTER_DROP ?? 0).toBeGreaterThanOrEqual(ruleDrops - 2);
      expect(lossy.receiver.attributable).toBe(true);
      expect(lossy.receiver.dropReasons.NETFILTER_DROP ?? 0).toBeGreaterThan(ruleDrops * 0.5);
      expect(lossy.receiver.dropReasons.NETFILTER_DROP ?? 0).toBeLessThanOrEqual(ruleDrops);
      expect(lossy.sender.dropReasons.NETFILTER_DROP ?? 0).toBe(0);
      // Control: without loss, (almost) nothing to retransmit, and the rule-less namespace drops nothing by netfilter.
      expect(quiet.sender.retransmits).toBeLessThanOrEqual(Math.max(3, lossy.sender.retransmits * 0.05));
      expect(quiet.receiver.dropReasons.NETFILTER_DROP ?? 0).toBe(0);
    } finally {
      signal.close();
      releaseStats();
      if (server) await killAndWait(server);
      ns.remove();
      senderCg.remove();
      receiverV2.remove();
      receiverCg.remove();
    }
  });

  it('starts host-only with no targets; close() detaches and is idempotent', () => {
    const signal = new NetSignal({ host: true, layout });
    try {
      signal.start({ log: silentLogger, targets: [], cgroupVersion: 1 });
      const out: Record<string, TargetSignals> = {};
      signal.collect(Date.now(), out);
      expect(Object.keys(out)).toEqual([]);
      const w = signal.hostWindow()!;
      expect(w.burst.active).toBe(false);
      expect(w.retransmits).toBeGreaterThanOrEqual(0);
    } finally {
      signal.close();
      signal.close();
    }
    expect(signal.programs()).toEqual([]);
  });
});
