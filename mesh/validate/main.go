// Command validate checks an Envoy bootstrap file, and the files it reads
// secrets from by SDS, against Envoy's own API (the v3 types of
// go-control-plane) the way Envoy would load them, since no Envoy binary runs
// on the machines that test lclstream:
//
//   - the YAML is parsed into envoy.config.bootstrap.v3.Bootstrap with strict
//     JSON rules: an unknown or misspelt field fails;
//   - every typed_config (google.protobuf.Any) is resolved to its type, so an
//     unknown @type fails, and each is validated with its own rules;
//   - ValidateAll() runs the protoc-gen-validate rules of every message;
//   - and lclstream's own rules: every route points at a defined cluster,
//     and every cluster that leaves the host speaks TLS with a trusted CA.
//
// With --sds DIR, the files of SDS in DIR (the directory that Envoy mounts
// where the bootstrap's path_config_source paths point, matched by file
// name) are checked too, as Envoy reads them: each is a DiscoveryResponse in
// YAML, parsed strictly, holding exactly one
// envoy.extensions.transport_sockets.tls.v3.Secret, validated with
// ValidateAll(). Every secret the bootstrap asks for by SDS must then be in
// the file its path_config_source names, under the same name and of the
// kind asked for (a certificate, or a validation context); and every file a
// secret or a path_config_source is reloaded from must be under the
// directory watched for it, or a rotation would go unseen.
//
// Usage: go run . [--sds DIR] FILE.yaml [FILE.yaml ...]; exits 1 when a file
// is invalid.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
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

const secretType = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret"

// sdsFile is a file of SDS that passed its own checks.
type sdsFile struct {
	path   string
	secret *tlsv3.Secret
}

func main() {
	sdsDir := flag.String("sds", "", "the directory of SDS files that the bootstrap's path_config_source paths point into (matched by file name)")
	flag.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: validate [--sds DIR] FILE.yaml [FILE.yaml ...]")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() < 1 {
		flag.Usage()
		os.Exit(2)
	}
	failed := false
	report := func(file, summary string, problems []string) {
		if len(problems) > 0 {
			failed = true
			fmt.Printf("%s: INVALID\n", file)
			for _, p := range problems {
				fmt.Printf("  - %s\n", p)
			}
			return
		}
		fmt.Printf("%s: valid (%s)\n", file, summary)
	}

	// The SDS files first: the bootstraps' references are checked against those that are valid.
	var sds map[string]*sdsFile
	if *sdsDir != "" {
		sds = map[string]*sdsFile{}
		files, err := sdsFiles(*sdsDir)
		if err != nil {
			report(*sdsDir, "", []string{err.Error()})
		}
		for _, file := range files {
			secret, problems := validateSdsFile(file)
			if len(problems) == 0 {
				sds[filepath.Base(file)] = &sdsFile{path: file, secret: secret}
			}
			report(file, fmt.Sprintf("secret %q: %s", secret.GetName(), secretKind(secret)), problems)
		}
	}
	for _, file := range flag.Args() {
		summary, problems := validateFile(file, *sdsDir, sds)
		report(file, summary, problems)
	}
	if failed {
		os.Exit(1)
	}
}

func sdsFiles(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var files []string
	for _, e := range entries {
		switch filepath.Ext(e.Name()) {
		case ".yaml", ".yml", ".json":
			if !e.IsDir() {
				files = append(files, filepath.Join(dir, e.Name()))
			}
		}
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("no SDS files (.yaml, .yml, .json) in %s", dir)
	}
	return files, nil
}

// readYAML reads a YAML file into m with Envoy's strictness: an unknown field is an error.
func readYAML(file string, m proto.Message) error {
	json, err := yamlToJSON(file)
	if err != nil {
		return err
	}
	if err := (protojson.UnmarshalOptions{DiscardUnknown: false}).Unmarshal(json, m); err != nil {
		return fmt.Errorf("does not match %s: %v", m.ProtoReflect().Descriptor().FullName(), err)
	}
	return nil
}

func yamlToJSON(file string) ([]byte, error) {
	text, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	json, err := yaml.YAMLToJSON(text)
	if err != nil {
		return nil, fmt.Errorf("not YAML: %v", err)
	}
	return json, nil
}

// discoveryResponseFields are the fields of envoy.service.discovery.v3.DiscoveryResponse, in
// both of the spellings protojson accepts. Its Go package is not linked here, as it would
// bring all of gRPC with it for one message: the resources themselves are read as Envoy's types.
var discoveryResponseFields = map[string]bool{
	"version_info": true, "versionInfo": true, "resources": true, "canary": true, "type_url": true, "typeUrl": true,
	"nonce": true, "control_plane": true, "controlPlane": true, "resource_errors": true, "resourceErrors": true,
}

// validateSdsFile checks a file of SDS as Envoy's path_config_source reads it:
// a DiscoveryResponse whose one resource is the Secret asked for.
func validateSdsFile(file string) (*tlsv3.Secret, []string) {
	text, err := yamlToJSON(file)
	if err != nil {
		return nil, []string{err.Error()}
	}
	var response map[string]json.RawMessage
	if err := json.Unmarshal(text, &response); err != nil {
		return nil, []string{fmt.Sprintf("does not match envoy.service.discovery.v3.DiscoveryResponse: %v", err)}
	}
	var problems []string
	for _, field := range sortedKeys(response) {
		if !discoveryResponseFields[field] {
			problems = append(problems, fmt.Sprintf("does not match envoy.service.discovery.v3.DiscoveryResponse: unknown field %q", field))
		}
	}
	var typeURL string
	if raw, ok := response["type_url"]; ok && json.Unmarshal(raw, &typeURL) == nil && typeURL != "" && typeURL != secretType {
		problems = append(problems, fmt.Sprintf("type_url is %s; a file of SDS holds %s", typeURL, secretType))
	}
	var resources []json.RawMessage
	if raw, ok := response["resources"]; ok {
		if err := json.Unmarshal(raw, &resources); err != nil {
			return nil, append(problems, fmt.Sprintf("resources is not a list: %v", err))
		}
	}
	if len(resources) != 1 {
		// Envoy's SdsApi: "Unexpected SDS secrets length".
		return nil, append(problems, fmt.Sprintf("holds %d resources: Envoy takes exactly one Secret from a file of SDS", len(resources)))
	}
	// Strict, as the bootstrap: the @type must resolve, and every field be the Secret's.
	var resource anypb.Any
	if err := (protojson.UnmarshalOptions{DiscardUnknown: false}).Unmarshal(resources[0], &resource); err != nil {
		return nil, append(problems, fmt.Sprintf("resources[0] cannot be read: %v", err))
	}
	if resource.GetTypeUrl() != secretType {
		return nil, append(problems, fmt.Sprintf("resources[0] is %s, not %s", resource.GetTypeUrl(), secretType))
	}
	var secret tlsv3.Secret
	if err := resource.UnmarshalTo(&secret); err != nil {
		return nil, append(problems, fmt.Sprintf("resources[0] cannot be read: %v", err))
	}
	if err := secret.ValidateAll(); err != nil {
		problems = append(problems, fmt.Sprintf("Secret %q: %v", secret.GetName(), err))
	}
	walk(secret.ProtoReflect(), "resources[0]", &problems, func(proto.Message) {})
	if secret.GetName() == "" {
		problems = append(problems, "the Secret has no name: Envoy matches it to the name the bootstrap asks for")
	}
	if secret.GetType() == nil {
		problems = append(problems, fmt.Sprintf("Secret %q holds nothing: give it a tls_certificate or a validation_context", secret.GetName()))
	}
	// Files Envoy reloads on a move in the watched directory must be under it.
	watched := func(dir *corev3.WatchedDirectory, sources map[string]*corev3.DataSource) {
		if dir == nil {
			return
		}
		for _, field := range sortedKeys(sources) {
			if name := sources[field].GetFilename(); name != "" && !under(name, dir.GetPath()) {
				problems = append(problems, fmt.Sprintf("Secret %q: %s %s is not under its watched_directory %s, so a rotation would not reload it", secret.GetName(), field, name, dir.GetPath()))
			}
		}
	}
	if c := secret.GetTlsCertificate(); c != nil {
		watched(c.GetWatchedDirectory(), map[string]*corev3.DataSource{"certificate_chain": c.GetCertificateChain(), "private_key": c.GetPrivateKey()})
	}
	if v := secret.GetValidationContext(); v != nil {
		watched(v.GetWatchedDirectory(), map[string]*corev3.DataSource{"trusted_ca": v.GetTrustedCa(), "crl": v.GetCrl()})
	}
	return &secret, problems
}

func secretKind(s *tlsv3.Secret) string {
	switch {
	case s.GetTlsCertificate() != nil:
		return "tls_certificate"
	case s.GetValidationContext() != nil:
		return "validation_context"
	case s.GetSessionTicketKeys() != nil:
		return "session_ticket_keys"
	case s.GetGenericSecret() != nil:
		return "generic_secret"
	}
	return "nothing"
}

// secretRef is one place the bootstrap asks for a secret.
type secretRef struct {
	config *tlsv3.SdsSecretConfig
	kind   string // what the place needs: tls_certificate or validation_context
}

// resolver finds the secrets the bootstrap asks for.
type resolver struct {
	sdsDir  string
	sds     map[string]*sdsFile // by file name; nil without --sds
	static  map[string]*tlsv3.Secret
	fromSds map[string]bool // secrets found in SDS files, by name
	unread  map[string]bool // SDS files referenced but not checked (no --sds)
}

// resolve returns the secret ref asks for, or nil with the problems found; a
// secret from a source this tool does not read (a management server, or files
// without --sds) is nil with no problems.
func (r *resolver) resolve(ref secretRef) (*tlsv3.Secret, []string) {
	name := ref.config.GetName()
	source := ref.config.GetSdsConfig()
	if source == nil {
		secret, ok := r.static[name]
		if !ok {
			return nil, []string{fmt.Sprintf("secret %q is not among static_resources.secrets, and no sds_config says where else to find it", name)}
		}
		return secret, checkKind(secret, ref, "static_resources.secrets")
	}
	path := source.GetPath()
	var problems []string
	if pcs := source.GetPathConfigSource(); pcs != nil {
		path = pcs.GetPath()
		if dir := pcs.GetWatchedDirectory(); dir != nil && !under(path, dir.GetPath()) {
			problems = append(problems, fmt.Sprintf("secret %q: %s is not under its watched_directory %s, so a change to it would not be seen", name, path, dir.GetPath()))
		}
	}
	if path == "" {
		return nil, problems
	}
	if r.sds == nil {
		r.unread[path] = true
		return nil, problems
	}
	file, ok := r.sds[filepath.Base(path)]
	if !ok {
		return nil, append(problems, fmt.Sprintf("secret %q is read from %s, but %s has no valid file %s", name, path, r.sdsDir, filepath.Base(path)))
	}
	if file.secret.GetName() != name {
		// Envoy's SdsApi: "Unexpected SDS secret (expecting ...)".
		return nil, append(problems, fmt.Sprintf("secret %q is read from %s, whose secret is named %q: Envoy would reject it", name, file.path, file.secret.GetName()))
	}
	r.fromSds[name] = true
	return file.secret, append(problems, checkKind(file.secret, ref, file.path)...)
}

func checkKind(secret *tlsv3.Secret, ref secretRef, where string) []string {
	if kind := secretKind(secret); kind != ref.kind {
		return []string{fmt.Sprintf("secret %q (%s) is a %s, but it is asked for as a %s", ref.config.GetName(), where, kind, ref.kind)}
	}
	return nil
}

// secretRefs lists where a TLS context asks for secrets by SDS.
func secretRefs(ctx *tlsv3.CommonTlsContext) []secretRef {
	var refs []secretRef
	for _, c := range ctx.GetTlsCertificateSdsSecretConfigs() {
		refs = append(refs, secretRef{c, "tls_certificate"})
	}
	if c := ctx.GetValidationContextSdsSecretConfig(); c != nil {
		refs = append(refs, secretRef{c, "validation_context"})
	}
	if c := ctx.GetCombinedValidationContext().GetValidationContextSdsSecretConfig(); c != nil {
		refs = append(refs, secretRef{c, "validation_context"})
	}
	return refs
}

func validateFile(file, sdsDir string, sds map[string]*sdsFile) (string, []string) {
	var bootstrap bootstrapv3.Bootstrap
	// Strict: unknown fields and unknown @types are errors, as in Envoy.
	if err := readYAML(file, &bootstrap); err != nil {
		return "", []string{err.Error()}
	}
	var problems []string
	if err := bootstrap.ValidateAll(); err != nil {
		problems = append(problems, fmt.Sprintf("Bootstrap: %v", err))
	}
	var managers []*hcmv3.HttpConnectionManager
	var tlsContexts []*tlsv3.CommonTlsContext
	walk(bootstrap.ProtoReflect(), "bootstrap", &problems, func(m proto.Message) {
		switch m := m.(type) {
		case *hcmv3.HttpConnectionManager:
			managers = append(managers, m)
		case *tlsv3.CommonTlsContext:
			tlsContexts = append(tlsContexts, m)
		}
	})

	r := &resolver{sdsDir: sdsDir, sds: sds, static: map[string]*tlsv3.Secret{}, fromSds: map[string]bool{}, unread: map[string]bool{}}
	for _, s := range bootstrap.GetStaticResources().GetSecrets() {
		r.static[s.GetName()] = s
	}
	// Each secret once: a secret used in many places has the same problems in each.
	seen := map[string]bool{}
	uses := 0
	for _, ctx := range tlsContexts {
		for _, ref := range secretRefs(ctx) {
			uses++
			key := ref.kind + " " + ref.config.GetName() + " " + protojson.Format(ref.config.GetSdsConfig())
			if seen[key] {
				continue
			}
			seen[key] = true
			_, found := r.resolve(ref)
			problems = append(problems, found...)
		}
	}

	clusters := map[string]*clusterv3.Cluster{}
	for _, c := range bootstrap.GetStaticResources().GetClusters() {
		clusters[c.GetName()] = c
		problems = append(problems, checkClusterTLS(c, r)...)
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
	if len(r.fromSds) > 0 {
		summary += fmt.Sprintf(", %d secrets by SDS (%s) in %d places", len(r.fromSds), strings.Join(sortedKeys(r.fromSds), ", "), uses)
	}
	if len(r.unread) > 0 {
		summary += fmt.Sprintf("; not checked without --sds: %s", strings.Join(sortedKeys(r.unread), ", "))
	}
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
// endpoints are not all on loopback: in the cluster's validation context, or
// in the one it gets by SDS (when that can be read).
func checkClusterTLS(c *clusterv3.Cluster, r *resolver) []string {
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
	common := ctx.GetCommonTlsContext()
	if common.GetValidationContext().GetTrustedCa() != nil || common.GetCombinedValidationContext().GetDefaultValidationContext().GetTrustedCa() != nil {
		return nil
	}
	sds := common.GetValidationContextSdsSecretConfig()
	if sds == nil {
		sds = common.GetCombinedValidationContext().GetValidationContextSdsSecretConfig()
	}
	if sds != nil {
		// Problems with the secret itself are reported where it is asked for.
		secret, problems := r.resolve(secretRef{sds, "validation_context"})
		if secret == nil || len(problems) > 0 || secret.GetValidationContext().GetTrustedCa() != nil {
			return nil
		}
		return []string{fmt.Sprintf("cluster %q does not verify its upstream: its validation context by SDS, secret %q, has no trusted_ca", c.GetName(), sds.GetName())}
	}
	return []string{fmt.Sprintf("cluster %q does not verify its upstream: set common_tls_context.validation_context.trusted_ca, or a validation context by SDS with one", c.GetName())}
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

// under says whether path is inside dir (or is dir).
func under(path, dir string) bool {
	rel, err := filepath.Rel(filepath.Clean(dir), filepath.Clean(path))
	return err == nil && rel != ".." && !strings.HasPrefix(rel, "../")
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
