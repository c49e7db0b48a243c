{{- $root := . -}}
{{- $ns := .Release.Namespace -}}
{{- $fqdn := dict -}}
{{- range list "request" "ca" "jobs" "producer" }}{{ $_ := set $fqdn . (include "lclstream.fqdn" (dict "root" $root "name" .)) }}{{ end -}}
# The lclstream front door on Kubernetes: mesh/envoy.yaml with the cluster's names for the
# upstreams, one route and cluster per buffer of the pool, and the trust domain, admins and CORS
# origins from the chart's values (rendered by the chart, whose test checks that it stays
# mesh/envoy.yaml but for those).
#
#   :8443  mTLS (client certificate from the mesh CA required, CRL checked),
#          routed by gRPC service prefix to each service over mTLS; the
#          job queue and producer only for admins (RBAC on the URI SAN).
#          gRPC, gRPC-Web and Connect; CORS for the viewer.
#   :8444  enrollment: TLS without a client certificate, GetTrustBundle and
#          Enroll only.
#   :9902  Prometheus metrics (/metrics); the admin interface stays on loopback.
#
# The front's certificate, and the mesh CA with its revocation list, come by SDS from the files
# in /etc/envoy/sds (files/sds/, as mesh/sds/), which name the files the front-tls sidecar keeps
# fresh (mesh/front-tls.sh): renewal and revocation need no restart.
admin:
  address:
    socket_address: { address: 127.0.0.1, port_value: 9901 }

static_resources:
  listeners:
    - name: front
      address:
        socket_address: { address: 0.0.0.0, port_value: 8443 }
      per_connection_buffer_limit_bytes: 1048576
      filter_chains:
        - transport_socket:
            name: envoy.transport_sockets.tls
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext
              require_client_certificate: true
              common_tls_context:
                tls_params: { tls_minimum_protocol_version: TLSv1_3 }
                alpn_protocols: [h2, http/1.1]
                # The front's certificate, and the mesh CA and its CRL to check clients with, by SDS
                # from files (mesh/sds/) that Envoy watches: a renewed certificate or a new CRL
                # applies to every new connection with no restart. Every service also follows
                # revocations live, whatever Envoy holds. The enroll listener and every cluster
                # below use the same two secrets (*front_cert, *mesh_ca).
                tls_certificate_sds_secret_configs:
                  - &front_cert
                    name: front_cert
                    sds_config:
                      path_config_source: { path: /etc/envoy/sds/front-cert.yaml, watched_directory: { path: /etc/envoy/sds } }
                      resource_api_version: V3
                validation_context_sds_secret_config: &mesh_ca
                  name: mesh_ca
                  sds_config:
                    path_config_source: { path: /etc/envoy/sds/mesh-ca.yaml, watched_directory: { path: /etc/envoy/sds } }
                    resource_api_version: V3
          filters:
            - name: envoy.filters.network.http_connection_manager
              typed_config:
                "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
                stat_prefix: front
                codec_type: AUTO
                # Replace whatever a client sent with the certificate this proxy verified.
                forward_client_cert_details: SANITIZE_SET
                set_current_client_cert_details: { uri: true, cert: true }
                # Data streams live as long as their request: no duration limit; an idle
                # stream is cut after 5 minutes, and the services send a heartbeat every 15 s.
                stream_idle_timeout: 300s
                request_timeout: 0s
                common_http_protocol_options:
                  idle_timeout: 3600s
                  max_stream_duration: 0s
                http2_protocol_options:
                  max_concurrent_streams: 1000
                  # Explicit windows: fast enough for 1 MiB batches, and a bound on Envoy's memory.
                  initial_stream_window_size: 8388608
                  initial_connection_window_size: 16777216
                  # A client that stops answering pings (its host hung or gone) is disconnected, so
                  # its calls end in the services too: the same 20 s and 20 s as the services' own.
                  connection_keepalive: { interval: 20s, timeout: 20s }
                access_log:
                  - name: envoy.access_loggers.stdout
                    typed_config:
                      "@type": type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StdoutAccessLog
                http_filters:
                  - name: envoy.filters.http.grpc_web
                    typed_config:
                      "@type": type.googleapis.com/envoy.extensions.filters.http.grpc_web.v3.GrpcWeb
                  - name: envoy.filters.http.cors
                    typed_config:
                      "@type": type.googleapis.com/envoy.extensions.filters.http.cors.v3.Cors
                  - name: envoy.filters.http.rbac
                    typed_config:
                      "@type": type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC
                      rules:
                        action: ALLOW
                        policies:
                          # Every client with a mesh certificate: data requests, the buffer, the CA, health, reflection.
                          users:
                            permissions:
                              - or_rules:
                                  rules:
                                    - url_path: { path: { prefix: /lclstream.request.v1. } }
                                    - url_path: { path: { prefix: /lclstream.buffer.v1. } }
                                    - url_path: { path: { prefix: /lclstream.ca.v1. } }
                                    - url_path: { path: { prefix: /grpc.health.v1. } }
                                    - url_path: { path: { prefix: /grpc.reflection. } }
                                    - url_path: { path: { prefix: /viewer/ } }
                                    - url_path: { path: { prefix: /v1/transfers } }
                            principals:
                              - authenticated: {}
                          # Admins: the job queue and the producer too.
                          admins:
                            permissions:
                              - any: true
                            principals:
                              {{- range .Values.admins }}
                              - authenticated:
                                  principal_name: { exact: {{ include "lclstream.identityUri" (dict "root" $root "id" .) }} }
                              {{- end }}
                  - name: envoy.filters.http.router
                    typed_config:
                      "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
                route_config:
                  name: mesh
                  virtual_hosts:
                    - name: mesh
                      domains: ["*"]
                      typed_per_filter_config:
                        envoy.filters.http.cors:
                          "@type": type.googleapis.com/envoy.extensions.filters.http.cors.v3.CorsPolicy
                          allow_origin_string_match:
                            {{- range (.Values.front.corsOrigins | default (list (printf "https://%s" .Values.publicHost))) }}
                            - exact: {{ . }}
                            {{- end }}
                          allow_methods: POST, OPTIONS
                          allow_headers: content-type, x-grpc-web, x-user-agent, grpc-timeout, connect-protocol-version, connect-timeout-ms
                          expose_headers: grpc-status, grpc-message, grpc-status-details-bin
                          max_age: "86400"
                      routes:
                        - match: { prefix: /lclstream.request.v1. }
                          route: { cluster: request, timeout: 0s }
                        # A shard on another buffer of the pool: its buffer_route, in the lclstream-buffer header.
                        {{- range $i := untilStep 1 (int .Values.buffer.replicas) 1 }}
                        - match: { prefix: /lclstream.buffer.v1., headers: [{ name: lclstream-buffer, string_match: { exact: "{{ $i }}" } }] }
                          route: { cluster: buffer-{{ $i }}, timeout: 0s }
                        {{- end }}
                        - match: { prefix: /lclstream.buffer.v1. }
                          route: { cluster: buffer, timeout: 0s }
                        - match: { prefix: /lclstream.ca.v1. }
                          route: { cluster: ca, timeout: 0s }
                        - match: { prefix: /lclstream.jobs.v1. }
                          route: { cluster: jobs, timeout: 0s }
                        - match: { prefix: /lclstream.producer.v1. }
                          route: { cluster: producer, timeout: 0s }
                        # Health and reflection of the front door are the request service's.
                        - match: { prefix: /grpc.health.v1. }
                          route: { cluster: request, timeout: 0s }
                        - match: { prefix: /grpc.reflection. }
                          route: { cluster: request, timeout: 0s }
                        # The viewer page (it calls the services above with gRPC-Web).
                        - match: { prefix: /viewer/ }
                          route: { cluster: request }
                        # lclstream_api's REST calls (HTTP/1.1 or HTTP/2 from the client; HTTP/2 behind).
                        - match: { prefix: /v1/transfers }
                          route: { cluster: request, timeout: 60s }

    - name: enroll
      address:
        socket_address: { address: 0.0.0.0, port_value: 8444 }
      filter_chains:
        - transport_socket:
            name: envoy.transport_sockets.tls
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext
              require_client_certificate: false
              common_tls_context:
                tls_params: { tls_minimum_protocol_version: TLSv1_3 }
                alpn_protocols: [h2]
                tls_certificate_sds_secret_configs: [*front_cert]
          filters:
            - name: envoy.filters.network.http_connection_manager
              typed_config:
                "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
                stat_prefix: enroll
                codec_type: HTTP2
                # Nobody is vouched for here: drop any client-sent identity header.
                forward_client_cert_details: SANITIZE
                stream_idle_timeout: 30s
                access_log:
                  - name: envoy.access_loggers.stdout
                    typed_config:
                      "@type": type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StdoutAccessLog
                http_filters:
                  - name: envoy.filters.http.router
                    typed_config:
                      "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
                route_config:
                  name: enroll
                  virtual_hosts:
                    - name: enroll
                      domains: ["*"]
                      routes:
                        - match: { path: /lclstream.ca.v1.CertificateAuthorityService/GetTrustBundle }
                          route: { cluster: ca_enroll, timeout: 30s }
                        - match: { path: /lclstream.ca.v1.CertificateAuthorityService/Enroll }
                          route: { cluster: ca_enroll, timeout: 30s }
                        # Anything else: gRPC PERMISSION_DENIED (HTTP 403).
                        - match: { prefix: / }
                          direct_response:
                            status: 403
                            body: { inline_string: "only GetTrustBundle and Enroll are served on the enrollment port; use the mTLS port with your certificate" }

    - name: metrics
      address:
        socket_address: { address: 0.0.0.0, port_value: 9902 }
      filter_chains:
        - filters:
            - name: envoy.filters.network.http_connection_manager
              typed_config:
                "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
                stat_prefix: metrics
                http_filters:
                  - name: envoy.filters.http.router
                    typed_config:
                      "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
                route_config:
                  name: metrics
                  virtual_hosts:
                    - name: metrics
                      domains: ["*"]
                      routes:
                        - match: { path: /metrics }
                          route: { cluster: envoy_admin, prefix_rewrite: /stats/prometheus }

  clusters:
    # Each service over mTLS, presenting the proxy's own certificate (service/front): the services trust its forwarded identities.
    {{- include "lclstream.envoyCluster" (dict "root" $root "cluster" "request" "host" $fqdn.request "port" 8443 "identity" "service/request" "health" true "clientCert" true) | nindent 4 }}
    {{- include "lclstream.envoyCluster" (dict "root" $root "cluster" "buffer" "host" (printf "%s.%s.svc.%s" (include "lclstream.bufferHost" (dict "root" $root "index" 0)) $ns .Values.clusterDomain) "port" 8443 "identity" "service/buffer" "health" true "clientCert" true) | nindent 4 }}
    # The pool's other buffers: a sharded request's shards on them are reached with the
    # `lclstream-buffer: N` header (each shard's buffer_route); same identity, service/buffer.
    {{- range $i := untilStep 1 (int .Values.buffer.replicas) 1 }}
    {{- include "lclstream.envoyCluster" (dict "root" $root "cluster" (printf "buffer-%d" $i) "host" (printf "%s.%s.svc.%s" (include "lclstream.bufferHost" (dict "root" $root "index" $i)) $ns $root.Values.clusterDomain) "port" 8443 "identity" "service/buffer" "health" true "clientCert" true) | nindent 4 }}
    {{- end }}
    {{- include "lclstream.envoyCluster" (dict "root" $root "cluster" "ca" "host" $fqdn.ca "port" 8443 "identity" "service/ca" "health" true "clientCert" true) | nindent 4 }}
    # The CA's enrollment listener: server-authenticated TLS only, and no gRPC health there.
    {{- include "lclstream.envoyCluster" (dict "root" $root "cluster" "ca_enroll" "host" $fqdn.ca "port" 8444 "identity" "service/ca" "health" false "clientCert" false) | nindent 4 }}
    {{- include "lclstream.envoyCluster" (dict "root" $root "cluster" "jobs" "host" $fqdn.jobs "port" 8443 "identity" "service/jobs" "health" true "clientCert" true) | nindent 4 }}
    {{- include "lclstream.envoyCluster" (dict "root" $root "cluster" "producer" "host" $fqdn.producer "port" 8443 "identity" "service/producer" "health" true "clientCert" true) | nindent 4 }}
    # Envoy's own admin, on loopback: only the /metrics route above reaches it.
    - name: envoy_admin
      type: STATIC
      connect_timeout: 1s
      load_assignment:
        cluster_name: envoy_admin
        endpoints:
          - lb_endpoints:
              - endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: 9901 } } }
