#!/usr/bin/env bash
# Build-cache benchmark: builds examples/hello-elixir with the rootfs
# builder cold (no build caches), again unchanged, and after a one-line
# change, and prints each as a ratio of the cold build. Target: <= 0.2.
# The root tree is made once before timing starts, as an image would be
# pulled once. Needs root (the rootfs builder uses systemd-nspawn).
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${RUNS:-3}
. scripts/deps.sh >/dev/null
go build -o bin/hoist ./cmd/hoist
hoist=$PWD/bin/hoist

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export HOIST_HOME=$work/home HOIST_CACHE=${HOIST_CACHE:-/var/cache/hoist/bench}
app=$work/app
cp -r examples/hello-elixir "$app"
cd "$app"
git init -q -b main
git add -A
git -c user.name=b -c user.email=b@example.invalid commit -qm bench

now() { date +%s.%N; }
build() { local t0; t0=$(now); "$hoist" build >/dev/null 2>"$work/build.log" || { cat "$work/build.log" >&2; exit 1; }; echo "$(now) - $t0" | bc; }

echo "warming the root tree (not timed)..." >&2
build >/dev/null
cold=() warm=() edit=()
for i in $(seq 1 "$runs"); do
  rm -rf "$HOIST_CACHE/caches"
  cold+=("$(build)")
  warm+=("$(build)")
  echo "# edit $i" >> lib/hello_elixir/web.ex
  git -c user.name=b -c user.email=b@example.invalid commit -qam "edit $i"
  edit+=("$(build)")
done
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
c=$(median "${cold[@]}") w=$(median "${warm[@]}") e=$(median "${edit[@]}")
printf 'runs: %d (median of each)\n' "$runs"
printf 'cold build (no caches):      %6.2f s\n' "$c"
printf 'second build, unchanged:     %6.2f s  ratio %.2f\n' "$w" "$(echo "$w / $c" | bc -l)"
printf 'build after one-line change: %6.2f s  ratio %.2f\n' "$e" "$(echo "$e / $c" | bc -l)"
