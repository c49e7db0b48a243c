#!/usr/bin/env bash
# Writes the Python modules of the lclstream API (src/lclstream/) from proto/
# with grpcio-tools (`npm run generate:clients`); with --check, fails when the
# committed modules differ from what proto/ makes now (`npm run check:clients`).
set -euo pipefail
cd "$(dirname "$0")"
out=src
if [ "${1:-}" = "--check" ]; then out=$(mktemp -d); trap 'rm -rf "$out"' EXIT; fi
rm -rf "$out/lclstream"
python3 -m grpc_tools.protoc -I ../../proto --python_out="$out" --pyi_out="$out" --grpc_python_out="$out" \
  $(cd ../../proto && ls lclstream/*/v1/*.proto)
# Packages, so the modules import as lclstream.<area>.v1.
find "$out/lclstream" -type d -exec touch {}/__init__.py \;
touch "$out/lclstream/py.typed"  # the .pyi stubs are the types (PEP 561)
if [ "$out" != src ]; then
  diff -r "$out/lclstream" src/lclstream >/dev/null || {
    echo "clients/python/src/lclstream is out of date with proto/: run \`npm run generate:clients\` and commit it" >&2
    exit 1
  }
  echo "clients/python matches proto/"
  # The package's version is the project's.
  project=$(node -p 'require("../../package.json").version')
  grep -q "^version = \"$project\"$" pyproject.toml || {
    echo "clients/python/pyproject.toml's version is not the project's ($project): set it there" >&2
    exit 1
  }
fi
