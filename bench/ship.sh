#!/usr/bin/env bash
# Shipping benchmark (issue 11), in one run, as root, on a lab of twelve
# hosts behind a slow uplink from this machine (tc: UPLINK each way,
# default 20mbit) while the hosts talk to each other at full speed:
#
#   1. bytes sent and wall time to put a release on a host that holds the
#      previous one, after a one-line change, for (a) examples/hello-elixir,
#      (b) examples/hello (Go), (c) examples/hello with a 50 MB directory
#      of assets that do not change: hoist (deploy --stage: the transfer
#      alone, checks included), hoist sending the whole release
#      (--stage --full), and `rsync -az` of the release directory into a
#      copy of the previous release on the host (ROUNDS rounds of hoist
#      and rsync, default 5, the median kept; the full upload once);
#   2. the wall time of a first deploy (transfer, start, health check,
#      switch) of (c) to 1 host and to 12 hosts.
#
# Bytes are counted on the lab bridge: what this machine sent to the hosts
# (TCP and SSH included), and what it received. It prints a Markdown table
# and checks the targets: (a) sends at most 2% of the release; every case
# sends no more than rsync and takes no longer; 12 hosts take at most 2x
# the time of 1. Environment: UPLINK, HOIST_BENCH_CACHE (builds and the
# Elixir build tree, kept between runs; default /var/cache/hoist-bench).
# Run it under `flock /tmp/hoist-bench.lock`.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -d /usr/local/go/bin ] && export PATH="/usr/local/go/bin:$PATH"
uplink=${UPLINK:-20mbit}
rounds=${ROUNDS:-5}
lab=shipb
command -v rsync >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq rsync >/dev/null; }

work=$(mktemp -d)
export HOIST_HOME=$work/home HOIST_CACHE=${HOIST_BENCH_CACHE:-/var/cache/hoist-bench} NO_COLOR=1
mkdir -p "$HOIST_CACHE"
go build -o "$work/hoist" ./cmd/hoist
h() { "$work/hoist" "$@"; }
log=$work/log
cleanup() {
  local rc=$?
  if [ "$rc" != 0 ] && [ -f "$log" ]; then
    echo "failed; the end of the log:" >&2
    tail -n 40 "$log" >&2
  fi
  h lab down --name "$lab" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

echo "booting 12 lab hosts" >&2
h lab up --name "$lab" --hosts 12 >"$work/hosts"
mapfile -t hosts <"$work/hosts"
br=hlb-$lab
sshopts="-i $HOIST_HOME/lab/id_ed25519 -o UserKnownHostsFile=$HOIST_HOME/known_hosts -o StrictHostKeyChecking=yes -o LogLevel=ERROR"
onhost() { local host=$1; shift; ssh $sshopts "root@$host" "$@"; }
tx() { cat "/sys/class/net/$br/statistics/tx_bytes"; }
rx() { cat "/sys/class/net/$br/statistics/rx_bytes"; }
now() { date +%s.%N; }

# app NAME EXAMPLE PORT HOSTS... makes a repository from an example, for
# hosts, serving on PORT.
app() {
  local name=$1 example=$2 port=$3; shift 3
  local dir=$work/apps/$name
  mkdir -p "$dir"
  cp -r "examples/$example/." "$dir/"
  local list
  list=$(IFS=,; echo "$*")
  sed -i -e "s/^app: .*/app: $name/" -e "s/^hosts: .*/hosts: [$list]/" -e "s/^  port: .*/  port: $port/" "$dir/hoist.yml"
  printf 'ssh:\n  parallel: 12\n' >>"$dir/hoist.yml"
  git -C "$dir" init -q -b main
  commit "$dir" initial
}
commit() { git -C "$1" add -A && git -C "$1" -c user.name=b -c user.email=b@x.invalid commit -qm "$2"; }
# assets DIR puts 50 files of 1 MiB that do not compress into the release.
assets() {
  mkdir -p "$1/assets"
  for i in $(seq 1 50); do head -c 1048576 /dev/urandom >"$1/assets/a$i.bin"; done
  sed -i 's#^  command: CGO_ENABLED=0 go build .*$#& \&\& cp -r assets dist/#' "$1/hoist.yml"
  commit "$1" assets
}
onechange() { # a one-line change in the app's source
  case "$2" in
    elixir) sed -i 's/hello from release/hello there from release/' "$1/lib/hello_elixir/web.ex" ;;
    *) sed -i 's/hello from release %s/hello there from release %s/' "$1/main.go" ;;
  esac
  commit "$1" "one line"
}
deployed() { (cd "$1" && h deploy "${@:2}" 2>>"$log"); }

cases=(elixir go assets)
declare -A example=([elixir]=hello-elixir [go]=hello [assets]=hello)
declare -A port=([elixir]=4000 [go]=3001 [assets]=3002 [fanout1]=3003 [fanout12]=3004)
for c in "${cases[@]}"; do
  app "$c" "${example[$c]}" "${port[$c]}" "${hosts[0]}" "${hosts[1]}" "${hosts[2]}"
  if [ "$c" = assets ]; then assets "$work/apps/$c"; fi
  if [ "$c" = elixir ]; then (cd "$work/apps/$c" && h secrets gen SECRET_KEY_BASE >>"$log" 2>&1 && commit . secrets); fi
done
for n in 1 12; do
  app "fanout$n" hello "${port[fanout$n]}" "${hosts[@]:12-n:n}"
  assets "$work/apps/fanout$n"
done

echo "setting up hosts and deploying the previous releases (full speed)" >&2
declare -A prev
for c in "${cases[@]}" fanout1 fanout12; do
  (cd "$work/apps/$c" && h setup >>"$log" 2>&1)
done
for c in "${cases[@]}"; do
  prev[$c]=$(deployed "$work/apps/$c")
  onechange "$work/apps/$c" "$c"
  (cd "$work/apps/$c" && h build >>"$log" 2>&1)
done
for n in 1 12; do (cd "$work/apps/fanout$n" && h build >>"$log" 2>&1); done
# rsync on the host it copies to: Debian's own, as on this machine.
mkdir -p "$work/debs" && (cd "$work/debs" && apt-get download -qq rsync libpopt0 libxxhash0 >>"$log" 2>&1)
scp $sshopts -q "$work"/debs/*.deb "root@${hosts[2]}:/tmp/"
onhost "${hosts[2]}" 'dpkg -i /tmp/*.deb >/dev/null'

h lab up --name "$lab" --hosts 12 --uplink "$uplink" >/dev/null
echo "uplink limited to $uplink each way" >&2

# measure LABEL CMD... runs CMD and prints LABEL, bytes sent, received, seconds.
measure() {
  local label=$1; shift
  local b0 r0 t0 t1
  b0=$(tx); r0=$(rx); t0=$(now)
  "$@" >>"$log" 2>&1
  t1=$(now)
  echo "$label $(( $(tx) - b0 )) $(( $(rx) - r0 )) $(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.2f", b-a}')"
}

results=$work/results
: >"$results"
for c in "${cases[@]}"; do
  dir=$work/apps/$c
  json=$(cd "$dir" && h build --json 2>>"$log")
  size=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["manifest"]["size"])' <<<"$json")
  id=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["manifest"]["id"])' <<<"$json")
  tarball=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["path"])' <<<"$json")
  mkdir -p "$work/tree-$c" && tar -I zstd -xf "$tarball" -C "$work/tree-$c"
  content=$(du -sb --apparent-size "$work/tree-$c" | cut -f1)
  echo "case $c: release ${size} bytes packed, ${content} bytes of files" >&2
  echo "size $c $size $content" >>"$results"
  for r in $(seq 1 "$rounds"); do
    # Each round starts from the previous release alone on the host.
    onhost "${hosts[0]}" "rm -rf /var/lib/hoist/$c/releases/$id /var/lib/hoist/$c/uploads/*"
    measure "hoist $c" deployed "$dir" --stage --host "${hosts[0]}" >>"$results"
    onhost "${hosts[2]}" "rm -rf /var/lib/hoist/rsync-$c && cp -al /var/lib/hoist/$c/releases/${prev[$c]} /var/lib/hoist/rsync-$c"
    measure "rsync $c" rsync -az -e "ssh $sshopts" "$work/tree-$c/" "root@${hosts[2]}:/var/lib/hoist/rsync-$c/" >>"$results"
  done
  measure "full $c" deployed "$dir" --stage --full --host "${hosts[1]}" >>"$results"
done
for n in 1 12; do
  measure "fanout $n" deployed "$work/apps/fanout$n" >>"$results"
done

python3 - "$results" "$uplink" <<'EOF'
import sys
rows = [l.split() for l in open(sys.argv[1])]
size = {r[1]: (int(r[2]), int(r[3])) for r in rows if r[0] == "size"}
runs = {}
for r in rows:
    if r[0] != "size":
        runs.setdefault((r[0], r[1]), []).append((int(r[2]), int(r[3]), float(r[4])))
def median(v): return sorted(v)[len(v) // 2]
# Each measure's median time, with the bytes of that round, and the
# range of its times.
m = {k: median([(t, s, r) for s, r, t in v]) for k, v in runs.items()}
m = {k: (s, r, t) for k, (t, s, r) in m.items()}
spread = {k: (min(t for _, _, t in v), max(t for _, _, t in v)) for k, v in runs.items()}
def kib(n): return f"{n/1024:,.1f} KiB" if n < 1 << 20 else f"{n/(1<<20):,.2f} MiB"
names = {"elixir": "(a) Elixir example", "go": "(b) Go example", "assets": "(c) Go + 50 MB of assets"}
print(f"Uplink {sys.argv[2]} each way. Sent/received: bytes through the uplink (TCP and SSH included); time: the median of {len(runs[('hoist', 'go')])} rounds (the full upload: one).\n")
print("| case | release (packed / files) | how | sent | received | time (range) | sent, of the release |")
print("|---|---|---|---|---|---|---|")
ok = True
for c in ["elixir", "go", "assets"]:
    packed, files = size[c]
    for how, label in [("hoist", "hoist"), ("full", "hoist --full"), ("rsync", "rsync -az")]:
        s, r, t = m[(how, c)]
        lo, hi = spread[(how, c)]
        times = f"{t:.2f} s" if lo == hi else f"{t:.2f} s ({lo:.2f}–{hi:.2f})"
        print(f"| {names[c]} | {kib(packed)} / {kib(files)} | {label} | {kib(s)} | {kib(r)} | {times} | {100*s/packed:.2f}% |")
    hs, _, ht = m[("hoist", c)]
    rs, _, rt = m[("rsync", c)]
    if hs > rs or ht > rt:
        ok = False
        print(f"\nMISSED: {c}: hoist sent {hs} bytes in {ht:.2f} s, rsync {rs} in {rt:.2f} s\n")
    if c == "elixir" and hs > 0.02 * packed:
        ok = False
        print(f"\nMISSED: (a) sent {100*hs/packed:.2f}% of the release, target 2%\n")
one, twelve = m[("fanout", "1")][2], m[("fanout", "12")][2]
print(f"\n| first deploy of (c) | time | sent |\n|---|---|---|")
print(f"| 1 host | {one:.2f} s | {kib(m[('fanout','1')][0])} |")
print(f"| 12 hosts | {twelve:.2f} s ({twelve/one:.2f}x) | {kib(m[('fanout','12')][0])} |")
if twelve > 2 * one:
    ok = False
    print(f"\nMISSED: 12 hosts took {twelve/one:.2f}x the time of 1, target 2x")
print("\nall targets met" if ok else "\nsome targets missed")
EOF
