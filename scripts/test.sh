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
                 # The proxy's concurrency (pools, drains, relays) under the
                 # race detector, which some of its tests need to see a bug.
                 go test -race -count=1 -timeout 10m ./internal/proxy/... "$@" ;;
    integration) go test -count=1 -timeout 20m -tags integration $(tagged integration) "$@" ;;
    lab)         go test -count=1 -timeout 75m -tags lab $(tagged lab) "$@" ;;
  esac
  echo "== $t tier passed in $(( $(date +%s) - start ))s" >&2
done
