package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func validPod() *Pod {
	p := KindPod.New().(*Pod)
	p.Metadata = ObjectMeta{Name: "web-1", App: "shop", Labels: map[string]string{"capstan.io/app": "shop"}}
	p.Spec.Containers = []Container{{
		Name: "web", Image: "127.0.0.1:5000/examples/hello:v1",
		Ports:        []ContainerPort{{Name: "http", Port: 8080}},
		Resources:    Resources{Requests: ResourceList{CPU: MustParseQuantity("100m")}, Limits: ResourceList{CPU: MustParseQuantity("1")}},
		Readiness:    &Probe{HTTP: &HTTPProbe{Path: "/healthz", Port: FromString("http")}},
		VolumeMounts: []VolumeMount{{Name: "spool", MountPath: "/spool"}},
	}}
	p.Spec.Volumes = []Volume{{Name: "spool"}}
	return p
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(p *Pod)
		path   string // "" means valid
	}{
		{"valid", func(*Pod) {}, ""},
		{"upper-case name", func(p *Pod) { p.Metadata.Name = "Web" }, "metadata.name"},
		{"name too long", func(p *Pod) { p.Metadata.Name = strings.Repeat("a", 64) }, "metadata.name"},
		{"name with dot dot", func(p *Pod) { p.Metadata.Name = ".." }, "metadata.name"},
		{"no app", func(p *Pod) { p.Metadata.App = "" }, "metadata.app"},
		{"bad label key", func(p *Pod) { p.Metadata.Labels = map[string]string{"-x": "y"} }, "metadata.labels"},
		{"no containers", func(p *Pod) { p.Spec.Containers = nil }, "spec.containers"},
		{"duplicate container", func(p *Pod) { p.Spec.Containers = append(p.Spec.Containers, p.Spec.Containers[0]) }, "spec.containers[1].name"},
		{"no image", func(p *Pod) { p.Spec.Containers[0].Image = "" }, "spec.containers[0].image"},
		{"image with space", func(p *Pod) { p.Spec.Containers[0].Image = "a b" }, "spec.containers[0].image"},
		{"port zero", func(p *Pod) { p.Spec.Containers[0].Ports[0].Port = 0 }, "spec.containers[0].ports[0].port"},
		{"port name too long", func(p *Pod) { p.Spec.Containers[0].Ports[0].Name = "abcdefghijklmnop" }, "spec.containers[0].ports[0].name"},
		{"bad protocol", func(p *Pod) { p.Spec.Containers[0].Ports[0].Protocol = "SCTP" }, "spec.containers[0].ports[0].protocol"},
		{"request above limit", func(p *Pod) { p.Spec.Containers[0].Resources.Requests.CPU = MustParseQuantity("2") }, "spec.containers[0].resources"},
		{"probe on unknown port", func(p *Pod) { p.Spec.Containers[0].Readiness.HTTP.Port = FromString("grpc") }, "spec.containers[0].readiness.http.port"},
		{"probe with two handlers", func(p *Pod) { p.Spec.Containers[0].Readiness.TCP = &TCPProbe{Port: FromInt(1)} }, "spec.containers[0].readiness"},
		{"mount of unknown volume", func(p *Pod) { p.Spec.Containers[0].VolumeMounts[0].Name = "nope" }, "spec.containers[0].volumeMounts[0].name"},
		{"relative mount", func(p *Pod) { p.Spec.Containers[0].VolumeMounts[0].MountPath = "spool" }, "spec.containers[0].volumeMounts[0].mountPath"},
		{"bad restart policy", func(p *Pod) { p.Spec.RestartPolicy = "Sometimes" }, "spec.restartPolicy"},
		{"negative grace", func(p *Pod) { p.Spec.TerminationGracePeriodSeconds = new(int64(-1)) }, "spec.terminationGracePeriodSeconds"},
		{"env with equals", func(p *Pod) { p.Spec.Containers[0].Env = []EnvVar{{Name: "A=B"}} }, "spec.containers[0].env[0].name"},
		{"bad node name", func(p *Pod) { p.Spec.NodeName = "No_de" }, "spec.nodeName"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := validPod()
			tt.mutate(p)
			err := Validate(p)
			if tt.path == "" {
				if err != nil {
					t.Fatalf("valid pod refused: %v", err)
				}
				return
			}
			var ve *ValidationError
			if !errors.As(err, &ve) || !errors.Is(err, ErrInvalid) {
				t.Fatalf("err = %v, want a ValidationError", err)
			}
			for _, f := range ve.Fields {
				if f.Path == tt.path {
					return
				}
			}
			t.Fatalf("errors %v do not name %s", ve.Fields, tt.path)
		})
	}
}

func TestValidateOtherKinds(t *testing.T) {
	svc := KindService.New().(*Service)
	svc.Metadata = ObjectMeta{Name: "web", App: "shop"}
	svc.Spec = ServiceSpec{Ports: []ServicePort{{Name: "http", Port: 80, NodePort: 80}}, Headless: true, External: true}
	err := Validate(svc)
	if err == nil || !strings.Contains(err.Error(), "nodePort") || !strings.Contains(err.Error(), "headless") {
		t.Errorf("service: %v", err)
	}
	n := KindNode.New().(*Node)
	n.Metadata = ObjectMeta{Name: "node-1.example", App: "shop"}
	n.Spec.PodCIDR = "10.88.0.0/33"
	if err := Validate(n); err == nil || !strings.Contains(err.Error(), "metadata.app") || !strings.Contains(err.Error(), "podCIDR") {
		t.Errorf("node: %v", err)
	}
	w := KindWorkload.New().(*Workload)
	w.Metadata = ObjectMeta{Name: "web", App: "shop"}
	w.Spec = WorkloadSpec{Replicas: -1, Template: validPod().Spec.PodTemplate, Strategy: RolloutStrategy{MaxSurge: FromString("lots")}}
	if err := Validate(w); err == nil || !strings.Contains(err.Error(), "replicas") || !strings.Contains(err.Error(), "maxSurge") {
		t.Errorf("workload: %v", err)
	}
}

func TestKeys(t *testing.T) {
	tests := []struct {
		in  string
		ok  bool
		key Key
	}{
		{"pods/shop/web-1", true, Key{KindPod, "shop", "web-1"}},
		{"nodes/node-1.lab", true, Key{KindNode, "", "node-1.lab"}},
		{"nodes/shop/x", false, Key{}},
		{"pods/web-1", false, Key{}},
		{"widgets/a/b", false, Key{}},
		{"pods/shop/../x", false, Key{}},
		{"pods/Shop/x", false, Key{}},
		{"", false, Key{}},
	}
	for _, tt := range tests {
		k, err := ParseKey(tt.in)
		if (err == nil) != tt.ok || k != tt.key {
			t.Errorf("ParseKey(%q) = %v, %v", tt.in, k, err)
		}
		if tt.ok && k.String() != tt.in {
			t.Errorf("String() = %q, want %q", k.String(), tt.in)
		}
	}
}

func TestParseKind(t *testing.T) {
	for in, want := range map[string]Kind{"pods": KindPod, "pod": KindPod, "Pod": KindPod, "po": KindPod, "svc": KindService, "ep": KindEndpoints, "nodes": KindNode} {
		if got, ok := ParseKind(in); !ok || got != want {
			t.Errorf("ParseKind(%q) = %v, %v", in, got, ok)
		}
	}
	if _, ok := ParseKind("widget"); ok {
		t.Error("widget parsed")
	}
}

func TestDecodeRoundTripEveryKind(t *testing.T) {
	for _, k := range Kinds {
		obj := k.New()
		obj.Meta().Name = "x"
		if !k.ClusterScoped() {
			obj.Meta().App = "shop"
		}
		b, err := json.Marshal(obj)
		if err != nil {
			t.Fatal(err)
		}
		back, err := Decode(k, b)
		if err != nil {
			t.Fatalf("%s: %v", k, err)
		}
		if KeyOf(back) != KeyOf(obj) || back.GetKind() != k.Singular() {
			t.Fatalf("%s: round trip gave %v", k, KeyOf(back))
		}
		if _, err := Decode(k, append(b, []byte(`{}`)...)); err == nil {
			t.Errorf("%s: trailing data accepted", k)
		}
	}
}

// decodeV1 is Decode as it was with encoding/json (which took "{}}" for
// "{}": Decoder.More does not see a closing bracket as more data).
func decodeV1(k Kind, data []byte) (Object, error) {
	obj := k.New()
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(obj); err != nil {
		return nil, err
	}
	if len(bytes.TrimSpace(data[dec.InputOffset():])) > 0 {
		return nil, errors.New("data after the object")
	}
	if obj.GetKind() == "" {
		obj.setKind(k.Singular())
	}
	if obj.GetKind() != k.Singular() {
		return nil, errors.New("kind mismatch")
	}
	return obj, nil
}

func mustJSON(t *testing.T, v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func FuzzDecode(f *testing.F) {
	p, _ := json.Marshal(validPod())
	f.Add(uint8(4), p)
	f.Add(uint8(0), []byte(`{"kind":"Node","metadata":{"name":"n"},"status":{"capacity":{"cpu":"2","memory":"1Gi"}}}`))
	f.Add(uint8(5), []byte(`{"kind":"Service","metadata":{"name":"s","app":"a"},"spec":{"ports":[{"port":80,"targetPort":"http"}]}}`))
	f.Add(uint8(9), []byte(`{"kind":"Job","metadata":{"name":"j","app":"a"},"spec":{"template":{"containers":[]}},"status":{"succeeded":2,"failed":1,"tracked":[{"name":"j-0","uid":""},{"name":"j-1","uid":"u","restarts":3}],"failuresSinceSuccess":1,"lastFailure":"2026-01-02T03:00:00Z"}}`))
	f.Add(uint8(2), []byte(`{"kind":"App","spec":{"workloads":[{"name":"w","spec":{"replicas":1,"template":{"containers":[]},"strategy":{"maxSurge":"25%"}}}]}}`))
	f.Fuzz(func(t *testing.T, which uint8, data []byte) {
		k := Kinds[int(which)%len(Kinds)]
		obj, err := Decode(k, data)
		// Decode must accept and refuse what encoding/json's decoder does,
		// and decode to the same object.
		old, oldErr := decodeV1(k, data)
		if (err == nil) != (oldErr == nil) {
			t.Fatalf("%s: Decode: %v; encoding/json: %v\n%q", k, err, oldErr, data)
		}
		if err != nil {
			return
		}
		if a, b := mustJSON(t, obj), mustJSON(t, old); a != b {
			t.Fatalf("%s decodes differently:\n%s\n%s", k, a, b)
		}
		// A client reads what a server accepts, to the same object.
		lenient, err := DecodeLenient(k, data)
		if err != nil {
			t.Fatalf("%s: Decode accepts, DecodeLenient refuses: %v\n%q", k, err, data)
		}
		if a, b := mustJSON(t, obj), mustJSON(t, lenient); a != b {
			t.Fatalf("%s: DecodeLenient decodes differently:\n%s\n%s", k, a, b)
		}
		_ = Validate(obj) // must not panic on anything that decodes
		b, err := json.Marshal(obj)
		if err != nil {
			t.Fatalf("re-encode %s: %v", k, err)
		}
		again, err := Decode(k, b)
		if err != nil {
			t.Fatalf("re-decode %s: %v\n%s", k, err, b)
		}
		b2, _ := json.Marshal(again)
		if string(b) != string(b2) {
			t.Fatalf("%s not stable:\n%s\n%s", k, b, b2)
		}
	})
}

func FuzzParseKey(f *testing.F) {
	for _, s := range []string{"pods/shop/web-1", "nodes/n1", "pods/a/../b", "apps//x", "pods/a/b/c"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		k, err := ParseKey(s)
		if err != nil {
			return
		}
		if k.String() != s {
			t.Fatalf("ParseKey(%q).String() = %q", s, k.String())
		}
		if err := k.Validate(); err != nil {
			t.Fatalf("parsed key %q does not validate: %v", s, err)
		}
	})
}

func TestCopyStatusEveryKind(t *testing.T) {
	for _, k := range Kinds {
		src, dst := k.New(), k.New()
		CopyStatus(dst, src) // must know every kind
	}
	src, dst := validPod(), validPod()
	src.Status.Phase = PodRunning
	CopyStatus(dst, src)
	if dst.Status.Phase != PodRunning {
		t.Fatal("status not copied")
	}
}

// FuzzDecodeAny: an object DecodeAny accepts is of the kind encoding/json
// reads in its kind field, and decodes as Decode does with that kind.
func FuzzDecodeAny(f *testing.F) {
	p, _ := json.Marshal(validPod())
	f.Add(p)
	f.Add([]byte(` { "kind" : "Node","metadata":{"name":"n"}}`))
	f.Add([]byte(`{"kind":"Pod","kind":"App","metadata":{"name":"a","app":"a"}}`))
	f.Add([]byte(`{"Kind":"Service","metadata":{"name":"s","app":"a"}}`))
	f.Add([]byte(`{"kind":"P\u006fd","metadata":{"name":"a","app":"a"}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		obj, err := DecodeAny(data)
		if err != nil {
			return
		}
		var tm TypeMeta
		if err := json.Unmarshal(data, &tm); err != nil || tm.Kind != obj.GetKind() {
			t.Fatalf("DecodeAny read a %s from %q; encoding/json reads kind %q (%v)", obj.GetKind(), data, tm.Kind, err)
		}
		k, _ := KindOf(tm.Kind)
		want, err := Decode(k, data)
		if err != nil || mustJSON(t, want) != mustJSON(t, obj) {
			t.Fatalf("DecodeAny and Decode(%s) differ on %q: %v", k, data, err)
		}
	})
}
