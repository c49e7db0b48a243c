#!/usr/bin/env bash
# Writes the generated clients from proto/: Python (clients/python/src/lclstream,
# grpcio-tools) and Go (clients/go/gen, buf with protoc-gen-go,
# protoc-gen-go-grpc and protoc-gen-go-vtproto from .tools/bin). With --check, writes them elsewhere and
# fails when the committed ones differ (CI's drift check, like gen/).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.tools/bin:$PWD/node_modules/.bin:$PATH"
for plugin in protoc-gen-go protoc-gen-go-grpc protoc-gen-go-vtproto; do
  command -v "$plugin" >/dev/null || { echo "$plugin is missing: run scripts/install-system-deps.sh" >&2; exit 1; }
done
bash clients/python/generate.sh ${1:-}
if [ "${1:-}" = "--check" ]; then
  out=$(mktemp -d)
  trap 'rm -rf "$out"' EXIT
  buf generate --template buf.gen.go.yaml --output "$out"
  diff -r "$out/clients/go/gen" clients/go/gen >/dev/null || {
    echo "clients/go/gen is out of date with proto/: run \`npm run generate:clients\` and commit it" >&2
    exit 1
  }
  echo "clients/go matches proto/"
else
  buf generate --template buf.gen.go.yaml
fi
