package api

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

func sizeNode() *Node {
	n := KindNode.New().(*Node)
	n.Metadata.Name = "n1"
	n.Status.Addresses = []NodeAddress{{Type: "InternalIP", Address: "10.0.0.1"}}
	n.Status.Conditions = []Condition{{Type: NodeReady, Status: ConditionTrue, Reason: "AgentReady", Message: "ok"}}
	return n
}

func sizeEvent() *Event {
	e := KindEvent.New().(*Event)
	e.Metadata = ObjectMeta{Name: "web-1-abcd", App: "shop"}
	e.Spec = EventSpec{Object: ObjectRef{Kind: KindPod, App: "shop", Name: "web-1"}, Type: EventWarning, Reason: "BackOff",
		Message: "m", Count: 1, FirstSeen: time.Unix(0, 0), LastSeen: time.Unix(0, 0)}
	return e
}

func runningPod() *Pod {
	p := validPod()
	p.Status.Phase = PodRunning
	p.Status.Containers = []ContainerStatus{{Name: "web", State: ContainerState{Waiting: &WaitingState{Reason: "ErrImagePull", Message: "m"}},
		LastTermination: &TerminatedState{Reason: "Error", Message: "m"}}}
	p.Status.Conditions = []Condition{{Type: PodReady, Status: ConditionFalse}}
	return p
}

func conditions(n int) []Condition {
	out := make([]Condition, n)
	for i := range out {
		out[i] = Condition{Type: strings.Repeat("t", i+1), Status: ConditionTrue}
	}
	return out
}

// Every string and list a node writes has a limit: exactly the limit is
// accepted, one past it is refused with the field's path and the limit.
func TestFieldSizeLimits(t *testing.T) {
	s := strings.Repeat
	tests := []struct {
		name  string
		path  string // the field named in the error
		limit int
		obj   func(n int) Object // an object with the field at n bytes or items
	}{
		{"node condition message", "status.conditions[0].message", MaxMessageLen, func(n int) Object {
			o := sizeNode()
			o.Status.Conditions[0].Message = s("m", n)
			return o
		}},
		{"node condition reason", "status.conditions[0].reason", MaxReasonLen, func(n int) Object {
			o := sizeNode()
			o.Status.Conditions[0].Reason = s("r", n)
			return o
		}},
		{"node condition type", "status.conditions[0].type", MaxReasonLen, func(n int) Object {
			o := sizeNode()
			o.Status.Conditions[0].Type = s("t", n)
			return o
		}},
		{"node conditions", "status.conditions", MaxConditions, func(n int) Object {
			o := sizeNode()
			o.Status.Conditions = conditions(n)
			return o
		}},
		{"node addresses", "status.addresses", MaxNodeAddresses, func(n int) Object {
			o := sizeNode()
			for range n - 1 {
				o.Status.Addresses = append(o.Status.Addresses, NodeAddress{Type: "Hostname", Address: "n1"})
			}
			return o
		}},
		{"node hostname address", "status.addresses[1].address", MaxSubdomainLen, func(n int) Object {
			o := sizeNode()
			o.Status.Addresses = append(o.Status.Addresses, NodeAddress{Type: "Hostname", Address: s("h", n)})
			return o
		}},
		{"node kernel version", "status.info.kernelVersion", maxShortLen, func(n int) Object {
			o := sizeNode()
			o.Status.Info.KernelVersion = s("k", n)
			return o
		}},
		{"node agent cert", "status.agentCert", maxShortLen, func(n int) Object {
			o := sizeNode()
			o.Status.AgentCert = s("c", n)
			return o
		}},
		{"lease holder", "spec.holder", MaxSubdomainLen, func(n int) Object {
			o := KindLease.New().(*Lease)
			o.Metadata.Name = "n1"
			o.Spec.Holder = s("h", n)
			return o
		}},
		{"pod message", "status.message", MaxMessageLen, func(n int) Object {
			o := runningPod()
			o.Status.Message = s("m", n)
			return o
		}},
		{"pod reason", "status.reason", MaxReasonLen, func(n int) Object {
			o := runningPod()
			o.Status.Reason = s("r", n)
			return o
		}},
		{"pod conditions", "status.conditions", MaxConditions, func(n int) Object {
			o := runningPod()
			o.Status.Conditions = conditions(n)
			return o
		}},
		{"pod condition message", "status.conditions[0].message", MaxMessageLen, func(n int) Object {
			o := runningPod()
			o.Status.Conditions[0].Message = s("m", n)
			return o
		}},
		{"container statuses", "status.containers", MaxContainersPerPod, func(n int) Object {
			o := runningPod()
			for range n - 1 {
				o.Status.Containers = append(o.Status.Containers, ContainerStatus{Name: "web"})
			}
			return o
		}},
		{"container waiting message", "status.containers[0].state.waiting.message", MaxMessageLen, func(n int) Object {
			o := runningPod()
			o.Status.Containers[0].State.Waiting.Message = s("m", n)
			return o
		}},
		{"container last termination message", "status.containers[0].lastTermination.message", MaxMessageLen, func(n int) Object {
			o := runningPod()
			o.Status.Containers[0].LastTermination.Message = s("m", n)
			return o
		}},
		{"container ID", "status.containers[0].containerID", maxShortLen, func(n int) Object {
			o := runningPod()
			o.Status.Containers[0].ContainerID = s("c", n)
			return o
		}},
		{"event message", "spec.message", MaxMessageLen, func(n int) Object {
			o := sizeEvent()
			o.Spec.Message = s("m", n)
			return o
		}},
		{"event reason", "spec.reason", MaxReasonLen, func(n int) Object {
			o := sizeEvent()
			o.Spec.Reason = s("r", n)
			return o
		}},
		{"event reporter", "spec.reporter", maxShortLen, func(n int) Object {
			o := sizeEvent()
			o.Spec.Reporter = s("r", n)
			return o
		}},
		{"event object name", "spec.object.name", MaxSubdomainLen, func(n int) Object {
			o := sizeEvent()
			o.Spec.Object.Name = s("o", n)
			return o
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := Validate(tt.obj(tt.limit)); err != nil {
				t.Fatalf("at the limit %d: %v", tt.limit, err)
			}
			err := Validate(tt.obj(tt.limit + 1))
			var ve *ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("one past the limit: %v, want a validation error", err)
			}
			for _, f := range ve.Fields {
				if f.Path == tt.path && strings.Contains(f.Message, "more than "+itoa(tt.limit)) {
					return
				}
			}
			t.Fatalf("one past the limit: %v, want %s named with its limit %d", err, tt.path, tt.limit)
		})
	}
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }

// Each kind has a cap on its encoded size: an object of exactly the cap is
// accepted, one byte more is a TooLargeError naming the kind and the cap.
func TestObjectSizeLimits(t *testing.T) {
	// Each object has one free-form field to grow it byte by byte.
	tests := []struct {
		kind Kind
		obj  func(pad int) Object
	}{
		{KindEvent, func(pad int) Object {
			o := sizeEvent()
			o.Metadata.Annotations = map[string]string{"pad": strings.Repeat("x", pad)}
			return o
		}},
		{KindLease, func(pad int) Object {
			o := KindLease.New().(*Lease)
			o.Metadata.Name, o.Spec.Holder = "n1", "n1"
			o.Metadata.Annotations = map[string]string{"pad": strings.Repeat("x", pad)}
			return o
		}},
		{KindNode, func(pad int) Object {
			o := sizeNode()
			// Too big for one field: the annotations at their limit,
			// then the pad spread over the conditions' messages.
			o.Metadata.Annotations = map[string]string{"pad": strings.Repeat("x", MaxAnnotationsBytes-3)}
			o.Status.Conditions = conditions(MaxConditions)
			for i := range o.Status.Conditions {
				n := max(0, min(MaxMessageLen-1, pad-i*(MaxMessageLen-1)))
				o.Status.Conditions[i].Message = strings.Repeat("m", 1+n)
			}
			return o
		}},
		{KindPod, func(pad int) Object {
			o := runningPod()
			o.Spec.Containers[0].Env = []EnvVar{{Name: "PAD", Value: strings.Repeat("x", pad)}}
			return o
		}},
	}
	for _, tt := range tests {
		t.Run(string(tt.kind), func(t *testing.T) {
			limit := MaxObjectBytes(tt.kind)
			size := func(pad int) int {
				b, err := json.Marshal(tt.obj(pad))
				if err != nil {
					t.Fatal(err)
				}
				return len(b)
			}
			// The padding is one byte of JSON per byte: solve for the cap.
			pad := limit - size(0)
			if got := size(pad); got != limit {
				t.Fatalf("padded object is %d bytes, want %d", got, limit)
			}
			if err := Validate(tt.obj(pad)); err != nil {
				t.Fatalf("at the cap of %d bytes: %v", limit, err)
			}
			err := Validate(tt.obj(pad + 1))
			var tle *TooLargeError
			if !errors.As(err, &tle) || !errors.Is(err, ErrTooLarge) || tle.Size != limit+1 || tle.Limit != limit ||
				!strings.Contains(err.Error(), string(tt.kind)) {
				t.Fatalf("one byte over the cap: %v", err)
			}
		})
	}
}

// BenchmarkValidatePod measures Validate on a running pod, whose encoded
// size is now checked against the pods cap (one extra JSON encoding).
func BenchmarkValidatePod(b *testing.B) {
	p := runningPod()
	b.ReportAllocs()
	for b.Loop() {
		if err := Validate(p); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecodePod measures Decode of a running pod beside Decode as it
// was with encoding/json (decodeV1; docs/benchmarks.md).
func BenchmarkDecodePod(b *testing.B) {
	data, err := json.Marshal(runningPod())
	if err != nil {
		b.Fatal(err)
	}
	b.Run("Decode", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := Decode(KindPod, data); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("encoding-json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := decodeV1(KindPod, data); err != nil {
				b.Fatal(err)
			}
		}
	})
}
