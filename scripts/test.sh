#!/usr/bin/env bash
# The whole test suite: unit tests, and end-to-end tests that boot lab
# hosts (systemd-nspawn machines) and deploy to them. Needs root.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/deps.sh
[ -d /usr/local/go/bin ] && export PATH="/usr/local/go/bin:$PATH"
go vet ./...
exec go test -count=1 -timeout 80m ./... "$@"
