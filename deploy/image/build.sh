#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# Builds the agent's OCI image from Debian packages, without a container engine or daemon: mmdebstrap makes a
# Debian 13 (trixie) root file system holding only what the agent needs at run time (Debian's nodejs 20, libbpf1,
# CA certificates and their dependencies), the checkout's build output goes in under /opt/ebpf-tuner, and buildah
# commits the result with its config (entrypoint, environment, labels) to the local container storage
# (/var/lib/containers/storage), where podman, skopeo and buildah find it.
#
# trixie, not bookworm: bookworm's nodejs is 18, below what the agent supports; trixie's is 20, security-supported by
# Debian for trixie's lifetime. What goes in from the checkout: dist/ (without tests), bpf/.output/*.bpf.o,
# bin/ebpf-tuner, package.json, and the production dependencies, installed by `npm ci --omit=dev` in a staging copy
# (the checkout's node_modules is not touched) with this host's Node, which must be the same major version as the
# image's so that the native modules (better-sqlite3) match; the build loads them with the image's Node to make sure.
# Downloaded .debs are kept in $EBPF_TUNER_IMAGE_CACHE (default /var/cache/ebpf-tuner/image) for the next build.
#
#   deploy/image/build.sh [--tag NAME:TAG] [--oci-archive FILE]
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd -P)
CACHE=${EBPF_TUNER_IMAGE_CACHE:-/var/cache/ebpf-tuner/image}
MIRROR=${EBPF_TUNER_IMAGE_MIRROR:-http://deb.debian.org/debian}
SECURITY_MIRROR=${EBPF_TUNER_IMAGE_SECURITY_MIRROR:-http://deb.debian.org/debian-security}
SUITE=trixie
# The Node.js major version of trixie's nodejs package; the staging npm ci must run on the same one.
NODE_MAJOR=20
# What the agent needs at run time beyond the essential set (which brings /bin/sh, the DaemonSet's entrypoint shell):
# Node.js, and libbpf.so.1, loaded through koffi. Test tools (stress-ng, bpftrace, perf, chromium) and compilers
# stay out.
RUNTIME_PACKAGES=(nodejs libbpf1 ca-certificates)

usage() {
	cat <<'USAGE'
usage: deploy/image/build.sh [--tag NAME:TAG] [--oci-archive FILE]
  --tag NAME:TAG       image name (default: ebpf-tuner:<version in package.json>, the name the Kubernetes
                       manifests use; stored as localhost/ebpf-tuner:<version>)
  --oci-archive FILE   also write the image as an OCI archive (for `ctr images import`, `skopeo copy`, a registry)
environment: EBPF_TUNER_IMAGE_CACHE (.deb cache, default /var/cache/ebpf-tuner/image),
             EBPF_TUNER_IMAGE_MIRROR, EBPF_TUNER_IMAGE_SECURITY_MIRROR (Debian mirrors)
Run as root, after scripts/setup.sh (which installs mmdebstrap, buildah and skopeo and builds the checkout).
USAGE
}

die() {
	printf 'image: error: %s\n' "$*" >&2
	exit 1
}
usage_error() {
	usage >&2
	printf 'image: error: %s\n' "$*" >&2
	exit 2
}
log() { printf 'image: %s\n' "$*" >&2; }

VERSION=$(node -p "require('$ROOT/package.json').version")
TAG="ebpf-tuner:$VERSION"
ARCHIVE=
while [ $# -gt 0 ]; do
	case "$1" in
	--tag)
		[ $# -ge 2 ] || usage_error "--tag needs a value (NAME:TAG)"
		TAG=$2
		shift 2
		;;
	--oci-archive)
		[ $# -ge 2 ] || usage_error "--oci-archive needs a file name"
		ARCHIVE=$2
		shift 2
		;;
	-h | --help)
		usage
		exit 0
		;;
	*) usage_error "unknown option: $1" ;;
	esac
done
case "$TAG" in
*:*) ;;
*) usage_error "--tag $TAG: name it NAME:TAG (e.g. ebpf-tuner:$VERSION)" ;;
esac

# --- preflight --------------------------------------------------------------
[ "$(id -u)" = 0 ] || die "root is needed (mmdebstrap creates device nodes and buildah writes /var/lib/containers) — fix: run as root"
for tool in mmdebstrap buildah npm apt-get dpkg-query; do
	command -v "$tool" >/dev/null || die "$tool not found — fix: run scripts/setup.sh (it installs mmdebstrap, buildah and skopeo)"
done
[ -z "$ARCHIVE" ] || command -v skopeo >/dev/null || die "skopeo not found (needed for --oci-archive) — fix: run scripts/setup.sh"
host_major=$(node -p 'process.versions.node.split(".")[0]')
[ "$host_major" = "$NODE_MAJOR" ] ||
	die "this host runs Node.js $(node -v), the image's ($SUITE) is $NODE_MAJOR: the production dependencies are installed here and their native modules must match the image's Node — fix: run the build on a host with Node.js $NODE_MAJOR"
# Up-to-date build output: make and tsc run only if something changed.
bash "$ROOT/scripts/pretest.sh" || die "building the checkout failed — fix: run scripts/setup.sh"
objects=("$ROOT"/bpf/.output/*.bpf.o)
[ -e "${objects[0]}" ] || die "no BPF objects in $ROOT/bpf/.output — fix: run scripts/setup.sh"

WORK=$(mktemp -d /var/tmp/ebpf-tuner-image.XXXXXX)
ctr=
cleanup() {
	[ -z "$ctr" ] || buildah rm "$ctr" >/dev/null 2>&1 || true
	rm -rf "$WORK"
}
trap cleanup EXIT
started=$(date +%s)

# --- stage the application --------------------------------------------------
log "staging /opt/ebpf-tuner (npm ci --omit=dev in a copy)"
APP="$WORK/app"
mkdir -p "$APP/bin" "$APP/bpf/.output"
cp "$ROOT/package.json" "$ROOT/package-lock.json" "$APP/"
cp "$ROOT/bin/ebpf-tuner" "$APP/bin/"
cp "${objects[@]}" "$APP/bpf/.output/"
# dist/ without the compiled tests and source maps of tests.
(cd "$ROOT" && find dist -type f ! -name '*.test.js' ! -name '*.test.js.map' ! -name '.tsc-stamp' -print0) |
	(cd "$ROOT" && xargs -0 cp --parents -t "$APP")
# The dashboard's static files are served from beside the compiled code.
mkdir -p "$APP/dist/dashboard"
cp "$ROOT"/src/dashboard/*.html "$ROOT"/src/dashboard/*.js "$ROOT"/src/dashboard/*.css "$APP/dist/dashboard/"
[ -f "$APP/dist/cli/main.js" ] || die "dist/cli/main.js is missing after staging — fix: run scripts/setup.sh"
npm --prefix "$APP" ci --omit=dev --no-audit --no-fund --loglevel=error >&2 ||
	die "npm ci --omit=dev failed in the staging copy $APP"
rm -f "$APP/package-lock.json"

mkdir -p "$CACHE/debs"

# --- root file system ---------------------------------------------------------
log "mmdebstrap $SUITE ($MIRROR): essential set + ${RUNTIME_PACKAGES[*]}"
# essential/unlink is skipped so the essential packages' .debs stay for sync-out to the cache; the cleanup step
# empties /var/cache/apt/archives before the tarball is written either way.
mmdebstrap --variant=essential --mode=root --format=tar --skip=essential/unlink \
	--include="$(IFS=,; echo "${RUNTIME_PACKAGES[*]}")" \
	--dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/doc/*' \
	--dpkgopt='path-include=/usr/share/doc/*/copyright' --dpkgopt='path-exclude=/usr/share/locale/*' \
	--dpkgopt='path-exclude=/usr/share/info/*' \
	--setup-hook='mkdir -p "$1/var/cache/apt/archives"' \
	--setup-hook="sync-in $CACHE/debs /var/cache/apt/archives/" \
	--customize-hook="sync-out /var/cache/apt/archives $CACHE/debs" \
	--customize-hook='rm -f "$1"/var/cache/apt/archives/*.deb' \
	--customize-hook="copy-in $APP /opt/" \
	--customize-hook='mv "$1/opt/app" "$1/opt/ebpf-tuner" && chown -R 0:0 "$1/opt/ebpf-tuner"' \
	--customize-hook='ln -s /opt/ebpf-tuner/bin/ebpf-tuner "$1/usr/local/bin/ebpf-tuner"' \
	--customize-hook='mkdir -p "$1/var/lib/ebpf-tuner" "$1/etc/ebpf-tuner" && chmod 0700 "$1/var/lib/ebpf-tuner"' \
	--customize-hook='chroot "$1" node -e "new (require(\"/opt/ebpf-tuner/node_modules/better-sqlite3\"))(\":memory:\").close(); require(\"/opt/ebpf-tuner/node_modules/koffi\").load(\"libbpf.so.1\")"' \
	--customize-hook="chroot \"\$1\" dpkg-query -W -f='\${Version}' nodejs > $WORK/nodejs-version" \
	"$SUITE" "$WORK/rootfs.tar" \
	"deb $MIRROR $SUITE main" "deb $MIRROR $SUITE-updates main" "deb $SECURITY_MIRROR $SUITE-security main" >&2 ||
	die "mmdebstrap failed (network, mirror $MIRROR?)"

# --- image --------------------------------------------------------------------
node_version=$(cat "$WORK/nodejs-version")
log "buildah: committing $TAG"
revision=$(git -C "$ROOT" rev-parse HEAD 2>/dev/null || echo unknown)
ctr=$(buildah from scratch)
buildah add --quiet "$ctr" "$WORK/rootfs.tar" / >/dev/null
# ENTRYPOINT is the CLI and CMD its default command, so `podman run IMAGE` starts the agent and
# `podman run IMAGE check` runs another command; the DaemonSet sets its own command (a shell that rolls back).
buildah config \
	--entrypoint '["/usr/local/bin/ebpf-tuner"]' --cmd run \
	--env NODE_ENV=production --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
	--workingdir / --port 9479/tcp --stop-signal SIGTERM \
	--label org.opencontainers.image.title=ebpf-tuner \
	--label org.opencontainers.image.description="Always-on Linux tuner agent: CO-RE eBPF telemetry, safe reversible cgroup nudges" \
	--label org.opencontainers.image.version="$VERSION" \
	--label org.opencontainers.image.revision="$revision" \
	--label org.opencontainers.image.licenses=MIT \
	--label org.opencontainers.image.base.name="debian:$SUITE" \
	--label io.ebpf-tuner.nodejs="$node_version" \
	--created-by "deploy/image/build.sh" \
	"$ctr"
image_id=$(buildah commit --quiet --rm "$ctr" "$TAG")
ctr=
size=$(buildah images --noheading --format '{{.Size}}' "$image_id" 2>/dev/null | head -n1 || true)
if [ -n "$ARCHIVE" ]; then
	log "writing $ARCHIVE"
	rm -f "$ARCHIVE"
	skopeo copy --quiet "containers-storage:$image_id" "oci-archive:$ARCHIVE:$TAG" >&2
fi
log "built $TAG (image ${image_id:0:12}, ${size:-size unknown}) in $(($(date +%s) - started)) s"
echo "$image_id"
