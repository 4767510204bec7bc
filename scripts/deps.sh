#!/usr/bin/env bash
# Installs what hoist's demo and tests need on Debian or Ubuntu, as root.
#
#   scripts/deps.sh lab   what a lab host and a deploy to it need: the demo's
#   scripts/deps.sh       that and every tool the tests run (servers, peers)
#
# Sourced by scripts/demo.sh and scripts/test.sh, so that PATH carries on.
set -euo pipefail
deps_want=${1:-all}

if [ "$(id -u)" != 0 ]; then
  echo "run as root: the lab boots machines and network namespaces" >&2
  exit 1
fi
# command:package pairs: the lab's (nft: its firewall), then the tests'
# alone (dig and nsupdate, of bind9-dnsutils: what docs/dns.md uses to
# look at and change a zone by hand; h2load, of nghttp2-client: the
# HTTP/2 load of bench/proxy.sh).
pairs="git:git debootstrap:debootstrap systemd-nspawn:systemd-container ip:iproute2 nft:nftables ssh:openssh-client curl:curl"
[ "$deps_want" = lab ] || pairs="$pairs podman:podman runc:runc /usr/sbin/named:bind9 dig:bind9-dnsutils nsupdate:bind9-dnsutils testssl:testssl.sh h2load:nghttp2-client"
need=()
for pair in $pairs; do
  command -v "${pair%%:*}" >/dev/null 2>&1 || need+=("${pair#*:}")
done
[ -f /etc/ssl/certs/ca-certificates.crt ] || need+=(ca-certificates)
# A PostgreSQL of the operator's machine, for accessory pull --into: the
# test starts its own cluster (initdb, pg_ctl) in a temporary directory.
if [ "$deps_want" != lab ] && ! compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null; then
  need+=(postgresql)
  # No cluster of the package's own, listening on 5432 for nothing.
  mkdir -p /etc/postgresql-common/createcluster.d
  echo 'create_main_cluster = false' > /etc/postgresql-common/createcluster.d/hoist-tests.conf
fi
if [ ${#need[@]} -gt 0 ]; then
  echo "installing: ${need[*]}" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
if ! command -v go >/dev/null 2>&1; then
  for g in /usr/local/go/bin/go /usr/lib/go/bin/go; do
    [ -x "$g" ] && export PATH="$(dirname "$g"):$PATH" && break
  done
fi
if ! command -v go >/dev/null 2>&1; then
  echo "Go 1.26 or newer is needed to build hoist: https://go.dev/doc/install" >&2
  exit 1
fi

if [ "$deps_want" = lab ]; then
  return 0 2>/dev/null || exit 0
fi

# qemu-user, to boot the arm64 lab host of the platform tests (e2e) on
# an amd64 machine; binfmt_misc registers it with the kernel.
if [ "$(uname -m)" = x86_64 ]; then
  if ! command -v qemu-aarch64-static >/dev/null 2>&1 || ! command -v update-binfmts >/dev/null 2>&1; then
    echo "installing: qemu-user-static binfmt-support" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq qemu-user-static binfmt-support >/dev/null
  fi
  mountpoint -q /proc/sys/fs/binfmt_misc || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
  [ -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ] || update-binfmts --enable qemu-aarch64
fi
# Pebble, a real ACME server, and its DNS companion, for the TLS tests.
gobin=$(go env GOPATH)/bin
for tool in pebble pebble-challtestsrv; do
  [ -x "$gobin/$tool" ] || go install "github.com/letsencrypt/pebble/v2/cmd/$tool@v2.10.1"
done
# h2spec, HTTP/2's conformance suite, for the proxy's HTTPS listener
# (integration tier; testssl.sh, above, checks its TLS).
[ -x "$gobin/h2spec" ] || go install github.com/summerwind/h2spec/cmd/h2spec@v2.2.1+incompatible
# kumo, an emulator of AWS's APIs (EC2, ELBv2, Route 53, S3...) on
# loopback, for the provisioning, DNS and off-host backup tests; the
# SDK's modules are not in the checksum database.
[ -x "$gobin/kumo" ] || GONOSUMDB=github.com/aws/aws-sdk-go-v2 go install github.com/sivchari/kumo/cmd/kumo@v0.33.1
export PATH="$gobin:$PATH"
