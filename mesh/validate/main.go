// Command validate checks an Envoy bootstrap file against Envoy's own API
// (the v3 types of go-control-plane) the way Envoy would load it, since no
// Envoy binary runs on the machines that test lclstream:
//
//   - the YAML is parsed into envoy.config.bootstrap.v3.Bootstrap with strict
//     JSON rules: an unknown or misspelt field fails;
//   - every typed_config (google.protobuf.Any) is resolved to its type, so an
//     unknown @type fails, and each is validated with its own rules;
//   - ValidateAll() runs the protoc-gen-validate rules of every message;
//   - and lclstream's own rules: every route points at a defined cluster,
//     and every cluster that leaves the host speaks TLS with a trusted CA.
//
// Usage: go run . FILE.yaml [FILE.yaml ...]; exits 1 when a file is invalid.
package main

import (
	"fmt"
	"os"
	"strings"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/anypb"
	"sigs.k8s.io/yaml"

	// The extensions mesh/envoy.yaml uses: linking them registers their types.
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/stream/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/cors/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/grpc_web/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
)

// validatable is what protoc-gen-validate generates on every message.
type validatable interface{ ValidateAll() error }

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: validate FILE.yaml [FILE.yaml ...]")
		os.Exit(2)
	}
	failed := false
	for _, file := range os.Args[1:] {
		summary, problems := validateFile(file)
		if len(problems) > 0 {
			failed = true
			fmt.Printf("%s: INVALID\n", file)
			for _, p := range problems {
				fmt.Printf("  - %s\n", p)
			}
			continue
		}
		fmt.Printf("%s: valid (%s)\n", file, summary)
	}
	if failed {
		os.Exit(1)
	}
}

func validateFile(file string) (string, []string) {
	text, err := os.ReadFile(file)
	if err != nil {
		return "", []string{err.Error()}
	}
	json, err := yaml.YAMLToJSON(text)
	if err != nil {
		return "", []string{fmt.Sprintf("not YAML: %v", err)}
	}
	var bootstrap bootstrapv3.Bootstrap
	// Strict: unknown fields and unknown @types are errors, as in Envoy.
	if err := (protojson.UnmarshalOptions{DiscardUnknown: false}).Unmarshal(json, &bootstrap); err != nil {
		return "", []string{fmt.Sprintf("does not match envoy.config.bootstrap.v3.Bootstrap: %v", err)}
	}
	var problems []string
	if err := bootstrap.ValidateAll(); err != nil {
		problems = append(problems, fmt.Sprintf("Bootstrap: %v", err))
	}
	var managers []*hcmv3.HttpConnectionManager
	walk(bootstrap.ProtoReflect(), "bootstrap", &problems, func(m proto.Message) {
		if hcm, ok := m.(*hcmv3.HttpConnectionManager); ok {
			managers = append(managers, hcm)
		}
	})

	clusters := map[string]*clusterv3.Cluster{}
	for _, c := range bootstrap.GetStaticResources().GetClusters() {
		clusters[c.GetName()] = c
		problems = append(problems, checkClusterTLS(c)...)
	}
	routes := 0
	for _, hcm := range managers {
		for _, vh := range hcm.GetRouteConfig().GetVirtualHosts() {
			for _, r := range vh.GetRoutes() {
				routes++
				for _, name := range routeClusters(r) {
					if _, ok := clusters[name]; !ok {
						problems = append(problems, fmt.Sprintf("route %q in virtual host %q of %s points at cluster %q, which is not defined", matchOf(r), vh.GetName(), hcm.GetStatPrefix(), name))
					}
				}
			}
		}
	}
	summary := fmt.Sprintf("%d listeners, %d clusters, %d routes", len(bootstrap.GetStaticResources().GetListeners()), len(clusters), routes)
	return summary, problems
}

// walk visits every message under m, resolving each Any to its type,
// validating it with its own rules and walking into it.
func walk(m protoreflect.Message, path string, problems *[]string, visit func(proto.Message)) {
	visit(m.Interface())
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		child := path + "." + string(fd.Name())
		switch {
		case fd.IsList() && fd.Message() != nil:
			list := v.List()
			for i := 0; i < list.Len(); i++ {
				visitMessage(list.Get(i).Message(), fmt.Sprintf("%s[%d]", child, i), problems, visit)
			}
		case fd.IsMap() && fd.MapValue().Message() != nil:
			v.Map().Range(func(k protoreflect.MapKey, mv protoreflect.Value) bool {
				visitMessage(mv.Message(), fmt.Sprintf("%s[%v]", child, k.Interface()), problems, visit)
				return true
			})
		case !fd.IsList() && !fd.IsMap() && fd.Message() != nil:
			visitMessage(v.Message(), child, problems, visit)
		}
		return true
	})
}

func visitMessage(m protoreflect.Message, path string, problems *[]string, visit func(proto.Message)) {
	if a, ok := m.Interface().(*anypb.Any); ok {
		inner, err := a.UnmarshalNew()
		if err != nil {
			*problems = append(*problems, fmt.Sprintf("%s: %s cannot be read: %v", path, a.GetTypeUrl(), err))
			return
		}
		if v, ok := inner.(validatable); ok {
			if err := v.ValidateAll(); err != nil {
				*problems = append(*problems, fmt.Sprintf("%s (%s): %v", path, a.GetTypeUrl(), err))
			}
		}
		walk(inner.ProtoReflect(), path, problems, visit)
		return
	}
	walk(m, path, problems, visit)
}

// checkClusterTLS requires TLS with a trusted CA on every cluster whose
// endpoints are not all on loopback.
func checkClusterTLS(c *clusterv3.Cluster) []string {
	if onLoopback(c) {
		return nil
	}
	socket := c.GetTransportSocket()
	if socket == nil {
		return []string{fmt.Sprintf("cluster %q leaves the host without TLS: give it a transport_socket with an UpstreamTlsContext", c.GetName())}
	}
	var ctx tlsv3.UpstreamTlsContext
	if socket.GetTypedConfig() == nil || socket.GetTypedConfig().UnmarshalTo(&ctx) != nil {
		return []string{fmt.Sprintf("cluster %q has a transport socket that is not an UpstreamTlsContext", c.GetName())}
	}
	if ctx.GetCommonTlsContext().GetValidationContext().GetTrustedCa() == nil {
		return []string{fmt.Sprintf("cluster %q does not verify its upstream: set common_tls_context.validation_context.trusted_ca", c.GetName())}
	}
	return nil
}

func onLoopback(c *clusterv3.Cluster) bool {
	found := false
	for _, group := range c.GetLoadAssignment().GetEndpoints() {
		for _, e := range group.GetLbEndpoints() {
			address := e.GetEndpoint().GetAddress().GetSocketAddress().GetAddress()
			if address != "127.0.0.1" && address != "::1" && address != "localhost" {
				return false
			}
			found = true
		}
	}
	return found
}

func routeClusters(r *routev3.Route) []string {
	action := r.GetRoute()
	if action == nil {
		return nil
	}
	if name := action.GetCluster(); name != "" {
		return []string{name}
	}
	var names []string
	for _, w := range action.GetWeightedClusters().GetClusters() {
		names = append(names, w.GetName())
	}
	return names
}

func matchOf(r *routev3.Route) string {
	m := r.GetMatch()
	return strings.Join([]string{m.GetPrefix(), m.GetPath(), m.GetSafeRegex().GetRegex()}, "")
}
