#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# Installs what ebpf-tuner needs on a Debian/Ubuntu host and builds it.
# Run as root. Safe to re-run: every step does work only when something is
# missing or stale, so a second run on a set-up host takes seconds.
set -euo pipefail

usage() {
	cat <<'EOF'
usage: scripts/setup.sh [--quiet] [--strict] [--runtime]
  --quiet    print only warnings and errors (a failing step still shows its output)
  --strict   fail when a listed package has no apt candidate
             (default: warn, and let the build steps fail if it was needed)
  --runtime  install only what the agent needs to run (scripts/apt-packages-runtime.txt, plus the BPF
             compiler only when bpf/.output has no prebuilt objects): no test workloads, no test or benchmark
             tools (chromium, stress-ng, bpftrace, perf, prometheus, qemu), no image build tools
EOF
}

QUIET=0
STRICT=0
RUNTIME=0
for arg in "$@"; do
	case "$arg" in
	--quiet) QUIET=1 ;;
	--strict) STRICT=1 ;;
	--runtime) RUNTIME=1 ;;
	-h | --help)
		usage
		exit 0
		;;
	*)
		usage >&2
		printf 'setup: error: unknown option: %s\n' "$arg" >&2
		exit 2
		;;
	esac
done

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
PKG_LIST="$ROOT/scripts/apt-packages.txt"
# What compiles the BPF objects; a runtime install needs it only when no prebuilt objects are there.
BPF_BUILD_PACKAGES=(clang-16 llvm-16 bpftool libbpf-dev make)
BPF_OBJECTS=(probe runqlat futex blkio net)
bpf_prebuilt() {
	local o
	for o in "${BPF_OBJECTS[@]}"; do [ -f "$ROOT/bpf/.output/$o.bpf.o" ] || return 1; done
}
[ "$RUNTIME" = 0 ] || PKG_LIST="$ROOT/scripts/apt-packages-runtime.txt"
UNIT_SRC="$ROOT/deploy/systemd/ebpf-tuner.service"
UNIT_DST=/etc/systemd/system/ebpf-tuner.service
LINK=/usr/local/bin/ebpf-tuner
LAUNCHER="$ROOT/bin/ebpf-tuner"
# pretest.sh compares sources against this to skip an up-to-date tsc run.
TSC_STAMP="$ROOT/dist/.tsc-stamp"

export DEBIAN_FRONTEND=noninteractive
# Another apt run (unattended-upgrades, a parallel setup) holds the dpkg lock
# for a while; waiting beats failing.
APT_OPTS=(-o DPkg::Lock::Timeout=600)

STEP_LOG=$(mktemp)
# Debian's way to keep maintainer scripts from starting services: invoke-rc.d (and deb-systemd-invoke) ask
# /usr/sbin/policy-rc.d first, and exit code 101 means "action forbidden". Placed only around apt-get install, and
# only when the host has none: a policy of the host's own is left as it is.
POLICY_RC_D=/usr/sbin/policy-rc.d
PLACED_POLICY_RC_D=0
cleanup() {
	rm -f "$STEP_LOG"
	if [ "$PLACED_POLICY_RC_D" = 1 ]; then rm -f "$POLICY_RC_D"; fi
}
trap cleanup EXIT
# A signal ends the script through exit, so the EXIT trap still removes what it placed.
trap 'exit 130' INT
trap 'exit 143' TERM HUP

log() { if [ "$QUIET" = 0 ]; then printf 'setup: %s\n' "$*" >&2; fi; }
warn() { printf 'setup: warning: %s\n' "$*" >&2; }
die() {
	printf 'setup: error: %s\n' "$*" >&2
	exit 1
}

# run STEP CMD...: all tool output goes to stderr so stdout stays clean; with
# --quiet it is held back and shown only when the step fails.
run() {
	local step=$1
	shift
	if [ "$QUIET" = 1 ]; then
		if ! "$@" >"$STEP_LOG" 2>&1; then
			cat "$STEP_LOG" >&2
			die "step '$step' failed: $*"
		fi
	elif ! "$@" >&2; then
		die "step '$step' failed: $*"
	fi
}

is_root() { [ "$(id -u)" = 0 ]; }

# --- preflight --------------------------------------------------------------
log "==> preflight"
for tool in apt-get apt-cache dpkg-query flock; do
	command -v "$tool" >/dev/null ||
		die "step 'preflight': $tool not found; this script supports Debian and Ubuntu"
done
command -v node >/dev/null || die "step 'preflight': node not found; Node.js >= 20 is required"
command -v npm >/dev/null || die "step 'preflight': npm not found; it ships with Node.js >= 20"
node_major=$(node -p 'process.versions.node.split(".")[0]')
[ "$node_major" -ge 20 ] || die "step 'preflight': Node.js $(node -v) is too old; >= 20 is required"
[ -r "$PKG_LIST" ] || die "step 'preflight': cannot read $PKG_LIST"

# --- packages ---------------------------------------------------------------
log "==> packages ($PKG_LIST)"
mapfile -t packages < <(sed -e 's/#.*//' -e 's/[[:space:]]//g' "$PKG_LIST" | grep -v '^$')
if [ "$RUNTIME" = 1 ] && ! bpf_prebuilt; then
	log "no prebuilt BPF objects in bpf/.output: adding the compiler (${BPF_BUILD_PACKAGES[*]})"
	packages+=("${BPF_BUILD_PACKAGES[@]}")
fi
missing=()
for pkg in "${packages[@]}"; do
	status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
	[ "$status" = "install ok installed" ] || missing+=("$pkg")
done

if [ "${#missing[@]}" -gt 0 ]; then
	is_root || die "step 'packages': root is needed to install: ${missing[*]}"
	log "missing: ${missing[*]}"
	run "apt-get update" apt-get "${APT_OPTS[@]}" update
fi

# Checked after any update, so a fresh host's empty package lists do not make
# everything look unavailable.
unavailable=()
for pkg in "${packages[@]}"; do
	candidate=$(apt-cache policy "$pkg" 2>/dev/null | sed -n 's/^ *Candidate: *//p')
	if [ -z "$candidate" ] || [ "$candidate" = "(none)" ]; then
		unavailable+=("$pkg")
	fi
done
if [ "${#unavailable[@]}" -gt 0 ]; then
	msg="no apt candidate for: ${unavailable[*]} (on Ubuntu, bpftool and perf come from linux-tools-\$(uname -r))"
	[ "$STRICT" = 1 ] && die "step 'packages': $msg"
	warn "$msg"
fi

to_install=()
for pkg in "${missing[@]}"; do
	case " ${unavailable[*]} " in
	*" $pkg "*) ;;
	*) to_install+=("$pkg") ;;
	esac
done
if [ "${#to_install[@]}" -gt 0 ]; then
	# Packages with a daemon (prometheus, nginx, redis-server) would otherwise be started by their postinst where an
	# init system runs, holding :9090, :80 and :6379: the tests and benchmarks start their own instances instead.
	if [ ! -e "$POLICY_RC_D" ] && [ ! -L "$POLICY_RC_D" ]; then
		printf '#!/bin/sh\n# Placed by ebpf-tuner scripts/setup.sh while apt-get install runs: start no services.\nexit 101\n' >"$POLICY_RC_D"
		chmod 0755 "$POLICY_RC_D"
		PLACED_POLICY_RC_D=1
	fi
	run "apt-get install" apt-get "${APT_OPTS[@]}" install -y --no-install-recommends "${to_install[@]}"
	if [ "$PLACED_POLICY_RC_D" = 1 ]; then
		rm -f "$POLICY_RC_D"
		PLACED_POLICY_RC_D=0
	fi
fi
# The tests and benchmarks start their own Prometheus, nginx and redis-server (temp config, data dir and port). The
# packaged daemons would only hold a port and a data dir: keep them from starting at boot, and stop them where a
# policy-rc.d of the host's own let the postinst start them — but only when this run installed the package, so an
# operator's own service is left alone.
for svc in prometheus nginx redis-server; do
	case " ${to_install[*]} " in
	*" $svc "*) ;;
	*) continue ;;
	esac
	if [ -d /run/systemd/system ]; then
		systemctl disable --now "$svc.service" >&2 || warn "could not stop the packaged $svc service"
	elif [ -x "/etc/init.d/$svc" ]; then
		{ "/etc/init.d/$svc" stop && update-rc.d "$svc" disable; } >&2 || warn "could not stop the packaged $svc service"
	fi
done
log "packages: ${#packages[@]} listed, $((${#packages[@]} - ${#unavailable[@]})) available in apt, ${#to_install[@]} installed now"

# Catch a missing compiler here, with its name, rather than deep in a Makefile.
need=()
[ "$RUNTIME" = 1 ] || need+=(make cc)
if [ -f "$ROOT/bpf/Makefile" ] && { [ "$RUNTIME" = 0 ] || ! bpf_prebuilt; }; then
	need+=(make clang-16 bpftool)
fi
for tool in "${need[@]}"; do
	command -v "$tool" >/dev/null || die "step 'packages': '$tool' is not installed (see $PKG_LIST)"
done

# --- node modules -----------------------------------------------------------
# npm writes node_modules/.package-lock.json on every install; a lockfile newer
# than it means dependencies changed since.
if [ ! -d "$ROOT/node_modules" ] || [ "$ROOT/package-lock.json" -nt "$ROOT/node_modules/.package-lock.json" ]; then
	log "==> npm ci"
	[ -f "$ROOT/package-lock.json" ] || die "step 'npm ci': $ROOT/package-lock.json is missing"
	npm_opts=(--no-audit --no-fund)
	[ "$QUIET" = 1 ] && npm_opts+=(--loglevel=error)
	run "npm ci" npm --prefix "$ROOT" ci "${npm_opts[@]}"
else
	log "==> npm ci: node_modules is up to date"
fi

# --- build ------------------------------------------------------------------
# Shared with scripts/pretest.sh: two builds writing the same objects at once
# (a test run started while setup is building) would corrupt them.
mkdir -p "$ROOT/.state"
exec 9>"$ROOT/.state/build.lock"
flock 9

if [ "$RUNTIME" = 1 ] && bpf_prebuilt; then
	log "==> make -C bpf: prebuilt objects in bpf/.output, not rebuilt (--runtime)"
elif [ -f "$ROOT/bpf/Makefile" ]; then
	log "==> make -C bpf"
	run "make -C bpf" make -C "$ROOT/bpf"
else
	log "==> make -C bpf: no bpf/Makefile, skipped"
fi

log "==> tsc"
run "tsc" "$ROOT/node_modules/.bin/tsc" -p "$ROOT/tsconfig.json"
mkdir -p "$(dirname "$TSC_STAMP")"
touch "$TSC_STAMP"

if [ "$RUNTIME" = 1 ]; then
	log "==> make -C tools: test workloads, skipped (--runtime)"
else
	log "==> make -C tools"
	run "make -C tools" make -C "$ROOT/tools"
fi

# --- install ----------------------------------------------------------------
if [ ! -f "$UNIT_SRC" ]; then
	log "==> systemd unit: $UNIT_SRC does not exist, skipped"
elif [ "$(cat /proc/1/comm 2>/dev/null)" != systemd ]; then
	log "==> systemd unit: systemd is not PID 1, skipped"
elif cmp -s "$UNIT_SRC" "$UNIT_DST"; then
	log "==> systemd unit: $UNIT_DST is up to date"
else
	log "==> systemd unit: installing $UNIT_DST (not enabled or started)"
	is_root || die "step 'systemd unit': root is needed to write $UNIT_DST"
	run "systemd unit" install -m 0644 "$UNIT_SRC" "$UNIT_DST"
	run "systemd unit" systemctl daemon-reload
	log "start it with: systemctl enable --now ebpf-tuner"
fi

[ -x "$LAUNCHER" ] || chmod +x "$LAUNCHER"
if [ "$(readlink "$LINK" 2>/dev/null || true)" = "$LAUNCHER" ]; then
	log "==> link: $LINK is up to date"
else
	log "==> link: $LINK -> $LAUNCHER"
	# A regular file there is someone else's install; replacing it silently
	# would hide which copy runs.
	if [ -e "$LINK" ] && [ ! -L "$LINK" ]; then
		die "step 'link': $LINK exists and is not a symlink; remove it and re-run"
	fi
	mkdir -p "$(dirname "$LINK")" 2>/dev/null || true
	[ -w "$(dirname "$LINK")" ] || die "step 'link': cannot write $(dirname "$LINK") (run as root)"
	run "link" ln -sfn "$LAUNCHER" "$LINK"
fi

if [ "$RUNTIME" = 1 ]; then log "done: run 'ebpf-tuner check', then 'ebpf-tuner run'"; else log "done: run 'npm test', or 'ebpf-tuner --help'"; fi
