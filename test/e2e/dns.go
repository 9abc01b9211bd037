package e2e

import (
	"fmt"
	"time"

	mdns "github.com/miekg/dns"

	"github.com/capstanhq/capstan/apiserver/api"
)

// LookupA asks the DNS server at server (ip:port) for name's A records,
// from inside pod from's network namespace.
func (c *Cluster) LookupA(from *api.Pod, server, name string) ([]string, error) {
	m := new(mdns.Msg)
	m.SetQuestion(mdns.Fqdn(name), mdns.TypeA)
	cl := &mdns.Client{Timeout: 2 * time.Second}
	var r *mdns.Msg
	var err error
	if nsErr := inNetNS(c.PodNetNS(from), func() { r, _, err = cl.Exchange(m, server) }); nsErr != nil {
		return nil, nsErr
	}
	if err != nil {
		return nil, err
	}
	if r.Rcode != mdns.RcodeSuccess {
		return nil, fmt.Errorf("%s: %s", name, mdns.RcodeToString[r.Rcode])
	}
	var out []string
	for _, rr := range r.Answer {
		if a, ok := rr.(*mdns.A); ok {
			out = append(out, a.A.String())
		}
	}
	return out, nil
}
