/** What the benchmarks ran on, for the report: kernel, CPU, vCPUs, memory and the versions of the peers compared. */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import os from 'node:os';

export interface Machine {
  kernel: string;
  cpuModel: string;
  vcpus: number;
  memoryGiB: number;
  numaNodes: number;
  node: string;
  hz?: number;
  tools: Record<string, string>;
}

function firstLine(cmd: string, args: string[]): string {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 5000 }).split('\n')[0]!.trim();
  } catch {
    return 'not found';
  }
}

function numaNodes(): number {
  try {
    const online = readFileSync('/sys/devices/system/node/online', 'utf8').trim();
    return online.split(',').reduce((n, r) => {
      const [a, b] = r.split('-').map(Number);
      return n + (b === undefined ? 1 : b! - a! + 1);
    }, 0);
  } catch {
    return 1;
  }
}

export function describeMachine(): Machine {
  const cpus = os.cpus();
  return {
    kernel: `${os.type()} ${os.release()} ${os.machine()}`,
    cpuModel: cpus[0]?.model?.trim() || 'unknown',
    vcpus: cpus.length,
    memoryGiB: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
    numaNodes: numaNodes(),
    node: process.version,
    tools: {
      bpftool: firstLine('bpftool', ['version']),
      bpftrace: firstLine('bpftrace', ['--version']),
      perf: firstLine('perf', ['--version']),
      runqlat: firstLine('dpkg-query', ['-W', '-f', '${Version}', 'libbpf-tools']),
      nginx: firstLine('dpkg-query', ['-W', '-f', '${Version}', 'nginx']),
      wrk: firstLine('dpkg-query', ['-W', '-f', '${Version}', 'wrk']),
      redis: firstLine('dpkg-query', ['-W', '-f', '${Version}', 'redis-server']),
    },
  };
}
