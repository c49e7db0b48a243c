{{/* The prefix of every object's name; short enough for a StatefulSet's pods and revisions. */}}
{{- define "lclstream.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" -}}
{{- else if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* A component's object and Service name: (dict "root" $ "name" "jobs"). */}}
{{- define "lclstream.name" -}}
{{- printf "%s-%s" (include "lclstream.fullname" .root) .name -}}
{{- end -}}

{{/* A component's fully qualified Service name. */}}
{{- define "lclstream.fqdn" -}}
{{- printf "%s.%s.svc.%s" (include "lclstream.name" .) .root.Release.Namespace .root.Values.clusterDomain -}}
{{- end -}}

{{/* Buffer N's own name, through the headless Service: (dict "root" $ "index" N). */}}
{{- define "lclstream.bufferHost" -}}
{{- $buffer := include "lclstream.name" (dict "root" .root "name" "buffer") -}}
{{- printf "%s-%d.%s" $buffer (int .index) $buffer -}}
{{- end -}}

{{/* The Secret holding one identity's certificate directory: (dict "root" $ "name" "jobs"). */}}
{{- define "lclstream.certSecret" -}}
{{- printf "%s-certs-%s" (include "lclstream.fullname" .root) .name -}}
{{- end -}}

{{/* An identity as a URI: user/admin -> spiffe://<trustDomain>/user/admin. */}}
{{- define "lclstream.identityUri" -}}
{{- if hasPrefix "spiffe://" .id -}}{{ .id }}{{- else -}}{{ printf "spiffe://%s/%s" .root.Values.trustDomain .id }}{{- end -}}
{{- end -}}

{{- define "lclstream.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/* Labels that select a component's pods: (dict "root" $ "component" "jobs"). */}}
{{- define "lclstream.selectorLabels" -}}
app.kubernetes.io/name: lclstream
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "lclstream.labels" -}}
{{ include "lclstream.selectorLabels" . }}
app.kubernetes.io/part-of: lclstream
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version }}
{{- end -}}

{{/* Every pod of the release (for NetworkPolicy peers). */}}
{{- define "lclstream.releasePods" -}}
app.kubernetes.io/name: lclstream
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* Pod annotations: Prometheus scrapes the services' metrics port on the pod's address. */}}
{{- define "lclstream.metricsAnnotations" -}}
prometheus.io/scrape: "true"
prometheus.io/port: {{ .Values.metrics.port | quote }}
prometheus.io/path: /metrics
{{- end -}}

{{/*
Flags every lclstream service is given as in mesh/compose.yaml: admins, the front door's identity,
metrics. The metrics port binds the pod's address (0.0.0.0), where Prometheus scrapes it; it is
plain HTTP, and the NetworkPolicies let only networkPolicy.metricsFrom reach it.
*/}}
{{- define "lclstream.commonArgs" -}}
{{- range .Values.admins }}
- --admin
- {{ . | quote }}
{{- end }}
- --proxy-identity
- service/front
- --metrics-port
- {{ .Values.metrics.port | quote }}
- --metrics-host
- 0.0.0.0
{{- end -}}

{{- define "lclstream.env" -}}
- name: LCLSTREAM_LOG_LEVEL
  value: {{ .Values.logLevel | quote }}
{{- end -}}

{{/*
The data root, when there is one: --data-root flags (dataArgs), the mount (dataMount) and the
volume (dataVolume).
*/}}
{{- define "lclstream.hasData" -}}
{{- if or .Values.data.existingClaim .Values.data.hostPath }}true{{ end -}}
{{- end -}}
{{- define "lclstream.dataArgs" -}}
{{- if include "lclstream.hasData" . }}
- --data-root
- {{ .Values.data.mountPath }}
{{- end }}
{{- end -}}
{{- define "lclstream.dataMount" -}}
{{- if include "lclstream.hasData" . }}
- name: data
  mountPath: {{ .Values.data.mountPath }}
  readOnly: true
{{- end }}
{{- end -}}
{{- define "lclstream.dataVolume" -}}
{{- if .Values.data.existingClaim }}
- name: data
  persistentVolumeClaim:
    claimName: {{ .Values.data.existingClaim }}
    readOnly: true
{{- else if .Values.data.hostPath }}
- name: data
  hostPath:
    path: {{ .Values.data.hostPath }}
    type: Directory
{{- end }}
{{- end -}}

{{/*
Health probes of an lclstream service (not the CA): `lclstream health` over mTLS with the pod's
own certificate, as mesh/compose.yaml's healthchecks. Kubernetes' own grpc probe speaks plaintext
gRPC and cannot present a client certificate, which every service requires, so it cannot be used.
The certificate names localhost, so the probe checks this pod and not whichever pod a Service picks.
(dict "root" $ "name" "jobs")
*/}}
{{- define "lclstream.healthProbes" -}}
{{- $probe := dict "exec" (dict "command" (list "lclstream" "health" "--url" "https://localhost:8443" "--cert-dir" (printf "/certs/%s" .name) "--timeout" "2s")) -}}
{{- $p := .root.Values.probes }}
startupProbe:
  {{- toYaml $probe | nindent 2 }}
  periodSeconds: 5
  timeoutSeconds: {{ $p.timeoutSeconds }}
  failureThreshold: {{ $p.startupFailureThreshold }}
readinessProbe:
  {{- toYaml $probe | nindent 2 }}
  periodSeconds: {{ $p.periodSeconds }}
  timeoutSeconds: {{ $p.timeoutSeconds }}
  failureThreshold: {{ $p.failureThreshold }}
livenessProbe:
  {{- toYaml $probe | nindent 2 }}
  periodSeconds: {{ mul $p.periodSeconds 2 }}
  timeoutSeconds: {{ $p.timeoutSeconds }}
  failureThreshold: {{ $p.failureThreshold }}
{{- end -}}

{{/*
The init container that takes a pod's certificates from their Secrets into writable directories
(/certs/NAME), where the service writes the certificates it renews from the CA. A Secret volume is
read-only, and a renewal the service cannot write fails. (dict "root" $ "names" (list "jobs"))
*/}}
{{- define "lclstream.takeCerts" -}}
- name: take-certs
  image: {{ include "lclstream.image" .root }}
  imagePullPolicy: {{ .root.Values.image.pullPolicy }}
  command: [node, /etc/lclstream/chart/take-certs.mjs]
  args:
    {{- range .names }}
    - {{ . }}
    {{- end }}
  securityContext:
    {{- toYaml .root.Values.containerSecurityContext | nindent 4 }}
  resources:
    {{- toYaml .root.Values.pki.resources | nindent 4 }}
  volumeMounts:
    - name: chart-scripts
      mountPath: /etc/lclstream/chart
      readOnly: true
    {{- range .names }}
    - name: secret-{{ . }}
      mountPath: /secrets/{{ . }}
      readOnly: true
    - name: certs-{{ . }}
      mountPath: /certs/{{ . }}
    {{- end }}
{{- end -}}

{{/* The volumes of takeCerts: each identity's Secret and its writable copy (in memory). */}}
{{- define "lclstream.certVolumes" -}}
{{- $root := .root -}}
{{- range .names }}
- name: secret-{{ . }}
  secret:
    secretName: {{ include "lclstream.certSecret" (dict "root" $root "name" .) }}
    defaultMode: 0440
- name: certs-{{ . }}
  emptyDir:
    medium: Memory
    sizeLimit: 1Mi
{{- end }}
- name: chart-scripts
  configMap:
    name: {{ include "lclstream.fullname" $root }}-scripts
{{- end -}}

{{/* The mounts of a service container: its certificate directories, taken by takeCerts. */}}
{{- define "lclstream.certMounts" -}}
{{- range .names }}
- name: certs-{{ . }}
  mountPath: /certs/{{ . }}
{{- end }}
{{- end -}}

{{/* A StatefulSet's state volume claim: (dict "persistence" .Values.ca.persistence). */}}
{{- define "lclstream.stateClaim" -}}
- metadata:
    name: state
  spec:
    accessModes: [ReadWriteOnce]
    {{- if .persistence.storageClass }}
    storageClassName: {{ .persistence.storageClass | quote }}
    {{- end }}
    resources:
      requests:
        storage: {{ .persistence.size }}
{{- end -}}

{{/* The lclstream pods' common spec: security, pull secrets, no Kubernetes API token. */}}
{{- define "lclstream.podCommon" -}}
automountServiceAccountToken: false
enableServiceLinks: false
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/* One upstream cluster of the front door's Envoy config (its TLS secrets are the listener's, *front_cert and *mesh_ca, by SDS): (dict "root" $ "cluster" NAME "host" HOST "port" 8443 "identity" "service/NAME" "health" true "clientCert" true). */}}
{{- define "lclstream.envoyCluster" -}}
- name: {{ .cluster }}
  type: STRICT_DNS
  connect_timeout: 5s
  lb_policy: ROUND_ROBIN
  per_connection_buffer_limit_bytes: 1048576
  load_assignment:
    cluster_name: {{ .cluster }}
    endpoints:
      - lb_endpoints:
          - endpoint: { address: { socket_address: { address: {{ .host }}, port_value: {{ .port }} } } }
  typed_extension_protocol_options:
    envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
      "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
      explicit_http_config:
        http2_protocol_options:
          initial_stream_window_size: 8388608
          initial_connection_window_size: 16777216
  {{- if .health }}
  health_checks:
    - timeout: 2s
      interval: 10s
      unhealthy_threshold: 3
      healthy_threshold: 1
      grpc_health_check: {}
  {{- end }}
  transport_socket:
    name: envoy.transport_sockets.tls
    typed_config:
      "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext
      sni: {{ .host }}
      common_tls_context:
        tls_params: { tls_minimum_protocol_version: TLSv1_3 }
        alpn_protocols: [h2]
        {{- if .clientCert }}
        tls_certificate_sds_secret_configs: [*front_cert]
        # The mesh CA and its CRL (SDS), and the identity this service must have.
        {{- end }}
        combined_validation_context:
          validation_context_sds_secret_config: *mesh_ca
          default_validation_context:
            match_typed_subject_alt_names:
              - san_type: URI
                matcher: { exact: {{ include "lclstream.identityUri" (dict "root" .root "id" .identity) }} }
{{- end -}}

{{/* The PKI containers' environment: pki.sh's (as mesh/pki-init.sh's) and publish-certs.mjs's. */}}
{{- define "lclstream.pkiEnv" -}}
- name: LCLSTREAM_PKI_STATE
  value: /state
- name: LCLSTREAM_PKI_CERTS
  value: /certs
- name: LCLSTREAM_TRUST_DOMAIN
  value: {{ .Values.trustDomain | quote }}
- name: LCLSTREAM_PUBLIC_HOST
  value: {{ .Values.publicHost | quote }}
- name: LCLSTREAM_PKI_LIFETIME
  value: {{ .Values.pki.lifetime | quote }}
- name: LCLSTREAM_SECRET_PREFIX
  value: {{ include "lclstream.fullname" . }}-certs-
- name: LCLSTREAM_SECRET_LABELS
  value: {{ dict "app.kubernetes.io/name" "lclstream" "app.kubernetes.io/instance" .Release.Name "app.kubernetes.io/part-of" "lclstream" | toJson | quote }}
{{ include "lclstream.env" . }}
{{- end -}}

{{- define "lclstream.pkiMounts" -}}
- name: state
  mountPath: /state
- name: pki-certs
  mountPath: /certs
- name: chart-scripts
  mountPath: /etc/lclstream/chart
  readOnly: true
- name: kube-api
  mountPath: /var/run/secrets/kubernetes.io/serviceaccount
  readOnly: true
{{- end -}}
