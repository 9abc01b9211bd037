package api

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

// Valid objects of every kind, and each one made invalid (or kept valid)
// one field at a time, with every limit tried at the limit and one past
// it. Each case names every field path the error must report, no more and
// no fewer, so a check that stops firing and a check that fires on a
// valid object both fail a case.

func meta(app, name string) ObjectMeta { return ObjectMeta{App: app, Name: name} }

func validNode() *Node {
	n := KindNode.New().(*Node)
	n.Metadata = meta("", "node-1.lab")
	n.Spec.PodCIDR = "10.88.1.0/24"
	n.Status.Addresses = []NodeAddress{{Type: "InternalIP", Address: "192.168.1.10"}, {Type: "Hostname", Address: "node-1"}}
	n.Status.Capacity = ResourceList{CPU: MustParseQuantity("2"), Memory: MustParseQuantity("4Gi"), Pods: 110}
	n.Status.Allocatable = n.Status.Capacity
	return n
}

func validLease() *Lease {
	l := KindLease.New().(*Lease)
	l.Metadata = meta("", "node-1.lab")
	l.Spec.Holder = "node-1.lab"
	return l
}

// validWorkloadSpec has the zero strategy: the defaults (25% surge, 0
// unavailable, progress deadline 600 s) are filled in by the controller,
// so zero must be valid.
func validWorkloadSpec() WorkloadSpec {
	return WorkloadSpec{Replicas: 3, Template: validPod().Spec.PodTemplate}
}

func validWorkload() *Workload {
	w := KindWorkload.New().(*Workload)
	w.Metadata = meta("shop", "frontend")
	w.Spec = validWorkloadSpec()
	return w
}

func validServiceSpec() ServiceSpec {
	return ServiceSpec{
		Selector: map[string]string{LabelWorkload: "frontend"},
		Ports:    []ServicePort{{Name: "http", Port: 80, TargetPort: FromString("http")}, {Name: "dns", Port: 53, Protocol: ProtocolUDP, TargetPort: FromInt(5353)}},
	}
}

func validService() *Service {
	s := KindService.New().(*Service)
	s.Metadata = meta("shop", "frontend")
	s.Spec = validServiceSpec()
	return s
}

func validApp() *App {
	a := KindApp.New().(*App)
	a.Metadata = meta("shop", "shop")
	a.Spec.Workloads = []AppWorkload{{Name: "frontend", Spec: validWorkloadSpec()}, {Name: "backend", Spec: validWorkloadSpec()}}
	a.Spec.Services = []AppService{{Name: "frontend", Spec: validServiceSpec()}, {Name: "backend", Spec: validServiceSpec()}}
	return a
}

func validEndpoints() *Endpoints {
	e := KindEndpoints.New().(*Endpoints)
	e.Metadata = meta("shop", "frontend")
	e.Spec.Addresses = []EndpointAddress{
		{IP: "10.88.0.5", Pod: "frontend-1", Ready: true, Ports: []EndpointPort{{Name: "http", Port: 8080}, {Name: "dns", Port: 5353, Protocol: ProtocolUDP}}},
		{IP: "fd00::5", Pod: "frontend-2"},
	}
	return e
}

func validRevision() *Revision {
	r := KindRevision.New().(*Revision)
	r.Metadata = meta("shop", "r-1")
	r.Spec = RevisionSpec{Repo: "file:///repo", Commit: "0123abcd", Result: SyncApplied}
	return r
}

func validEvent() *Event {
	e := KindEvent.New().(*Event)
	e.Metadata = meta("shop", "frontend-1-scheduled")
	e.Spec = EventSpec{Type: EventNormal, Reason: "Scheduled", Message: "bound to node-1.lab"}
	return e
}

// fieldPaths returns the sorted paths of a validation error; nil for nil.
func fieldPaths(t *testing.T, err error) []string {
	t.Helper()
	if err == nil {
		return nil
	}
	var ve *ValidationError
	if !errors.As(err, &ve) || !errors.Is(err, ErrInvalid) {
		t.Fatalf("err = %v, want a ValidationError wrapping ErrInvalid", err)
	}
	var out []string
	for _, f := range ve.Fields {
		out = append(out, f.Path)
	}
	slices.Sort(out)
	return out
}

type validationCase struct {
	name string
	obj  Object
	want []string // every path the error names; none: valid
}

func runValidationCases(t *testing.T, tests []validationCase) {
	t.Helper()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := fieldPaths(t, Validate(tt.obj))
			want := slices.Sorted(slices.Values(tt.want))
			if !slices.Equal(got, want) {
				t.Fatalf("Validate: error paths %q, want %q (err: %v)", got, want, Validate(tt.obj))
			}
		})
	}
}

// edit returns a copy of obj changed by f.
func edit[T Object](obj T, f func(T)) T {
	c := Clone(obj)
	f(c)
	return c
}

// Labels of exactly n characters, and subdomains of exactly n characters
// made of labels of at most 63.
func label(n int) string { return strings.Repeat("a", n) }

func subdomain(n int) string {
	var parts []string
	for n > 0 {
		l := min(n, 63)
		if n-l == 1 { // a last label of 0 characters after a dot: shorten this one
			l--
		}
		parts = append(parts, strings.Repeat("b", l))
		n -= l
		if n > 0 {
			n-- // the dot
		}
	}
	return strings.Join(parts, ".")
}

func TestSubdomainHelper(t *testing.T) {
	for _, n := range []int{1, 63, 64, 65, 127, 253, 254} {
		if s := subdomain(n); len(s) != n || strings.Contains(s, "..") || strings.HasPrefix(s, ".") || strings.HasSuffix(s, ".") {
			t.Fatalf("subdomain(%d) = %q (%d)", n, s, len(s))
		}
	}
}

func TestValidateMeta(t *testing.T) {
	pod := validPod()
	withMeta := func(f func(m *ObjectMeta)) *Pod { return edit(pod, func(p *Pod) { f(&p.Metadata) }) }
	annotations := func(n int) map[string]string {
		return map[string]string{"k": strings.Repeat("v", n-1)}
	}
	runValidationCases(t, []validationCase{
		{name: "valid pod", obj: pod},
		{name: "name of one letter", obj: withMeta(func(m *ObjectMeta) { m.Name = "a" })},
		{name: "name of every boundary character", obj: withMeta(func(m *ObjectMeta) { m.Name = "az09-z0" })},
		{name: "name digits only", obj: withMeta(func(m *ObjectMeta) { m.Name = "0" })},
		{name: "name 63 long", obj: withMeta(func(m *ObjectMeta) { m.Name = label(63) })},
		{name: "name 64 long", obj: withMeta(func(m *ObjectMeta) { m.Name = label(64) }), want: []string{"metadata.name"}},
		{name: "empty name", obj: withMeta(func(m *ObjectMeta) { m.Name = "" }), want: []string{"metadata.name"}},
		{name: "name starts with -", obj: withMeta(func(m *ObjectMeta) { m.Name = "-a" }), want: []string{"metadata.name"}},
		{name: "name ends with -", obj: withMeta(func(m *ObjectMeta) { m.Name = "a-" }), want: []string{"metadata.name"}},
		{name: "name with dot", obj: withMeta(func(m *ObjectMeta) { m.Name = "a.b" }), want: []string{"metadata.name"}},
		{name: "name with character before a", obj: withMeta(func(m *ObjectMeta) { m.Name = "a`" }), want: []string{"metadata.name"}},
		{name: "name with character after z", obj: withMeta(func(m *ObjectMeta) { m.Name = "a{" }), want: []string{"metadata.name"}},
		{name: "name with character before 0", obj: withMeta(func(m *ObjectMeta) { m.Name = "a/" }), want: []string{"metadata.name"}},
		{name: "name with character after 9", obj: withMeta(func(m *ObjectMeta) { m.Name = "a:" }), want: []string{"metadata.name"}},
		{name: "app 63 long", obj: withMeta(func(m *ObjectMeta) { m.App = label(63) })},
		{name: "app 64 long", obj: withMeta(func(m *ObjectMeta) { m.App = label(64) }), want: []string{"metadata.app"}},
		{name: "no app", obj: withMeta(func(m *ObjectMeta) { m.App = "" }), want: []string{"metadata.app"}},
		{name: "no labels", obj: withMeta(func(m *ObjectMeta) { m.Labels = nil })},
		{name: "label key with prefix", obj: withMeta(func(m *ObjectMeta) { m.Labels = map[string]string{"example.com/Key_1.x": "v"} })},
		{name: "label key name 63 long", obj: withMeta(func(m *ObjectMeta) { m.Labels = map[string]string{label(63): "v"} })},
		{name: "label key name 64 long", obj: withMeta(func(m *ObjectMeta) { m.Labels = map[string]string{label(64): "v"} }), want: []string{"metadata.labels"}},
		{name: "label key with bad prefix", obj: withMeta(func(m *ObjectMeta) { m.Labels = map[string]string{"Example.com/k": "v"} }), want: []string{"metadata.labels"}},
		{name: "label key with empty name", obj: withMeta(func(m *ObjectMeta) { m.Labels = map[string]string{"example.com/": "v"} }), want: []string{"metadata.labels"}},
		{name: "empty label key", obj: withMeta(func(m *ObjectMeta) { m.Labels = map[string]string{"": "v"} }), want: []string{"metadata.labels"}},
		{name: "label key ends with .", obj: withMeta(func(m *ObjectMeta) { m.Labels = map[string]string{"k.": "v"} }), want: []string{"metadata.labels"}},
		{name: "empty label value", obj: withMeta(func(m *ObjectMeta) { m.Labels = map[string]string{"k": ""} })},
		{name: "label value of every boundary character", obj: withMeta(func(m *ObjectMeta) { m.Labels = map[string]string{"k": "AZaz09-_.Z"} })},
		{name: "label value 63 long", obj: withMeta(func(m *ObjectMeta) { m.Labels = map[string]string{"k": label(63)} })},
		{name: "label value 64 long", obj: withMeta(func(m *ObjectMeta) { m.Labels = map[string]string{"k": label(64)} }), want: []string{"metadata.labels.k"}},
		{name: "label value starts with -", obj: withMeta(func(m *ObjectMeta) { m.Labels = map[string]string{"k": "-v"} }), want: []string{"metadata.labels.k"}},
		{name: "label value ends with _", obj: withMeta(func(m *ObjectMeta) { m.Labels = map[string]string{"k": "v_"} }), want: []string{"metadata.labels.k"}},
		{name: "label value with space", obj: withMeta(func(m *ObjectMeta) { m.Labels = map[string]string{"k": "a b"} }), want: []string{"metadata.labels.k"}},
		{name: "label value with character before A", obj: withMeta(func(m *ObjectMeta) { m.Labels = map[string]string{"k": "a@"} }), want: []string{"metadata.labels.k"}},
		{name: "label value with character after Z", obj: withMeta(func(m *ObjectMeta) { m.Labels = map[string]string{"k": "a["} }), want: []string{"metadata.labels.k"}},
		{name: "label value with character before a", obj: withMeta(func(m *ObjectMeta) { m.Labels = map[string]string{"k": "a`"} }), want: []string{"metadata.labels.k"}},
		{name: "label value with character after z", obj: withMeta(func(m *ObjectMeta) { m.Labels = map[string]string{"k": "a{"} }), want: []string{"metadata.labels.k"}},
		{name: "label value with character before 0", obj: withMeta(func(m *ObjectMeta) { m.Labels = map[string]string{"k": "a/"} }), want: []string{"metadata.labels.k"}},
		{name: "label value with character after 9", obj: withMeta(func(m *ObjectMeta) { m.Labels = map[string]string{"k": "a:"} }), want: []string{"metadata.labels.k"}},
		{name: "annotations at the limit", obj: withMeta(func(m *ObjectMeta) { m.Annotations = annotations(MaxAnnotationsBytes) })},
		{name: "annotations one byte past the limit", obj: withMeta(func(m *ObjectMeta) { m.Annotations = annotations(MaxAnnotationsBytes + 1) }),
			want: []string{"metadata.annotations"}},
		{name: "annotations counted over every entry", obj: withMeta(func(m *ObjectMeta) {
			m.Annotations = map[string]string{"a": strings.Repeat("v", MaxAnnotationsBytes/2), "b": strings.Repeat("v", MaxAnnotationsBytes/2)}
		}), want: []string{"metadata.annotations"}},
		{name: "owner", obj: withMeta(func(m *ObjectMeta) { m.Owner = &OwnerRef{Kind: KindWorkload, Name: "frontend", UID: "u"} })},
		{name: "owner of unknown kind", obj: withMeta(func(m *ObjectMeta) { m.Owner = &OwnerRef{Kind: "widgets", Name: "frontend"} }), want: []string{"metadata.owner"}},
		{name: "owner without name", obj: withMeta(func(m *ObjectMeta) { m.Owner = &OwnerRef{Kind: KindWorkload} }), want: []string{"metadata.owner"}},
	})
}

func TestValidateNodeAndLease(t *testing.T) {
	node := validNode()
	n := func(f func(*Node)) *Node { return edit(node, f) }
	lease := validLease()
	runValidationCases(t, []validationCase{
		{name: "valid node", obj: node},
		{name: "node without pod CIDR", obj: n(func(n *Node) { n.Spec.PodCIDR = "" })},
		{name: "node name 253 long", obj: n(func(n *Node) { n.Metadata.Name = subdomain(253) })},
		{name: "node name 254 long", obj: n(func(n *Node) { n.Metadata.Name = subdomain(254) }), want: []string{"metadata.name"}},
		{name: "node name with empty label", obj: n(func(n *Node) { n.Metadata.Name = "a..b" }), want: []string{"metadata.name"}},
		{name: "node name with a label of 64", obj: n(func(n *Node) { n.Metadata.Name = "a." + label(64) }), want: []string{"metadata.name"}},
		{name: "node in an app", obj: n(func(n *Node) { n.Metadata.App = "shop" }), want: []string{"metadata.app"}},
		{name: "bad pod CIDR", obj: n(func(n *Node) { n.Spec.PodCIDR = "10.88.1.0/33" }), want: []string{"spec.podCIDR"}},
		{name: "internal IP that is no IP", obj: n(func(n *Node) { n.Status.Addresses[0].Address = "node-1" }), want: []string{"status.addresses[0]"}},
		{name: "negative capacity", obj: n(func(n *Node) {
			n.Status.Capacity = ResourceList{CPU: NewMilliQuantity(-1, DecimalSI), Memory: NewQuantity(-1, BinarySI), Pods: -1}
		}), want: []string{"status.capacity.cpu", "status.capacity.memory", "status.capacity.pods"}},
		{name: "negative allocatable", obj: n(func(n *Node) { n.Status.Allocatable.Memory = NewMilliQuantity(-1, BinarySI) }),
			want: []string{"status.allocatable.memory"}},
		{name: "zero capacity", obj: n(func(n *Node) { n.Status.Capacity = ResourceList{} })},
		{name: "volume storage full", obj: n(func(n *Node) {
			n.Status.VolumeStorage = &NodeVolumeStorage{Capacity: NewQuantity(1<<30, BinarySI)}
		})},
		{name: "negative volume storage", obj: n(func(n *Node) {
			n.Status.VolumeStorage = &NodeVolumeStorage{Capacity: NewQuantity(1<<30, BinarySI), Available: NewQuantity(-1, BinarySI)}
		}), want: []string{"status.volumeStorage"}},
		{name: "valid lease", obj: lease},
		{name: "lease without holder", obj: edit(lease, func(l *Lease) { l.Spec.Holder = "" }), want: []string{"spec.holder"}},
		{name: "lease name 253 long", obj: edit(lease, func(l *Lease) { l.Metadata.Name = subdomain(253) })},
		{name: "lease name 254 long", obj: edit(lease, func(l *Lease) { l.Metadata.Name = subdomain(254) }), want: []string{"metadata.name"}},
		{name: "lease in an app", obj: edit(lease, func(l *Lease) { l.Metadata.App = "shop" }), want: []string{"metadata.app"}},
	})
}

func TestValidateWorkload(t *testing.T) {
	wl := validWorkload()
	w := func(f func(*Workload)) *Workload { return edit(wl, f) }
	runValidationCases(t, []validationCase{
		{name: "valid workload with the default strategy", obj: wl},
		{name: "explicit strategy", obj: w(func(w *Workload) {
			w.Spec.Strategy = RolloutStrategy{MaxSurge: FromString("25%"), MaxUnavailable: FromInt(1), ProgressDeadlineSeconds: 600}
		})},
		{name: "percent strategy", obj: w(func(w *Workload) {
			w.Spec.Strategy = RolloutStrategy{MaxSurge: FromInt(0), MaxUnavailable: FromString("100%")}
		})},
		{name: "zero replicas", obj: w(func(w *Workload) { w.Spec.Replicas = 0 })},
		{name: "negative replicas", obj: w(func(w *Workload) { w.Spec.Replicas = -1 }), want: []string{"spec.replicas"}},
		{name: "replicas at the limit", obj: w(func(w *Workload) { w.Spec.Replicas = MaxReplicas })},
		{name: "replicas past the limit", obj: w(func(w *Workload) { w.Spec.Replicas = MaxReplicas + 1 }), want: []string{"spec.replicas"}},
		{name: "max surge not a percentage", obj: w(func(w *Workload) { w.Spec.Strategy.MaxSurge = FromString("lots") }),
			want: []string{"spec.strategy.maxSurge"}},
		{name: "max surge negative", obj: w(func(w *Workload) { w.Spec.Strategy.MaxSurge = FromInt(-1) }), want: []string{"spec.strategy.maxSurge"}},
		{name: "max unavailable not a percentage", obj: w(func(w *Workload) { w.Spec.Strategy.MaxUnavailable = FromString("-5%") }),
			want: []string{"spec.strategy.maxUnavailable"}},
		{name: "max unavailable negative", obj: w(func(w *Workload) { w.Spec.Strategy.MaxUnavailable = FromInt(-1) }),
			want: []string{"spec.strategy.maxUnavailable"}},
		{name: "negative progress deadline", obj: w(func(w *Workload) { w.Spec.Strategy.ProgressDeadlineSeconds = -1 }),
			want: []string{"spec.strategy.progressDeadlineSeconds"}},
		{name: "template checked under spec.template", obj: w(func(w *Workload) { w.Spec.Template.Containers = nil }),
			want: []string{"spec.template.containers"}},
	})
}

func TestValidateTemplate(t *testing.T) {
	pod := validPod()
	p := func(f func(*Pod)) *Pod { return edit(pod, f) }
	c0 := func(f func(*Container)) *Pod { return edit(pod, func(p *Pod) { f(&p.Spec.Containers[0]) }) }
	containers := func(n int) []Container {
		var cs []Container
		for i := range n {
			cs = append(cs, Container{Name: "c" + strings.Repeat("x", i), Image: "busybox"})
		}
		return cs
	}
	runValidationCases(t, []validationCase{
		{name: "valid pod", obj: pod},
		{name: "containers at the limit", obj: p(func(p *Pod) { p.Spec.Containers = containers(MaxContainersPerPod) })},
		{name: "containers past the limit", obj: p(func(p *Pod) { p.Spec.Containers = containers(MaxContainersPerPod + 1) }),
			want: []string{"spec.containers"}},
		{name: "no containers", obj: p(func(p *Pod) { p.Spec.Containers = nil }), want: []string{"spec.containers"}},
		{name: "template labels", obj: p(func(p *Pod) { p.Spec.Labels = map[string]string{LabelWorkload: "frontend"} })},
		{name: "template label key bad", obj: p(func(p *Pod) { p.Spec.Labels = map[string]string{"-k": "v"} }), want: []string{"spec.labels"}},
		{name: "template label value bad", obj: p(func(p *Pod) { p.Spec.Labels = map[string]string{"k": "-v"} }), want: []string{"spec.labels"}},
		{name: "volume name bad", obj: p(func(p *Pod) { p.Spec.Volumes = append(p.Spec.Volumes, Volume{Name: "Bad"}) }),
			want: []string{"spec.volumes[1].name"}},
		{name: "volume defined twice", obj: p(func(p *Pod) { p.Spec.Volumes = append(p.Spec.Volumes, Volume{Name: "spool"}) }),
			want: []string{"spec.volumes[1].name"}},
		{name: "restart Always", obj: p(func(p *Pod) { p.Spec.RestartPolicy = RestartAlways })},
		{name: "restart OnFailure", obj: p(func(p *Pod) { p.Spec.RestartPolicy = RestartOnFailure })},
		{name: "restart Never", obj: p(func(p *Pod) { p.Spec.RestartPolicy = RestartNever })},
		{name: "restart always", obj: p(func(p *Pod) { p.Spec.RestartPolicy = "always" }), want: []string{"spec.restartPolicy"}},
		{name: "grace zero", obj: p(func(p *Pod) { p.Spec.TerminationGracePeriodSeconds = new(int64(0)) })},
		{name: "grace at the limit", obj: p(func(p *Pod) { p.Spec.TerminationGracePeriodSeconds = new(int64(MaxTerminationGrace)) })},
		{name: "grace past the limit", obj: p(func(p *Pod) { p.Spec.TerminationGracePeriodSeconds = new(int64(MaxTerminationGrace + 1)) }),
			want: []string{"spec.terminationGracePeriodSeconds"}},
		{name: "grace negative", obj: p(func(p *Pod) { p.Spec.TerminationGracePeriodSeconds = new(int64(-1)) }), want: []string{"spec.terminationGracePeriodSeconds"}},
		{name: "node selector", obj: p(func(p *Pod) { p.Spec.NodeSelector = map[string]string{"disk": "ssd"} })},
		{name: "node selector key bad", obj: p(func(p *Pod) { p.Spec.NodeSelector = map[string]string{"disk/": "ssd"} }), want: []string{"spec.nodeSelector"}},
		{name: "node selector value bad", obj: p(func(p *Pod) { p.Spec.NodeSelector = map[string]string{"disk": "s s"} }), want: []string{"spec.nodeSelector"}},
		{name: "node name", obj: p(func(p *Pod) { p.Spec.NodeName = "node-1.lab" })},
		{name: "node name bad", obj: p(func(p *Pod) { p.Spec.NodeName = "node_1" }), want: []string{"spec.nodeName"}},
		{name: "required node", obj: p(func(p *Pod) { p.Spec.RequiredNode = "node-1.lab" })},
		{name: "required node bad", obj: p(func(p *Pod) { p.Spec.RequiredNode = "node_1" }), want: []string{"spec.requiredNode"}},
		{name: "bound to its required node", obj: p(func(p *Pod) { p.Spec.NodeName, p.Spec.RequiredNode = "n1", "n1" })},
		{name: "bound to another node than its required one", obj: p(func(p *Pod) { p.Spec.NodeName, p.Spec.RequiredNode = "n2", "n1" }),
			want: []string{"spec.nodeName"}},
		{name: "container name bad", obj: c0(func(c *Container) { c.Name = "Web" }), want: []string{"spec.containers[0].name"}},
		{name: "container twice", obj: p(func(p *Pod) {
			c := p.Spec.Containers[0]
			c.Readiness = nil
			p.Spec.Containers = append(p.Spec.Containers, c)
		}), want: []string{"spec.containers[1].name"}},
	})
}

func TestValidateContainer(t *testing.T) {
	pod := validPod()
	c0 := func(f func(*Container)) *Pod { return edit(pod, func(p *Pod) { f(&p.Spec.Containers[0]) }) }
	cpu := func(r, l string) Resources {
		return Resources{Requests: ResourceList{CPU: MustParseQuantity(r)}, Limits: ResourceList{CPU: MustParseQuantity(l)}}
	}
	mem := func(r, l string) Resources {
		return Resources{Requests: ResourceList{Memory: MustParseQuantity(r)}, Limits: ResourceList{Memory: MustParseQuantity(l)}}
	}
	probe := func(p *Probe) *Pod { return c0(func(c *Container) { c.Readiness = p }) }
	const path = "spec.containers[0]"
	runValidationCases(t, []validationCase{
		{name: "image at the length limit", obj: c0(func(c *Container) { c.Image = strings.Repeat("i", maxStringFieldLength) })},
		{name: "image past the length limit", obj: c0(func(c *Container) { c.Image = strings.Repeat("i", maxStringFieldLength+1) }),
			want: []string{path + ".image"}},
		{name: "image with tab", obj: c0(func(c *Container) { c.Image = "a\tb" }), want: []string{path + ".image"}},
		{name: "image with newline", obj: c0(func(c *Container) { c.Image = "a\nb" }), want: []string{path + ".image"}},
		{name: "image with NUL", obj: c0(func(c *Container) { c.Image = "a\x00b" }), want: []string{path + ".image"}},
		{name: "pull IfNotPresent", obj: c0(func(c *Container) { c.ImagePullPolicy = PullIfNotPresent })},
		{name: "pull Always", obj: c0(func(c *Container) { c.ImagePullPolicy = PullAlways })},
		{name: "pull Never", obj: c0(func(c *Container) { c.ImagePullPolicy = "Never" }), want: []string{path + ".imagePullPolicy"}},
		{name: "env", obj: c0(func(c *Container) {
			c.Env = []EnvVar{{Name: "A", Value: "x=y"}, {Name: strings.Repeat("E", maxEnvNameLen)}}
		})},
		{name: "env name past the limit", obj: c0(func(c *Container) { c.Env = []EnvVar{{Name: "A"}, {Name: strings.Repeat("E", maxEnvNameLen+1)}} }),
			want: []string{path + ".env[1].name"}},
		{name: "env name empty", obj: c0(func(c *Container) { c.Env = []EnvVar{{Name: ""}} }), want: []string{path + ".env[0].name"}},
		{name: "env name with NUL", obj: c0(func(c *Container) { c.Env = []EnvVar{{Name: "A\x00"}} }), want: []string{path + ".env[0].name"}},
		{name: "working dir", obj: c0(func(c *Container) { c.WorkingDir = "/srv" })},
		{name: "working dir relative", obj: c0(func(c *Container) { c.WorkingDir = "srv" }), want: []string{path + ".workingDir"}},
		{name: "port 1 and 65535 TCP and UDP", obj: c0(func(c *Container) {
			c.Ports = append(c.Ports, ContainerPort{Port: 1, Protocol: ProtocolTCP}, ContainerPort{Name: "dns", Port: 65535, Protocol: ProtocolUDP})
		})},
		{name: "port 65536", obj: c0(func(c *Container) { c.Ports[0].Port = 65536 }), want: []string{path + ".ports[0].port"}},
		{name: "port negative", obj: c0(func(c *Container) { c.Ports[0].Port = -1 }), want: []string{path + ".ports[0].port"}},
		{name: "protocol lower case", obj: c0(func(c *Container) { c.Ports[0].Protocol = "tcp" }), want: []string{path + ".ports[0].protocol"}},
		{name: "port name 15 long", obj: c0(func(c *Container) { c.Ports[0].Name = "abcdefghijklmno"; c.Readiness = nil })},
		{name: "port name 16 long", obj: c0(func(c *Container) { c.Ports[0].Name = "abcdefghijklmnop"; c.Readiness = nil }),
			want: []string{path + ".ports[0].name"}},
		{name: "port name with a digit and z", obj: c0(func(c *Container) { c.Ports[0].Name = "9z"; c.Readiness = nil })},
		{name: "port name with a and a digit", obj: c0(func(c *Container) { c.Ports[0].Name = "a9"; c.Readiness = nil })},
		{name: "port name of digits only", obj: c0(func(c *Container) { c.Ports[0].Name = "8080"; c.Readiness = nil }),
			want: []string{path + ".ports[0].name"}},
		{name: "port name with --", obj: c0(func(c *Container) { c.Ports[0].Name = "a--b"; c.Readiness = nil }),
			want: []string{path + ".ports[0].name"}},
		{name: "port name upper case", obj: c0(func(c *Container) { c.Ports[0].Name = "Http"; c.Readiness = nil }),
			want: []string{path + ".ports[0].name"}},
		{name: "port name twice", obj: c0(func(c *Container) { c.Ports = append(c.Ports, ContainerPort{Name: "http", Port: 8081}) }),
			want: []string{path + ".ports[1].name"}},
		{name: "unnamed ports twice", obj: c0(func(c *Container) { c.Ports = append(c.Ports, ContainerPort{Port: 1}, ContainerPort{Port: 2}) })},
		{name: "host port at the limits", obj: c0(func(c *Container) {
			c.Ports[0].HostPort = 65535
			c.Ports = append(c.Ports, ContainerPort{Port: 9, HostPort: 0})
		})},
		{name: "host port 65536", obj: c0(func(c *Container) { c.Ports[0].HostPort = 65536 }), want: []string{path + ".ports[0].hostPort"}},
		{name: "host port negative", obj: c0(func(c *Container) { c.Ports[0].HostPort = -1 }), want: []string{path + ".ports[0].hostPort"}},
		{name: "cpu request equal to limit", obj: c0(func(c *Container) { c.Resources = cpu("500m", "500m") })},
		{name: "cpu request above limit", obj: c0(func(c *Container) { c.Resources = cpu("501m", "500m") }), want: []string{path + ".resources"}},
		{name: "cpu request without limit", obj: c0(func(c *Container) { c.Resources = Resources{Requests: ResourceList{CPU: MustParseQuantity("64")}} })},
		{name: "memory request equal to limit", obj: c0(func(c *Container) { c.Resources = mem("64Mi", "64Mi") })},
		{name: "memory request above limit", obj: c0(func(c *Container) { c.Resources = mem("65Mi", "64Mi") }), want: []string{path + ".resources"}},
		{name: "memory request without limit", obj: c0(func(c *Container) { c.Resources = Resources{Requests: ResourceList{Memory: MustParseQuantity("1Gi")}} })},
		{name: "negative requests and limits", obj: c0(func(c *Container) {
			c.Resources = Resources{Requests: ResourceList{CPU: NewMilliQuantity(-1, DecimalSI), Memory: NewMilliQuantity(-1, BinarySI)}, Limits: ResourceList{Pods: -1}}
		}), want: []string{path + ".resources.limits.pods", path + ".resources.requests.cpu", path + ".resources.requests.memory"}},
		{name: "negative limit", obj: c0(func(c *Container) {
			c.Resources = Resources{Limits: ResourceList{CPU: NewMilliQuantity(-1, DecimalSI)}}
		}),
			want: []string{path + ".resources", path + ".resources.limits.cpu"}},
		{name: "no probe", obj: probe(nil)},
		{name: "http probe by number", obj: probe(&Probe{HTTP: &HTTPProbe{Port: FromInt(65535)}})},
		{name: "http probe on port 1", obj: probe(&Probe{HTTP: &HTTPProbe{Path: "/", Port: FromInt(1)}})},
		{name: "http probe on port 0", obj: probe(&Probe{HTTP: &HTTPProbe{Port: FromInt(0)}}), want: []string{path + ".readiness.http.port"}},
		{name: "http probe on port 65536", obj: probe(&Probe{HTTP: &HTTPProbe{Port: FromInt(65536)}}), want: []string{path + ".readiness.http.port"}},
		{name: "http probe relative path", obj: probe(&Probe{HTTP: &HTTPProbe{Path: "healthz", Port: FromString("http")}}),
			want: []string{path + ".readiness.http.path"}},
		{name: "tcp probe", obj: probe(&Probe{TCP: &TCPProbe{Port: FromString("http")}})},
		{name: "tcp probe on unknown port", obj: probe(&Probe{TCP: &TCPProbe{Port: FromString("grpc")}}), want: []string{path + ".readiness.tcp.port"}},
		{name: "exec probe", obj: probe(&Probe{Exec: &ExecProbe{Command: []string{"true"}}})},
		{name: "exec probe without command", obj: probe(&Probe{Exec: &ExecProbe{}}), want: []string{path + ".readiness.exec.command"}},
		{name: "probe without handler", obj: probe(&Probe{}), want: []string{path + ".readiness"}},
		{name: "probe with tcp and exec", obj: probe(&Probe{TCP: &TCPProbe{Port: FromInt(1)}, Exec: &ExecProbe{Command: []string{"true"}}}),
			want: []string{path + ".readiness"}},
		{name: "probe with three handlers", obj: probe(&Probe{HTTP: &HTTPProbe{Port: FromInt(1)}, TCP: &TCPProbe{Port: FromInt(1)}, Exec: &ExecProbe{Command: []string{"true"}}}),
			want: []string{path + ".readiness"}},
		{name: "probe timings zero", obj: probe(&Probe{Exec: &ExecProbe{Command: []string{"true"}}})},
		{name: "probe timings positive", obj: probe(&Probe{Exec: &ExecProbe{Command: []string{"true"}}, InitialDelaySeconds: 1, PeriodSeconds: 1, TimeoutSeconds: 1, FailureThreshold: 1, SuccessThreshold: 1})},
		{name: "probe timings negative", obj: probe(&Probe{Exec: &ExecProbe{Command: []string{"true"}}, InitialDelaySeconds: -1, PeriodSeconds: -1, TimeoutSeconds: -1, FailureThreshold: -1, SuccessThreshold: -1}),
			want: []string{path + ".readiness.failureThreshold", path + ".readiness.initialDelaySeconds", path + ".readiness.periodSeconds", path + ".readiness.successThreshold", path + ".readiness.timeoutSeconds"}},
		{name: "liveness checked too", obj: c0(func(c *Container) { c.Liveness = &Probe{} }), want: []string{path + ".liveness"}},
		{name: "mount path with ..", obj: c0(func(c *Container) { c.VolumeMounts[0].MountPath = "/spool/../etc" }),
			want: []string{path + ".volumeMounts[0].mountPath"}},
		{name: "two mounts of one volume", obj: c0(func(c *Container) {
			c.VolumeMounts = append(c.VolumeMounts, VolumeMount{Name: "spool", MountPath: "/other", ReadOnly: true})
		})},
	})
}

func TestValidateService(t *testing.T) {
	svc := validService()
	s := func(f func(*Service)) *Service { return edit(svc, f) }
	p0 := func(f func(*ServicePort)) *Service { return edit(svc, func(s *Service) { f(&s.Spec.Ports[0]) }) }
	runValidationCases(t, []validationCase{
		{name: "valid service", obj: svc},
		{name: "headless without ports", obj: s(func(s *Service) { s.Spec.Headless, s.Spec.Ports = true, nil })},
		{name: "external", obj: s(func(s *Service) { s.Spec.External = true })},
		{name: "no ports", obj: s(func(s *Service) { s.Spec.Ports = nil }), want: []string{"spec.ports"}},
		{name: "headless and external", obj: s(func(s *Service) { s.Spec.Headless, s.Spec.External = true, true }), want: []string{"spec"}},
		{name: "port 65535", obj: p0(func(p *ServicePort) { p.Port = 65535 })},
		{name: "port 65536", obj: p0(func(p *ServicePort) { p.Port = 65536 }), want: []string{"spec.ports[0].port"}},
		{name: "port 0", obj: p0(func(p *ServicePort) { p.Port = 0 }), want: []string{"spec.ports[0].port"}},
		{name: "port name twice", obj: s(func(s *Service) { s.Spec.Ports[1].Name = "http" }), want: []string{"spec.ports[1].name"}},
		{name: "protocol SCTP", obj: p0(func(p *ServicePort) { p.Protocol = "SCTP" }), want: []string{"spec.ports[0].protocol"}},
		{name: "port number twice", obj: s(func(s *Service) { s.Spec.Ports[1].Port, s.Spec.Ports[1].Protocol = 80, "" }), want: []string{"spec.ports[1].port"}},
		{name: "port number twice, TCP by default", obj: s(func(s *Service) { s.Spec.Ports[1].Port, s.Spec.Ports[1].Protocol = 80, ProtocolTCP }),
			want: []string{"spec.ports[1].port"}},
		{name: "port number twice, other protocol", obj: s(func(s *Service) { s.Spec.Ports[1].Port = 80 })},
		{name: "port number twice, headless", obj: s(func(s *Service) { s.Spec.Headless, s.Spec.Ports[1].Port, s.Spec.Ports[1].Protocol = true, 80, "" }),
			want: []string{"spec.ports[1].port"}},
		{name: "one port unnamed", obj: s(func(s *Service) { s.Spec.Ports = s.Spec.Ports[:1]; s.Spec.Ports[0].Name = "" })},
		{name: "two ports, one unnamed", obj: s(func(s *Service) { s.Spec.Ports[1].Name = "" }), want: []string{"spec.ports[1].name"}},
		{name: "target port by bad name", obj: p0(func(p *ServicePort) { p.TargetPort = FromString("Http") }), want: []string{"spec.ports[0].targetPort"}},
		{name: "target port by empty name", obj: p0(func(p *ServicePort) { p.TargetPort = FromString("") }), want: []string{"spec.ports[0].targetPort"}},
		{name: "target port unset", obj: p0(func(p *ServicePort) { p.TargetPort = IntOrString{} })},
		{name: "target port 65535", obj: p0(func(p *ServicePort) { p.TargetPort = FromInt(65535) })},
		{name: "target port 65536", obj: p0(func(p *ServicePort) { p.TargetPort = FromInt(65536) }), want: []string{"spec.ports[0].targetPort"}},
		{name: "target port negative", obj: p0(func(p *ServicePort) { p.TargetPort = FromInt(-1) }), want: []string{"spec.ports[0].targetPort"}},
		{name: "node port at the low end", obj: p0(func(p *ServicePort) { p.NodePort = MinNodePort })},
		{name: "node port at the high end", obj: p0(func(p *ServicePort) { p.NodePort = MaxNodePort })},
		{name: "node port below the range", obj: p0(func(p *ServicePort) { p.NodePort = MinNodePort - 1 }), want: []string{"spec.ports[0].nodePort"}},
		{name: "node port above the range", obj: p0(func(p *ServicePort) { p.NodePort = MaxNodePort + 1 }), want: []string{"spec.ports[0].nodePort"}},
		{name: "VIP", obj: s(func(s *Service) { s.Spec.VIP = "10.96.0.10" })},
		{name: "IPv6 VIP", obj: s(func(s *Service) { s.Spec.VIP = "fd00::10" })},
		{name: "bad VIP", obj: s(func(s *Service) { s.Spec.VIP = "10.96.0" }), want: []string{"spec.vip"}},
		{name: "no selector", obj: s(func(s *Service) { s.Spec.Selector = nil })},
		{name: "selector key bad", obj: s(func(s *Service) { s.Spec.Selector = map[string]string{"a b": "c"} }), want: []string{"spec.selector"}},
		{name: "selector value bad", obj: s(func(s *Service) { s.Spec.Selector = map[string]string{"a": "c-"} }), want: []string{"spec.selector"}},
	})
}

func TestValidateApp(t *testing.T) {
	app := validApp()
	a := func(f func(*App)) *App { return edit(app, f) }
	runValidationCases(t, []validationCase{
		{name: "valid app", obj: app},
		{name: "empty app", obj: a(func(a *App) { a.Spec = AppSpec{} })},
		{name: "workload and service of one name", obj: a(func(a *App) { a.Spec.Services[1].Name = "frontend"; a.Spec.Services = a.Spec.Services[1:] })},
		{name: "workload name bad", obj: a(func(a *App) { a.Spec.Workloads[1].Name = "Back" }), want: []string{"spec.workloads[1].name"}},
		{name: "workload defined twice", obj: a(func(a *App) { a.Spec.Workloads[1].Name = "frontend" }), want: []string{"spec.workloads[1].name"}},
		{name: "workload spec checked", obj: a(func(a *App) { a.Spec.Workloads[1].Spec.Replicas = -1 }), want: []string{"spec.workloads[1].spec.replicas"}},
		{name: "workload template checked", obj: a(func(a *App) { a.Spec.Workloads[0].Spec.Template.Containers[0].Image = "" }),
			want: []string{"spec.workloads[0].spec.template.containers[0].image"}},
		{name: "service name bad", obj: a(func(a *App) { a.Spec.Services[1].Name = "" }), want: []string{"spec.services[1].name"}},
		{name: "service defined twice", obj: a(func(a *App) { a.Spec.Services[1].Name = "frontend" }), want: []string{"spec.services[1].name"}},
		{name: "service spec checked", obj: a(func(a *App) { a.Spec.Services[0].Spec.Ports = nil }), want: []string{"spec.services[0].spec.ports"}},
		{name: "app needs an app", obj: a(func(a *App) { a.Metadata.App = "" }), want: []string{"metadata.app"}},
	})
}

func TestValidateEndpointsRevisionEvent(t *testing.T) {
	ep := validEndpoints()
	e := func(f func(*Endpoints)) *Endpoints { return edit(ep, f) }
	rev := validRevision()
	r := func(f func(*Revision)) *Revision { return edit(rev, f) }
	ev := validEvent()
	v := func(f func(*Event)) *Event { return edit(ev, f) }
	runValidationCases(t, []validationCase{
		{name: "valid endpoints", obj: ep},
		{name: "no addresses", obj: e(func(e *Endpoints) { e.Spec.Addresses = nil })},
		{name: "bad IP", obj: e(func(e *Endpoints) { e.Spec.Addresses[1].IP = "pod-2" }), want: []string{"spec.addresses[1].ip"}},
		{name: "endpoint port 0", obj: e(func(e *Endpoints) { e.Spec.Addresses[0].Ports[1].Port = 0 }), want: []string{"spec.addresses[0].ports[1].port"}},
		{name: "endpoint port name twice", obj: e(func(e *Endpoints) { e.Spec.Addresses[0].Ports[1].Name = "http" }),
			want: []string{"spec.addresses[0].ports[1].name"}},
		{name: "endpoint protocol bad", obj: e(func(e *Endpoints) { e.Spec.Addresses[0].Ports[0].Protocol = "udp" }),
			want: []string{"spec.addresses[0].ports[0].protocol"}},
		{name: "valid revision", obj: rev},
		{name: "rejected revision", obj: r(func(r *Revision) { r.Spec.Result = SyncRejected })},
		{name: "failed revision", obj: r(func(r *Revision) { r.Spec.Result = SyncFailed })},
		{name: "revision without commit", obj: r(func(r *Revision) { r.Spec.Commit = "" }), want: []string{"spec.commit"}},
		{name: "revision with unknown result", obj: r(func(r *Revision) { r.Spec.Result = "applied" }), want: []string{"spec.result"}},
		{name: "revision without result", obj: r(func(r *Revision) { r.Spec.Result = "" }), want: []string{"spec.result"}},
		{name: "valid event", obj: ev},
		{name: "warning event", obj: v(func(e *Event) { e.Spec.Type = EventWarning })},
		{name: "event without reason", obj: v(func(e *Event) { e.Spec.Reason = "" }), want: []string{"spec.reason"}},
		{name: "event of unknown type", obj: v(func(e *Event) { e.Spec.Type = "Error" }), want: []string{"spec.type"}},
		{name: "event without type", obj: v(func(e *Event) { e.Spec.Type = "" }), want: []string{"spec.type"}},
	})
}

func TestValidateUnknownKind(t *testing.T) {
	p := validPod()
	p.Kind = "Widget"
	if err := Validate(p); !errors.Is(err, ErrUnknownKind) || errors.Is(err, ErrInvalid) {
		t.Fatalf("Validate(Widget) = %v, want ErrUnknownKind", err)
	}
}

// Messages say what was wrong, with the offending value quoted and long
// values shortened.
func TestValidationMessages(t *testing.T) {
	p := validPod()
	p.Metadata.Name = strings.Repeat("n", 81)
	p.Spec.Containers[0].Ports[0].Port = 70000
	p.Spec.Containers[0].Readiness = nil
	p.Spec.Containers[0].Image = ""
	err := Validate(p)
	want := `invalid: metadata.name: "` + strings.Repeat("n", 77) + `...": must be a DNS label (lowercase letters, digits and '-', at most 63); ` +
		`spec.containers[0].image: is required; spec.containers[0].ports[0].port: 70000: want 1 to 65535`
	if err == nil || err.Error() != want {
		t.Fatalf("error\n got  %v\n want %s", err, want)
	}
	if got := quote(strings.Repeat("x", 80)); got != `"`+strings.Repeat("x", 80)+`"` {
		t.Errorf("quote of 80 characters = %s, want it whole", got)
	}
}

func TestIsDNSSubdomain(t *testing.T) {
	for s, want := range map[string]bool{
		"a": true, "a.b": true, subdomain(253): true, subdomain(254): false, "": false, "a.": false, ".a": false, "a..b": false, "A.b": false,
	} {
		if got := IsDNSSubdomain(s); got != want {
			t.Errorf("IsDNSSubdomain(%q) = %v, want %v", s, got, want)
		}
	}
}

func TestResolvePort(t *testing.T) {
	c := &Container{Name: "web", Ports: []ContainerPort{{Name: "http", Port: 8080}, {Name: "admin", Port: 9090}}}
	tests := []struct {
		ref  IntOrString
		port int32
		ok   bool
	}{
		{FromString("admin"), 9090, true},
		{FromString("http"), 8080, true},
		{FromString("grpc"), 0, false},
		{FromInt(1), 1, true},
		{FromInt(65535), 65535, true},
		{FromInt(0), 0, false},
		{FromInt(65536), 65536, false},
	}
	for _, tt := range tests {
		if port, ok := ResolvePort(c, tt.ref); port != tt.port || ok != tt.ok {
			t.Errorf("ResolvePort(%v) = %d, %v, want %d, %v", tt.ref, port, ok, tt.port, tt.ok)
		}
	}
}
