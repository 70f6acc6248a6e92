/**
 * sd_notify against a real AF_UNIX datagram socket. Node cannot bind SOCK_DGRAM unix sockets, so a small python3
 * receiver (python3 is part of the base image) binds the socket, asks the kernel for the sender's credentials
 * (SO_PASSCRED, as systemd does for NotifyAccess=main) and reports each datagram as a JSON line.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createNotifier, notifyReady, notifyStatus, notifyStopping, startWatchdog } from './sd-notify.js';

const RECEIVER = String.raw`
import json, socket, struct, sys
path = sys.argv[1]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
s.bind("\0" + path[1:] if path.startswith("@") else path)
print(json.dumps({"listening": True}), flush=True)
while True:
    data, anc, _, _ = s.recvmsg(65536, socket.CMSG_SPACE(12))
    pid = None
    for level, kind, payload in anc:
        if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
            pid = struct.unpack("iII", payload[:12])[0]
    print(json.dumps({"data": data.decode(), "pid": pid}), flush=True)
`;

interface Datagram {
  data: string;
  pid: number | null;
}

class Receiver {
  readonly got: Datagram[] = [];
  private waiters: Array<() => void> = [];

  private constructor(private readonly proc: ChildProcessWithoutNullStreams) {}

  static async start(socketPath: string): Promise<Receiver> {
    const proc = spawn('python3', ['-c', RECEIVER, socketPath], { stdio: ['pipe', 'pipe', 'pipe'] });
    const r = new Receiver(proc);
    let stderr = '';
    proc.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
    const lines = createInterface({ input: proc.stdout });
    await new Promise<void>((resolve, reject) => {
      proc.once('error', reject);
      proc.once('exit', (code) => reject(new Error(`notify receiver exited (${code}): ${stderr}`)));
      lines.on('line', (line) => {
        const msg = JSON.parse(line) as Datagram | { listening: true };
        if ('listening' in msg) return resolve();
        r.got.push(msg);
        for (const w of r.waiters.splice(0)) w();
      });
    });
    return r;
  }

  /** Resolves once `n` datagrams have arrived; rejects after `ms` with what did arrive. */
  async waitFor(n: number, ms = 5000): Promise<Datagram[]> {
    const deadline = Date.now() + ms;
    while (this.got.length < n) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`expected ${n} datagrams, got ${JSON.stringify(this.got)}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
    return this.got;
  }

  stop(): void {
    if (this.proc.pid !== undefined && this.proc.exitCode === null) process.kill(this.proc.pid, 'SIGTERM');
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const savedEnv = { ...process.env };
let dir: string;
let receiver: Receiver | undefined;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'sd-notify-'));
  delete process.env.NOTIFY_SOCKET;
  delete process.env.WATCHDOG_USEC;
  delete process.env.WATCHDOG_PID;
});

afterEach(() => {
  receiver?.stop();
  receiver = undefined;
  for (const k of ['NOTIFY_SOCKET', 'WATCHDOG_USEC', 'WATCHDOG_PID']) {
    if (savedEnv[k] === undefined) delete process.env[k];
    else process.env[k] = savedEnv[k];
  }
  rmSync(dir, { recursive: true, force: true });
});

describe('sd_notify through libsystemd', () => {
  it('delivers READY=1 to NOTIFY_SOCKET, sent by this very process', async () => {
    const path = join(dir, 'notify');
    receiver = await Receiver.start(path);
    process.env.NOTIFY_SOCKET = path;

    expect(notifyReady()).toBe(true);
    const [msg] = await receiver.waitFor(1);
    expect(msg.data).toBe('READY=1');
    // systemd accepts a message under NotifyAccess=main only from the main PID; the kernel vouches for this one.
    expect(msg.pid).toBe(process.pid);
  });

  it('works on an abstract socket (@name), as systemd uses for some services', async () => {
    const path = `@ebpf-tuner-test-${process.pid}-${Date.now()}`;
    receiver = await Receiver.start(path);
    process.env.NOTIFY_SOCKET = path;
    expect(notifyStopping('restoring 3 knobs')).toBe(true);
    const [msg] = await receiver.waitFor(1);
    expect(msg.data).toBe('STOPPING=1\nSTATUS=restoring 3 knobs');
  });

  it('keeps STATUS= to one line so a status text cannot smuggle in READY=1', async () => {
    const path = join(dir, 'notify');
    receiver = await Receiver.start(path);
    process.env.NOTIFY_SOCKET = path;
    expect(notifyStatus('target web\nREADY=1\r\nMAINPID=1')).toBe(true);
    const [msg] = await receiver.waitFor(1);
    expect(msg.data).toBe('STATUS=target web READY=1 MAINPID=1');
    expect(msg.data.split('\n')).toHaveLength(1);
  });

  it('is a no-op, not an error, when NOTIFY_SOCKET is unset', () => {
    expect(notifyReady()).toBe(false);
    expect(notifyStatus('x')).toBe(false);
    expect(startWatchdog()).toBeTypeOf('function');
  });

  it('reports failure (false) when the socket does not exist', () => {
    process.env.NOTIFY_SOCKET = join(dir, 'nobody-listens');
    expect(notifyReady()).toBe(false);
  });

  it('is a no-op when libsystemd cannot be loaded, and says why', async () => {
    const path = join(dir, 'notify');
    receiver = await Receiver.start(path);
    process.env.NOTIFY_SOCKET = path;
    const n = createNotifier({ library: join(dir, 'no-such-libsystemd.so.0') });
    expect(n.ready()).toBe(false);
    const info = n.info();
    expect(info.library).toBe('missing');
    expect(info.error).toMatch(/no-such-libsystemd/);
    // Nothing may arrive: prove it by sending a marker through the real library afterwards.
    expect(notifyStatus('marker')).toBe(true);
    const got = await receiver.waitFor(1);
    expect(got.map((d) => d.data)).toEqual(['STATUS=marker']);
  });
});

describe('watchdog', () => {
  it('pings WATCHDOG=1 at half of WATCHDOG_USEC until stopped', async () => {
    const path = join(dir, 'notify');
    receiver = await Receiver.start(path);
    process.env.NOTIFY_SOCKET = path;
    process.env.WATCHDOG_USEC = '200000';
    process.env.WATCHDOG_PID = String(process.pid);

    const stop = startWatchdog();
    // One ping at once, then one every 100 ms.
    await receiver.waitFor(3, 3000);
    stop();
    stop();
    // Datagrams on a unix socket arrive in order: once the marker is in, every ping sent before stop() is too.
    expect(notifyStatus('stopped')).toBe(true);
    for (let n = receiver.got.length; !receiver.got.some((d) => d.data === 'STATUS=stopped'); n++) {
      await receiver.waitFor(n + 1);
    }
    await sleep(400);
    const data = receiver.got.map((d) => d.data);
    expect(data.at(-1)).toBe('STATUS=stopped');
    expect(data.slice(0, -1).every((d) => d === 'WATCHDOG=1')).toBe(true);
    expect(receiver.got.every((d) => d.pid === process.pid)).toBe(true);
  });

  it('skips pings while the health check fails or throws', async () => {
    const path = join(dir, 'notify');
    receiver = await Receiver.start(path);
    process.env.NOTIFY_SOCKET = path;
    process.env.WATCHDOG_USEC = '100000';
    let healthy: boolean | 'throw' = 'throw';
    const stop = startWatchdog({
      healthy: () => {
        if (healthy === 'throw') throw new Error('tick loop gone');
        return healthy;
      },
    });
    await sleep(200);
    healthy = false;
    await sleep(300);
    expect(receiver.got).toHaveLength(0);
    healthy = true;
    await receiver.waitFor(1, 2000);
    stop();
    expect(receiver.got[0].data).toBe('WATCHDOG=1');
  });

  it('does not ping for a watchdog meant for another process (inherited WATCHDOG_PID)', async () => {
    const path = join(dir, 'notify');
    receiver = await Receiver.start(path);
    process.env.NOTIFY_SOCKET = path;
    process.env.WATCHDOG_USEC = '100000';
    process.env.WATCHDOG_PID = String(process.pid + 1);
    const n = createNotifier();
    expect(n.info().watchdogUsec).toBeUndefined();
    const stop = n.startWatchdog();
    await sleep(300);
    stop();
    expect(receiver.got).toHaveLength(0);
  });

  it('ignores a malformed WATCHDOG_USEC', () => {
    process.env.NOTIFY_SOCKET = join(dir, 'notify');
    for (const bad of ['', '0', '-5', '1e6', 'abc', '99999999999999999999']) {
      process.env.WATCHDOG_USEC = bad;
      expect(createNotifier().info().watchdogUsec, bad).toBeUndefined();
    }
  });

  it('does not keep the process alive', () => {
    // getActiveResourcesInfo() lists only ref'd timers, the ones that would hold a stopping agent open.
    process.env.NOTIFY_SOCKET = join(dir, 'notify');
    process.env.WATCHDOG_USEC = '60000000';
    const refdTimers = () => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
    const before = refdTimers();
    const stop = startWatchdog();
    const during = refdTimers();
    stop();
    expect(during).toBe(before);
  });
});
