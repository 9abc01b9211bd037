package api

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

func sprintf(format string, args ...any) string {
	if len(args) == 0 {
		return format
	}
	return fmt.Sprintf(format, args...)
}

// Limits on what the API accepts.
const (
	MaxLabelLen          = 63
	MaxSubdomainLen      = 253
	MaxAnnotationsBytes  = 256 << 10
	MaxPortNameLen       = 15
	MaxReplicas          = 100000
	MaxContainersPerPod  = 32
	MaxTerminationGrace  = 3600
	MinNodePort          = 30000
	MaxNodePort          = 32767
	maxEnvNameLen        = 256
	maxStringFieldLength = 4096
)

// IsDNSLabel reports whether s is a DNS-1123 label: at most 63 lowercase
// letters, digits and '-', starting and ending with a letter or digit.
func IsDNSLabel(s string) bool {
	if len(s) == 0 || len(s) > MaxLabelLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case c == '-' && i > 0 && i < len(s)-1:
		default:
			return false
		}
	}
	return true
}

// IsDNSSubdomain reports whether s is DNS-1123 labels joined by dots, at
// most 253 characters.
func IsDNSSubdomain(s string) bool {
	if len(s) == 0 || len(s) > MaxSubdomainLen {
		return false
	}
	for _, part := range strings.Split(s, ".") {
		if !IsDNSLabel(part) {
			return false
		}
	}
	return true
}

// isPortName reports whether s is an IANA service name: at most 15
// lowercase letters, digits and '-', with a letter, no leading, trailing or
// doubled '-'.
func isPortName(s string) bool {
	if len(s) == 0 || len(s) > MaxPortNameLen || !IsDNSLabel(s) || strings.Contains(s, "--") {
		return false
	}
	return strings.IndexFunc(s, func(r rune) bool { return r >= 'a' && r <= 'z' }) >= 0
}

// isLabelKey accepts "name" or "prefix/name" where prefix is a DNS subdomain
// and name is at most 63 of [A-Za-z0-9-_.], starting and ending
// alphanumeric.
func isLabelKey(s string) bool {
	prefix, name, ok := strings.Cut(s, "/")
	if !ok {
		name = prefix
	} else if !IsDNSSubdomain(prefix) {
		return false
	}
	return isLabelValue(name) && name != ""
}

// ParseLabelSelector reads a label selector, key=value[,key=value] (every
// label must match): the ?labels= of a list or watch, and capstan get -l.
// A label no object may carry is refused, as it could never match.
func ParseLabelSelector(s string) (map[string]string, error) {
	if s == "" {
		return nil, nil
	}
	out := map[string]string{}
	for _, kv := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			if len(kv) > 64 {
				kv = kv[:64] + "..."
			}
			return nil, fmt.Errorf("label selector: %s: want key=value[,key=value]", strconv.QuoteToASCII(kv))
		}
		if err := ValidateLabel(k, v); err != nil {
			return nil, fmt.Errorf("label selector: %v: no object can match it", err)
		}
		if _, dup := out[k]; dup {
			return nil, fmt.Errorf("label selector: label %s twice: give each key once", k)
		}
		out[k] = v
	}
	return out, nil
}

// ValidateLabel says what is wrong with a label key=value that no object
// may carry (for a label selector, which could never match it); nil when
// an object may.
func ValidateLabel(k, v string) error {
	switch {
	case !isLabelKey(k):
		return fmt.Errorf("key %s: want [prefix/]name of letters, digits, '-', '_', '.' (at most %d), starting and ending with a letter or digit", quote(k), MaxLabelLen)
	case !isLabelValue(v):
		return fmt.Errorf("value %s: at most %d letters, digits, '-', '_', '.', starting and ending with a letter or digit", quote(v), MaxLabelLen)
	}
	return nil
}

func isLabelValue(s string) bool {
	if len(s) > MaxLabelLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		alnum := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
		if !alnum && ((c != '-' && c != '_' && c != '.') || i == 0 || i == len(s)-1) {
			return false
		}
	}
	return true
}

func validateScope(errs *ErrorList, k Kind, app, path string) {
	switch {
	case k.ClusterScoped() && app != "":
		errs.add(path, "must be empty: %s are not in an app", k)
	case !k.ClusterScoped() && !IsDNSLabel(app):
		errs.add(path, "%s: must be a DNS label (lowercase letters, digits and '-', at most 63)", quote(app))
	}
}

func validateObjectName(errs *ErrorList, k Kind, name, path string) {
	if k == KindNode || k == KindLease {
		if !IsDNSSubdomain(name) {
			errs.add(path, "%s: must be a DNS subdomain (lowercase letters, digits, '-' and '.', at most 253)", quote(name))
		}
		return
	}
	if !IsDNSLabel(name) {
		errs.add(path, "%s: must be a DNS label (lowercase letters, digits and '-', at most 63)", quote(name))
	}
}

// quote shortens very long input before quoting it in a message.
func quote(s string) string {
	if len(s) > 80 {
		s = s[:77] + "..."
	}
	return strconv.Quote(s)
}

// Validate checks every field the API accepts of obj, and the size of
// its encoding.
func Validate(obj Object) error {
	if err := ValidateFields(obj); err != nil {
		return err
	}
	k, _ := KindOf(obj.GetKind())
	return validateSize(k, obj)
}

// ValidateFields is Validate without the size check: for the API server,
// whose store checks the size of the encoding it stores (CheckSize)
// instead of encoding the object once more for it.
func ValidateFields(obj Object) error {
	var errs ErrorList
	kind, ok := KindOf(obj.GetKind())
	if !ok {
		return fmt.Errorf("%w: %q", ErrUnknownKind, obj.GetKind())
	}
	validateMeta(&errs, kind, obj.Meta())
	validateMetaSizes(&errs, obj.Meta())
	switch o := obj.(type) {
	case *Node:
		validateNode(&errs, o)
		validateNodeStatusSizes(&errs, &o.Status)
	case *Lease:
		if o.Spec.Holder == "" {
			errs.add("spec.holder", "is required")
		}
		maxLen(&errs, "spec.holder", o.Spec.Holder, MaxSubdomainLen)
	case *App:
		validateApp(&errs, &o.Spec)
	case *Workload:
		validateWorkloadSpec(&errs, &o.Spec, "spec")
	case *Job:
		validateJobSpec(&errs, &o.Spec, "spec")
	case *Pod:
		validateTemplate(&errs, &o.Spec.PodTemplate, "spec")
		if o.Spec.NodeName != "" && !IsDNSSubdomain(o.Spec.NodeName) {
			errs.add("spec.nodeName", "%s is not a node name", quote(o.Spec.NodeName))
		}
		switch r := o.Spec.RequiredNode; {
		case r != "" && !IsDNSSubdomain(r):
			errs.add("spec.requiredNode", "%s is not a node name", quote(r))
		case r != "" && o.Spec.NodeName != "" && o.Spec.NodeName != r:
			errs.add("spec.nodeName", "%s: the pod may only be bound to its required node %s", quote(o.Spec.NodeName), quote(r))
		}
		validatePodStatusSizes(&errs, &o.Status)
	case *Service:
		validateServiceSpec(&errs, &o.Spec, "spec")
	case *Endpoints:
		for i, a := range o.Spec.Addresses {
			p := fmt.Sprintf("spec.addresses[%d]", i)
			if _, err := netip.ParseAddr(a.IP); err != nil {
				errs.add(p+".ip", "%s is not an IP address", quote(a.IP))
			}
			validatePortRange(&errs, p, len(a.Ports), func(j int) (string, int32, string) {
				return a.Ports[j].Name, a.Ports[j].Port, a.Ports[j].Protocol
			})
		}
	case *Revision:
		if o.Spec.Commit == "" {
			errs.add("spec.commit", "is required")
		}
		switch o.Spec.Result {
		case SyncApplied, SyncRejected, SyncFailed, SyncDeleted, SyncHeld:
		default:
			errs.add("spec.result", "%s: want Applied, Rejected, Failed, Deleted or Held", quote(o.Spec.Result))
		}
	case *Secret:
		validateSecretSpec(&errs, &o.Spec, "spec")
	case *Event:
		if o.Spec.Reason == "" {
			errs.add("spec.reason", "is required")
		}
		if o.Spec.Type != EventNormal && o.Spec.Type != EventWarning {
			errs.add("spec.type", "%s: want Normal or Warning", quote(o.Spec.Type))
		}
		validateEventSizes(&errs, &o.Spec)
	case *PersistentVolume:
		validateVolume(&errs, o)
	}
	return errs.Err()
}

func validateMeta(errs *ErrorList, kind Kind, m *ObjectMeta) {
	validateScope(errs, kind, m.App, "metadata.app")
	validateObjectName(errs, kind, m.Name, "metadata.name")
	for k, v := range m.Labels {
		if !isLabelKey(k) {
			errs.add("metadata.labels", "key %s: want [prefix/]name of letters, digits, '-', '_', '.'", quote(k))
		}
		if !isLabelValue(v) {
			errs.add("metadata.labels."+k, "value %s: at most 63 letters, digits, '-', '_', '.'", quote(v))
		}
	}
	size := 0
	for k, v := range m.Annotations {
		size += len(k) + len(v)
	}
	if size > MaxAnnotationsBytes {
		errs.add("metadata.annotations", "%d bytes, more than %d", size, MaxAnnotationsBytes)
	}
	if m.Owner != nil && (!m.Owner.Kind.Valid() || m.Owner.Name == "") {
		errs.add("metadata.owner", "needs a served kind and a name")
	}
}

func validateNode(errs *ErrorList, n *Node) {
	if n.Spec.PodCIDR != "" {
		if _, err := netip.ParsePrefix(n.Spec.PodCIDR); err != nil {
			errs.add("spec.podCIDR", "%s is not a CIDR", quote(n.Spec.PodCIDR))
		}
	}
	for i, a := range n.Status.Addresses {
		if a.Type == "InternalIP" {
			if _, err := netip.ParseAddr(a.Address); err != nil {
				errs.add(fmt.Sprintf("status.addresses[%d]", i), "%s is not an IP address", quote(a.Address))
			}
		}
	}
	validateResources(errs, n.Status.Capacity, "status.capacity")
	validateResources(errs, n.Status.Allocatable, "status.allocatable")
	if vs := n.Status.VolumeStorage; vs != nil {
		if vs.Capacity.Value() < 0 || vs.Available.Value() < 0 {
			errs.add("status.volumeStorage", "must not be negative")
		}
	}
}

func validateApp(errs *ErrorList, s *AppSpec) {
	if p := s.Preview; p != nil {
		if d, err := time.ParseDuration(p.TTL); err != nil || d <= 0 {
			errs.add("spec.preview.ttl", "%s: must be a positive duration such as 72h", quote(p.TTL))
		}
		if p.Replicas < 0 {
			errs.add("spec.preview.replicas", "must not be negative")
		}
	}
	if s.Rollback != "" && s.Rollback != RollbackAuto {
		errs.add("spec.rollback", "%s: must be %q or empty", quote(s.Rollback), RollbackAuto)
	}
	for i, d := range s.DependsOn {
		if !IsDNSLabel(d) {
			errs.add(fmt.Sprintf("spec.dependsOn[%d]", i), "%s: must be the name of an app", quote(d))
		}
	}
	seen := map[string]bool{}
	for i, w := range s.Workloads {
		p := fmt.Sprintf("spec.workloads[%d]", i)
		if !IsDNSLabel(w.Name) {
			errs.add(p+".name", "%s: must be a DNS label", quote(w.Name))
		} else if seen[w.Name] {
			errs.add(p+".name", "%s is defined twice", quote(w.Name))
		}
		seen[w.Name] = true
		validateWorkloadSpec(errs, &w.Spec, p+".spec")
	}
	seen = map[string]bool{}
	for i, svc := range s.Services {
		p := fmt.Sprintf("spec.services[%d]", i)
		if !IsDNSLabel(svc.Name) {
			errs.add(p+".name", "%s: must be a DNS label", quote(svc.Name))
		} else if seen[svc.Name] {
			errs.add(p+".name", "%s is defined twice", quote(svc.Name))
		}
		seen[svc.Name] = true
		validateServiceSpec(errs, &svc.Spec, p+".spec")
	}
	validateAppSecrets(errs, s)
}

func validateWorkloadSpec(errs *ErrorList, s *WorkloadSpec, path string) {
	if s.Replicas < 0 || s.Replicas > MaxReplicas {
		errs.add(path+".replicas", "%d: want 0 to %d", s.Replicas, MaxReplicas)
	}
	validateTemplate(errs, &s.Template, path+".template")
	validateOrdered(errs, s, path)
	st := s.Strategy
	for _, f := range []struct {
		name string
		v    IntOrString
	}{{"maxSurge", st.MaxSurge}, {"maxUnavailable", st.MaxUnavailable}} {
		if f.v.IsString {
			if _, err := f.v.ScaledValue(100, true); err != nil {
				errs.add(path+".strategy."+f.name, "%v", err)
			}
		} else if f.v.IntVal < 0 {
			errs.add(path+".strategy."+f.name, "%d: must not be negative", f.v.IntVal)
		}
	}
	if st.ProgressDeadlineSeconds < 0 {
		errs.add(path+".strategy.progressDeadlineSeconds", "must not be negative")
	}
	validateJobPolicy(errs, s, path)
	validateBatchSpec(errs, s, path)
}

func validateTemplate(errs *ErrorList, t *PodTemplate, path string) {
	if len(t.Containers) == 0 {
		errs.add(path+".containers", "a pod needs at least one container")
	}
	if len(t.Containers) > MaxContainersPerPod {
		errs.add(path+".containers", "%d containers, more than %d", len(t.Containers), MaxContainersPerPod)
	}
	for k, v := range t.Labels {
		if !isLabelKey(k) || !isLabelValue(v) {
			errs.add(path+".labels", "%s=%s is not a valid label", quote(k), quote(v))
		}
	}
	volumes := map[string]bool{}
	for i, v := range t.Volumes {
		p := fmt.Sprintf("%s.volumes[%d]", path, i)
		if !IsDNSLabel(v.Name) {
			errs.add(p+".name", "%s: must be a DNS label", quote(v.Name))
		} else if volumes[v.Name] {
			errs.add(p+".name", "%s is defined twice", quote(v.Name))
		}
		volumes[v.Name] = true
		if v.Persistent != nil {
			validatePersistent(errs, v.Persistent, p+".persistent")
		}
	}
	switch t.RestartPolicy {
	case "", RestartAlways, RestartOnFailure, RestartNever:
	default:
		errs.add(path+".restartPolicy", "%s: want Always, OnFailure or Never", quote(t.RestartPolicy))
	}
	if g := t.TerminationGracePeriodSeconds; g != nil && (*g < 0 || *g > MaxTerminationGrace) {
		errs.add(path+".terminationGracePeriodSeconds", "%d: want 0 to %d", *g, MaxTerminationGrace)
	}
	for k, v := range t.NodeSelector {
		if !isLabelKey(k) || !isLabelValue(v) {
			errs.add(path+".nodeSelector", "%s=%s is not a valid label", quote(k), quote(v))
		}
	}
	names := map[string]bool{}
	for i := range t.Containers {
		c := &t.Containers[i]
		p := fmt.Sprintf("%s.containers[%d]", path, i)
		if !IsDNSLabel(c.Name) {
			errs.add(p+".name", "%s: must be a DNS label", quote(c.Name))
		} else if names[c.Name] {
			errs.add(p+".name", "%s is defined twice", quote(c.Name))
		}
		names[c.Name] = true
		validateContainer(errs, c, volumes, p)
	}
	validateFiles(errs, t, path)
}

func validateContainer(errs *ErrorList, c *Container, volumes map[string]bool, path string) {
	if c.Image == "" {
		errs.add(path+".image", "is required")
	} else if len(c.Image) > maxStringFieldLength || strings.ContainsAny(c.Image, " \t\n\x00") {
		errs.add(path+".image", "%s is not an image reference", quote(c.Image))
	}
	switch c.ImagePullPolicy {
	case "", PullIfNotPresent, PullAlways:
	default:
		errs.add(path+".imagePullPolicy", "%s: want IfNotPresent or Always", quote(c.ImagePullPolicy))
	}
	for i, e := range c.Env {
		if e.Name == "" || len(e.Name) > maxEnvNameLen || strings.ContainsAny(e.Name, "=\x00") {
			errs.add(fmt.Sprintf("%s.env[%d].name", path, i), "%s is not an environment variable name", quote(e.Name))
		}
		if e.Secret != nil {
			validateSecretRef(errs, e.Secret, fmt.Sprintf("%s.env[%d].secret", path, i))
		}
	}
	if c.WorkingDir != "" && !strings.HasPrefix(c.WorkingDir, "/") {
		errs.add(path+".workingDir", "%s must be an absolute path", quote(c.WorkingDir))
	}
	validatePortRange(errs, path, len(c.Ports), func(i int) (string, int32, string) {
		return c.Ports[i].Name, c.Ports[i].Port, c.Ports[i].Protocol
	})
	for i, p := range c.Ports {
		if p.HostPort < 0 || p.HostPort > 65535 {
			errs.add(fmt.Sprintf("%s.ports[%d].hostPort", path, i), "%d: want 1 to 65535", p.HostPort)
		}
	}
	validateResources(errs, c.Resources.Requests, path+".resources.requests")
	validateResources(errs, c.Resources.Limits, path+".resources.limits")
	r, l := c.Resources.Requests, c.Resources.Limits
	if !l.CPU.IsZero() && r.CPU.Cmp(l.CPU) > 0 {
		errs.add(path+".resources", "cpu request %s is above its limit %s", r.CPU, l.CPU)
	}
	if !l.Memory.IsZero() && r.Memory.Cmp(l.Memory) > 0 {
		errs.add(path+".resources", "memory request %s is above its limit %s", r.Memory, l.Memory)
	}
	validateProbe(errs, c, c.Readiness, path+".readiness")
	validateProbe(errs, c, c.Liveness, path+".liveness")
	for i, m := range c.VolumeMounts {
		p := fmt.Sprintf("%s.volumeMounts[%d]", path, i)
		if !volumes[m.Name] {
			errs.add(p+".name", "%s is not a volume of this pod", quote(m.Name))
		}
		if !strings.HasPrefix(m.MountPath, "/") || strings.Contains(m.MountPath, "..") {
			errs.add(p+".mountPath", "%s must be an absolute path without '..'", quote(m.MountPath))
		}
	}
}

// validatePortRange checks n (name, port, protocol) triples: names unique
// and valid, ports 1-65535, protocol TCP or UDP.
func validatePortRange(errs *ErrorList, path string, n int, at func(int) (string, int32, string)) {
	names := map[string]bool{}
	for i := 0; i < n; i++ {
		name, port, proto := at(i)
		p := fmt.Sprintf("%s.ports[%d]", path, i)
		if name != "" {
			if !isPortName(name) {
				errs.add(p+".name", "%s: want at most 15 lowercase letters, digits and '-'", quote(name))
			} else if names[name] {
				errs.add(p+".name", "%s is defined twice", quote(name))
			}
			names[name] = true
		}
		if port < 1 || port > 65535 {
			errs.add(p+".port", "%d: want 1 to 65535", port)
		}
		if proto != "" && proto != ProtocolTCP && proto != ProtocolUDP {
			errs.add(p+".protocol", "%s: want TCP or UDP", quote(proto))
		}
	}
}

func validateResources(errs *ErrorList, r ResourceList, path string) {
	if r.CPU.MilliValue() < 0 {
		errs.add(path+".cpu", "must not be negative")
	}
	if r.Memory.MilliValue() < 0 {
		errs.add(path+".memory", "must not be negative")
	}
	if r.Pods < 0 {
		errs.add(path+".pods", "must not be negative")
	}
}

func validateProbe(errs *ErrorList, c *Container, p *Probe, path string) {
	if p == nil {
		return
	}
	handlers := 0
	if p.HTTP != nil {
		handlers++
		validatePortRef(errs, c, p.HTTP.Port, path+".http.port")
		if p.HTTP.Path != "" && !strings.HasPrefix(p.HTTP.Path, "/") {
			errs.add(path+".http.path", "%s must start with '/'", quote(p.HTTP.Path))
		}
	}
	if p.TCP != nil {
		handlers++
		validatePortRef(errs, c, p.TCP.Port, path+".tcp.port")
	}
	if p.Exec != nil {
		handlers++
		if len(p.Exec.Command) == 0 {
			errs.add(path+".exec.command", "is required")
		}
	}
	if handlers != 1 {
		errs.add(path, "needs exactly one of http, tcp and exec, has %d", handlers)
	}
	for _, f := range []struct {
		name string
		v    int32
	}{{"initialDelaySeconds", p.InitialDelaySeconds}, {"periodSeconds", p.PeriodSeconds}, {"timeoutSeconds", p.TimeoutSeconds}, {"failureThreshold", p.FailureThreshold}, {"successThreshold", p.SuccessThreshold}} {
		if f.v < 0 {
			errs.add(path+"."+f.name, "must not be negative")
		}
	}
}

// validatePortRef checks a port given by number or by a port name of c.
func validatePortRef(errs *ErrorList, c *Container, ref IntOrString, path string) {
	if _, ok := ResolvePort(c, ref); !ok {
		errs.add(path, "%s is neither a port number nor a port name of container %s", quote(ref.String()), quote(c.Name))
	}
}

// ResolvePort resolves a port number or name against a container's ports.
func ResolvePort(c *Container, ref IntOrString) (int32, bool) {
	if !ref.IsString {
		return ref.IntVal, ref.IntVal >= 1 && ref.IntVal <= 65535
	}
	for _, p := range c.Ports {
		if p.Name == ref.StrVal {
			return p.Port, true
		}
	}
	return 0, false
}

func validateServiceSpec(errs *ErrorList, s *ServiceSpec, path string) {
	if len(s.Ports) == 0 && !s.Headless {
		errs.add(path+".ports", "a service needs at least one port")
	}
	validatePortRange(errs, path, len(s.Ports), func(i int) (string, int32, string) {
		return s.Ports[i].Name, s.Ports[i].Port, s.Ports[i].Protocol
	})
	// Each port must be told apart by the proxy (VIP, protocol and port
	// are its key: a second port on the same key would lose to the first)
	// and by the endpoints (which match a service port by name).
	type portKey struct {
		port  int32
		proto string
	}
	seen := map[portKey]int{}
	for i, p := range s.Ports {
		pp := fmt.Sprintf("%s.ports[%d]", path, i)
		proto := p.Protocol
		if proto == "" {
			proto = ProtocolTCP
		}
		if j, dup := seen[portKey{p.Port, proto}]; dup {
			other := fmt.Sprintf("port %s", quote(s.Ports[j].Name))
			if s.Ports[j].Name == "" {
				other = fmt.Sprintf("%s.ports[%d]", path, j)
			}
			errs.add(pp+".port", "%d/%s is %s already: give each port of a service its own number (or protocol)", p.Port, proto, other)
		} else {
			seen[portKey{p.Port, proto}] = i
		}
		if p.Name == "" && len(s.Ports) > 1 {
			errs.add(pp+".name", "a service with more than one port must name each of them")
		}
		if p.TargetPort.IsString && !isPortName(p.TargetPort.StrVal) {
			errs.add(pp+".targetPort", "%s is not a port name", quote(p.TargetPort.StrVal))
		}
		if !p.TargetPort.IsString && (p.TargetPort.IntVal < 0 || p.TargetPort.IntVal > 65535) {
			errs.add(pp+".targetPort", "%d: want 1 to 65535", p.TargetPort.IntVal)
		}
		if p.NodePort != 0 && (p.NodePort < MinNodePort || p.NodePort > MaxNodePort) {
			errs.add(pp+".nodePort", "%d: want %d to %d", p.NodePort, MinNodePort, MaxNodePort)
		}
	}
	if s.Headless && s.External {
		errs.add(path, "a headless service cannot be external")
	}
	if s.VIP != "" {
		if _, err := netip.ParseAddr(s.VIP); err != nil {
			errs.add(path+".vip", "%s is not an IP address", quote(s.VIP))
		}
	}
	for k, v := range s.Selector {
		if !isLabelKey(k) || !isLabelValue(v) {
			errs.add(path+".selector", "%s=%s is not a valid label", quote(k), quote(v))
		}
	}
}
