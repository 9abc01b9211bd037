package e2e

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/capstanhq/capstan/apiserver/api"
)

// waitSpread waits until the echo workload has want ready pods, on the
// given nodes only, none of them being deleted elsewhere, and returns them.
func waitSpread(t testing.TB, c *Cluster, want int, timeout time.Duration, ok func(map[string][]*api.Pod) bool) []*api.Pod {
	t.Helper()
	var pods []*api.Pod
	deadline := time.Now().Add(timeout)
	for {
		pods = c.Pods()
		ready := ReadyPods(pods)
		n := 0
		for _, ps := range ready {
			n += len(ps)
		}
		if n == want && len(pods) == want && ok(ready) {
			return pods
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %s: pods %s, want %d ready", timeout, Spread(pods), want)
		}
		<-time.After(100 * time.Millisecond)
	}
}

func TestCluster(t *testing.T) {
	c := New(t, Options{Hosts: 3, GracePeriod: 10 * time.Second, EvictionTimeout: 15 * time.Second})
	c.DeployEcho(6)
	pods := waitSpread(t, c, 6, 3*time.Minute, func(by map[string][]*api.Pod) bool {
		return len(by["h0"]) == 2 && len(by["h1"]) == 2 && len(by["h2"]) == 2
	})
	t.Logf("spread: %s", Spread(pods))

	t.Run("pod to pod across nodes keeps the source address", func(t *testing.T) {
		by := ReadyPods(pods)
		for _, from := range []string{"h0", "h1", "h2"} {
			for _, to := range []string{"h0", "h1", "h2"} {
				if from == to {
					continue
				}
				src, dst := by[from][0], by[to][0]
				var host, source string
				var err error
				c.waitFor("a request from "+src.Metadata.Name+" to "+dst.Metadata.Name, 30*time.Second, func() bool {
					host, source, err = c.Get(src, dst.Status.PodIP+":8080")
					return err == nil
				})
				if host != dst.Metadata.Name || source != src.Status.PodIP {
					t.Errorf("%s (%s) -> %s (%s): answered by %q seeing source %q", src.Metadata.Name, from, dst.Metadata.Name, to, host, source)
				}
			}
		}
	})

	t.Run("pod to service across nodes", func(t *testing.T) {
		vip := c.EchoVIP()
		nodeOf := map[string]string{}
		for _, p := range pods {
			nodeOf[p.Metadata.Name] = p.Spec.NodeName
		}
		for _, h := range c.Hosts {
			src := ReadyPods(pods)[h.Name][0]
			seen := map[string]bool{} // nodes whose pods answered
			c.waitFor("answers through "+vip+" from pods on every node, asked from "+h.Name, time.Minute, func() bool {
				host, source, err := c.Get(src, vip+":80")
				if err != nil {
					return false
				}
				// A pod that reaches itself through the VIP is masqueraded
				// (hairpin); any other keeps its address.
				if host != src.Metadata.Name && source != src.Status.PodIP {
					t.Errorf("%s -> %s -> %s saw source %s, want the pod's %s", src.Metadata.Name, vip, host, source, src.Status.PodIP)
				}
				seen[nodeOf[host]] = true
				return len(seen) == len(c.Hosts)
			})
		}
	})

	t.Run("cluster DNS answers on every node", func(t *testing.T) {
		vip := c.EchoVIP()
		name := "echo." + EchoApp + ".svc.cluster.local"
		for _, h := range c.Hosts {
			src := ReadyPods(pods)[h.Name][0]
			var got []string
			var err error
			c.waitFor("an answer for "+name+" from "+h.Name+"'s DNS", time.Minute, func() bool {
				got, err = c.LookupA(src, h.Address+":53", name)
				return err == nil && len(got) > 0
			})
			if len(got) != 1 || got[0] != vip {
				t.Errorf("%s on %s: A %v, want the VIP %s", name, h.Name, got, vip)
			}
		}
	})

	t.Run("logs and exec reach every node through the server", func(t *testing.T) {
		// The CLI runs in the root namespace and talks to the server only;
		// the server forwards to each host's agent over the switch.
		by := ReadyPods(pods)
		for _, h := range c.Hosts {
			p := by[h.Name][0]
			ref := p.Metadata.App + "/" + p.Metadata.Name
			out, err := c.CLI(c.AdminConfigPath(), "logs", ref, "--tail", "1")
			if want := "echo " + p.Metadata.Name + " serving on :8080\n"; err != nil || out != want {
				t.Errorf("capstan logs %s (on %s): %v %q, want %q", ref, h.Name, err, out, want)
			}
			out, err = c.CLI(c.AdminConfigPath(), "exec", ref, "--", "/echo", "hostname")
			if err != nil || out != p.Metadata.Name+"\n" {
				t.Errorf("capstan exec %s (on %s): %v %q", ref, h.Name, err, out)
			}
		}
		// A node's own credentials read the API but not logs.
		out, err := c.CLI(c.Hosts[0].ConfigPath(), "logs", by["h1"][0].Metadata.App+"/"+by["h1"][0].Metadata.Name)
		if err == nil || !strings.Contains(out, "may not") {
			t.Errorf("logs with node credentials: %v %q, want refused", err, out)
		}
	})

	t.Run("traffic leaving the pod network is masqueraded", func(t *testing.T) {
		// A server outside the pod network: the root namespace's address.
		ln, err := net.Listen("tcp", subnet+"1:0")
		if err != nil {
			t.Fatal(err)
		}
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			ip, _, _ := net.SplitHostPort(r.RemoteAddr)
			fmt.Fprintf(w, "outside %s\n", ip)
		})}
		go srv.Serve(ln)
		t.Cleanup(func() { srv.Close() })
		by := ReadyPods(pods)
		for _, h := range c.Hosts {
			src := by[h.Name][0]
			var source string
			var err error
			c.waitFor("a request from "+src.Metadata.Name+" out of the pod network", 30*time.Second, func() bool {
				_, source, err = c.Get(src, ln.Addr().String())
				return err == nil
			})
			if source != h.Address {
				t.Errorf("%s on %s reached %s from %q, want the node's address %s", src.Metadata.Name, h.Name, ln.Addr(), source, h.Address)
			}
		}
	})
}

func TestClusterFailover(t *testing.T) {
	// The grace period is three heartbeats (5 s), so a busy CI machine does
	// not mark a live node NotReady.
	grace, eviction := 15*time.Second, 20*time.Second
	c := New(t, Options{Hosts: 3, GracePeriod: grace, EvictionTimeout: eviction})
	c.DeployEcho(6)
	pods := waitSpread(t, c, 6, 3*time.Minute, func(by map[string][]*api.Pod) bool {
		return len(by["h0"]) == 2 && len(by["h1"]) == 2 && len(by["h2"]) == 2
	})
	testAuth(t, c, pods)

	victim := c.Hosts[2]
	var stale []*api.Pod
	for _, p := range pods {
		if p.Spec.NodeName == victim.Name {
			stale = append(stale, p)
		}
	}
	from := ReadyPods(pods)["h0"][0]
	// Replacement needs the eviction timeout, then a pull-free start.
	f := c.FailNode(victim, from, 6, eviction+2*time.Minute)
	t.Logf("failover (grace %s, eviction %s): %s", grace, eviction, f)
	if f.NotReady == 0 || f.Endpoints == 0 {
		t.Errorf("failover: %s; want the node NotReady and its endpoints dropped", f)
	}
	if !f.DroppedBeforeEviction {
		t.Errorf("failover: %s; want the endpoints to drop the node's pods before they are evicted", f)
	}
	// Requests fail only while the endpoints still list the dead pods, and
	// for as long as the proxy on h0 takes to follow them (an informer
	// event and one nftables transaction; propagation gets generous room).
	const propagation = ProxyPropagation
	if f.Failed > 0 && f.LastFailedAt >= f.Endpoints+propagation {
		t.Errorf("a request through the VIP started %s after the kill failed, after the endpoints dropped the node (%s) and the proxy had %s to follow", f.LastFailedAt, f.Endpoints, propagation)
	}
	// A client that reuses its source port: once one of its connections
	// went to a dead pod, conntrack sends every later one there too
	// (each unanswered SYN renews the entry), until the proxy deletes
	// the stale entry when the endpoints drop the pod.
	if f.Fixed.Failed == 0 {
		t.Errorf("failover: %s; the fixed-port client never failed, so it never reached a dead pod and the test checked nothing", f)
	}
	if f.Fixed.Failed > 0 && f.Fixed.LastFailedAt >= f.Endpoints+propagation {
		t.Errorf("a request from the fixed source port %d started %s after the kill failed, after the endpoints dropped the node (%s) and the proxy had %s to follow: a stale conntrack entry still sends the port to a dead pod",
			FixedSourcePort, f.Fixed.LastFailedAt, f.Endpoints, propagation)
	}
	if f.Requests-f.Failed < 10 {
		t.Errorf("only %d of %d requests succeeded during the failover", f.Requests-f.Failed, f.Requests)
	}

	t.Run("the node comes back and removes its stale pods", func(t *testing.T) {
		for _, p := range stale {
			if _, err := os.Stat(c.PodNetNS(p)); err != nil {
				t.Fatalf("stale pod %s before the node is back: %v, want its namespace still there", p.Metadata.Name, err)
			}
		}
		victim.RestoreLink()
		victim.Start()
		victim.WaitReady()
		for _, p := range stale {
			ns := c.PodNetNS(p)
			c.waitFor("stale pod "+p.Metadata.Name+" removed from "+victim.Name, 2*time.Minute, func() bool {
				_, err := os.Stat(ns)
				return os.IsNotExist(err)
			})
		}
		if got := ReadyPods(c.Pods()); len(got["h0"])+len(got["h1"]) != 6 {
			t.Errorf("after the node came back: %s, want the 6 replicas to keep running", Spread(c.Pods()))
		}
	})
}
