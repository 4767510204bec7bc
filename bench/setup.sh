#!/usr/bin/env bash
# Setting up a fleet (issue 21), in one run, as root: twelve fresh lab
# hosts behind a slow uplink from this machine (tc: UPLINK each way,
# default 20mbit) while the hosts talk to each other at full speed:
#
#   1. hoist setup of the twelve hosts, which have no hoist yet: the
#      hoist binary (built as scripts/release.sh builds it: static,
#      stripped) goes to every host;
#   2. the first deploy of examples/hello (a 4.5 MiB release) to them;
#   3. hoist setup again, which has nothing to send;
#   4. with BEFORE=REV (a commit, e.g. 4c04374), the same setup of twelve
#      fresh hosts by the hoist of that commit, for comparison.
#
# Bytes are counted on the lab bridge (what this machine sent to the
# hosts and received, TCP and SSH included). It prints a Markdown table
# and checks the target: the setup takes at most 2x the first deploy.
# Run it under `flock /tmp/hoist-bench.lock`.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -d /usr/local/go/bin ] && export PATH="/usr/local/go/bin:$PATH"
uplink=${UPLINK:-20mbit}
lab=setupb
work=$(mktemp -d)
export HOIST_HOME=$work/home HOIST_CACHE=$work/cache NO_COLOR=1
ldflags="-s -w -X github.com/hoistdev/hoist/internal/cli.Version=bench"
CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o "$work/hoist" ./cmd/hoist
h() { "$work/hoist" "$@"; }
log=$work/log
cleanup() {
  local rc=$?
  if [ "$rc" != 0 ] && [ -f "$log" ]; then
    echo "failed; the end of the log:" >&2
    tail -n 40 "$log" >&2
  fi
  h lab down --name "$lab" >/dev/null 2>&1 || true
  [ -n "${before_tree:-}" ] && git worktree remove --force "$before_tree" >/dev/null 2>&1
  rm -rf "$work"
}
trap cleanup EXIT
br=hlb-$lab
tx() { cat "/sys/class/net/$br/statistics/tx_bytes"; }
rx() { cat "/sys/class/net/$br/statistics/rx_bytes"; }
now() { date +%s.%N; }
# measure LABEL CMD... runs CMD and prints LABEL, bytes sent, received, seconds.
measure() {
  local label=$1; shift
  local b0 r0 t0 t1
  b0=$(tx); r0=$(rx); t0=$(now)
  "$@" >>"$log" 2>&1
  t1=$(now)
  echo "$label $(( $(tx) - b0 )) $(( $(rx) - r0 )) $(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.2f", b-a}')"
}
# fresh: twelve hosts that never saw hoist, behind the uplink.
fresh() {
  h lab down --name "$lab" >/dev/null 2>&1 || true
  h lab up --name "$lab" --hosts 12 >"$work/hosts" 2>>"$log"
  mapfile -t hosts <"$work/hosts"
  h lab up --name "$lab" --hosts 12 --uplink "$uplink" >/dev/null 2>>"$log"
}
# app DIR makes a repository of examples/hello for the hosts.
app() {
  local dir=$1
  mkdir -p "$dir"
  cp -r examples/hello/. "$dir/"
  local list
  list=$(IFS=,; echo "${hosts[*]}")
  sed -i -e "s/^app: .*/app: fleet/" -e "s/^hosts: .*/hosts: [$list]/" "$dir/hoist.yml"
  printf 'ssh:\n  parallel: 12\n' >>"$dir/hoist.yml"
  git -C "$dir" init -q -b main
  git -C "$dir" add -A
  git -C "$dir" -c user.name=b -c user.email=b@x.invalid commit -qm initial
}

results=$work/results
: >"$results"
echo "size $(stat -c %s "$work/hoist")" >>"$results"
echo "booting 12 lab hosts, uplink $uplink each way" >&2
fresh
app "$work/app"
(cd "$work/app" && h build >>"$log" 2>&1) # the build is not what is measured
measure "setup" sh -c "cd '$work/app' && '$work/hoist' setup" >>"$results"
measure "deploy" sh -c "cd '$work/app' && '$work/hoist' deploy" >>"$results"
measure "again" sh -c "cd '$work/app' && '$work/hoist' setup" >>"$results"
grep -c "installed hoist" "$log" | sed 's/^/installed /' >>"$results"
grep -oE "installed hoist at [^ ]+ \([^,]+, (sent [^ ]+ [^ ]+ with [a-z]+|from [^;]+)" "$log" | sed 's/^/line /' >>"$results" || true

if [ -n "${BEFORE:-}" ]; then
  echo "the same setup by the hoist of $BEFORE" >&2
  before_tree=$work/before
  git worktree add -q --detach "$before_tree" "$BEFORE"
  (cd "$before_tree" && CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o "$work/hoist-before" ./cmd/hoist)
  fresh
  rm -rf "$work/app-before"
  app "$work/app-before"
  measure "before" sh -c "cd '$work/app-before' && '$work/hoist-before' setup" >>"$results"
fi

python3 - "$results" "$uplink" "${BEFORE:-}" <<'EOF'
import sys
rows = [l.split() for l in open(sys.argv[1])]
m = {r[0]: (int(r[1]), int(r[2]), float(r[3])) for r in rows if r[0] in ("setup", "deploy", "again", "before")}
size = next(int(r[1]) for r in rows if r[0] == "size")
sent = sum(1 for r in rows if r[0] == "line" and "sent" in r)
relayed = sum(1 for r in rows if r[0] == "line" and "from" in r)
def mib(n): return f"{n/(1<<20):,.2f} MiB"
print(f"Uplink {sys.argv[2]} each way, 12 fresh lab hosts; hoist binary {mib(size)} (static, stripped). "
      f"Sent/received: bytes through the uplink (TCP and SSH included).\n")
print("| step | time | sent | received |\n|---|---|---|---|")
labels = {"setup": f"hoist setup (sent to {sent} host, passed on to {relayed})", "deploy": "first deploy of examples/hello (4.5 MiB)",
          "again": "hoist setup again (nothing to send)", "before": f"hoist setup by the hoist of {sys.argv[3]}"}
for k in ("setup", "deploy", "again", "before"):
    if k in m:
        s, r, t = m[k]
        print(f"| {labels[k]} | {t:.2f} s | {mib(s)} | {mib(r)} |")
ratio = m["setup"][2] / m["deploy"][2]
print(f"\nsetup / first deploy: {ratio:.2f}x (target 2x)")
ok = ratio <= 2
print("target met" if ok else "MISSED: the setup took more than 2x the first deploy")
sys.exit(0 if ok else 1)
EOF
