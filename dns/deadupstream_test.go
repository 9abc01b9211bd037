package dns

import (
	"context"
	"errors"
	"net"
	"testing"
	"testing/synctest"
	"time"

	mdns "github.com/miekg/dns"
)

// deadOrGood is an exchange in which the upstreams named "dead*" never
// answer (as a resolver that is down or black-holed: the client waits for
// its timeout) and the others answer every name. It records who was asked.
func deadOrGood(timeout time.Duration, asked *[]string) exchangeFunc {
	return func(ctx context.Context, m *mdns.Msg, network, addr string) (*mdns.Msg, error) {
		*asked = append(*asked, addr)
		if len(addr) >= 4 && addr[:4] == "dead" {
			select {
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-time.After(timeout):
				return nil, &net.OpError{Op: "read", Net: network, Err: errors.New("i/o timeout")}
			}
		}
		r := new(mdns.Msg)
		r.SetReply(m)
		r.Answer = []mdns.RR{aRR(m.Question[0].Name, 60, "192.0.2.1")}
		return r, nil
	}
}

// Clients give up after 5 s (glibc's and musl's default): with every
// upstream down the SERVFAIL must come before that, however many
// upstreams resolv.conf lists. Time here is synctest's, not the wall's.
func TestForwardAllUpstreamsDownFailsWithinTheBudget(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var asked []string
		f := &forwarder{upstreams: []string{"dead1:53", "dead2:53", "dead3:53"},
			exchange: deadOrGood(2*time.Second, &asked), now: time.Now, budget: 4 * time.Second}
		start := time.Now()
		_, _, err := f.resolve(context.Background(), mdns.Question{Name: "www.example.org.", Qtype: mdns.TypeA, Qclass: mdns.ClassINET}, false)
		took := time.Since(start)
		if !errors.Is(err, ErrUpstreams) {
			t.Fatalf("err = %v, want ErrUpstreams", err)
		}
		if took != 4*time.Second {
			t.Fatalf("SERVFAIL after %v (asked %v), want at the 4s budget", took, asked)
		}
	})
}

// An upstream that is down costs one timeout, not one per query: the next
// queries start at the upstream that answered.
func TestForwardPrefersTheUpstreamThatAnswered(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var asked []string
		f := &forwarder{upstreams: []string{"dead:53", "good:53"},
			exchange: deadOrGood(2*time.Second, &asked), now: time.Now, budget: 4 * time.Second}
		for i, name := range []string{"a.example.org.", "b.example.org.", "c.example.org."} {
			asked = nil
			start := time.Now()
			if _, _, err := f.resolve(context.Background(), mdns.Question{Name: name, Qtype: mdns.TypeA, Qclass: mdns.ClassINET}, false); err != nil {
				t.Fatal(err)
			}
			took := time.Since(start)
			switch {
			case i == 0 && took != 2*time.Second:
				t.Fatalf("first query took %v (asked %v), want one 2s timeout", took, asked)
			case i > 0 && (took != 0 || len(asked) != 1 || asked[0] != "good:53"):
				t.Fatalf("query %d took %v asking %v, want good:53 at once", i, took, asked)
			}
		}
	})
}
