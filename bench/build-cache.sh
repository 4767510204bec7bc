#!/usr/bin/env bash
# Build-cache benchmark: builds an example with the rootfs builder cold
# (no build caches), again unchanged, and after a one-line change, and
# prints each as a ratio of the cold build. Target: <= 0.2.
# APP=elixir (default): examples/hello-elixir, caches _build and deps.
# APP=go: examples/hello built with Debian trixie's Go, caching Go's
# build cache (/root/.cache/go-build).
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
case "${APP:-elixir}" in
elixir)
  cp -r examples/hello-elixir "$app"
  edit_file=lib/hello_elixir/web.ex ;;
go)
  mkdir -p "$app"
  cp examples/hello/main.go examples/hello/go.mod "$app"/
  cat > "$app/hoist.yml" <<'YML'
version: 1
app: hello-go
build:
  builder: rootfs
  distro: debian/trixie
  packages: [golang-go]
  command: CGO_ENABLED=0 go build -trimpath -o dist/hello .
  output: dist
  caches: [/root/.cache/go-build]
run:
  command: ./hello
YML
  edit_file=main.go ;;
*) echo "APP must be elixir or go" >&2; exit 2 ;;
esac
cd "$app"
comment='#'; [ "${APP:-elixir}" = go ] && comment='//'
git init -q -b main
git add -A
git -c user.name=b -c user.email=b@example.invalid commit -qm bench

now() { date +%s.%N; }
build() { local t0; t0=$(now); "$hoist" build "$@" >/dev/null 2>"$work/build.log" || { cat "$work/build.log" >&2; exit 1; }; echo "$(now) - $t0" | bc; }

echo "warming the root tree (not timed)..." >&2
build >/dev/null
cold=() warm=() rebuild=() edit=()
for i in $(seq 1 "$runs"); do
  # Cold: no build caches and no packed release of this source.
  rm -rf "$HOIST_CACHE/caches" "$HOIST_CACHE/releases"
  cold+=("$(build)")
  warm+=("$(build)")               # unchanged: the packed release is reused
  rebuild+=("$(build --rebuild)")  # unchanged, built again: directory caches only
  echo "# edit $i" | sed "s|^#|${comment:-#}|" >> "$edit_file"
  git -c user.name=b -c user.email=b@example.invalid commit -qam "edit $i"
  edit+=("$(build)")
done
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
c=$(median "${cold[@]}") w=$(median "${warm[@]}") r=$(median "${rebuild[@]}") e=$(median "${edit[@]}")
printf 'runs: %d (median of each)\n' "$runs"
printf 'cold build (no caches):      %6.2f s\n' "$c"
printf 'second build, unchanged:     %6.2f s  ratio %.2f\n' "$w" "$(echo "$w / $c" | bc -l)"
printf 'unchanged, --rebuild:        %6.2f s  ratio %.2f\n' "$r" "$(echo "$r / $c" | bc -l)"
printf 'build after one-line change: %6.2f s  ratio %.2f\n' "$e" "$(echo "$e / $c" | bc -l)"
