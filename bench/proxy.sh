#!/usr/bin/env bash
# Proxy benchmark: wrk against a small Go backend direct, through hoist's
# proxy, through nginx and through Caddy, all on loopback in one run; then
# 10,000 idle WebSockets through hoist's proxy (its resident memory) and a
# WebSocket echo round trip. Prints req/s and p99 for each and the ratios
# hoist/nginx and hoist/Caddy. Targets: hoist >= 0.8x nginx and >= 2x Caddy
# in req/s, p99 <= 1.5x nginx's; 10,000 idle WebSockets in < 150 MB.
# Needs root for apt (wrk, nginx) and a raised open-files limit.
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${DURATION:-10s}
conns=${CONNS:-50}

command -v wrk >/dev/null && command -v nginx >/dev/null || {
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk nginx >/dev/null; }
gobin=$(go env GOPATH)/bin
[ -x "$gobin/caddy" ] || go install github.com/caddyserver/caddy/v2/cmd/caddy@v2.10.2
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"  # the proxy holds two descriptors a WebSocket

work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
go build -o "$work/hoist" ./cmd/hoist
go build -o "$work/backend" ./bench/backend
go build -o "$work/wsidle" ./bench/wsidle

"$work/backend" -addr 127.0.0.1:18000 & pids+=($!)
"$work/hoist" proxy run --http 127.0.0.1:18080 --https 127.0.0.1:18443 --control "$work/proxy.sock" \
  --state "$work/state.json" --storage "$work/certs" --metrics "" --access-log=false 2>/dev/null & hoist_pid=$!; pids+=($hoist_pid)
cat > "$work/nginx.conf" <<NGINX
worker_processes 2;
pid $work/nginx.pid;
error_log $work/nginx-error.log;
events { worker_connections 4096; }
http {
  access_log off;
  upstream backend { server 127.0.0.1:18000; keepalive 64; }
  server {
    listen 127.0.0.1:18081;
    location / { proxy_pass http://backend; proxy_http_version 1.1; proxy_set_header Connection ""; proxy_set_header Host \$host; }
  }
}
NGINX
nginx -c "$work/nginx.conf" -g 'daemon off;' & pids+=($!)
printf '{\n  admin off\n  auto_https off\n}\n:18082 {\n  bind 127.0.0.1\n  reverse_proxy 127.0.0.1:18000\n}\n' > "$work/Caddyfile"
XDG_DATA_HOME=$work XDG_CONFIG_HOME=$work "$gobin/caddy" run --config "$work/Caddyfile" --adapter caddyfile >/dev/null 2>&1 & pids+=($!)

for port in 18000 18080 18081 18082; do
  for _ in $(seq 1 100); do (echo > /dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.1; done
done
curl -fsS --unix-socket "$work/proxy.sock" -X PUT http://proxy/v1/routes/bench \
  -d '{"hosts":["bench.test"],"upstream":"127.0.0.1:18000","health_path":"/up","health_timeout":"10s","drain_timeout":"5s"}' >/dev/null

# run NAME PORT: prints "NAME req/s p99_ms"
run() {
  local out rps p99
  out=$(wrk -t1 -c"$conns" -d"$duration" --latency -H 'Host: bench.test' "http://127.0.0.1:$2/")
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  p99=$(awk '$1=="99%" {v=$2; if (v ~ /us$/) {sub(/us$/,"",v); v=v/1000} else if (v ~ /ms$/) {sub(/ms$/,"",v)} else if (v ~ /s$/) {sub(/s$/,"",v); v=v*1000}; print v}' <<<"$out")
  echo "$1 $rps $p99"
}
echo "wrk -t1 -c$conns -d$duration, plain HTTP, keep-alive, loopback"
results=$(for t in "direct 18000" "hoist 18080" "nginx 18081" "caddy 18082"; do run $t; done)
printf '%-8s %12s %10s\n' target req/s p99_ms
awk '{printf "%-8s %12.0f %10.2f\n", $1, $2, $3}' <<<"$results"
get() { awk -v n="$1" -v f="$2" '$1==n {print $f}' <<<"$results"; }
awk -v h="$(get hoist 2)" -v n="$(get nginx 2)" -v c="$(get caddy 2)" -v hp="$(get hoist 3)" -v np="$(get nginx 3)" 'BEGIN {
  printf "hoist/nginx req/s %.2f (target >= 0.8)\nhoist/caddy req/s %.2f (target >= 2)\nhoist/nginx p99   %.2f (target <= 1.5)\n", h/n, h/c, hp/np }'
"$work/wsidle" -addr 127.0.0.1:18080 -host bench.test -n "${WEBSOCKETS:-10000}" -pid "$hoist_pid"
