#!/usr/bin/env bash
# Edge proxy benchmark, all on loopback, in one run on this machine:
#   1. wrk against a small Go backend (bench/backend) direct, through
#      hoist's proxy, through nginx (2 workers, upstream keepalive) and
#      through Caddy (reverse_proxy), over plain HTTP and over HTTPS
#      (keep-alive; ECDSA P-256 certificates: hoist's from its internal
#      CA, nginx's and Caddy's self-signed by this script), and h2load
#      over HTTP/2 (TLS, ALPN h2) to the same HTTPS listeners;
#   2. WebSocket echo round trips (5-byte messages, one at a time, as a
#      LiveView interaction) through each proxy, over one WebSocket each,
#      taking turns (in an order drawn anew each turn) so that load from
#      elsewhere hits every proxy alike; over ws:// and over wss://;
#   3. the resident memory (VmRSS) of hoist's proxy after all that load,
#      with no connection open (and kamal-proxy's, if it runs); then idle
#      WebSockets held through hoist's proxy, and its resident memory
#      with none, half and all of them open.
# It prints req/s and p99 for each, the ratios hoist/nginx and
# hoist/Caddy, and checks them against the targets: hoist >= 0.95x
# nginx and >= 2x Caddy in req/s, p99 <= nginx's (HTTPS; 1.5x on plain
# HTTP); HTTP/2 req/s >= 0.9x nginx's; WebSocket round trip p50 and p99
# <= 1.2x nginx's, over ws:// and wss://; idle resident memory after
# the load <= 25 MiB; 10,000 idle WebSockets in < 150 MB (< 10 KiB each).
#
# Environment: DURATION (wrk and h2load run, default 10s), CONNS
# (default 50), H2CONNS and H2STREAMS (h2load's connections and
# concurrent streams on each, default 10 and 10),
# ROUNDS (runs of each wrk case and of the echo section, the median is
# kept; default 3), ECHOES (WebSocket round trips through each proxy in
# a run, default 10000), WEBSOCKETS (default 10000; fewer if the
# open-files limit cannot hold two descriptors a WebSocket), HOIST_BIN (a
# built hoist; default: build ./cmd/hoist), HOIST_BASE_BIN (another hoist
# build, say main's, run as one more target, "base", in the same rounds:
# an A/B of a change on a machine whose load moves the absolute figures),
# KAMAL_PROXY_BIN (a built kamal-proxy: if set, it is timed in the echo
# section too; it listens on all addresses, port 18083, but is sent
# traffic on loopback only). Needs root for apt (wrk, nginx, openssl,
# h2load of nghttp2-client); installs Caddy v2.10.2 with go install.
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${DURATION:-10s}
conns=${CONNS:-50}
h2conns=${H2CONNS:-10}
h2streams=${H2STREAMS:-10}
rounds=${ROUNDS:-3}
echoes=${ECHOES:-10000}
want_ws=${WEBSOCKETS:-10000}

need=()
command -v wrk >/dev/null || need+=(wrk)
command -v nginx >/dev/null || need+=(nginx)
command -v openssl >/dev/null || need+=(openssl)
command -v h2load >/dev/null || need+=(nghttp2-client)
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
gobin=$(go env GOPATH)/bin
[ -x "$gobin/caddy" ] || go install github.com/caddyserver/caddy/v2/cmd/caddy@v2.10.2

# Two descriptors a WebSocket in the proxy (client and upstream side).
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
limit=$(ulimit -n)
websockets=$want_ws
if [ $((2 * want_ws + 200)) -gt "$limit" ]; then
  websockets=$(( (limit - 200) / 2 ))
fi

work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

if [ -n "${HOIST_BIN:-}" ]; then cp "$HOIST_BIN" "$work/hoist"; else go build -o "$work/hoist" ./cmd/hoist; fi
go build -o "$work/backend" ./bench/backend
go build -o "$work/wsidle" ./bench/wsidle

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
  -subj /CN=bench.test -addext subjectAltName=DNS:bench.test \
  -keyout "$work/key.pem" -out "$work/cert.pem" 2>/dev/null

"$work/backend" -addr 127.0.0.1:18000 & pids+=($!)
# hoist_proxy BIN NAME HTTP_PORT HTTPS_PORT starts a hoist proxy with its
# own control socket, state and certificates under $work/NAME.d.
hoist_proxy() {
  mkdir -p "$work/$2.d"
  "$1" proxy run --http 127.0.0.1:$3 --https 127.0.0.1:$4 --control "$work/$2.d/proxy.sock" \
    --state "$work/$2.d/state.json" --storage "$work/$2.d/certs" --tls-internal --tls-default-name secure.test \
    --metrics "" --access-log=false 2>"$work/$2.d/proxy.log" &
}
hoist_proxy "$work/hoist" hoist 18080 18443; hoist_pid=$!; pids+=($hoist_pid)
ports=(18000 18080 18081 18082 18443 18444 18445)
if [ -n "${HOIST_BASE_BIN:-}" ]; then
  cp "$HOIST_BASE_BIN" "$work/hoist-base"
  hoist_proxy "$work/hoist-base" base 18090 18453; base_pid=$!; pids+=($base_pid)
  ports+=(18090 18453)
fi

cat > "$work/nginx.conf" <<NGINX
worker_processes 2;
pid $work/nginx.pid;
error_log $work/nginx-error.log;
events { worker_connections 4096; }
http {
  access_log off;
  # HTTP/2 (h2load) and HTTP/1.1 connections alike stay open for the
  # whole run, as hoist's and Caddy's do: nginx's default of 1000
  # requests a connection would make h2load count the streams cut by
  # its GOAWAY as failed.
  keepalive_requests 1000000;
  upstream backend { server 127.0.0.1:18000; keepalive 64; }
  map \$http_upgrade \$connection_upgrade { default upgrade; '' ''; }
  server {
    listen 127.0.0.1:18081;
    listen 127.0.0.1:18444 ssl http2;
    ssl_certificate $work/cert.pem;
    ssl_certificate_key $work/key.pem;
    location / {
      proxy_pass http://backend;
      proxy_http_version 1.1;
      proxy_set_header Host \$host;
      proxy_set_header Upgrade \$http_upgrade;
      proxy_set_header Connection \$connection_upgrade;
    }
  }
}
NGINX
nginx -c "$work/nginx.conf" -g 'daemon off;' & pids+=($!)

cat > "$work/Caddyfile" <<CADDY
{
  admin off
  auto_https off
  default_sni bench.test
  log {
    output discard
  }
}
http://:18082 {
  bind 127.0.0.1
  reverse_proxy 127.0.0.1:18000
}
https://:18445 {
  bind 127.0.0.1
  tls $work/cert.pem $work/key.pem
  reverse_proxy 127.0.0.1:18000
}
CADDY
XDG_DATA_HOME=$work XDG_CONFIG_HOME=$work "$gobin/caddy" run --config "$work/Caddyfile" --adapter caddyfile >"$work/caddy.log" 2>&1 & pids+=($!)

# Echo peers: name=address, hoist first.
peers=hoist=127.0.0.1:18080,nginx=127.0.0.1:18081,caddy=127.0.0.1:18082
[ -z "${HOIST_BASE_BIN:-}" ] || peers+=,base=127.0.0.1:18090
if [ -n "${KAMAL_PROXY_BIN:-}" ]; then
  HOME=$work XDG_RUNTIME_DIR=$work "$KAMAL_PROXY_BIN" run --http-port 18083 --https-port 18446 >"$work/kamal-proxy.log" 2>&1 & kamal_pid=$!; pids+=($kamal_pid)
  peers+=,kamal-proxy=127.0.0.1:18083
  ports+=(18083)
fi

for port in "${ports[@]}"; do
  for _ in $(seq 1 100); do (echo > /dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.1; done
done
# bench.test over plain HTTP; secure.test over HTTPS (plain HTTP to it
# would be redirected).
# hoist_routes NAME HTTPS_PORT sets the routes of the proxy NAME and
# waits for its certificate.
hoist_routes() {
  curl -fsS --unix-socket "$work/$1.d/proxy.sock" -X PUT http://proxy/v1/routes/bench \
    -d '{"hosts":["bench.test"],"upstream":"127.0.0.1:18000","health_path":"/up","health_timeout":"10s","drain_timeout":"5s"}' >/dev/null
  curl -fsS --unix-socket "$work/$1.d/proxy.sock" -X PUT http://proxy/v1/routes/secure \
    -d '{"hosts":["secure.test"],"upstream":"127.0.0.1:18000","health_path":"/up","health_timeout":"10s","drain_timeout":"5s","tls":true}' >/dev/null
  for i in $(seq 1 101); do
    curl -fsS -o /dev/null --cacert "$work/$1.d/certs/internal-ca/root.pem" --resolve secure.test:$2:127.0.0.1 https://secure.test:$2/ 2>/dev/null && break
    [ "$i" = 101 ] && { echo "hoist's proxy ($1) got no certificate for secure.test" >&2; exit 1; }
    sleep 0.2
  done
}
hoist_routes hoist 18443
[ -z "${HOIST_BASE_BIN:-}" ] || hoist_routes base 18453
if [ -n "${KAMAL_PROXY_BIN:-}" ]; then
  HOME=$work XDG_RUNTIME_DIR=$work "$KAMAL_PROXY_BIN" deploy bench --target 127.0.0.1:18000 --host bench.test >/dev/null
fi

echo "# $(date -u +%FT%TZ), $(nproc) cores, wrk -t1 -c$conns -d$duration, h2load -t1 -c$h2conns -m$h2streams -D${duration%s}, keep-alive, loopback, median of $rounds runs"
echo "# versions: $(nginx -v 2>&1 | sed 's/.*: //'), caddy $(go version -m "$gobin/caddy" | awk '$2=="github.com/caddyserver/caddy/v2" {print $3; exit}'), $(go version | cut -d' ' -f3), wrk $(wrk -v 2>&1 | head -1 | cut -d' ' -f2), $(h2load --version | head -1)"
echo "# load: $(uptime | sed 's/.*load average/load average/')"

# h2load1 URL: prints "req/s mean_ms" of one HTTP/2 run (h2load gives
# no percentiles; its mean time for a request stands in the p99 column).
h2load1() {
  local out
  out=$(h2load -t1 -c"$h2conns" -m"$h2streams" -D"${duration%s}" --warm-up-time=1 -H ':authority: secure.test' "$1" 2>&1)
  if ! grep -q '^requests: .* 0 failed, 0 errored' <<<"$out" || ! grep -q '^status codes: [0-9]* 2xx, 0 3xx, 0 4xx, 0 5xx' <<<"$out"; then
    echo "error: h2 $1: $(grep '^requests:\|^status codes:\|[Ee]rror' <<<"$out" | tr '\n' ' ')" >&2
  fi
  grep -q 'Application protocol: h2' <<<"$out" || echo "error: h2 $1: not HTTP/2" >&2
  awk '/^finished in/ {r=$4} $1=="time" && $3=="request:" {v=$6; if (v ~ /us$/) {sub(/us$/,"",v); v=v/1000} else if (v ~ /ms$/) {sub(/ms$/,"",v)} else if (v ~ /s$/) {sub(/s$/,"",v); v=v*1000}; p=v} END {print r, p}' <<<"$out"
}
# wrk1 URL: prints "req/s p99_ms" of one run.
wrk1() {
  local out host=bench.test
  case $1 in https*) host=secure.test ;; esac
  out=$(wrk -t1 -c"$conns" -d"$duration" --latency -H "Host: $host" "$1")
  if grep -q "Non-2xx\|Socket errors" <<<"$out"; then echo "error: $1: $(grep 'Non-2xx\|Socket errors' <<<"$out")" >&2; fi
  awk '/Requests\/sec/ {r=$2} $1=="99%" {v=$2; if (v ~ /us$/) {sub(/us$/,"",v); v=v/1000} else if (v ~ /ms$/) {sub(/ms$/,"",v)} else if (v ~ /s$/) {sub(/s$/,"",v); v=v*1000}; p=v} END {print r, p}' <<<"$out"
}
# median of the lines, by their first number (wrk: the runs' req/s, with
# that run's p99)
median() { sort -n | awk '{a[NR]=$0} END {print a[int((NR+1)/2)]}'; }

declare -A res
cases=("http direct http://127.0.0.1:18000/" "http hoist http://127.0.0.1:18080/" "http nginx http://127.0.0.1:18081/" "http caddy http://127.0.0.1:18082/"
       "https hoist https://127.0.0.1:18443/" "https nginx https://127.0.0.1:18444/" "https caddy https://127.0.0.1:18445/"
       "h2 hoist https://127.0.0.1:18443/" "h2 nginx https://127.0.0.1:18444/" "h2 caddy https://127.0.0.1:18445/")
if [ -n "${HOIST_BASE_BIN:-}" ]; then
  cases+=("http base http://127.0.0.1:18090/" "https base https://127.0.0.1:18453/" "h2 base https://127.0.0.1:18453/")
fi
# Rounds go through every case in turn, so that a burst of load from
# elsewhere on the machine hits all targets alike, not one.
declare -A runs
for _ in $(seq 1 "$rounds"); do
  for c in "${cases[@]}"; do
    set -- $c
    if [ "$1" = h2 ]; then runs[$1/$2]+="$(h2load1 "$3")"$'\n'; else runs[$1/$2]+="$(wrk1 "$3")"$'\n'; fi
  done
done
for c in "${cases[@]}"; do
  set -- $c
  res[$1/$2]=$(printf '%s' "${runs[$1/$2]}" | median)
done
printf '%-6s %-7s %10s %9s\n' proto target req/s p99_ms   # h2: the mean, not p99
for c in "${cases[@]}"; do
  set -- $c
  read -r rps p99 <<<"${res[$1/$2]}"
  printf '%-6s %-7s %10.0f %9.2f\n' "$1" "$2" "$rps" "$p99"
done
# Targets per protocol: req/s against nginx's and Caddy's, p99 (h2:
# mean) against nginx's.
declare -A want_n=([http]=0.95 [https]=0.95 [h2]=0.9) want_c=([http]=2 [https]=2 [h2]=0) want_p=([http]=1.5 [https]=1 [h2]=0)
for proto in http https h2; do
  read -r h hp <<<"${res[$proto/hoist]}"; read -r n np <<<"${res[$proto/nginx]}"; read -r c cp <<<"${res[$proto/caddy]}"
  awk -v p="$proto" -v h="$h" -v n="$n" -v c="$c" -v hp="$hp" -v np="$np" -v wn="${want_n[$proto]}" -v wc="${want_c[$proto]}" -v wp="${want_p[$proto]}" 'BEGIN {
    printf "%-5s hoist/nginx req/s %.2f (target >= %s: %s)  hoist/caddy req/s %.2f", p, h/n, wn, (h/n >= wn ? "met" : "MISSED"), h/c
    if (wc > 0) printf " (target >= %s: %s)", wc, (h/c >= wc ? "met" : "MISSED")
    printf "  hoist/nginx %s %.2f", (p == "h2" ? "mean" : "p99"), hp/np
    if (wp > 0) printf " (target <= %s: %s)", wp, (hp/np <= wp ? "met" : "MISSED")
    printf "\n" }'
  if [ -n "${HOIST_BASE_BIN:-}" ]; then
    read -r b bp <<<"${res[$proto/base]}"
    awk -v p="$proto" -v h="$h" -v n="$n" -v c="$c" -v b="$b" -v hp="$hp" -v bp="$bp" 'BEGIN {
      printf "%-5s hoist/base req/s %.2f  p99 %.2f; base/nginx req/s %.2f  base/caddy req/s %.2f\n", p, h/b, hp/bp, b/n, b/c }'
  fi
done

# echo_section LABEL PEERS HOST: the echo round trips through PEERS
# (name=address,...; wss:// addresses over TLS), median of the rounds.
echo_section() {
  local label=$1 list=$2 host=$3 out="$work/echo-$1.txt"
  echo "# WebSocket echo round trips over $label ($echoes of a 5-byte message over one WebSocket through each proxy, taking turns; median of $rounds runs)"
  for _ in $(seq 1 "$rounds"); do "$work/wsidle" -peers "$list" -host "$host" -echo "$echoes" >> "$out"; done
  for peer in $(tr , '\n' <<<"$list" | cut -d= -f1); do
    p50=$(awk -v p="$peer" '$1 == "echo" && $2 == p {print $3}' "$out" | median)
    p99=$(awk -v p="$peer" '$1 == "echo" && $2 == p {print $4}' "$out" | median)
    printf '%-11s p50 %6.1f us  p99 %6.1f us\n' "$peer" "$p50" "$p99"
  done | tee "$out.median"
  awk -v l="$label" '{p50[$1] = $3; p99[$1] = $6} END {
    printf "%-4s  hoist/nginx p50 %.2f (target <= 1.2: %s)  p99 %.2f (target <= 1.2: %s)  hoist/caddy p50 %.2f  p99 %.2f\n", l,
      p50["hoist"]/p50["nginx"], (p50["hoist"]/p50["nginx"] <= 1.2 ? "met" : "MISSED"),
      p99["hoist"]/p99["nginx"], (p99["hoist"]/p99["nginx"] <= 1.2 ? "met" : "MISSED"),
      p50["hoist"]/p50["caddy"], p99["hoist"]/p99["caddy"]
    if ("kamal-proxy" in p50) printf "%-4s  hoist/kamal-proxy p50 %.2f  p99 %.2f\n", l, p50["hoist"]/p50["kamal-proxy"], p99["hoist"]/p99["kamal-proxy"]
    if ("base" in p50) printf "%-4s  hoist/base p50 %.2f  p99 %.2f\n", l, p50["hoist"]/p50["base"], p99["hoist"]/p99["base"] }' "$out.median"
}
echo_section ws "$peers" bench.test
# Over TLS: no SNI, so each proxy answers with its default certificate
# (hoist's for secure.test, the TLS route).
tls_peers=hoist=wss://127.0.0.1:18443,nginx=wss://127.0.0.1:18444,caddy=wss://127.0.0.1:18445
[ -z "${HOIST_BASE_BIN:-}" ] || tls_peers+=,base=wss://127.0.0.1:18453
echo_section wss "$tls_peers" secure.test

# rss PID: resident memory in MiB.
rss() { awk '$1 == "VmRSS:" {printf "%.1f", $2/1024}' "/proc/$1/status"; }
# Every connection of the load above is closed; the proxies' idle
# memory once they have settled: hoist gives its free heap back on the
# first quiet 10 s (internal/proxy/memory.go), the runtime's scavenger
# and GC do in their own time. Resident memory is the binary's pages
# (file) and the process's own (anonymous), both printed.
sleep 12
split() { awk '$1 == "RssAnon:" {a=$2} $1 == "RssFile:" {f=$2} END {printf "%.1f anonymous + %.1f file", a/1024, f/1024}' "/proc/$1/status"; }
h_rss=$(rss "$hoist_pid")
line="idle after the load, no connection open: hoist $h_rss MiB RSS ($(split "$hoist_pid")) (target <= 25: $(awk -v r="$h_rss" 'BEGIN {print (r <= 25 ? "met" : "MISSED")}'))"
[ -z "${base_pid:-}" ] || line+=", base $(rss "$base_pid") MiB ($(split "$base_pid"))"
[ -z "${kamal_pid:-}" ] || line+=", kamal-proxy $(rss "$kamal_pid") MiB"
echo "$line"

echo "# idle WebSockets through hoist's proxy (open-files limit $limit: $websockets of $want_ws fit, two descriptors each)"
"$work/wsidle" -addr 127.0.0.1:18080 -n "$websockets" -pid "$hoist_pid" > "$work/ws.txt"
awk -v want="$want_ws" '{v[$1]=$2} END {
  per = (v["rss_mib"] - v["rss_half_mib"]) / (v["open"] - v["half"]) * 1024
  proj = v["rss_mib"] + (want - v["open"]) * per / 1024
  printf "proxy RSS: %.1f MiB idle, %.1f MiB with %d open, %.1f MiB with %d open (%.1f KiB each); %d open -> %.1f MiB (%s), target < 150 MB: %s\n",
    v["rss0_mib"], v["rss_half_mib"], v["half"], v["rss_mib"], v["open"], per, want, (want == v["open"] ? proj : proj), (want == v["open"] ? "measured" : "projected"),
    (proj * 1.048576 < 150 ? "met" : "MISSED")
  printf "opened in %.1f s; echo over the last one while all are open: p50 %.1f us, p99 %.1f us\n", v["open_seconds"], v["echo_p50_us"], v["echo_p99_us"] }' "$work/ws.txt"
