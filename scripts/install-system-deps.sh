#!/usr/bin/env bash
# Installs what `npm run test:system` needs beyond npm packages, idempotently:
# OpenSSL and Slurm with munge (Debian), and grpcurl (Go module proxy) into .tools/bin.
set -euo pipefail
cd "$(dirname "$0")/.."
tools="$PWD/.tools/bin"
mkdir -p "$tools"

GRPCURL_VERSION=v1.9.3

apt_install() {
  local missing=()
  for pkg in "$@"; do dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  local sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  echo "installing Debian packages: ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

apt_install openssl ca-certificates procps hostname slurmctld slurmd slurm-client munge

# `go install` leaves no version in the binary, so a stamp file records it.
if [ ! -x "$tools/grpcurl" ] || [ "$(cat "$tools/grpcurl.version" 2>/dev/null)" != "$GRPCURL_VERSION" ]; then
  command -v go >/dev/null || apt_install golang-go
  echo "installing grpcurl $GRPCURL_VERSION"
  GOBIN="$tools" GOFLAGS=-mod=mod go install "github.com/fullstorydev/grpcurl/cmd/grpcurl@$GRPCURL_VERSION"
  echo "$GRPCURL_VERSION" > "$tools/grpcurl.version"
fi
echo "system test tools ready in $tools"
