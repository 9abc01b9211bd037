package e2e

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	mdns "github.com/miekg/dns"

	"github.com/capstanhq/capstan/apiserver/api"
)

// LookupA asks the DNS server at server (ip:port) for name's A records,
// from inside pod from's network namespace.
func (c *Cluster) LookupA(from *api.Pod, server, name string) ([]string, error) {
	rcode, out, err := c.lookupA(from, server, name)
	if err != nil {
		return nil, err
	}
	if rcode != mdns.RcodeSuccess {
		return nil, fmt.Errorf("%s: %s", name, mdns.RcodeToString[rcode])
	}
	return out, nil
}

func (c *Cluster) lookupA(from *api.Pod, server, name string) (int, []string, error) {
	m := new(mdns.Msg)
	m.SetQuestion(mdns.Fqdn(name), mdns.TypeA)
	cl := &mdns.Client{Timeout: 2 * time.Second}
	var r *mdns.Msg
	var err error
	if nsErr := inNetNS(c.PodNetNS(from), func() { r, _, err = cl.Exchange(m, server) }); nsErr != nil {
		return 0, nil, nsErr
	}
	if err != nil {
		return 0, nil, err
	}
	var out []string
	for _, rr := range r.Answer {
		if a, ok := rr.(*mdns.A); ok {
			out = append(out, a.A.String())
		}
	}
	return r.Rcode, out, nil
}

// ResolvConf is what a pod's /etc/resolv.conf says.
type ResolvConf struct {
	Nameservers, Search []string
	Ndots               int
}

// PodResolvConf reads the resolv.conf the agent wrote for pod p, the file
// its containers bind-mount as /etc/resolv.conf.
func (c *Cluster) PodResolvConf(p *api.Pod) (ResolvConf, error) {
	b, err := os.ReadFile(filepath.Join(Base, p.Spec.NodeName, "data", "pods", p.Metadata.UID, "resolv.conf"))
	if err != nil {
		return ResolvConf{}, err
	}
	rc := ResolvConf{Ndots: 1}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		switch f[0] {
		case "nameserver":
			rc.Nameservers = append(rc.Nameservers, f[1])
		case "search":
			rc.Search = f[1:]
		case "options":
			for _, o := range f[1:] {
				if v, ok := strings.CutPrefix(o, "ndots:"); ok {
					if n, err := strconv.Atoi(v); err == nil {
						rc.Ndots = n
					}
				}
			}
		}
	}
	if len(rc.Nameservers) == 0 {
		return rc, fmt.Errorf("pod %s: resolv.conf has no nameserver:\n%s", p.Metadata.Name, b)
	}
	return rc, nil
}

// Resolve resolves name from inside pod from the way a stub resolver
// reading the pod's resolv.conf does (glibc's order): a name with fewer
// dots than ndots is tried with each search domain in turn, and the first
// that has A records answers. It asks the first nameserver on port 53 and
// returns the name that answered with its records. Unlike glibc it never
// tries the name as given: outside the cluster zone that would go
// upstream, which the tests have not got.
func (c *Cluster) Resolve(from *api.Pod, name string) (fqdn string, addrs []string, err error) {
	rc, err := c.PodResolvConf(from)
	if err != nil {
		return "", nil, err
	}
	if strings.Count(name, ".") >= rc.Ndots {
		return "", nil, fmt.Errorf("%s has %d dots or more (ndots): no search path", name, rc.Ndots)
	}
	server := net.JoinHostPort(rc.Nameservers[0], "53")
	var tried []string
	for _, dom := range rc.Search {
		fqdn := name + "." + dom
		rcode, addrs, err := c.lookupA(from, server, fqdn)
		if err != nil {
			return "", nil, fmt.Errorf("%s from %s: %w", fqdn, server, err)
		}
		if rcode == mdns.RcodeSuccess && len(addrs) > 0 {
			return fqdn, addrs, nil
		}
		if rcode != mdns.RcodeSuccess && rcode != mdns.RcodeNameError {
			return "", nil, fmt.Errorf("%s from %s: %s", fqdn, server, mdns.RcodeToString[rcode])
		}
		tried = append(tried, fqdn+" "+mdns.RcodeToString[rcode])
	}
	return "", nil, fmt.Errorf("%s from %s: no answer along the search path (%s)", name, server, strings.Join(tried, ", "))
}
