{{- $root := . -}}
{{- $ns := .Release.Namespace -}}
{{- $domain := .Values.clusterDomain -}}
#!/bin/sh
# The mesh's certificates, made as mesh/pki-init.sh makes them for compose, under the cluster's
# names (rendered by the chart from its values): the mesh CA on first start (its key stays on the
# CA's volume), then a fresh certificate for each service and the front door, and the first
# admin's once in the CA's life. Each lands in a directory of its own under
# $LCLSTREAM_PKI_CERTS; publish-certs.mjs then makes each a Secret.
set -eu
state="${LCLSTREAM_PKI_STATE:-/state}"
certs="${LCLSTREAM_PKI_CERTS:-/certs}"
domain="${LCLSTREAM_TRUST_DOMAIN:?set LCLSTREAM_TRUST_DOMAIN, e.g. lclstream.example.org}"
public="${LCLSTREAM_PUBLIC_HOST:?set LCLSTREAM_PUBLIC_HOST, the front door's host name}"
lifetime="${LCLSTREAM_PKI_LIFETIME:-}"
[ -f "$state/ca/ca.key" ] || lclstream ca init --trust-domain "$domain" --state-dir "$state"
issue() {
  out="$1"
  shift
  if [ -n "$lifetime" ]; then set -- "$@" --lifetime "$lifetime"; fi
  lclstream ca issue --state-dir "$state" --out "$certs/$out" "$@"
}
# Each service under its Service's names, and localhost, which its own health probe calls.
{{- range list "jobs" "producer" "request" }}
{{- $name := include "lclstream.name" (dict "root" $root "name" .) }}
issue {{ . }} --identity service/{{ . }} --dns {{ $name }} --dns {{ $name }}.{{ $ns }}.svc --dns {{ $name }}.{{ $ns }}.svc.{{ $domain }} --dns localhost
{{- end }}
# One identity for the pool of buffers, under each buffer's own name.
{{- $buffer := include "lclstream.name" (dict "root" $root "name" "buffer") }}
issue buffer --identity service/buffer --dns {{ $buffer }} --dns {{ $buffer }}.{{ $ns }}.svc --dns {{ $buffer }}.{{ $ns }}.svc.{{ $domain }} --dns localhost \
{{- range $i := until (int .Values.buffer.replicas) }}
{{- $host := include "lclstream.bufferHost" (dict "root" $root "index" $i) }}
  --dns {{ $host }} --dns {{ $host }}.{{ $ns }}.svc --dns {{ $host }}.{{ $ns }}.svc.{{ $domain }}{{ if lt (add1 $i) (int $.Values.buffer.replicas) }} \{{ end }}
{{- end }}
# The front door answers as the facility's public name, and as service/front to the services.
{{- $front := include "lclstream.name" (dict "root" $root "name" "front") }}
issue front --identity service/front --dns "$public" --dns {{ $front }} --dns {{ $front }}.{{ $ns }}.svc --dns {{ $front }}.{{ $ns }}.svc.{{ $domain }}
# The first admin, who makes enrollment tokens for everyone else: made once in the CA's life (the
# mark is in the CA's state), so deleting its Secret, as you should, does not bring another.
if [ ! -f "$state/ca/first-admin-issued" ]; then
  lclstream ca issue --state-dir "$state" --identity {{ first .Values.admins | quote }} --lifetime 7d --out "$certs/admin"
  date -u +%Y-%m-%dT%H:%M:%SZ > "$state/ca/first-admin-issued"
fi
