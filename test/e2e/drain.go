package e2e

import (
	"context"
	"fmt"
	"os/exec"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/capstanhq/capstan/apiserver/api"
)

// Drain is what making one ready endpoint of the echo service unready
// showed. Durations count from the POST /unready that flipped the pod's
// readiness switch (the toggle), or, for Back*, from the POST /ready.
type Drain struct {
	Victim string
	// Unready: the victim's Ready condition in the API was no longer True
	// (when the read that showed it returned): the probe's share.
	Unready time.Duration
	// Endpoints: the service's endpoints no longer listed the victim as
	// ready (when the read that showed it returned). Proxy: the client
	// node's service proxy no longer sent traffic to it (when the nftables
	// listing that showed it returned).
	Endpoints, Proxy time.Duration
	// LastHit is when the last request through the VIP that the victim
	// answered started; 0 when none started after the toggle (Hits 0).
	LastHit time.Duration
	// Hits counts the requests started after the toggle that the victim
	// answered, LateHits those of them started after Proxy.
	Hits, LateHits int
	// Others counts, per pod, the answers to requests started after Proxy.
	Others map[string]int
	// BackEndpoints: the endpoints listed the victim ready again; BackHit:
	// the first request it answered started, both after the POST /ready.
	BackEndpoints, BackHit time.Duration
	// Requests and Failed count the poller's requests from the toggle on;
	// FirstErr is the first failure's error.
	Requests, Failed int
	FirstErr         error
}

func (d Drain) String() string {
	ms := func(x time.Duration) string { return x.Round(time.Millisecond).String() }
	lastHit := ms(d.LastHit) + " after the toggle"
	if d.Hits == 0 {
		lastHit = "before the toggle"
	}
	return fmt.Sprintf("%s unready: pod not Ready after %s, out of the endpoints after %s, out of the client node's proxy after %s, last request it answered started %s (%d answered, %d after the proxy dropped it); ready again: endpoints after %s, first answer after %s; %d of %d requests failed",
		d.Victim, ms(d.Unready), ms(d.Endpoints), ms(d.Proxy), lastHit, d.Hits, d.LateHits, ms(d.BackEndpoints), ms(d.BackHit), d.Failed, d.Requests)
}

// DrainEndpoint makes echo pod victim unready (POST /unready to its pod
// address from pod from) while a poller in from requests the echo service
// through its VIP every 20 ms, waits until the victim is out of the
// service's endpoints and out of the nftables rules of from's node, and
// then until every pod in others has answered a request started after
// that; then makes the victim ready again (POST /ready) and waits until
// it answers through the VIP again. Each wait gives up, failing the test,
// after timeout. It returns the measurements; the caller checks them.
func (c *Cluster) DrainEndpoint(from, victim *api.Pod, others []*api.Pod, timeout time.Duration) Drain {
	c.t.Helper()
	h := c.host(from.Spec.NodeName)
	name, addr := victim.Metadata.Name, victim.Status.PodIP
	d := Drain{Victim: name, Others: map[string]int{}}
	poller := c.StartPoller(from, 20*time.Millisecond)
	defer poller.Stop()
	var last string // what the last check saw, shown on a timeout
	defer func() {
		if c.t.Failed() {
			c.t.Logf("drain of %s at the end: %s; %s", name, last, d)
		}
	}()
	want := map[string]bool{name: true}
	for _, p := range others {
		want[p.Metadata.Name] = true
	}
	c.waitFor("answers through the VIP from the victim and every other pod, and a rule to the victim in "+h.Name+"'s proxy", timeout, func() bool {
		seen := map[string]bool{}
		for _, a := range poller.Attempts() {
			if a.Err == nil {
				seen[a.Host] = true
			}
		}
		for p := range want {
			if !seen[p] {
				last = fmt.Sprintf("answered: %v", seen)
				return false
			}
		}
		// The check below must see the rule before it can see it go.
		dnat, err := h.ProxyDNATs(addr, 8080)
		last = fmt.Sprintf("%s DNATs to %s: %v (err %v)", h.Name, addr, dnat, err)
		return dnat
	})

	before := len(poller.Attempts())
	toggle := time.Now()
	if err := c.Post(from, addr+":8080", "/unready"); err != nil {
		c.t.Fatalf("e2e: make %s unready: %v", name, err)
	}
	c.waitFor(name+" out of the endpoints and out of "+h.Name+"'s proxy", timeout, func() bool {
		last = ""
		if d.Unready == 0 {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			o, err := c.Admin.Get(ctx, api.Key{Kind: api.KindPod, App: victim.Metadata.App, Name: name})
			seen := time.Since(toggle)
			cancel()
			if err == nil {
				if cond := api.FindCondition(o.(*api.Pod).Status.Conditions, api.PodReady); cond == nil || cond.Status != api.ConditionTrue {
					d.Unready = seen
				}
			}
			last = fmt.Sprintf("pod not Ready: %v (err %v); ", d.Unready != 0, err)
		}
		if d.Endpoints == 0 {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			eps, err := c.ReadyEndpoints(ctx)
			seen := time.Since(toggle)
			cancel()
			if err == nil && !hasEndpoint(eps, addr) {
				d.Endpoints = seen
			}
			last += fmt.Sprintf("ready endpoints %v (err %v)", eps, err)
		}
		if d.Proxy == 0 {
			dnat, err := h.ProxyDNATs(addr, 8080)
			seen := time.Since(toggle)
			if err == nil && !dnat {
				d.Proxy = seen
			}
			last += fmt.Sprintf("; %s DNATs to %s: %v (err %v)", h.Name, addr, dnat, err)
		}
		return d.Unready != 0 && d.Endpoints != 0 && d.Proxy != 0
	})
	dropped := toggle.Add(d.Proxy)
	c.waitFor("answers from every other pod to requests started after the proxy dropped "+name, timeout, func() bool {
		n := map[string]int{}
		for _, a := range poller.Attempts()[before:] {
			if a.Err == nil && a.At.After(dropped) {
				n[a.Host]++
			}
		}
		last = fmt.Sprintf("answers after the drop: %v", n)
		for p := range want {
			if p != name && n[p] == 0 {
				return false
			}
		}
		return true
	})
	back := time.Now()
	for _, a := range poller.Attempts()[before:] {
		if !a.At.After(toggle) || a.At.After(back) {
			continue
		}
		d.Requests++
		switch {
		case a.Err != nil:
			d.Failed++
			if d.FirstErr == nil {
				d.FirstErr = a.Err
			}
		case a.Host == name:
			d.Hits++
			d.LastHit = a.At.Sub(toggle)
			if a.At.After(dropped) {
				d.LateHits++
			}
		case a.At.After(dropped):
			d.Others[a.Host]++
		}
	}

	if err := c.Post(from, addr+":8080", "/ready"); err != nil {
		c.t.Fatalf("e2e: make %s ready again: %v", name, err)
	}
	c.waitFor(name+" back in the endpoints and answering through the VIP", timeout, func() bool {
		if d.BackEndpoints == 0 {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			eps, err := c.ReadyEndpoints(ctx)
			seen := time.Since(back)
			cancel()
			if err == nil && hasEndpoint(eps, addr) {
				d.BackEndpoints = seen
			}
			last = fmt.Sprintf("ready endpoints %v (err %v)", eps, err)
		}
		if d.BackHit == 0 {
			for _, a := range poller.Attempts() {
				if a.Err == nil && a.Host == name && a.At.After(back) {
					d.BackHit = a.At.Sub(back)
					break
				}
			}
		}
		return d.BackEndpoints != 0 && d.BackHit != 0
	})
	poller.Stop()
	for _, a := range poller.Attempts()[before:] {
		if a.At.After(back) {
			d.Requests++
			if a.Err != nil {
				d.Failed++
				if d.FirstErr == nil {
					d.FirstErr = a.Err
				}
			}
		}
	}
	return d
}

func hasEndpoint(eps []api.EndpointAddress, ip string) bool {
	for _, e := range eps {
		if e.IP == ip {
			return true
		}
	}
	return false
}

// host returns the Host named name.
func (c *Cluster) host(name string) *Host {
	c.t.Helper()
	for _, h := range c.Hosts {
		if h.Name == name {
			return h
		}
	}
	c.t.Fatalf("e2e: no host %q", name)
	return nil
}

// proxyTable is the agent's nftables table (proxy.Options.Table's default).
const proxyTable = "capstan"

// ProxyDNATs reports whether the service proxy on h sends traffic to
// ip:port: whether its nftables table names ip:port as a DNAT target,
// either as a rule's "dnat to ip:port" or as the "ip . port" data of an
// endpoint map element (the hairpin set's "ip . ip" elements do not count).
func (h *Host) ProxyDNATs(ip string, port int) (bool, error) {
	out, err := exec.Command("nsenter", "--net=/run/netns/"+h.NS, "--", "nft", "list", "table", "ip", proxyTable).CombinedOutput()
	if err != nil {
		return false, fmt.Errorf("nft list table ip %s on %s: %v: %s", proxyTable, h.Name, err, out)
	}
	return dnatsTo(out, ip, port), nil
}

// dnatsTo reports whether an nft listing names ip:port as a DNAT target.
func dnatsTo(listing []byte, ip string, port int) bool {
	re := regexp.MustCompile(`(^|[^0-9.])` + regexp.QuoteMeta(ip) + `(:| \. )` + strconv.Itoa(port) + `([^0-9]|$)`)
	return re.Match(listing)
}

// sortedKeys renders a count map in name order, "a=1 b=2".
func sortedKeys(m map[string]int) string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	var b strings.Builder
	for i, k := range ks {
		if i > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "%s=%d", k, m[k])
	}
	return b.String()
}
