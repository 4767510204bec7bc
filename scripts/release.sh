#!/usr/bin/env bash
# Release archives of hoist, one per operator platform, each with the
# host binaries beside the operator's, so that a Mac or an amd64 laptop
# sets up arm64 and amd64 hosts alike:
#
#   hoist_VERSION_OS_ARCH.tar.gz
#     hoist_VERSION_OS_ARCH/bin/hoist                  the operator's hoist
#     hoist_VERSION_OS_ARCH/lib/hoist/hoist-linux-amd64  what hosts run
#     hoist_VERSION_OS_ARCH/lib/hoist/hoist-linux-arm64
#     hoist_VERSION_OS_ARCH/lib/hoist/SHA256SUMS       their sums
#     hoist_VERSION_OS_ARCH/lib/hoist/BUILD            their version, commit
#   SHA256SUMS                                         the archives' sums
#
# Unpacked anywhere (tar -C /usr/local --strip-components=1 -xzf ...),
# bin/hoist finds ../lib/hoist, and hosts check each binary against
# SHA256SUMS before they run it. Every binary is static (no cgo),
# stripped, and stamped with the version and commit (hoist --version).
#
#   scripts/release.sh VERSION [OUTDIR]     default OUTDIR: dist/
#
# TARGETS (default: the four below) picks the operator platforms to
# archive; the host binaries are always both.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -d /usr/local/go/bin ] && export PATH="/usr/local/go/bin:$PATH"
version=${1:?usage: scripts/release.sh VERSION [OUTDIR]}
out=${2:-dist}
targets=${TARGETS:-linux/amd64 linux/arm64 darwin/amd64 darwin/arm64}
hosts="linux/amd64 linux/arm64"
commit=$(git rev-parse HEAD 2>/dev/null || echo unknown)
if [ -n "$(git status --porcelain 2>/dev/null)" ]; then commit="$commit+dirty"; fi
pkg=github.com/hoistdev/hoist/internal/cli
ldflags="-s -w -X $pkg.Version=$version -X $pkg.Commit=$commit"

mkdir -p "$out"
out=$(cd "$out" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

build() { # build OS/ARCH FILE
  echo "building hoist $version for $1" >&2
  CGO_ENABLED=0 GOOS=${1%/*} GOARCH=${1#*/} go build -trimpath -ldflags "$ldflags" -o "$2" ./cmd/hoist
}

mkdir -p "$work/lib"
for h in $hosts; do
  build "$h" "$work/lib/hoist-${h/\//-}"
done
(cd "$work/lib" && sha256sum hoist-* >SHA256SUMS)
# Which build they are: this hoist takes host binaries of its own build
# only (the binaries' own build information omits -ldflags).
echo "version $version, commit $commit" >"$work/lib/BUILD"

archives=()
for t in $targets; do
  name=hoist_${version}_${t/\//_}
  dir=$work/$name
  mkdir -p "$dir/bin" "$dir/lib/hoist"
  if [ -f "$work/lib/hoist-${t/\//-}" ]; then
    cp "$work/lib/hoist-${t/\//-}" "$dir/bin/hoist" # the same build as its hosts'
  else
    build "$t" "$dir/bin/hoist"
  fi
  cp "$work/lib/"* "$dir/lib/hoist/"
  cp README.md "$dir/"
  tar -C "$work" -czf "$out/$name.tar.gz" "$name"
  archives+=("$name.tar.gz")
done
(cd "$out" && sha256sum "${archives[@]}" >SHA256SUMS)
echo "wrote ${archives[*]} and SHA256SUMS to $out" >&2
