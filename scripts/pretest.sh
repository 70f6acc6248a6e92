#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# Brings what the tests load up to date: BPF objects, workload binaries and
# dist/. Runs before every `npm test`, so when nothing changed it must cost
# next to nothing: make is incremental, and tsc runs only if a source is newer
# than the stamp left by its last successful run.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
TSC_STAMP="$ROOT/dist/.tsc-stamp"

die() {
	printf 'pretest: %s\n' "$*" >&2
	exit 1
}

[ -x "$ROOT/node_modules/.bin/tsc" ] || die "node_modules is missing — run scripts/setup.sh"

# Concurrent `npm test` runs in one tree would otherwise build the same
# outputs at the same time; the second waits and then finds them up to date.
mkdir -p "$ROOT/.state"
exec 9>"$ROOT/.state/build.lock"
flock 9

if [ -f "$ROOT/bpf/Makefile" ]; then
	make -s -C "$ROOT/bpf" || die "make -C bpf failed (missing clang-16 or bpftool? run scripts/setup.sh)"
fi

make -s -C "$ROOT/tools" || die "make -C tools failed"

stale=
if [ ! -f "$TSC_STAMP" ]; then
	stale=1
elif [ -n "$(find "$ROOT/src" -name '*.ts' ! -name '*.test.ts' -newer "$TSC_STAMP" -print -quit)" ] ||
	[ "$ROOT/tsconfig.json" -nt "$TSC_STAMP" ] || [ "$ROOT/package-lock.json" -nt "$TSC_STAMP" ]; then
	stale=1
fi
if [ -n "$stale" ]; then
	"$ROOT/node_modules/.bin/tsc" -p "$ROOT/tsconfig.json" || die "tsc failed"
	mkdir -p "$(dirname "$TSC_STAMP")"
	touch "$TSC_STAMP"
fi
