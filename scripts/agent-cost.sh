#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# What the running agent costs at N cgroup targets, one sleeping process each, 1 s tick, default signals:
# CPU (% of one core, utime+stime over SECONDS), VmRSS, and file opens per tick (perf's openat tracepoint).
# Usage (as root, after scripts/setup.sh): scripts/agent-cost.sh N [SECONDS] [TREE]
set -u
N=${1:?usage: agent-cost.sh N [SECONDS] [TREE]}
S=${2:-10}
TREE=${3:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)}
CPU_MOUNT=$(awk '$3 == "cgroup" && $4 ~ /(^|,)cpu(,|$)/ {print $2; exit}' /proc/mounts)
[ -n "$CPU_MOUNT" ] || CPU_MOUNT=$(awk '$3 == "cgroup2" {print $2; exit}' /proc/mounts)
base=$CPU_MOUNT/ebpf-tuner-cost-$$
dir=$(mktemp -d /tmp/ebpf-tuner-cost.XXXXXX)
mkdir "$base"
pids=()
{ echo "tick: 1s"; echo "targets:"; } > "$dir/config.yaml"
for ((i = 0; i < N; i++)); do
	name=$(printf 't%04d' "$i")
	mkdir "$base/$name"
	role=protect; ((i % 2)) && role=noisy
	printf '  - name: %s\n    role: %s\n    cgroup: %s\n' "$name" "$role" "$base/$name" >> "$dir/config.yaml"
	sh -c "echo \$\$ > $base/$name/cgroup.procs; exec sleep 3600" & pids+=($!)
done
"$TREE/bin/ebpf-tuner" run --state-dir "$dir/state" --config "$dir/config.yaml" --log-level info > "$dir/agent.log" 2>&1 &
A=$!
for ((k = 0; k < 300; k++)); do grep -q '"msg":"agent running' "$dir/agent.log" && break; sleep 1; done
sleep 6 # start-up and JIT warm-up are not what a running agent costs
ticks() { sed 's/.*) //' "/proc/$A/stat" | awk '{print $12 + $13}'; }
c0=$(ticks); t0=$(date +%s.%N)
sleep "$S"
c1=$(ticks); t1=$(date +%s.%N)
opens=$(perf stat -x, -e syscalls:sys_enter_openat -p "$A" -- sleep "$S" 2>&1 | awk -F, '/sys_enter_openat/ {print $1}')
rss=$(awk '/VmRSS/ {print $2 / 1024}' "/proc/$A/status")
printf 'targets=%d cpu%%=%.2f rss_mib=%.1f openat_per_tick=%.1f\n' "$N" \
	"$(echo "($c1 - $c0) / $(getconf CLK_TCK) / ($t1 - $t0) * 100" | bc -l)" "$rss" "$(echo "${opens:-0} / $S" | bc -l)"
kill -TERM "$A"; for ((k = 0; k < 30; k++)); do kill -0 "$A" 2>/dev/null || break; sleep 1; done
kill "${pids[@]}" 2>/dev/null; wait 2>/dev/null
sleep 0.5
for d in "$base"/t[0-9]*; do rmdir "$d"; done
rmdir "$base"
rm -rf "$dir"
