#!/usr/bin/env bash
# Installs what `npm run test:system` needs beyond npm packages, idempotently:
# OpenSSL, HAProxy, Slurm with munge and Chromium for the viewer's browser tests (Debian), grpcurl, the Envoy config
# validator and the Go code generators (Go module proxy) into .tools/bin, the
# Python client's packages (PyPI), and environments of their own for psana, psik and
# the Python client with torch (.tools/).
set -euo pipefail
cd "$(dirname "$0")/.."
tools="$PWD/.tools/bin"
mkdir -p "$tools"

GRPCURL_VERSION=v1.9.3
# The Connect conformance runner (test/system/conformance.test.ts); scripts/generate-conformance.sh reads the same version's protos.
CONFORMANCE_VERSION=v1.0.7

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

# rc: the shell psik's README JobSpec names in its shebang.
apt_install openssl ca-certificates procps hostname slurmctld slurmd slurm-client munge haproxy chromium hdf5-tools rc curl

# `go install` leaves no version in the binary, so a stamp file records it.
if [ ! -x "$tools/grpcurl" ] || [ "$(cat "$tools/grpcurl.version" 2>/dev/null)" != "$GRPCURL_VERSION" ]; then
  command -v go >/dev/null || apt_install golang-go
  echo "installing grpcurl $GRPCURL_VERSION"
  GOBIN="$tools" GOFLAGS=-mod=mod go install "github.com/fullstorydev/grpcurl/cmd/grpcurl@$GRPCURL_VERSION"
  echo "$GRPCURL_VERSION" > "$tools/grpcurl.version"
fi
if [ ! -x "$tools/connectconformance" ] || [ "$(cat "$tools/connectconformance.version" 2>/dev/null)" != "$CONFORMANCE_VERSION" ]; then
  command -v go >/dev/null || apt_install golang-go
  echo "installing connectconformance $CONFORMANCE_VERSION"
  GOBIN="$tools" GOFLAGS=-mod=mod go install "connectrpc.com/conformance/cmd/connectconformance@$CONFORMANCE_VERSION"
  echo "$CONFORMANCE_VERSION" > "$tools/connectconformance.version"
fi
command -v go >/dev/null || apt_install golang-go
# The Go client's code generators (`npm run generate:clients`, and CI's drift check).
for plugin in google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.10 google.golang.org/grpc/cmd/protoc-gen-go-grpc@v1.5.1 github.com/planetscale/vtprotobuf/cmd/protoc-gen-go-vtproto@v0.6.0; do
  name=$(basename "${plugin%@*}")
  if [ "$(cat "$tools/$name.version" 2>/dev/null)" != "${plugin#*@}" ]; then
    echo "installing $name ${plugin#*@}"
    GOBIN="$tools" GOFLAGS=-mod=mod go install "$plugin"
    echo "${plugin#*@}" > "$tools/$name.version"
  fi
done
# The Envoy config validator (mesh/validate, on go-control-plane): the Go build cache makes reruns quick.
echo "building the Envoy config validator"
(cd mesh/validate && go build -o "$tools/envoy-validate" .)
# Helm (its Go module) and the Kubernetes manifest validator (deploy/validate, on k8s.io/api and
# client-go), for the Helm chart's test (test/system/helm.test.ts): no cluster needed.
HELM_VERSION=v3.21.4
if [ ! -x "$tools/helm" ] || [ "$(cat "$tools/helm.version" 2>/dev/null)" != "$HELM_VERSION" ]; then
  echo "installing helm $HELM_VERSION"
  GOBIN="$tools" GOFLAGS=-mod=mod go install "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
  echo "$HELM_VERSION" > "$tools/helm.version"
fi
echo "building the Kubernetes manifest validator"
(cd deploy/validate && go build -o "$tools/k8s-validate" .)
# The Python client's dependencies and tests (grpcio-tools generates it; h5py, the HDF5 C
# library's binding, reads what the HDF5 serializer writes).
python_packages=(grpcio==1.76.0 grpcio-tools==1.76.0 grpcio-status==1.76.0 "protobuf>=6.31.1,<7" numpy h5py hdf5plugin==7.1.0 pyzmq==27.3.0 cbor2==6.2.1 bitshuffle==0.5.2 pyyaml cryptography pytest)
if ! python3 -c "import grpc, grpc_tools, grpc_status, h5py, hdf5plugin, zmq, cbor2, bitshuffle, numpy, yaml, cryptography, pytest; assert grpc.__version__ == '1.76.0'" 2>/dev/null; then
  echo "installing Python packages: ${python_packages[*]}"
  python3 -m pip install --quiet --disable-pip-version-check "${python_packages[@]}" 2>/dev/null ||
    python3 -m pip install --quiet --disable-pip-version-check --break-system-packages "${python_packages[@]}"
fi
# psana, LCLS-II's XTC2 reader, for Psana2EventSource: in an environment of the project's own
# (.tools/psana), which the producer finds by itself. pykerberos (through lcls-krtc) builds
# against Kerberos; mpi4py, which psana imports, finds MPI in the mpich wheel. cbor2 and
# bitshuffle read the SIMPLON messages in the system tests.
PSANA_VERSION=4.3.4
if ! .tools/psana/bin/python -c "import psana, cbor2, bitshuffle, sys, importlib.metadata as m; sys.exit(m.version('psana') != '$PSANA_VERSION')" 2>/dev/null; then
  apt_install libkrb5-dev
  python3 -m venv .tools/psana 2>/dev/null || { apt_install python3-venv && python3 -m venv .tools/psana; }
  echo "installing psana $PSANA_VERSION into .tools/psana"
  .tools/psana/bin/pip install --quiet --disable-pip-version-check "psana==$PSANA_VERSION" "mpich==5.0.2" cbor2==6.2.1 bitshuffle==0.5.2
fi
# The Python client as a user installs it, with its torch and hdf5 extras, for its torch datasets
# tests and the bench's Python drain (.tools/torch). PyPI's Linux torch brings CUDA's libraries
# (about 5 GB installed); CPU is all the tests use. The client is reinstalled every time (seconds),
# so the environment follows its pyproject.toml.
TORCH_VERSION=2.15.0
if ! .tools/torch/bin/python -c "import torch, sys; sys.exit(torch.__version__.split('+')[0] != '$TORCH_VERSION')" 2>/dev/null; then
  python3 -m venv .tools/torch 2>/dev/null || { apt_install python3-venv && python3 -m venv .tools/torch; }
  echo "installing torch $TORCH_VERSION into .tools/torch"
  .tools/torch/bin/pip install --quiet --disable-pip-version-check "torch==$TORCH_VERSION"
fi
.tools/torch/bin/pip install --quiet --disable-pip-version-check "./clients/python[torch,hdf5,test]"
rm -rf clients/python/build
# psik itself, whose verify_signature checks the job queue's signed callbacks (.tools/psik).
PSIK_VERSION=3.1.1
if ! .tools/psik/bin/python -c "import psik.web, sys, importlib.metadata as m; sys.exit(m.version('psik') != '$PSIK_VERSION')" 2>/dev/null; then
  python3 -m venv .tools/psik 2>/dev/null || { apt_install python3-venv && python3 -m venv .tools/psik; }
  echo "installing psik $PSIK_VERSION into .tools/psik"
  .tools/psik/bin/pip install --quiet --disable-pip-version-check "psik==$PSIK_VERSION"
fi
echo "system test tools ready in $tools"
