#!/usr/bin/env bash
# Installs what hoist's demo and tests need on Debian or Ubuntu, as root.
set -euo pipefail

if [ "$(id -u)" != 0 ]; then
  echo "run as root: the lab boots machines and network namespaces" >&2
  exit 1
fi
need=()
for pair in git:git debootstrap:debootstrap systemd-nspawn:systemd-container ip:iproute2 ssh:openssh-client curl:curl podman:podman runc:runc /usr/sbin/named:bind9; do
  command -v "${pair%%:*}" >/dev/null 2>&1 || need+=("${pair#*:}")
done
[ -f /etc/ssl/certs/ca-certificates.crt ] || need+=(ca-certificates)
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

# Pebble, a real ACME server, and its DNS companion, for the TLS tests.
gobin=$(go env GOPATH)/bin
for tool in pebble pebble-challtestsrv; do
  [ -x "$gobin/$tool" ] || go install "github.com/letsencrypt/pebble/v2/cmd/$tool@v2.10.1"
done
# kumo, an emulator of AWS's APIs, for the Route 53 tests.
[ -x "$gobin/kumo" ] || GONOSUMDB=github.com/aws/aws-sdk-go-v2 go install github.com/sivchari/kumo/cmd/kumo@v0.33.1
export PATH="$gobin:$PATH"

# kumo, an AWS emulator on loopback, for the provisioning tests
# (integration tier); the SDK's modules are not in the checksum database.
[ -x "$gobin/kumo" ] || GONOSUMDB=github.com/aws/aws-sdk-go-v2 go install github.com/sivchari/kumo/cmd/kumo@v0.33.1
