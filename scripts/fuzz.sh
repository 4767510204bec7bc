#!/usr/bin/env bash
# Runs every fuzz target in the repository for a bounded time each
# (FUZZTIME, default 30s). Name targets to run only those:
#   scripts/fuzz.sh FuzzFastHead
# The fuzzer keeps the inputs that found new coverage in Go's cache; with
# SAVE=1 they are copied into the package's testdata/fuzz/FuzzX/, which is
# committed, so that every plain `go test` replays them.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -d /usr/local/go/bin ] && export PATH="/usr/local/go/bin:$PATH"
fuzztime=${FUZZTIME:-30s}
want=" $* "
failed=0
while IFS= read -r line; do
  file=${line%%:*}
  target=$(sed -E 's/^func (Fuzz[A-Za-z0-9_]+).*/\1/' <<<"${line#*:}")
  [ $# -eq 0 ] || [[ "$want" == *" $target "* ]] || continue
  pkg=./$(dirname "$file")
  tags=$(sed -nE '1s#^//go:build (.*)#\1#p' "$file")
  echo "== $target ($pkg) for $fuzztime" >&2
  if ! go test ${tags:+-tags "$tags"} -run '^$' -fuzz "^$target\$" -fuzztime "$fuzztime" "$pkg"; then
    failed=1
  fi
  if [ "${SAVE:-0}" = 1 ]; then
    cache="$(go env GOCACHE)/fuzz/$(go list "$pkg")/$target"
    if [ -d "$cache" ]; then
      mkdir -p "$pkg/testdata/fuzz/$target"
      cp -n "$cache"/* "$pkg/testdata/fuzz/$target/"
    fi
  fi
done < <(grep -rn --include='*_test.go' -E '^func Fuzz[A-Za-z0-9_]+\(' . | sed -E 's#^\./##; s#:[0-9]+:#:#')
exit $failed
