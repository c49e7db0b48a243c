// Command k8s-validate checks Kubernetes manifests (the output of `helm
// template`) against the Kubernetes API's own Go types, with no cluster:
//
//   - every YAML document is decoded strictly into the type its apiVersion
//     and kind name in client-go's scheme (the apimachinery serializer in
//     strict mode, as the API server decodes with fieldValidation=Strict):
//     an unknown kind, an unknown, misspelt or duplicate field, or a value of
//     the wrong type fails;
//   - names, labels, container and port names follow Kubernetes' naming rules;
//   - what refers to something else finds it: workload selectors match their
//     pod templates, Services and NetworkPolicies select some workload, a
//     Service's named target port is a port of the pods it selects, a probe's
//     named port is its container's, a StatefulSet's serviceName is a
//     headless Service, mounts name volumes, ConfigMaps, claims and service
//     accounts are rendered, and a Secret a pod mounts is rendered or is one
//     the rendered RBAC lets some pod write;
//   - and lclstream's rules: every container asks for CPU and memory, every
//     container that serves a port has readiness and liveness probes,
//     Prometheus annotations name a port of the pod, and no pod but the CA's
//     (the PKI) mounts certificates other than its own: a pod of component C
//     mounts only the Secret <name>-certs-C (the job queue also the
//     producer's, for the producer jobs it runs), never the first admin's,
//     never two services' in one volume, and only /certs/C under /certs.
//
// Usage: k8s-validate [-claim NAME]... [FILE ...]; no FILE, or "-", reads
// standard input; -claim names a PersistentVolumeClaim made outside the chart.
// Exits 1 when a document is invalid.
package main

import (
	"bufio"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path"
	"sort"
	"strconv"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	metavalidation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/yaml"
)

// componentLabel names the part of lclstream a pod is (ca, jobs, buffer, ...).
const componentLabel = "app.kubernetes.io/component"

// pkiComponent is the one component whose pods see every certificate: the CA, which makes them.
const pkiComponent = "ca"

// extraCerts are the certificates a component carries besides its own: the
// job queue runs producer jobs, which present the producer's.
var extraCerts = map[string][]string{"jobs": {"producer"}}

// object is one decoded document and where it came from.
type object struct {
	where string // "doc N (Kind name, from SOURCE)"
	kind  string
	meta  metav1.Object
	obj   runtime.Object
}

// workload is a pod template with its owner.
type workload struct {
	where     string
	kind      string
	name      string
	labels    map[string]string
	annots    map[string]string
	spec      *corev1.PodSpec
	claims    map[string]bool // volumeClaimTemplates
	component string
}

// existingClaims are PersistentVolumeClaims made outside the chart (-claim).
var existingClaims = map[string]bool{}

func main() {
	flag.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: k8s-validate [-claim NAME]... [FILE ...]  (no FILE, or -, reads standard input)")
		flag.PrintDefaults()
	}
	flag.Func("claim", "a PersistentVolumeClaim made outside the chart, which pods may mount (repeatable)", func(name string) error {
		existingClaims[name] = true
		return nil
	})
	flag.Parse()
	files := flag.Args()
	if len(files) == 0 {
		files = []string{"-"}
	}
	failed := false
	for _, file := range files {
		name, input, err := open(file)
		if err != nil {
			fmt.Printf("%s: INVALID\n  - %v\n", name, err)
			failed = true
			continue
		}
		summary, problems := validateStream(input)
		if len(problems) > 0 {
			failed = true
			fmt.Printf("%s: INVALID\n", name)
			for _, p := range problems {
				fmt.Printf("  - %s\n", p)
			}
			continue
		}
		fmt.Printf("%s: valid (%s)\n", name, summary)
	}
	if failed {
		os.Exit(1)
	}
}

func open(file string) (string, []byte, error) {
	if file == "-" {
		b, err := io.ReadAll(os.Stdin)
		return "stdin", b, err
	}
	b, err := os.ReadFile(file)
	return file, b, err
}

// validateStream checks a multi-document YAML stream.
func validateStream(input []byte) (string, []string) {
	var problems []string
	decoder := serializer.NewCodecFactory(scheme.Scheme, serializer.EnableStrict).UniversalDeserializer()
	reader := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(input)))
	var objects []object
	for n := 1; ; n++ {
		doc, err := reader.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			problems = append(problems, fmt.Sprintf("doc %d: cannot be split from the stream: %v", n, err))
			break
		}
		source := sourceOf(doc)
		js, err := yaml.YAMLToJSON(doc)
		if err != nil {
			problems = append(problems, fmt.Sprintf("doc %d%s: not YAML: %v", n, source, err))
			continue
		}
		if t := bytes.TrimSpace(js); len(t) == 0 || string(t) == "null" {
			n-- // comments only: not a document
			continue
		}
		var head struct {
			metav1.TypeMeta `json:",inline"`
			Metadata        struct {
				Name string `json:"name"`
			} `json:"metadata"`
		}
		if err := yaml.Unmarshal(doc, &head); err != nil || head.APIVersion == "" || head.Kind == "" {
			problems = append(problems, fmt.Sprintf("doc %d%s: no apiVersion and kind", n, source))
			continue
		}
		obj, _, err := decoder.Decode(doc, nil, nil)
		if err != nil {
			problems = append(problems, fmt.Sprintf("doc %d (%s %s%s): does not decode strictly as Kubernetes' %s: %v", n, head.Kind, head.Metadata.Name, source, head.GroupVersionKind(), err))
			// A strict error still decodes the object: keep it for the checks across objects.
			if obj == nil || !runtime.IsStrictDecodingError(err) {
				continue
			}
		}
		meta, ok := obj.(metav1.Object)
		if !ok {
			problems = append(problems, fmt.Sprintf("doc %d (%s%s): has no object metadata", n, head.Kind, source))
			continue
		}
		objects = append(objects, object{where: fmt.Sprintf("doc %d (%s %s%s)", n, head.Kind, meta.GetName(), source), kind: head.Kind, meta: meta, obj: obj})
	}
	problems = append(problems, checkObjects(objects)...)
	if len(objects) == 0 && len(problems) == 0 {
		problems = append(problems, "no Kubernetes object in the input")
	}
	return summarize(objects), problems
}

// sourceOf is the template a document came from, from helm's "# Source:" comment.
func sourceOf(doc []byte) string {
	for _, line := range strings.Split(string(doc), "\n") {
		if s, ok := strings.CutPrefix(strings.TrimSpace(line), "# Source: "); ok {
			return ", from " + s
		}
	}
	return ""
}

func summarize(objects []object) string {
	counts := map[string]int{}
	for _, o := range objects {
		counts[o.kind]++
	}
	var kinds []string
	for k := range counts {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	parts := []string{fmt.Sprintf("%d objects", len(objects))}
	for _, k := range kinds {
		parts = append(parts, fmt.Sprintf("%d %s", counts[k], k))
	}
	return strings.Join(parts, ", ")
}

// checkObjects runs the rules on single objects and across them.
func checkObjects(objects []object) []string {
	var problems []string
	add := func(where, format string, args ...any) {
		problems = append(problems, where+": "+fmt.Sprintf(format, args...))
	}
	seen := map[string]string{}
	rendered := map[string]map[string]bool{} // kind -> names
	var workloads []workload
	var services []*corev1.Service
	serviceWhere := map[*corev1.Service]string{}
	writableSecrets := map[string]bool{} // Secrets a rendered Role may create or write, by name
	roles := map[string]*rbacv1.Role{}
	for _, o := range objects {
		key := o.kind + "/" + o.meta.GetNamespace() + "/" + o.meta.GetName()
		if prev, ok := seen[key]; ok {
			add(o.where, "a second %s named %q (first: %s)", o.kind, o.meta.GetName(), prev)
		}
		seen[key] = o.where
		if rendered[o.kind] == nil {
			rendered[o.kind] = map[string]bool{}
		}
		rendered[o.kind][o.meta.GetName()] = true
		for _, msg := range checkMeta(o) {
			add(o.where, "%s", msg)
		}
		switch v := o.obj.(type) {
		case *appsv1.Deployment:
			workloads = append(workloads, newWorkload(o, v.Spec.Template, nil))
			problems = append(problems, checkSelector(o.where, v.Spec.Selector, v.Spec.Template.Labels)...)
		case *appsv1.StatefulSet:
			claims := map[string]bool{}
			for _, c := range v.Spec.VolumeClaimTemplates {
				claims[c.Name] = true
			}
			workloads = append(workloads, newWorkload(o, v.Spec.Template, claims))
			problems = append(problems, checkSelector(o.where, v.Spec.Selector, v.Spec.Template.Labels)...)
		case *appsv1.DaemonSet:
			workloads = append(workloads, newWorkload(o, v.Spec.Template, nil))
			problems = append(problems, checkSelector(o.where, v.Spec.Selector, v.Spec.Template.Labels)...)
		case *appsv1.ReplicaSet:
			workloads = append(workloads, newWorkload(o, v.Spec.Template, nil))
			problems = append(problems, checkSelector(o.where, v.Spec.Selector, v.Spec.Template.Labels)...)
		case *batchv1.Job:
			workloads = append(workloads, newWorkload(o, v.Spec.Template, nil))
		case *batchv1.CronJob:
			workloads = append(workloads, newWorkload(o, v.Spec.JobTemplate.Spec.Template, nil))
		case *corev1.Pod:
			workloads = append(workloads, newWorkload(o, corev1.PodTemplateSpec{ObjectMeta: v.ObjectMeta, Spec: v.Spec}, nil))
		case *corev1.Service:
			services = append(services, v)
			serviceWhere[v] = o.where
			if errs := validation.IsDNS1035Label(v.Name); len(errs) > 0 {
				add(o.where, "a Service's name must be a DNS-1035 label: %s", strings.Join(errs, "; "))
			}
		case *corev1.ConfigMap:
			for k := range v.Data {
				if errs := validation.IsConfigMapKey(k); len(errs) > 0 {
					add(o.where, "key %q: %s", k, strings.Join(errs, "; "))
				}
			}
		case *rbacv1.Role:
			roles[v.Name] = v
		}
	}
	// Secrets some pod may write: those a bound Role grants create/patch/update on by name.
	for _, o := range objects {
		binding, ok := o.obj.(*rbacv1.RoleBinding)
		if !ok {
			continue
		}
		if binding.RoleRef.Kind == "Role" && roles[binding.RoleRef.Name] == nil {
			add(o.where, "binds Role %q, which is not rendered", binding.RoleRef.Name)
		}
		for _, s := range binding.Subjects {
			if s.Kind == "ServiceAccount" && !rendered["ServiceAccount"][s.Name] {
				add(o.where, "binds ServiceAccount %q, which is not rendered", s.Name)
			}
		}
		if role := roles[binding.RoleRef.Name]; role != nil && binding.RoleRef.Kind == "Role" {
			for _, rule := range role.Rules {
				if has(rule.Resources, "secrets") && (has(rule.Verbs, "patch") || has(rule.Verbs, "update")) {
					for _, name := range rule.ResourceNames {
						writableSecrets[name] = true
					}
				}
			}
		}
	}

	for _, w := range workloads {
		problems = append(problems, checkPod(w, rendered, writableSecrets)...)
	}
	for _, s := range services {
		problems = append(problems, checkService(serviceWhere[s], s, workloads)...)
	}
	for _, o := range objects {
		switch v := o.obj.(type) {
		case *appsv1.StatefulSet:
			problems = append(problems, checkStatefulSetService(o.where, v, services)...)
		case *networkingv1.NetworkPolicy:
			problems = append(problems, checkNetworkPolicy(o.where, v, workloads)...)
		}
	}
	return problems
}

func newWorkload(o object, t corev1.PodTemplateSpec, claims map[string]bool) workload {
	return workload{where: o.where, kind: o.kind, name: o.meta.GetName(), labels: t.Labels, annots: t.Annotations, spec: &t.Spec, claims: claims, component: t.Labels[componentLabel]}
}

func has(list []string, s string) bool {
	for _, x := range list {
		if x == s || x == "*" {
			return true
		}
	}
	return false
}

// checkMeta checks names, labels and annotations with apimachinery's own validation.
func checkMeta(o object) []string {
	var out []string
	if o.meta.GetName() == "" {
		out = append(out, "metadata.name is empty")
	} else if errs := validation.IsDNS1123Subdomain(o.meta.GetName()); len(errs) > 0 {
		out = append(out, fmt.Sprintf("metadata.name %q: %s", o.meta.GetName(), strings.Join(errs, "; ")))
	}
	for _, e := range metavalidation.ValidateLabels(o.meta.GetLabels(), field.NewPath("metadata", "labels")) {
		out = append(out, e.Error())
	}
	for k := range o.meta.GetAnnotations() {
		if errs := validation.IsQualifiedName(strings.ToLower(k)); len(errs) > 0 {
			out = append(out, fmt.Sprintf("metadata.annotations: key %q: %s", k, strings.Join(errs, "; ")))
		}
	}
	return out
}

// checkSelector: a workload's selector is set and matches its own pod template.
func checkSelector(where string, selector *metav1.LabelSelector, template map[string]string) []string {
	if selector == nil || (len(selector.MatchLabels) == 0 && len(selector.MatchExpressions) == 0) {
		return []string{where + ": spec.selector is empty"}
	}
	s, err := metav1.LabelSelectorAsSelector(selector)
	if err != nil {
		return []string{fmt.Sprintf("%s: spec.selector: %v", where, err)}
	}
	if !s.Matches(labels.Set(template)) {
		return []string{fmt.Sprintf("%s: spec.selector %s does not match the pod template's labels %v", where, s, template)}
	}
	return nil
}

// checkPod runs the container, volume and certificate rules on one pod template.
func checkPod(w workload, rendered map[string]map[string]bool, writableSecrets map[string]bool) []string {
	var out []string
	add := func(format string, args ...any) { out = append(out, w.where+": "+fmt.Sprintf(format, args...)) }
	spec := w.spec
	for _, e := range metavalidation.ValidateLabels(w.labels, field.NewPath("spec", "template", "metadata", "labels")) {
		add("%s", e.Error())
	}
	if sa := spec.ServiceAccountName; sa != "" && sa != "default" && !rendered["ServiceAccount"][sa] {
		add("serviceAccountName %q is not rendered", sa)
	}
	volumes := map[string]corev1.Volume{}
	for _, v := range spec.Volumes {
		if _, dup := volumes[v.Name]; dup {
			add("two volumes named %q", v.Name)
		}
		volumes[v.Name] = v
		if errs := validation.IsDNS1123Label(v.Name); len(errs) > 0 {
			add("volume %q: %s", v.Name, strings.Join(errs, "; "))
		}
		switch {
		case v.ConfigMap != nil:
			if !rendered["ConfigMap"][v.ConfigMap.Name] && (v.ConfigMap.Optional == nil || !*v.ConfigMap.Optional) {
				add("volume %q: ConfigMap %q is not rendered", v.Name, v.ConfigMap.Name)
			}
		case v.PersistentVolumeClaim != nil:
			if !rendered["PersistentVolumeClaim"][v.PersistentVolumeClaim.ClaimName] && !existingClaims[v.PersistentVolumeClaim.ClaimName] {
				add("volume %q: PersistentVolumeClaim %q is not rendered (one made outside the chart: name it with -claim)", v.Name, v.PersistentVolumeClaim.ClaimName)
			}
		case v.Secret != nil:
			if !rendered["Secret"][v.Secret.SecretName] && !writableSecrets[v.Secret.SecretName] {
				add("volume %q: Secret %q is neither rendered nor written by any pod the rendered RBAC allows", v.Name, v.Secret.SecretName)
			}
		}
	}
	ports := map[string]bool{}
	portNumbers := map[int32]bool{}
	names := map[string]bool{}
	all := append(append([]corev1.Container{}, spec.InitContainers...), spec.Containers...)
	for i, c := range all {
		init := i < len(spec.InitContainers)
		what := fmt.Sprintf("container %q", c.Name)
		if init {
			what = fmt.Sprintf("init container %q", c.Name)
		}
		if names[c.Name] {
			add("two containers named %q", c.Name)
		}
		names[c.Name] = true
		if errs := validation.IsDNS1123Label(c.Name); len(errs) > 0 {
			add("%s: %s", what, strings.Join(errs, "; "))
		}
		if c.Image == "" {
			add("%s has no image", what)
		}
		for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
			req, ok := c.Resources.Requests[r]
			if !ok {
				add("%s has no %s request (resources.requests.%s)", what, r, r)
				continue
			}
			if limit, ok := c.Resources.Limits[r]; ok && req.Cmp(limit) > 0 {
				add("%s requests more %s (%s) than its limit (%s)", what, r, req.String(), limit.String())
			}
		}
		own := map[string]bool{}
		for _, p := range c.Ports {
			if p.Name != "" {
				if errs := validation.IsValidPortName(p.Name); len(errs) > 0 {
					add("%s: port name %q: %s", what, p.Name, strings.Join(errs, "; "))
				}
				if ports[p.Name] {
					add("%s: a second port named %q in the pod", what, p.Name)
				}
				ports[p.Name] = true
				own[p.Name] = true
			}
			if errs := validation.IsValidPortNum(int(p.ContainerPort)); len(errs) > 0 {
				add("%s: containerPort %d: %s", what, p.ContainerPort, strings.Join(errs, "; "))
			}
			portNumbers[p.ContainerPort] = true
		}
		if !init && len(c.Ports) > 0 {
			if c.ReadinessProbe == nil {
				add("%s serves ports but has no readinessProbe", what)
			}
			if c.LivenessProbe == nil {
				add("%s serves ports but has no livenessProbe", what)
			}
		}
		for kind, p := range map[string]*corev1.Probe{"readinessProbe": c.ReadinessProbe, "livenessProbe": c.LivenessProbe, "startupProbe": c.StartupProbe} {
			if p != nil {
				for _, msg := range checkProbe(p, own) {
					add("%s: %s: %s", what, kind, msg)
				}
			}
		}
		mounts := map[string]bool{}
		for _, m := range c.VolumeMounts {
			if mounts[m.MountPath] {
				add("%s mounts two volumes at %s", what, m.MountPath)
			}
			mounts[m.MountPath] = true
			if _, ok := volumes[m.Name]; !ok && !w.claims[m.Name] {
				add("%s mounts volume %q, which the pod does not have", what, m.Name)
			}
		}
	}
	out = append(out, checkCerts(w, volumes)...)
	if w.annots["prometheus.io/scrape"] == "true" {
		port, err := strconv.Atoi(w.annots["prometheus.io/port"])
		if err != nil || !portNumbers[int32(port)] {
			add("prometheus.io/port %q is not a container port of the pod", w.annots["prometheus.io/port"])
		}
	}
	return out
}

// checkProbe: one handler, and a named port is the container's.
func checkProbe(p *corev1.Probe, ports map[string]bool) []string {
	handlers := 0
	var out []string
	named := func(port intstr.IntOrString) {
		if port.Type == intstr.String && !ports[port.StrVal] {
			out = append(out, fmt.Sprintf("port %q is not a port of this container", port.StrVal))
		}
	}
	if p.Exec != nil {
		handlers++
		if len(p.Exec.Command) == 0 {
			out = append(out, "exec has no command")
		}
	}
	if p.HTTPGet != nil {
		handlers++
		named(p.HTTPGet.Port)
	}
	if p.TCPSocket != nil {
		handlers++
		named(p.TCPSocket.Port)
	}
	if p.GRPC != nil {
		handlers++
	}
	if handlers != 1 {
		out = append(out, fmt.Sprintf("has %d handlers (exec, httpGet, tcpSocket, grpc): exactly one is allowed", handlers))
	}
	return out
}

// checkCerts: no pod but the PKI's sees certificates other than its own.
func checkCerts(w workload, volumes map[string]corev1.Volume) []string {
	if w.component == pkiComponent {
		return nil
	}
	var out []string
	add := func(format string, args ...any) { out = append(out, w.where+": "+fmt.Sprintf(format, args...)) }
	allowed := map[string]bool{w.component: true}
	for _, extra := range extraCerts[w.component] {
		allowed[extra] = true
	}
	certSecret := func(name string) (string, bool) {
		i := strings.LastIndex(name, "-certs-")
		if i < 0 {
			return "", false
		}
		return name[i+len("-certs-"):], true
	}
	for _, v := range volumes {
		var secrets []string
		if v.Secret != nil {
			secrets = append(secrets, v.Secret.SecretName)
		}
		if v.Projected != nil {
			for _, s := range v.Projected.Sources {
				if s.Secret != nil {
					secrets = append(secrets, s.Secret.Name)
				}
			}
		}
		certs := 0
		for _, s := range secrets {
			identity, ok := certSecret(s)
			if !ok {
				continue
			}
			certs++
			if identity == "admin" {
				add("volume %q holds the first admin's certificate (Secret %q): no pod may mount it", v.Name, s)
			} else if !allowed[identity] {
				add("volume %q holds %s's certificate (Secret %q), not this %s pod's own", v.Name, identity, s, w.component)
			}
		}
		if certs > 1 {
			add("volume %q holds %d certificates: a pod mounts each certificate directory on its own", v.Name, certs)
		}
	}
	for _, c := range append(append([]corev1.Container{}, w.spec.InitContainers...), w.spec.Containers...) {
		for _, m := range c.VolumeMounts {
			p := path.Clean(m.MountPath)
			if p == "/certs" || (strings.HasPrefix(p, "/certs/") && !allowed[strings.SplitN(strings.TrimPrefix(p, "/certs/"), "/", 2)[0]]) {
				add("container %q mounts %q at %s: outside the PKI a pod mounts only its own /certs/%s", c.Name, m.Name, m.MountPath, w.component)
			}
		}
	}
	return out
}

// checkService: the selector selects some workload, whose pods have the named target ports.
func checkService(where string, s *corev1.Service, workloads []workload) []string {
	if s.Spec.Type == corev1.ServiceTypeExternalName {
		return nil
	}
	if len(s.Spec.Selector) == 0 {
		return []string{where + ": has no selector (endpoints by hand are not used here)"}
	}
	var out []string
	var selected []workload
	for _, w := range workloads {
		if labels.SelectorFromSet(s.Spec.Selector).Matches(labels.Set(w.labels)) {
			selected = append(selected, w)
		}
	}
	if len(selected) == 0 {
		return []string{fmt.Sprintf("%s: selector %v matches no workload's pods", where, s.Spec.Selector)}
	}
	for _, p := range s.Spec.Ports {
		for _, w := range selected {
			if !podHasPort(w.spec, p.TargetPort, p.Port) {
				out = append(out, fmt.Sprintf("%s: port %q targets %s, which %s %s does not serve", where, p.Name, p.TargetPort.String(), w.kind, w.name))
			}
		}
	}
	return out
}

func podHasPort(spec *corev1.PodSpec, target intstr.IntOrString, port int32) bool {
	for _, c := range spec.Containers {
		for _, cp := range c.Ports {
			switch {
			case target.Type == intstr.String && target.StrVal != "" && cp.Name == target.StrVal:
				return true
			case target.Type == intstr.Int && target.IntVal != 0 && cp.ContainerPort == target.IntVal:
				return true
			case target.Type == intstr.Int && target.IntVal == 0 && cp.ContainerPort == port:
				return true
			}
		}
	}
	return false
}

// checkStatefulSetService: serviceName is a rendered headless Service selecting the set's pods.
func checkStatefulSetService(where string, set *appsv1.StatefulSet, services []*corev1.Service) []string {
	if set.Spec.ServiceName == "" {
		return nil
	}
	for _, s := range services {
		if s.Name != set.Spec.ServiceName {
			continue
		}
		if s.Spec.ClusterIP != corev1.ClusterIPNone {
			return []string{fmt.Sprintf("%s: serviceName %q is not a headless Service (clusterIP: None): its pods get no DNS names of their own", where, s.Name)}
		}
		if !labels.SelectorFromSet(s.Spec.Selector).Matches(labels.Set(set.Spec.Template.Labels)) {
			return []string{fmt.Sprintf("%s: Service %q does not select this StatefulSet's pods", where, s.Name)}
		}
		return nil
	}
	return []string{fmt.Sprintf("%s: serviceName %q is not a rendered Service", where, set.Spec.ServiceName)}
}

// checkNetworkPolicy: the policy and its pod peers select rendered pods, and named ports are theirs.
func checkNetworkPolicy(where string, np *networkingv1.NetworkPolicy, workloads []workload) []string {
	var out []string
	selects := func(sel metav1.LabelSelector) ([]workload, error) {
		s, err := metav1.LabelSelectorAsSelector(&sel)
		if err != nil {
			return nil, err
		}
		var matched []workload
		for _, w := range workloads {
			if s.Matches(labels.Set(w.labels)) {
				matched = append(matched, w)
			}
		}
		return matched, nil
	}
	targets, err := selects(np.Spec.PodSelector)
	if err != nil {
		return []string{fmt.Sprintf("%s: podSelector: %v", where, err)}
	}
	if len(targets) == 0 {
		out = append(out, fmt.Sprintf("%s: podSelector matches no workload's pods", where))
	}
	for i, rule := range np.Spec.Ingress {
		for j, peer := range rule.From {
			if peer.PodSelector != nil && peer.NamespaceSelector == nil {
				matched, err := selects(*peer.PodSelector)
				if err != nil {
					out = append(out, fmt.Sprintf("%s: ingress[%d].from[%d].podSelector: %v", where, i, j, err))
				} else if len(matched) == 0 {
					out = append(out, fmt.Sprintf("%s: ingress[%d].from[%d].podSelector matches no workload's pods", where, i, j))
				}
			}
		}
		for _, p := range rule.Ports {
			if p.Port == nil || p.Port.Type != intstr.String {
				continue
			}
			for _, w := range targets {
				if !podHasPort(w.spec, *p.Port, 0) {
					out = append(out, fmt.Sprintf("%s: ingress[%d] allows port %q, which %s %s does not serve", where, i, p.Port.StrVal, w.kind, w.name))
				}
			}
		}
	}
	return out
}
