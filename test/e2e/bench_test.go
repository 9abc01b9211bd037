package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/capstanhq/capstan/apiserver/api"
)

// BenchmarkFailover measures, on three hosts with six replicas, the time
// from SIGKILL of one agent (and its link cut) until all six replicas are
// ready on the other two, the detection window (until the endpoints drop
// the node) and the requests a client polling the service every 100 ms
// lost. One iteration is a whole cluster: run with -benchtime=1x.
//
// The agent renews its lease every 5 s (agent.DefaultHeartbeatInterval,
// not a flag), so a grace period much under 10 s would mark healthy nodes
// NotReady; "tight" is the smallest pair that does not.
func BenchmarkFailover(b *testing.B) {
	for _, tc := range []struct {
		name            string
		grace, eviction time.Duration
	}{
		{"default-20s-40s", 20 * time.Second, 40 * time.Second},
		{"tight-8s-10s", 8 * time.Second, 10 * time.Second},
	} {
		b.Run(tc.name, func(b *testing.B) {
			for range b.N {
				c := New(b, Options{Hosts: 3, GracePeriod: tc.grace, EvictionTimeout: tc.eviction})
				c.DeployEcho(6)
				pods := waitSpread(b, c, 6, 3*time.Minute, func(by map[string][]*api.Pod) bool {
					return len(by["h0"]) == 2 && len(by["h1"]) == 2 && len(by["h2"]) == 2
				})
				b.ResetTimer()
				f := c.FailNode(c.Hosts[2], ReadyPods(pods)["h0"][0], 6, tc.eviction+2*time.Minute)
				b.StopTimer()
				b.Logf("%s: %s", tc.name, f)
				b.ReportMetric(f.Replaced.Seconds(), "failover-s")
				b.ReportMetric(f.Endpoints.Seconds(), "detect-s")
				b.ReportMetric(float64(f.Failed), "lost-requests")
				b.ReportMetric(float64(f.Requests), "requests")
			}
		})
	}
}

// BenchmarkUnreadyDrain measures, on three hosts with six echo replicas and
// a client pod of another app polling the echo service's VIP every 20 ms,
// how long an echo pod made unready (its readiness probe fails from then
// on; probed every second, unready at the first failure) keeps getting
// traffic: from the toggle to the start of the last request it answered
// (drain), to when its Ready condition left True (unready: the probe's
// share), to when the service's endpoints no longer listed it (endpoints)
// and to when the client node's nftables no longer sent to it (proxy);
// and, once made ready again, until it answered again (back). Twelve
// toggles, each echo pod twice, and the mean and the maximum of each;
// late-hits counts requests the victim answered after the client node's
// proxy had dropped it (want 0). A drain of 0 means no request started
// after the toggle reached the victim. One iteration is a whole cluster:
// run with -benchtime=1x.
func BenchmarkUnreadyDrain(b *testing.B) {
	const toggles = 12
	for range b.N {
		c, echo, web := servicesCluster(b)
		from := web[0]
		by := ReadyPods(echo)
		var drain, unready, endpoints, proxy, back []time.Duration
		var late, failed int
		// One line for all toggles: the testing package keeps only the
		// first ten lines of a benchmark's log.
		var rows []string
		b.ResetTimer()
		for i := range toggles {
			v := by[c.Hosts[i%len(c.Hosts)].Name][i/len(c.Hosts)%2]
			d := c.DrainEndpoint(from, v, others(echo, v), 30*time.Second)
			drain, unready, endpoints, proxy, back = append(drain, d.LastHit), append(unready, d.Unready), append(endpoints, d.Endpoints), append(proxy, d.Proxy), append(back, d.BackHit)
			late, failed = late+d.LateHits, failed+d.Failed
			rows = append(rows, fmt.Sprintf("%s>%s %d/%d/%d/%d/%d %d %d/%d", from.Spec.NodeName, v.Spec.NodeName,
				d.LastHit.Milliseconds(), d.Unready.Milliseconds(), d.Endpoints.Milliseconds(), d.Proxy.Milliseconds(), d.BackHit.Milliseconds(),
				d.LateHits, d.Failed, d.Requests))
		}
		b.StopTimer()
		b.Logf("per toggle (client>victim node, drain/unready/endpoints/proxy/back ms, late hits, failed/requests): %s", strings.Join(rows, "; "))
		b.ReportMetric(float64(late), "late-hits")
		b.ReportMetric(float64(failed), "failed-requests")
		for _, m := range []struct {
			name string
			ds   []time.Duration
		}{{"drain", drain}, {"unready", unready}, {"endpoints", endpoints}, {"proxy", proxy}, {"back", back}} {
			var sum, mx time.Duration
			for _, d := range m.ds {
				sum += d
				mx = max(mx, d)
			}
			b.ReportMetric(float64(sum.Milliseconds())/float64(len(m.ds)), m.name+"-ms/toggle")
			b.ReportMetric(float64(mx.Milliseconds()), m.name+"-max-ms")
		}
	}
}
