#!/usr/bin/env bash
# The whole test suite, tier by tier, each with its own time limit:
#
#   unit         go test ./...  no root, no servers, seconds
#   integration  -tags integration: real servers on loopback (Pebble...)
#   lab          -tags lab: boots lab hosts (systemd-nspawn machines in
#                network namespaces) and deploys to them; needs root
#
# Under CI=true a tier whose servers or lab cannot start fails; it never
# skips. Arguments after the tier names go to every go test call, e.g.
#   scripts/test.sh unit -run TestConfig
# With no tier named, all three run.
set -euo pipefail
cd "$(dirname "$0")/.."

tiers=()
while [ $# -gt 0 ]; do
  case "$1" in
    unit|integration|lab) tiers+=("$1"); shift ;;
    *) break ;;
  esac
done
[ ${#tiers[@]} -gt 0 ] || tiers=(unit integration lab)

needs_deps=0
for t in "${tiers[@]}"; do [ "$t" = unit ] || needs_deps=1; done
if [ "$needs_deps" = 1 ]; then
  . scripts/deps.sh
fi
[ -d /usr/local/go/bin ] && export PATH="/usr/local/go/bin:$PATH"
export PATH="$(go env GOPATH)/bin:$PATH"

go vet -tags integration,lab ./...
# The operator's side runs on macOS and Linux, amd64 and arm64: each
# target builds and vets (tests included), so that a call Linux alone
# has cannot slip into it; the Linux-only parts build as stubs there.
for target in linux/amd64 linux/arm64 darwin/amd64 darwin/arm64; do
  GOOS=${target%/*} GOARCH=${target#*/} go build -o /dev/null ./cmd/hoist
  GOOS=${target%/*} GOARCH=${target#*/} go vet -tags integration,lab ./...
done
# Those stubs, tested here: nolinux builds them on Linux.
go vet -tags nolinux,integration,lab ./...

# The packages that hold tests of a tier: those with a test file built
# only with its tag.
tagged() {
  grep -rlE --include='*.go' "^//go:build .*\b$1\b" . | xargs -r -n1 dirname | sort -u
}

for t in "${tiers[@]}"; do
  echo "== $t tier" >&2
  start=$(date +%s)
  case "$t" in
    unit)        go test -count=1 -timeout 10m ./... "$@"
                 # What each Linux-only verb says on macOS, with the stubs
                 # macOS builds (platform.Check, *_other.go).
                 go test -count=1 -timeout 5m -tags nolinux -run 'TestLinuxOnly' ./internal/cli "$@"
                 # The proxy's concurrency (pools, drains, relays) under the
                 # race detector, which some of its tests need to see a bug.
                 go test -race -count=1 -timeout 10m ./internal/proxy/... "$@" ;;
    integration) go test -count=1 -timeout 20m -tags integration $(tagged integration) "$@" ;;
    lab)         # A newcomer's first answer, timed: the demo as README gives it.
                 demo_start=$(date +%s)
                 bash scripts/demo.sh
                 echo "== demo answered in $(( $(date +%s) - demo_start ))s" >&2
                 bin/hoist lab down >&2
                 go test -count=1 -timeout 75m -tags lab $(tagged lab) "$@" ;;
  esac
  echo "== $t tier passed in $(( $(date +%s) - start ))s" >&2
done
