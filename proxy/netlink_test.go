package proxy

import (
	"bytes"
	"encoding/binary"
	"strings"
	"testing"

	"github.com/capstanhq/capstan/apiserver/api"
)

// TestElementOnlyChanges checks which changes touch elements only (and so
// go over netlink outside tests): all but those that bring an endpoint
// count into use or out of use.
func TestElementOnlyChanges(t *testing.T) {
	tests := []struct {
		name   string
		change func(s []*api.Service, e []*api.Endpoints) ([]*api.Service, []*api.Endpoints)
		fast   bool
	}{
		{"an endpoint replaced", func(s []*api.Service, e []*api.Endpoints) ([]*api.Service, []*api.Endpoints) {
			e[0].Spec.Addresses[1].IP = "10.88.1.8"
			return s, e
		}, true},
		{"an endpoint turning unready (TCP with 1 endpoint: a new count)", func(s []*api.Service, e []*api.Endpoints) ([]*api.Service, []*api.Endpoints) {
			e[0].Spec.Addresses[0].Ready = false
			return s, e
		}, false},
		{"an endpoint turning ready (a new count)", func(s []*api.Service, e []*api.Endpoints) ([]*api.Service, []*api.Endpoints) {
			e[0].Spec.Addresses[2].Ready = true
			return s, e
		}, false},
		{"the last endpoint going away (count 2 out of use)", func(s []*api.Service, e []*api.Endpoints) ([]*api.Service, []*api.Endpoints) {
			return s, e[1:]
		}, false},
		{"a first endpoint (TCP with 1 endpoint: a new count)", func(s []*api.Service, e []*api.Endpoints) ([]*api.Service, []*api.Endpoints) {
			return s, append(e, endpoints("shop", "db", addr("10.88.1.9", true, epPort("pg", 5432, "TCP"))))
		}, false},
		{"a first endpoint (a count in use)", func(s []*api.Service, e []*api.Endpoints) ([]*api.Service, []*api.Endpoints) {
			return s, append(e, endpoints("shop", "db", addr("10.88.1.9", true, epPort("pg", 5432, "TCP")), addr("10.88.1.10", true, epPort("pg", 5432, "TCP"))))
		}, true},
		{"a VIP change", func(s []*api.Service, e []*api.Endpoints) ([]*api.Service, []*api.Endpoints) {
			s[2].Spec.VIP = "10.96.0.54"
			return s, e
		}, true},
		{"a service removed (its counts out of use)", func(s []*api.Service, e []*api.Endpoints) ([]*api.Service, []*api.Endpoints) {
			return s[1:], e
		}, false},
		{"a service added", func(s []*api.Service, e []*api.Endpoints) ([]*api.Service, []*api.Endpoints) {
			return append(s, service("shop", "cache", "10.96.0.12", port("redis", 6379, "TCP"))), e
		}, true},
		{"a service added with endpoints (a count in use)", func(s []*api.Service, e []*api.Endpoints) ([]*api.Service, []*api.Endpoints) {
			return append(s, service("infra", "ntp", "10.96.0.123", port("ntp", 123, "UDP"))),
				append(e, endpoints("infra", "ntp", addr("10.88.2.10", true, epPort("ntp", 123, "UDP"))))
		}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, fake := newFakeProxier(t)
			services, eps := smallModel()
			mustSync(t, p, services, eps)
			services, eps = tt.change(services, eps)
			mustSync(t, p, services, eps)
			tx := fake.LastTransaction.String()
			fast := !strings.Contains(tx, " chain ") && !strings.Contains(tx, " rule ")
			if fast != tt.fast {
				t.Fatalf("element-only = %v, want %v:\n%s", fast, tt.fast, tx)
			}
		})
	}
}

// TestNetlinkEncoding checks the bytes the fast path writes for each kind
// of element against the kernel's layout: every part of a concatenation
// padded to 4 bytes, the slot (numgen's value) in host order.
func TestNetlinkEncoding(t *testing.T) {
	var pl plan
	pl.delElems = []elemKey{{noEndpointServicesSet, "10.96.0.11 . tcp . 5432"}}
	pl.addHairpin = []string{"10.88.1.9"}
	pl.addElems = []elemOp{
		{elemKey{serviceIPsSet, "10.96.0.11 . tcp . 5432"}, ""},
		{elemKey{"service-tcp-endpoints", "10.96.0.11 . 5432 . 3"}, "10.88.1.9 . 5433"},
		{elemKey{"service-tcp-endpoints", "10.96.0.11 . 5432 . 4"}, "10.88.1.10 . 5433"},
		{elemKey{"nodeport-udp-endpoints", "30053 . 0"}, "10.88.1.9 . 53"},
		{elemKey{serviceNodePortsSet, "udp . 30053"}, ""},
	}
	batches, err := netlinkBatches(&pl)
	if err != nil {
		t.Fatal(err)
	}
	slot3 := binary.NativeEndian.AppendUint32(nil, 3)
	want := []struct {
		set       string
		del       bool
		n         int
		key, data []byte
	}{
		{noEndpointServicesSet, true, 1, []byte{10, 96, 0, 11, 6, 0, 0, 0, 0x15, 0x38, 0, 0}, nil},
		{hairpinSet, false, 1, []byte{10, 88, 1, 9, 10, 88, 1, 9}, nil},
		{serviceIPsSet, false, 1, []byte{10, 96, 0, 11, 6, 0, 0, 0, 0x15, 0x38, 0, 0}, nil},
		{"service-tcp-endpoints", false, 2, append([]byte{10, 96, 0, 11, 0x15, 0x38, 0, 0}, slot3...), []byte{10, 88, 1, 9, 0x15, 0x39, 0, 0}},
		{"nodeport-udp-endpoints", false, 1, []byte{0x75, 0x65, 0, 0, 0, 0, 0, 0}, []byte{10, 88, 1, 9, 0, 53, 0, 0}},
		{serviceNodePortsSet, false, 1, []byte{17, 0, 0, 0, 0x75, 0x65, 0, 0}, nil},
	}
	if len(batches) != len(want) {
		t.Fatalf("%d batches, want %d: %+v", len(batches), len(want), batches)
	}
	for i, w := range want {
		b := batches[i]
		if b.set != w.set || b.del != w.del || len(b.elems) != w.n {
			t.Fatalf("batch %d = %s del=%v with %d elements, want %s del=%v with %d", i, b.set, b.del, len(b.elems), w.set, w.del, w.n)
		}
		if e := b.elems[0]; !bytes.Equal(e.Key, w.key) || !bytes.Equal(e.Val, w.data) {
			t.Errorf("batch %d (%s): key % x data % x, want % x / % x", i, b.set, e.Key, e.Val, w.key, w.data)
		}
	}
	pl.addElems = []elemOp{{elemKey{serviceIPsSet, "10.96.0.11 . sctp . 5432"}, ""}}
	if _, err := netlinkBatches(&pl); err == nil {
		t.Fatal("an SCTP key encoded without error")
	}
}
