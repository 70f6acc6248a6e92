#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# Runs the VM test suite inside freshly booted VMs: Debian's own kernel packages, booted by qemu (TCG: nested KVM is
# not available everywhere), with the host's root filesystem shared read-only over 9p under a throw-away tmpfs
# overlay, a pure cgroup v2 hierarchy and nothing mounted that a fresh host lacks. Kernel packages and the initramfs
# are cached in $EBPF_TUNER_VM_CACHE (default /var/cache/ebpf-tuner/vm).
#
# Each kernel is booted twice: once with one NUMA node for vitest project "vm" (every tests/vm/*.vm.test.ts but
# numa*), and once with two nodes for project "vm-numa" (tests/vm/numa*.vm.test.ts), which needs a second node and
# fails without one. --numa, --project or vitest arguments select one boot.
#
#   scripts/vm/test-vm.sh [--kernel 6.1|6.12]... [--numa] [--project P] [-- VITEST ARGS...]
#
# Exits non-zero when any boot's run fails, times out, or cannot boot.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd -P)
CACHE=${EBPF_TUNER_VM_CACHE:-/var/cache/ebpf-tuner/vm}
TIMEOUT=${EBPF_TUNER_VM_TIMEOUT:-1500}
MEM=${EBPF_TUNER_VM_MEM:-4096}
# One host thread runs every vCPU. With a thread per vCPU (multi), a vCPU can run a stale translation of kernel text
# that another just patched (static keys flip as tracepoints attach), which the guest sees as a stray int3 and
# oopses on (seen on 6.12: "Oops: int3" in update_cfs_group, the byte already patched back to a nop).
TCG_THREADS=${EBPF_TUNER_VM_TCG_THREADS:-single}
ALL_KERNELS=(6.1 6.12)

usage() {
	cat <<'USAGE'
usage: scripts/vm/test-vm.sh [--kernel 6.1|6.12]... [--numa] [--project P] [-- VITEST ARGS...]
  --kernel K   boot this kernel series (repeatable; default: every one of 6.1 and 6.12)
  --numa       boot only the guest with two NUMA nodes (one CPU and half the memory each); project vm-numa
  --project P  the vitest project to run inside (default: vm, or vm-numa with --numa; "kernel" runs the host's
               kernel suite there)
  --           the rest is passed to vitest inside the VM (e.g. a test file name)
without --numa, --project and vitest arguments, each kernel is booted twice: one node (project vm), then two
nodes (project vm-numa)
environment: EBPF_TUNER_VM_CACHE (kernel/initramfs cache), EBPF_TUNER_VM_TIMEOUT (s per kernel, default 1500),
             EBPF_TUNER_VM_MEM (MiB, default 4096), EBPF_TUNER_VM_TCG_THREADS (single, default, or multi)
USAGE
}

die() {
	printf 'test-vm: error: %s\n' "$*" >&2
	exit 2
}
log() { printf 'test-vm: %s\n' "$*" >&2; }

kernels=()
numa=0
project=
vitest_args=()
while [ $# -gt 0 ]; do
	case "$1" in
	--kernel)
		[ $# -ge 2 ] || die "--kernel needs a value (one of: ${ALL_KERNELS[*]})"
		case " ${ALL_KERNELS[*]} " in *" $2 "*) ;; *) die "--kernel $2: unknown kernel series — fix: one of ${ALL_KERNELS[*]}" ;; esac
		kernels+=("$2")
		shift 2
		;;
	--kernel=*)
		set -- --kernel "${1#--kernel=}" "${@:2}"
		;;
	--numa)
		numa=1
		shift
		;;
	--project)
		[ $# -ge 2 ] || die "--project needs a vitest project name"
		project=$2
		shift 2
		;;
	-h | --help)
		usage
		exit 0
		;;
	--)
		shift
		vitest_args=("$@")
		break
		;;
	*)
		usage >&2
		die "unknown argument: $1"
		;;
	esac
done
[ ${#kernels[@]} -gt 0 ] || kernels=("${ALL_KERNELS[@]}")

# The boots per kernel, as "<nodes>:<project>".
boots=()
if [ "$numa" = 1 ]; then
	boots=("2:${project:-vm-numa}")
elif [ -n "$project" ] || [ ${#vitest_args[@]} -gt 0 ]; then
	for a in "${vitest_args[@]}"; do
		case "$a" in
		*numa*.vm.test.ts) [ -n "$project" ] || die "$a needs a guest with two NUMA nodes — fix: add --numa" ;;
		esac
	done
	boots=("1:${project:-vm}")
else
	boots=("1:vm" "2:vm-numa")
fi

[ "$(id -u)" = 0 ] || die "root is needed (qemu shares / with the guest, which runs the kernel tests as root)"
for tool in qemu-system-x86_64 cpio depmod modprobe xz apt-get dpkg-deb; do
	command -v "$tool" >/dev/null || die "$tool not found — fix: run scripts/setup.sh (it installs qemu-system-x86, cpio, kmod, xz-utils)"
done
case "$ROOT/" in
/proc/* | /sys/* | /dev/* | /run/*) die "the checkout $ROOT is under a directory the guest mounts afresh — fix: clone it elsewhere, e.g. under /tmp or /srv" ;;
esac
[ -f "$ROOT/dist/.tsc-stamp" ] || die "the project is not built — fix: run scripts/setup.sh (or bash scripts/pretest.sh)"

# The Debian package of the newest kernel of a series: 6.1 → linux-image-6.1.0-N-amd64-unsigned,
# 6.12 → linux-image-6.12.N+deb12-amd64-unsigned. The generic flavour: it has 9p and overlay as modules.
package_pattern() {
	case "$1" in
	6.1) echo '^linux-image-6\.1\.0-[0-9]+-amd64-unsigned$' ;;
	6.12) echo '^linux-image-6\.12\.[0-9]+\+deb12-amd64-unsigned$' ;;
	esac
}

newest_package() {
	apt-cache pkgnames linux-image-6 2>/dev/null | grep -E "$(package_pattern "$1")" | sort -V | tail -n 1
}

# Prints the directory holding the unpacked kernel package of series $1 (downloading it the first time).
kernel_dir() {
	local series=$1 pkg dir cached
	pkg=$(newest_package "$series")
	if [ -z "$pkg" ]; then
		apt-get -o DPkg::Lock::Timeout=600 update >&2 || true
		pkg=$(newest_package "$series")
	fi
	if [ -z "$pkg" ]; then
		# No package lists (offline): the newest one cached before.
		cached=$(find "$CACHE" -mindepth 1 -maxdepth 1 -type d -name "linux-image-$series*" 2>/dev/null | sort -V | tail -n 1)
		[ -n "$cached" ] || die "no kernel package for $series in apt and none cached in $CACHE — fix: apt-get update, or check the network"
		echo "$cached"
		return
	fi
	dir="$CACHE/$pkg"
	if [ ! -f "$dir/.unpacked" ]; then
		log "downloading $pkg (cached in $CACHE)"
		rm -rf "$dir"
		mkdir -p "$dir/deb"
		(cd "$dir/deb" && apt-get download "$pkg" >&2 2>/dev/null) || (cd "$dir/deb" && apt-get download "$pkg" >&2) ||
			die "apt-get download $pkg failed"
		dpkg-deb -x "$dir"/deb/*.deb "$dir/root"
		rm -rf "$dir/deb"
		local kv
		kv=$(ls "$dir/root/lib/modules")
		depmod -b "$dir/root" "$kv"
		touch "$dir/.unpacked"
	fi
	echo "$dir"
}

# A static busybox for the initramfs, unpacked from Debian's busybox-static package into the cache rather than
# installed: on Debian that package replaces the dynamic busybox that initramfs-tools may use.
static_busybox() {
	local dir="$CACHE/busybox-static"
	if [ ! -x "$dir/root/bin/busybox" ]; then
		log "downloading busybox-static (cached in $CACHE)"
		rm -rf "$dir"
		mkdir -p "$dir/deb"
		(cd "$dir/deb" && apt-get download busybox-static >&2) || die "apt-get download busybox-static failed"
		dpkg-deb -x "$dir"/deb/*.deb "$dir/root"
		rm -rf "$dir/deb"
	fi
	echo "$dir/root/bin/busybox"
}

# Builds (once per kernel) an initramfs with static busybox, init.sh and the modules that reach the host's root.
initramfs() {
	local dir=$1 kv=$2 out="$1/initramfs.cpio.gz" work mods m
	if [ -f "$out" ] && [ "$out" -nt "$ROOT/scripts/vm/init.sh" ] && [ "$out" -nt "$ROOT/scripts/vm/test-vm.sh" ]; then
		echo "$out"
		return
	fi
	work=$(mktemp -d)
	mkdir -p "$work"/{bin,proc,sys,dev,modules,lower,rw,root}
	cp "$(static_busybox)" "$work/bin/busybox"
	install -m 0755 "$ROOT/scripts/vm/init.sh" "$work/init"
	# In dependency order, as modprobe would load them; built-in ones are simply absent from the list.
	mods=$(for m in virtio_pci 9pnet_virtio 9p overlay; do
		modprobe -d "$dir/root" -S "$kv" --show-depends "$m" 2>/dev/null | awk '$1 == "insmod" { print $2 }'
	done | awk '!seen[$0]++')
	: >"$work/modules.order"
	for m in $mods; do
		local base
		base=$(basename "$m")
		case "$m" in
		*.xz) xz -dc "$m" >"$work/modules/${base%.xz}" && base=${base%.xz} ;;
		*.zst) zstd -dqc "$m" >"$work/modules/${base%.zst}" && base=${base%.zst} ;;
		*) cp "$m" "$work/modules/$base" ;;
		esac
		echo "$base" >>"$work/modules.order"
	done
	(cd "$work" && find . | cpio -o -H newc --quiet | gzip -1) >"$out.tmp"
	mv "$out.tmp" "$out"
	rm -rf "$work"
	echo "$out"
}

run_kernel() {
	local series=$1 nodes=$2 project=$3 dir kv vmlinuz initrd out rc start numa_opts=() smp=2
	dir=$(kernel_dir "$series")
	kv=$(ls "$dir/root/lib/modules")
	vmlinuz="$dir/root/boot/vmlinuz-$kv"
	[ -f "$vmlinuz" ] || die "no kernel image in $dir"
	initrd=$(initramfs "$dir" "$kv")
	out=$(mktemp -d /var/tmp/ebpf-tuner-vm-XXXXXX)
	chmod 0755 "$out"
	local args=""
	for a in "${vitest_args[@]}"; do args+=" $(printf '%q' "$a")"; done
	cat >"$out/job.sh" <<JOB
set -u
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root CI=\${CI:-true} EBPF_TUNER_VM=$series
export EBPF_TUNER_VM_OUT=$out
cd $(printf '%q' "$ROOT") || exit 97
echo "vm: \$(uname -r), \$(nproc) CPUs, cgroup controllers: \$(cat /sys/fs/cgroup/cgroup.controllers)"
node node_modules/vitest/vitest.mjs run --project $project --reporter=default --reporter=junit --outputFile.junit=$out/junit.xml$args
JOB
	if [ "$nodes" = 2 ]; then
		local half=$((MEM / 2))
		numa_opts=(-object "memory-backend-ram,id=m0,size=${half}M" -object "memory-backend-ram,id=m1,size=${half}M"
			-numa "node,nodeid=0,cpus=0,memdev=m0" -numa "node,nodeid=1,cpus=1,memdev=m1")
	fi
	log "booting $kv (TCG $TCG_THREADS-threaded, $smp vCPUs, ${MEM} MiB$([ "$nodes" = 2 ] && echo ', 2 NUMA nodes'), project $project); output in $out"
	start=$(date +%s)
	set +e
	timeout --foreground -k 10 "$TIMEOUT" qemu-system-x86_64 \
		-accel "tcg,thread=$TCG_THREADS" -cpu max -smp "$smp" -m "$MEM" "${numa_opts[@]}" \
		-nographic -no-reboot -nic none \
		-kernel "$vmlinuz" -initrd "$initrd" \
		-append "console=ttyS0 panic=-1 quiet loglevel=3 vm.out=$out vm.kmods=$dir/root/lib/modules/$kv" \
		-virtfs "local,path=/,mount_tag=host,security_model=none,readonly=on,multidevs=remap" \
		-virtfs "local,path=$out,mount_tag=out,security_model=none" </dev/null 2>&1 | tee "$out/console.log"
	local qrc=${PIPESTATUS[0]}
	set -e
	rc=$(cat "$out/rc" 2>/dev/null || echo none)
	if [ -s "$out/facts.jsonl" ]; then
		log "$series, $nodes node(s): facts recorded by the tests ($out/facts.jsonl):"
		sed 's/^/  /' "$out/facts.jsonl" >&2
	fi
	log "$series ($kv, $nodes node(s), $project): tests exited $rc, qemu $qrc, $(($(date +%s) - start)) s"
	if [ "$qrc" = 124 ]; then
		log "$series: timed out after $TIMEOUT s; console log in $out"
		return 1
	fi
	# Whatever the tests said, a guest kernel that oopsed or panicked is a failed run.
	if grep -qE 'Kernel panic|Oops:|BUG: |WARNING: CPU' "$out/console.log"; then
		log "$series: the guest kernel reported a fault (Oops/BUG/WARNING/panic): see $out/console.log"
		return 1
	fi
	[ "$rc" = 0 ] || return 1
	# Kept only when something failed, for its console log and junit report.
	rm -rf "$out"
}

failed=()
passed=()
for k in "${kernels[@]}"; do
	for b in "${boots[@]}"; do
		name="$k (${b%%:*} node(s), ${b#*:})"
		if run_kernel "$k" "${b%%:*}" "${b#*:}"; then passed+=("$name"); else failed+=("$name"); fi
	done
done
if [ ${#failed[@]} -gt 0 ]; then
	log "FAILED on: $(printf '%s; ' "${failed[@]}")"
	exit 1
fi
log "passed on: $(printf '%s; ' "${passed[@]}")"
