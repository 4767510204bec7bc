#!/usr/bin/env bash
# Boots one lab host, deploys examples/hello to it and prints its answer.
set -euo pipefail
cd "$(dirname "$0")/.."
# Only what the lab and a deploy need: the tests' servers and peers
# (scripts/deps.sh with no argument) take minutes to build.
. scripts/deps.sh lab
[ -d /usr/local/go/bin ] && export PATH="/usr/local/go/bin:$PATH"

mkdir -p bin
go build -o bin/hoist ./cmd/hoist
hoist=$PWD/bin/hoist

# The demo deploys the committed examples/hello from a repository of its
# own, so that it works from a tarball of hoist too.
app=$(mktemp -d)
trap 'rm -rf "$app"' EXIT
cp examples/hello/main.go examples/hello/go.mod examples/hello/hoist.yml "$app"/
git -C "$app" init -q -b main
git -C "$app" add -A
git -C "$app" -c user.name=demo -c user.email=demo@example.invalid commit -qm demo

addr=$("$hoist" lab up --hosts 1 | head -n 1)
echo "lab host: $addr" >&2
cd "$app"
"$hoist" setup --host "$addr"
release=$("$hoist" deploy --host "$addr")
echo "deployed release $release" >&2
curl -fsS "http://$addr:3000/"
echo "stop the lab with: $hoist lab down" >&2
