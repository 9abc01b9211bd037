package node

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/capstanhq/capstan/agent"
	"github.com/capstanhq/capstan/apiserver/apiservertest"
)

// New refuses options it cannot run before anything starts, and resolves
// the node's identity once: the name and address given win.
func TestOptionsValidation(t *testing.T) {
	c := apiservertest.Start(t, apiservertest.Options{})
	for _, tc := range []struct {
		name string
		opts Options
		want string
	}{
		{"no client", Options{}, "no API client given"},
		{"bad DNS port", Options{Agent: agent.Options{Client: c.Client, NodeName: "n1", Address: "192.0.2.7"}, Services: true, DNSAddr: "127.0.0.1:5353"}, "port 5353 cannot be used"},
		{"bad address", Options{Agent: agent.Options{Client: c.Client, NodeName: "n1", Address: "nope"}}, `node address "nope"`},
		{"IPv6 address", Options{Agent: agent.Options{Client: c.Client, NodeName: "n1", Address: "2001:db8::1"}}, "not an IPv4 address"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := tc.opts
			err := o.validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("validate: %v; want it to say %q", err, tc.want)
			}
		})
	}

	o := Options{Agent: agent.Options{Client: c.Client, NodeName: "given", Address: "192.0.2.7"}, Services: true, DNSAddr: "off"}
	if err := o.validate(); err != nil {
		t.Fatal(err)
	}
	if o.Agent.NodeName != "given" || o.Agent.Address != "192.0.2.7" || o.ServicesClient != c.Client || o.Agent.Logger == nil {
		t.Errorf("validated options: name %q, address %q, services client %p, agent logger %v", o.Agent.NodeName, o.Agent.Address, o.ServicesClient, o.Agent.Logger)
	}
	// Another port than 53 is fine when the pods are pointed elsewhere.
	o = Options{Agent: agent.Options{Client: c.Client, NodeName: "n", Address: "192.0.2.7", ClusterDNS: netip.MustParseAddr("10.0.0.10")}, Services: true, DNSAddr: "127.0.0.1:5353"}
	if err := o.validate(); err != nil {
		t.Errorf("--dns-addr on 5353 with --cluster-dns: %v", err)
	}
}
