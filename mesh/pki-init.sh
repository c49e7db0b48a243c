#!/bin/sh
# Certificates for mesh/compose.yaml, made before the services start: the
# mesh CA on first start (its key stays in the CA's state volume), then a
# fresh certificate for each service, the front proxy and the first admin.
set -eu
state="${LCLSTREAM_PKI_STATE:-/state}"
certs="${LCLSTREAM_PKI_CERTS:-/certs}"
domain="${LCLSTREAM_TRUST_DOMAIN:?set LCLSTREAM_TRUST_DOMAIN, e.g. lclstream.example.org}"
public="${LCLSTREAM_PUBLIC_HOST:?set LCLSTREAM_PUBLIC_HOST, the front door's host name}"
[ -f "$state/ca/ca.key" ] || lclstream ca init --trust-domain "$domain" --state-dir "$state"
for name in jobs producer request; do
  lclstream ca issue --state-dir "$state" --identity "service/$name" --dns "$name" --out "$certs/$name"
done
# One identity for the pool of buffers, under each of their names, in a directory per buffer:
# each buffer renews its certificate (a new key) into its own directory.
for name in buffer buffer-1 buffer-2; do
  lclstream ca issue --state-dir "$state" --identity service/buffer --dns buffer --dns buffer-1 --dns buffer-2 --out "$certs/$name"
done
# The front proxy answers as the facility's public name, and as service/front to the services.
# The front-tls service hands it to Envoy (readable by Envoy's user there) and renews it (front-tls.sh).
lclstream ca issue --state-dir "$state" --identity service/front --dns "$public" --dns front --out "$certs/front"
# The first admin, who makes enrollment tokens for everyone else; keep it safe and delete it here.
# Made once in the CA's life (the mark is in the CA's state): deleting certs/admin, as you should,
# does not make another admin key at the next start. Another admin enrolls with a token from this one.
if [ ! -f "$state/ca/first-admin-issued" ]; then
  lclstream ca issue --state-dir "$state" --identity user/admin --lifetime 7d --out "$certs/admin"
  date -u +%Y-%m-%dT%H:%M:%SZ > "$state/ca/first-admin-issued"
fi
