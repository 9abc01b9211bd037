package api

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

// Quantity: every suffix, Value rounding, the parser's limits at their
// boundary, and that the integer fast path takes the common shapes.

func TestQuantitySuffixes(t *testing.T) {
	tests := []struct {
		in    string
		milli int64
		value int64
		out   string
	}{
		{"1k", 1e6, 1e3, "1k"},
		{"1M", 1e9, 1e6, "1M"},
		{"1G", 1e12, 1e9, "1G"},
		{"1T", 1e15, 1e12, "1T"},
		{"2T", 2e15, 2e12, "2T"},
		{"1.5T", 1.5e15, 1.5e12, "1500G"},
		{"1P", 1e18, 1e15, "1P"},
		{"1Ki", 1 << 10 * 1000, 1 << 10, "1Ki"},
		{"1Mi", 1 << 20 * 1000, 1 << 20, "1Mi"},
		{"1Gi", 1 << 30 * 1000, 1 << 30, "1Gi"},
		{"1Ti", 1 << 40 * 1000, 1 << 40, "1Ti"},
		{"2Ti", 2 << 40 * 1000, 2 << 40, "2Ti"},
		{"1Pi", 1 << 50 * 1000, 1 << 50, "1Pi"},
		{"1536Mi", 1536 << 20 * 1000, 1536 << 20, "1536Mi"},
		{"1e12", 1e15, 1e12, "1T"},
		{"1E6", 1e9, 1e6, "1M"},
		{"1e+3", 1e6, 1e3, "1k"},
		{"+1", 1000, 1, "1"},
		{"-1", -1000, -1, "-1"},
		{"-250m", -250, 0, "-250m"},
		{"-2k", -2e6, -2e3, "-2k"},
		{"-1Mi", -(1 << 20) * 1000, -(1 << 20), "-1Mi"},
		{"0e18", 0, 0, "0"},
		{"1e-3", 1, 1, "1m"},
		{"1001m", 1001, 2, "1001m"},
		{"999m", 999, 1, "999m"},
		{"1000m", 1000, 1, "1"},
		{"1m", 1, 1, "1m"},
		{"3.", 3000, 3, "3"},
		{".5", 500, 1, "500m"},
		{"0.001", 1, 1, "1m"},
		{"0.0011", 2, 1, "2m"},
		{"1.25k", 1250000, 1250, "1250"},
		{"12345.678", 12345678, 12346, "12345678m"},
		{strings.Repeat("0", 63) + "1", 1000, 1, "1"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			q, err := ParseQuantity(tt.in)
			if err != nil {
				t.Fatalf("ParseQuantity(%q): %v", tt.in, err)
			}
			if q.MilliValue() != tt.milli || q.Value() != tt.value || q.String() != tt.out {
				t.Fatalf("ParseQuantity(%q) = milli %d, Value %d, %q; want %d, %d, %q", tt.in, q.MilliValue(), q.Value(), q.String(), tt.milli, tt.value, tt.out)
			}
		})
	}
}

func TestQuantityErrors(t *testing.T) {
	tests := []struct{ in, msg string }{
		{"", "empty"},
		{strings.Repeat("0", 64) + "1", "65 characters long, more than 64"},
		{"Mi", "no number"},
		{"+", "no number"},
		{"-", "no number"},
		{".", "no number"},
		{"-.", "not a decimal number"},
		{"1e-4", "exponent"},
		{"0e19", "exponent"},
		{"1e18", "too large"},
		{"1X", "unknown suffix"},
		{"1Ti5", "unknown suffix"},
		{"1.2.3", "not a decimal number"},
		{"10E", "too large"},
		{"10P", "too large"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			q, err := ParseQuantity(tt.in)
			if err == nil || !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("ParseQuantity(%q) = %v, %v; want an error saying %q", tt.in, q, err, tt.msg)
			}
		})
	}
}

func TestQuantityValue(t *testing.T) {
	for _, tt := range []struct{ milli, value int64 }{{0, 0}, {1, 1}, {999, 1}, {1000, 1}, {1001, 2}, {2000, 2}, {-1, 0}, {-1000, -1}, {-1500, -1}} {
		if got := NewMilliQuantity(tt.milli, DecimalSI).Value(); got != tt.value {
			t.Errorf("NewMilliQuantity(%d).Value() = %d, want %d", tt.milli, got, tt.value)
		}
	}
	if q := NewQuantity(3, BinarySI); q.MilliValue() != 3000 || q.String() != "3" || !NewQuantity(0, DecimalSI).IsZero() || q.IsZero() {
		t.Errorf("NewQuantity(3) = %v (%d)", q, q.MilliValue())
	}
	if q := NewQuantity(4096, BinarySI); q.String() != "4Ki" {
		t.Errorf("NewQuantity(4096, BinarySI) = %s, want 4Ki", q)
	}
}

func TestQuantityArithmetic(t *testing.T) {
	a, b := MustParseQuantity("1Gi"), MustParseQuantity("512Mi")
	if got := a.Sub(b); got.String() != "512Mi" || got.MilliValue() != 512<<20*1000 {
		t.Errorf("1Gi - 512Mi = %s", got)
	}
	if got := b.Add(b); got.String() != "1Gi" {
		t.Errorf("512Mi + 512Mi = %s", got)
	}
	if got := MustParseQuantity("250m").Add(MustParseQuantity("1Gi")); got.String() != "1073741824250m" {
		t.Errorf("Add keeps the first operand's format: %s", got)
	}
	for _, tt := range []struct {
		a, b string
		want int
	}{{"1", "2", -1}, {"2", "1", 1}, {"1000m", "1", 0}, {"-1", "0", -1}} {
		if got := MustParseQuantity(tt.a).Cmp(MustParseQuantity(tt.b)); got != tt.want {
			t.Errorf("Cmp(%s, %s) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
	}
	defer func() {
		if recover() == nil {
			t.Error("MustParseQuantity of garbage did not panic")
		}
	}()
	MustParseQuantity("lots")
}

func TestQuantityJSONNull(t *testing.T) {
	q := MustParseQuantity("1")
	if err := json.Unmarshal([]byte(`null`), &q); err != nil || !q.IsZero() {
		t.Errorf("null = %v, %v; want zero", q, err)
	}
	if err := json.Unmarshal([]byte(`"1Ti"`), &q); err != nil || q.String() != "1Ti" {
		t.Errorf(`"1Ti" = %v, %v`, q, err)
	}
	if err := json.Unmarshal([]byte(`"1`), &q); err == nil {
		t.Error("a broken string was accepted")
	}
}

// The integer fast path must take the shapes controllers decode all the
// time (falling back to big.Rat for them is correct but slow).
func TestQuantityFastPathTakesCommonShapes(t *testing.T) {
	for _, s := range []string{"250m", "2", "0.5", "1.5", "3.", "0.125", "64Mi", "1Gi", "100Ki", "1G", "1.5M", "2k", "999999999999999", "99999999999.999", "4294967.296Gi"} {
		num, sfx := splitQuantity(s)
		q, ok := parseQuantityFast(num, sfx)
		if !ok {
			t.Errorf("%s: fast path refused", s)
			continue
		}
		if exact, err := parseQuantityExact(s); err != nil || exact != q {
			t.Errorf("%s: fast %+v, exact %+v, %v", s, q, exact, err)
		}
	}
	for _, s := range []string{"", ".", "+1", "-1", "0.0001", "1.5m", "1T", "1e3", "1000000000000000", "1.2.3", "999999999999999Gi", "4294967.297Gi"} {
		num, sfx := splitQuantity(s)
		if q, ok := parseQuantityFast(num, sfx); ok {
			t.Errorf("%q: fast path took it (%+v), want the exact path", s, q)
		}
	}
}

func TestIsExponent(t *testing.T) {
	for s, want := range map[string]bool{"e3": true, "E3": true, "e-3": true, "E+3": true, "e": false, "E": false, "Ei": false, "E-": false, "ex": true, "Ex": false, "": false, "k": false} {
		if got := isExponent(s); got != want {
			t.Errorf("isExponent(%q) = %v, want %v", s, got, want)
		}
	}
}

func TestIntOrString(t *testing.T) {
	for _, tt := range []struct {
		v    IntOrString
		json string
		str  string
		zero bool
	}{
		{FromInt(0), `0`, "0", true},
		{FromInt(8080), `8080`, "8080", false},
		{FromString("http"), `"http"`, "http", false},
		{FromString(""), `""`, "", false},
	} {
		b, err := json.Marshal(tt.v)
		if err != nil || string(b) != tt.json || tt.v.String() != tt.str || tt.v.IsZero() != tt.zero {
			t.Errorf("%#v: json %s %v, String %q, IsZero %v", tt.v, b, err, tt.v.String(), tt.v.IsZero())
		}
		var back IntOrString
		if back = FromString("stale"); json.Unmarshal(b, &back) != nil || back != tt.v {
			t.Errorf("%s decoded to %#v, want %#v", b, back, tt.v)
		}
	}
	var v IntOrString
	if err := json.Unmarshal([]byte(`true`), &v); err == nil {
		t.Error("a boolean was accepted")
	}
}

func TestScaledValue(t *testing.T) {
	tests := []struct {
		v       IntOrString
		total   int
		up      bool
		want    int
		wantErr bool
	}{
		{FromInt(3), 10, true, 3, false},
		{FromString("25%"), 10, true, 3, false},
		{FromString("25%"), 10, false, 2, false},
		{FromString("25%"), 4, true, 1, false},
		{FromString("25%"), 4, false, 1, false},
		{FromString("1%"), 1, true, 1, false},
		{FromString("1%"), 1, false, 0, false},
		{FromString("100%"), 7, false, 7, false},
		{FromString("0%"), 7, true, 0, false},
		{FromString("%"), 7, true, 0, true},
		{FromString("5"), 7, true, 0, true},
		{FromString("x%"), 7, true, 0, true},
		{FromString("-1%"), 7, true, 0, true},
	}
	for _, tt := range tests {
		got, err := tt.v.ScaledValue(tt.total, tt.up)
		if got != tt.want || (err != nil) != tt.wantErr {
			t.Errorf("%v.ScaledValue(%d, %v) = %d, %v; want %d, error %v", tt.v, tt.total, tt.up, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestSourceErrorString(t *testing.T) {
	for _, tt := range []struct {
		e    SourceError
		want string
	}{
		{SourceError{File: "app.cue", Line: 3, Column: 7, Path: "apps.shop", Message: "bad"}, "app.cue:3:7: apps.shop: bad"},
		{SourceError{File: "app.cue", Line: 3, Message: "bad"}, "app.cue:3: bad"},
		{SourceError{File: "app.cue", Column: 7, Message: "bad"}, "app.cue: bad"},
		{SourceError{Path: "apps.shop", Message: "bad"}, "apps.shop: bad"},
		{SourceError{Message: "bad"}, "bad"},
	} {
		if got := tt.e.String(); got != tt.want {
			t.Errorf("%+v.String() = %q, want %q", tt.e, got, tt.want)
		}
	}
}

func TestKindLookups(t *testing.T) {
	for in, want := range map[string]Kind{
		"POD": KindPod, "pOd": KindPod, "SERVICE": KindService, "Endpoints": KindEndpoints, "endpoint": KindEndpoints,
		"leases": KindLease, "Lease": KindLease, "wl": KindWorkload, "rev": KindRevision, "ev": KindEvent, "no": KindNode, "app": KindApp,
	} {
		if got, ok := ParseKind(in); !ok || got != want {
			t.Errorf("ParseKind(%q) = %v, %v; want %v", in, got, ok, want)
		}
	}
	for _, in := range []string{"Pox", "po ", "Podx", "", "P0d"} {
		if got, ok := ParseKind(in); ok {
			t.Errorf("ParseKind(%q) = %v, want no kind", in, got)
		}
	}
	for _, k := range Kinds {
		if got, ok := KindOf(k.Singular()); !ok || got != k {
			t.Errorf("KindOf(%q) = %v, %v", k.Singular(), got, ok)
		}
		if !k.Valid() {
			t.Errorf("%s not valid", k)
		}
		if got := k.ClusterScoped(); got != (k == KindNode || k == KindLease) {
			t.Errorf("%s.ClusterScoped() = %v", k, got)
		}
	}
	if _, ok := KindOf("pods"); ok {
		t.Error("KindOf takes the singular only")
	}
	if Kind("widgets").New() != nil || Kind("widgets").Valid() {
		t.Error("unknown kind is served")
	}
}

func TestKeyForms(t *testing.T) {
	pod := Key{Kind: KindPod, App: "shop", Name: "web-1"}
	node := Key{Kind: KindNode, Name: "node-1.lab"}
	if pod.ObjectKey() != "shop/web-1" || node.ObjectKey() != "node-1.lab" {
		t.Errorf("ObjectKey: %q, %q", pod.ObjectKey(), node.ObjectKey())
	}
	if app, name := SplitObjectKey("shop/web-1"); app != "shop" || name != "web-1" {
		t.Errorf("SplitObjectKey(shop/web-1) = %q, %q", app, name)
	}
	if app, name := SplitObjectKey("node-1.lab"); app != "" || name != "node-1.lab" {
		t.Errorf("SplitObjectKey(node-1.lab) = %q, %q", app, name)
	}
	if err := (Key{Kind: "widgets", Name: "x"}).Validate(); !errors.Is(err, ErrUnknownKind) {
		t.Errorf("Validate of an unknown kind: %v", err)
	}
	if err := (Key{Kind: KindPod, Name: "x"}).Validate(); !errors.Is(err, ErrInvalid) {
		t.Errorf("Validate of a pod key without app: %v", err)
	}
	if _, err := ParseKey("widgets/a/b"); !errors.Is(err, ErrUnknownKind) {
		t.Errorf("ParseKey(widgets/a/b): %v", err)
	}
	if _, err := ParseKey("pods"); !errors.Is(err, ErrInvalid) {
		t.Errorf("ParseKey(pods): %v", err)
	}
}

func TestDecodeKinds(t *testing.T) {
	obj, err := Decode(KindPod, []byte(`{"metadata":{"name":"web-1","app":"shop"},"spec":{"containers":[]}}`))
	if err != nil || obj.GetKind() != "Pod" {
		t.Fatalf("pod without a kind field: %v, %v; want kind Pod filled in", obj, err)
	}
	if _, err := Decode(KindPod, []byte(`{"kind":"Service","metadata":{"name":"web"}}`)); !errors.Is(err, ErrInvalid) {
		t.Errorf("a Service sent to pods: %v, want ErrInvalid", err)
	}
	if _, err := Decode(KindPod, []byte(`{"kind":"Pod","bogus":1}`)); !errors.Is(err, ErrInvalid) {
		t.Errorf("unknown field: %v", err)
	}
	if _, err := Decode("widgets", []byte(`{}`)); !errors.Is(err, ErrUnknownKind) {
		t.Errorf("unknown kind: %v", err)
	}
	obj, err = DecodeAny([]byte(`{"kind":"Service","metadata":{"name":"web","app":"shop"},"spec":{"ports":[{"port":80}]}}`))
	if s, ok := obj.(*Service); err != nil || !ok || s.Spec.Ports[0].Port != 80 {
		t.Errorf("DecodeAny(Service) = %#v, %v", obj, err)
	}
	if _, err := DecodeAny([]byte(`{"kind":"Widget"}`)); !errors.Is(err, ErrUnknownKind) {
		t.Errorf("DecodeAny(Widget): %v", err)
	}
	if _, err := DecodeAny([]byte(`[`)); !errors.Is(err, ErrInvalid) {
		t.Errorf("DecodeAny(garbage): %v", err)
	}
}

func TestCloneIsDeep(t *testing.T) {
	p := validPod()
	c := Clone(p)
	c.Spec.Containers[0].Name = "changed"
	c.Metadata.Labels["x"] = "y"
	if p.Spec.Containers[0].Name != "web" || len(p.Metadata.Labels) != 1 || c.GetKind() != "Pod" {
		t.Fatalf("Clone shares memory with the original: %+v", p)
	}
	for _, k := range Kinds {
		src, dst := k.New(), k.New()
		CopyStatus(dst, src)
	}
	n, m := validNode(), KindNode.New().(*Node)
	CopyStatus(m, n)
	if m.Status.Capacity.Pods != 110 || m.Spec.PodCIDR != "" {
		t.Errorf("CopyStatus(node) = %+v", m)
	}
}

func TestConditions(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	t1 := t0.Add(time.Minute)
	var conds []Condition
	if !SetCondition(&conds, Condition{Type: "Ready", Status: ConditionFalse, Reason: "Starting", LastTransitionTime: t0}) || len(conds) != 1 {
		t.Fatalf("new condition: %v", conds)
	}
	if SetCondition(&conds, Condition{Type: "Ready", Status: ConditionFalse, Reason: "Starting", LastTransitionTime: t1}) {
		t.Error("an unchanged condition reported a change")
	}
	if !SetCondition(&conds, Condition{Type: "Ready", Status: ConditionFalse, Reason: "Pulling", LastTransitionTime: t1}) ||
		conds[0].Reason != "Pulling" || !conds[0].LastTransitionTime.Equal(t0) {
		t.Errorf("reason change: %+v, want the new reason and the old transition time", conds[0])
	}
	if !SetCondition(&conds, Condition{Type: "Ready", Status: ConditionFalse, Reason: "Pulling", Message: "50%", LastTransitionTime: t1}) ||
		conds[0].Message != "50%" || !conds[0].LastTransitionTime.Equal(t0) {
		t.Errorf("message change: %+v", conds[0])
	}
	if !SetCondition(&conds, Condition{Type: "Ready", Status: ConditionTrue, LastTransitionTime: t1}) || !conds[0].LastTransitionTime.Equal(t1) {
		t.Errorf("status change: %+v, want the new transition time", conds[0])
	}
	SetCondition(&conds, Condition{Type: "Scheduled", Status: ConditionTrue})
	if c := FindCondition(conds, "Scheduled"); c == nil || c != &conds[1] || len(conds) != 2 {
		t.Errorf("FindCondition(Scheduled) = %v in %v", c, conds)
	}
	if FindCondition(conds, "Nope") != nil {
		t.Error("found a condition that is not there")
	}
}

func TestPodVocabulary(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	pod := func(f func(p *Pod)) *Pod {
		p := validPod()
		p.Metadata.UID = "uid-1"
		p.Spec.NodeName = "node-1"
		f(p)
		return p
	}
	waiting := func(reason string, restarts int32) func(*Pod) {
		return func(p *Pod) {
			p.Status.Containers = []ContainerStatus{{Name: "side"}, {Name: "web", RestartCount: restarts, State: ContainerState{Waiting: &WaitingState{Reason: reason}}}}
		}
	}
	tests := []struct {
		name string
		pod  *Pod
		want string
	}{
		{"unscheduled", pod(func(p *Pod) { p.Spec.NodeName = "" }), "not scheduled yet"},
		{"unschedulable", pod(func(p *Pod) {
			p.Spec.NodeName = ""
			p.Status.Conditions = []Condition{{Type: PodScheduled, Status: ConditionFalse, Message: "0/3 nodes"}}
		}), "unschedulable: 0/3 nodes"},
		{"scheduling in progress", pod(func(p *Pod) {
			p.Spec.NodeName = ""
			p.Status.Conditions = []Condition{{Type: PodScheduled, Status: ConditionUnknown}}
		}), "not scheduled yet"},
		{"terminating", pod(func(p *Pod) { p.Metadata.DeletionRequestedAt = &now }), "terminating"},
		{"pull error", pod(waiting("ErrImagePull", 0)), "container web: ErrImagePull"},
		{"crash loop", pod(waiting("CrashLoopBackOff", 5)), "container web: CrashLoopBackOff (5 restarts)"},
		{"creating", pod(waiting("ContainerCreating", 0)), "not ready"},
		{"waiting without reason", pod(waiting("", 0)), "not ready"},
		{"failed", pod(func(p *Pod) { p.Status.Phase, p.Status.Reason = PodFailed, "OOMKilled" }), "failed: OOMKilled"},
		{"ready", pod(func(p *Pod) { p.Status.Conditions = []Condition{{Type: PodReady, Status: ConditionTrue}} }), "ready"},
		{"not ready", pod(func(p *Pod) { p.Status.Conditions = []Condition{{Type: PodReady, Status: ConditionFalse}} }), "not ready"},
	}
	for _, tt := range tests {
		if got := PodProblem(tt.pod); got != tt.want {
			t.Errorf("%s: PodProblem = %q, want %q", tt.name, got, tt.want)
		}
	}
	p := pod(func(p *Pod) { p.Metadata.Owner = &OwnerRef{Kind: KindWorkload, Name: "web", UID: "w-1"} })
	if !OwnedBy(p, KindWorkload, "w-1") || OwnedBy(p, KindWorkload, "w-2") || OwnedBy(p, KindApp, "w-1") || OwnedBy(validPod(), KindWorkload, "") {
		t.Error("OwnedBy")
	}
	if ref := RefOf(p); ref != (ObjectRef{Kind: KindPod, App: "shop", Name: "web-1", UID: "uid-1"}) {
		t.Errorf("RefOf = %+v", ref)
	}
	if Terminating(p) || !Terminating(pod(func(p *Pod) { p.Metadata.DeletionRequestedAt = &now })) {
		t.Error("Terminating")
	}
}

// UnmarshalJSON is public: called with no bytes it fails, never panics.
func TestUnmarshalJSONEmpty(t *testing.T) {
	var q Quantity
	if err := q.UnmarshalJSON(nil); err == nil {
		t.Error("Quantity.UnmarshalJSON(nil) succeeded")
	}
	var v IntOrString
	if err := v.UnmarshalJSON(nil); err == nil {
		t.Error("IntOrString.UnmarshalJSON(nil) succeeded")
	}
	if _, err := FromString("50").ScaledValue(10, true); err == nil {
		t.Error(`ScaledValue("50") took a number without % as a percentage`)
	}
}
