#!/bin/sh
# The front door's TLS material for Envoy, kept fresh with no restart (the
# front-tls service of compose.yaml): its own certificate (service/front),
# renewed with the CA once two thirds of its lifetime have passed, as every
# service renews its own, and the CA's revocation list, fetched every minute.
#
# Envoy reads them by SDS (mesh/sds/) from $out/current/: tls.crt, tls.key,
# ca.crt and ca.crl. Every change is written to a new directory beside it,
# and `current`, a symbolic link, is switched to that directory in one
# rename: the move Envoy watches $out for. So Envoy never reads a
# certificate with another's key, or half a file.
set -u
ca="${LCLSTREAM_CA_URL:-https://ca:8443}"
issued="${LCLSTREAM_FRONT_ISSUED:-/certs/front}"  # what pki-init issued at this start (read-only)
out="${LCLSTREAM_FRONT_OUT:-/front}"              # the directory Envoy watches
interval="${LCLSTREAM_FRONT_INTERVAL:-60}"        # seconds between looks at the CRL and the certificate's age
envoy_uid="${LCLSTREAM_ENVOY_UID:-101}"           # Envoy's image runs as the user envoy

# When the certificate in $1 expires, in milliseconds since 1970; and whether
# two thirds of its lifetime have passed.
not_after() {
  node -e 'const c = new (require("node:crypto").X509Certificate)(require("node:fs").readFileSync(process.argv[1]));
    console.log(Date.parse(c.validTo))' "$1"
}
renewal_due() {
  node -e 'const c = new (require("node:crypto").X509Certificate)(require("node:fs").readFileSync(process.argv[1]));
    const from = Date.parse(c.validFrom), to = Date.parse(c.validTo);
    process.exit(Date.now() >= from + ((to - from) * 2) / 3 ? 0 : 1)' "$1"
}

# A new directory in $out holding a copy of the cert directory $1.
stage() {
  dir=$(mktemp -d "$out/v.XXXXXX") || return 1
  chmod 755 "$dir"
  cp "$1/ca.crt" "$1/tls.crt" "$1/tls.key" "$dir/" || return 1
  [ ! -f "$1/ca.crl" ] || cp "$1/ca.crl" "$dir/" || return 1
  echo "$dir"
}

# Points current at the directory $1 in one rename, and removes the
# directories before the one it replaces (a reader may still be in that one).
publish() {
  chmod 644 "$1/ca.crt" "$1/tls.crt" "$1/ca.crl"
  chmod 600 "$1/tls.key"
  chown "$envoy_uid" "$1/tls.key" 2>/dev/null || true
  previous=$(readlink "$out/current" 2>/dev/null || true)
  ln -sfn "$(basename "$1")" "$out/.current.new" && mv -T "$out/.current.new" "$out/current" || return 1
  for old in "$out"/v.*; do
    case "$(basename "$old")" in
      "$(basename "$1")" | "$previous") ;;
      *) rm -rf "$old" ;;
    esac
  done
  echo "front-tls: $out/current is now $(basename "$1")"
}

# The CA's CRL into the file $2, fetched with the cert directory $1.
fetch_crl() {
  lclstream ca crl --url "$ca" --cert-dir "$1" --out "$2"
}

mkdir -p "$out"
# Begin from the certificate pki-init issued at this start, unless the one
# renewed here before a restart of this container lasts longer.
from="$issued"
if [ -f "$out/current/tls.crt" ] && [ "$(not_after "$out/current/tls.crt")" -gt "$(not_after "$issued/tls.crt")" ]; then
  from="$out/current"
fi
until next=$(stage "$from") && fetch_crl "$next" "$next/ca.crl" && publish "$next"; do
  echo "front-tls: cannot reach the CA at $ca yet; retrying in 5 s" >&2
  [ -z "${next:-}" ] || rm -rf "$next"
  sleep 5
done

crl=$(mktemp)
while sleep "$interval"; do
  if renewal_due "$out/current/tls.crt"; then
    # A new key pair and certificate, same identity and names: `lclstream renew`
    # writes them over the copy, then it is published with a fresh CRL.
    if next=$(stage "$out/current") && lclstream renew --url "$ca" --cert-dir "$next" && fetch_crl "$next" "$next/ca.crl" && publish "$next"; then
      continue
    fi
    echo "front-tls: renewing the front's certificate failed; retrying in $interval s" >&2
    rm -rf "$next"
  elif fetch_crl "$out/current" "$crl"; then
    # A new list (after a revocation, or re-signed before it expires): the same certificate with it.
    if ! cmp -s "$crl" "$out/current/ca.crl"; then
      next=$(stage "$out/current") && cp "$crl" "$next/ca.crl" && publish "$next" || rm -rf "$next"
    fi
  fi
done
