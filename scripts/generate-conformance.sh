#!/usr/bin/env bash
# Writes test/conformance/gen/ (the Connect conformance suite's protos as
# TypeScript, for the conformance programs in test/conformance/) with buf and
# the locally installed protoc-gen-es, with the same options as buf.gen.yaml.
# The .proto files are read from the Go module cache (the suite's own module,
# the version whose runner scripts/install-system-deps.sh installs), never
# copied into this repository.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/node_modules/.bin:$PATH"

CONFORMANCE_VERSION=v1.0.7

command -v go >/dev/null || { echo "go is missing: run scripts/install-system-deps.sh" >&2; exit 1; }
go mod download "connectrpc.com/conformance@$CONFORMANCE_VERSION"
module_dir="$(go env GOMODCACHE)/connectrpc.com/conformance@$CONFORMANCE_VERSION"
[ -d "$module_dir/proto/connectrpc/conformance/v1" ] || { echo "no conformance protos in $module_dir" >&2; exit 1; }

# The module's own buf.yaml names proto/ as its module root; the template is
# given inline so that this repository's buf.gen.yaml (gen/) is not involved.
template='{"version":"v2","clean":true,"plugins":[{"local":"protoc-gen-es","out":"test/conformance/gen","opt":["target=ts","import_extension=js"]}]}'
buf generate "$module_dir" --template "$template" --output "$PWD"
echo "test/conformance/gen/ generated from connectrpc.com/conformance@$CONFORMANCE_VERSION"
