package e2e

import (
	"slices"
	"testing"
	"time"

	"github.com/capstanhq/capstan/apiserver/api"
)

// webApp is a second app, with a service "web" of its own, whose pods reach
// the echo service of app EchoApp across apps by name.
const webApp = "web"

// servicesCluster starts three hosts running the echo app (service echo,
// six pods, two per host) and app web (service web, three pods), and
// returns the ready pods of each.
func servicesCluster(tb testing.TB) (c *Cluster, echo, web []*api.Pod) {
	tb.Helper()
	c = New(tb, Options{Hosts: 3})
	c.DeployEcho(6)
	c.DeployApp(webApp, "web", 3)
	echo = waitSpread(tb, c, 6, 3*time.Minute, func(by map[string][]*api.Pod) bool {
		return len(by["h0"]) == 2 && len(by["h1"]) == 2 && len(by["h2"]) == 2
	})
	c.waitFor("3 ready pods of app "+webApp, 3*time.Minute, func() bool {
		web = nil
		for _, ps := range ReadyPods(c.AppPods(webApp)) {
			web = append(web, ps...)
		}
		return len(web) == 3
	})
	tb.Logf("echo: %s; web: %s", Spread(echo), Spread(web))
	return c, echo, web
}

// others returns pods without p.
func others(pods []*api.Pod, p *api.Pod) []*api.Pod {
	return slices.DeleteFunc(slices.Clone(pods), func(q *api.Pod) bool { return q.Metadata.UID == p.Metadata.UID })
}

// TestServices is the acceptance of services across apps and of readiness:
// a pod of app web finds service echo of app EchoApp by its name
// (echo.e2e.svc.cluster.local) through its node's DNS and reaches it
// through the VIP it got; short names resolve along the pods' search path;
// an echo pod made unready drops out of the service and gets no more
// traffic through the VIP, then comes back once ready.
func TestServices(t *testing.T) {
	c, echo, web := servicesCluster(t)
	echoVIP, webVIP := c.EchoVIP(), c.VIP(webApp, "web")
	echoName := "echo." + EchoApp + ".svc.cluster.local"
	isEcho := map[string]bool{}
	for _, p := range echo {
		isEcho[p.Metadata.Name] = true
	}

	t.Run("a pod of another app resolves the service's full name to the VIP and reaches it", func(t *testing.T) {
		for _, from := range web {
			h := c.host(from.Spec.NodeName)
			rc, err := c.PodResolvConf(from)
			if err != nil {
				t.Fatal(err)
			}
			// The pod's resolver is its node's DNS.
			if len(rc.Nameservers) != 1 || rc.Nameservers[0] != h.Address {
				t.Errorf("%s on %s: nameservers %v, want its node's %s", from.Metadata.Name, h.Name, rc.Nameservers, h.Address)
			}
			var got []string
			c.waitFor("an answer for "+echoName+" to "+from.Metadata.Name, 30*time.Second, func() bool {
				got, err = c.LookupA(from, h.Address+":53", echoName)
				return err == nil && len(got) > 0
			})
			if len(got) != 1 || got[0] != echoVIP {
				t.Fatalf("%s asked %s's DNS for %s: A %v, want the echo VIP %s", from.Metadata.Name, h.Name, echoName, got, echoVIP)
			}
			var host, source string
			c.waitFor("an answer through "+got[0]+" to "+from.Metadata.Name, 30*time.Second, func() bool {
				host, source, err = c.Get(from, got[0]+":80")
				return err == nil
			})
			if !isEcho[host] || source != from.Status.PodIP {
				t.Errorf("%s (%s) -> %s (%s): answered by %q seeing source %q, want an echo pod seeing %s",
					from.Metadata.Name, h.Name, echoName, got[0], host, source, from.Status.PodIP)
			}
		}
	})

	t.Run("short names resolve along the pod's search path", func(t *testing.T) {
		// Resolve reads the pod's resolv.conf and expands a short name
		// along its search list as the pod's libc would, asking the
		// pod's nameserver for each expansion in turn.
		for _, tc := range []struct {
			from       *api.Pod
			name, fqdn string
			vip        string
		}{
			{echo[0], "echo", echoName, echoVIP},                                     // same app: first search domain
			{web[0], "web", "web." + webApp + ".svc.cluster.local", webVIP},          // same app, in app web
			{web[0], "echo." + EchoApp, echoName, echoVIP},                           // across apps: <svc>.<app> + svc.cluster.local
			{echo[0], "web." + webApp + ".svc", "web.web.svc.cluster.local", webVIP}, // <svc>.<app>.svc + cluster.local
		} {
			rc, err := c.PodResolvConf(tc.from)
			if err != nil {
				t.Fatal(err)
			}
			if app := tc.from.Metadata.App; len(rc.Search) == 0 || rc.Search[0] != app+".svc.cluster.local" {
				t.Errorf("%s: search %v, want %s.svc.cluster.local first", tc.from.Metadata.Name, rc.Search, app)
			}
			var fqdn string
			var got []string
			c.waitFor("an answer for "+tc.name+" to "+tc.from.Metadata.Name, 30*time.Second, func() bool {
				fqdn, got, err = c.Resolve(tc.from, tc.name)
				return err == nil
			})
			if fqdn != tc.fqdn || len(got) != 1 || got[0] != tc.vip {
				t.Errorf("%s resolved %q as %s: A %v, want %s: %s (search %v)", tc.from.Metadata.Name, tc.name, fqdn, got, tc.fqdn, tc.vip, rc.Search)
			}
		}
	})

	t.Run("an unready pod stops receiving traffic through the VIP and gets it back once ready", func(t *testing.T) {
		// The client is a web pod on h0; the victims an echo pod on
		// another node, then one on h0 itself.
		var from *api.Pod
		for _, p := range web {
			if p.Spec.NodeName == "h0" {
				from = p
			}
		}
		if from == nil {
			from = web[0]
		}
		by := ReadyPods(echo)
		var victims []*api.Pod
		for _, h := range c.Hosts {
			if h.Name != from.Spec.NodeName {
				victims = append(victims, by[h.Name][0])
				break
			}
		}
		victims = append(victims, by[from.Spec.NodeName][0])
		for _, v := range victims {
			d := c.DrainEndpoint(from, v, others(echo, v), 30*time.Second)
			t.Logf("client %s on %s, victim on %s: %s", from.Metadata.Name, from.Spec.NodeName, v.Spec.NodeName, d)
			lastHit := d.LastHit.Round(time.Millisecond).String()
			if d.Hits == 0 {
				lastHit = "none after the toggle"
			}
			t.Logf("toggle -> last request at the unready pod %s; toggle -> pod not Ready %s, -> out of the endpoints %s, -> out of the proxy %s",
				lastHit, d.Unready.Round(time.Millisecond), d.Endpoints.Round(time.Millisecond), d.Proxy.Round(time.Millisecond))
			if d.LateHits > 0 {
				t.Errorf("%s answered %d requests started after %s's proxy dropped it (%s after the toggle); last at %s",
					v.Metadata.Name, d.LateHits, from.Spec.NodeName, d.Proxy, d.LastHit)
			}
			if len(d.Others) != len(echo)-1 {
				t.Errorf("after the drop only %s answered, want the %d other echo pods", sortedKeys(d.Others), len(echo)-1)
			}
			for p := range d.Others {
				if !isEcho[p] || p == v.Metadata.Name {
					t.Errorf("after the drop %s answered, want only the other echo pods", p)
				}
			}
			if d.Failed > 0 {
				t.Errorf("%d of %d requests through the VIP failed (the first: %v); the unready pod still serves, none should", d.Failed, d.Requests, d.FirstErr)
			}
		}
	})
}
