package e2e

import (
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
