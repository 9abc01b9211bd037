package main

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// BenchmarkCommitToReady measures, on `capstan up` with real containerd,
// CNI and nftables, the time from a commit that adds a 10-replica pod
// group (image present) to all 10 pods Running and Ready, then removes it
// again. Each iteration is one commit; the pods are polled every 50 ms.
//
//	go test ./cmd/capstan -run '^$' -bench CommitToReady -benchtime 10x
func BenchmarkCommitToReady(b *testing.B) {
	e := newUpEnv(b, "")
	e.start()
	e.wait("frontend running", 5*time.Minute, func() (bool, string) { return e.running("frontend", 3, "") })
	bench := filepath.Join(e.repo, "bench.cue")
	group := `apps: shop: pods: bench: {
	replicas: 10
	containers: web: {
		image: "127.0.0.1:5000/examples/hello:v1"
		ports: http: 8080
		readiness: {http: {path: "/healthz", port: "http"}, period: 1}
	}
}
`
	poll := func(what string, cond func() (bool, string)) {
		deadline := time.Now().Add(3 * time.Minute)
		for {
			if ok, state := cond(); ok {
				return
			} else if time.Now().After(deadline) {
				b.Fatalf("%s: not within 3m:\n%s", what, state)
			}
			<-time.After(50 * time.Millisecond)
		}
	}
	var lat []time.Duration
	b.ResetTimer()
	for range b.N {
		if err := os.WriteFile(bench, []byte(group), 0o644); err != nil {
			b.Fatal(err)
		}
		gitCmd(b, e.repo, "add", "bench.cue")
		start := time.Now()
		gitCmd(b, e.repo, "-c", "user.name=B", "-c", "user.email=b@example.com", "commit", "-qm", "add 10 bench pods")
		poll("10 bench pods ready", func() (bool, string) { return e.running("bench", 10, "") })
		lat = append(lat, time.Since(start))
		gitCmd(b, e.repo, "rm", "-q", "bench.cue")
		gitCmd(b, e.repo, "-c", "user.name=B", "-c", "user.email=b@example.com", "commit", "-qm", "remove the bench pods")
		poll("bench pods gone", func() (bool, string) {
			pods, out := e.pods()
			for _, p := range pods {
				if p.Metadata.Labels["capstan.io/workload"] == "bench" {
					return false, out
				}
			}
			return true, out
		})
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Milliseconds()), "p50-ms")
	b.ReportMetric(float64(lat[(len(lat)*99)/100].Milliseconds()), "p99-ms")
}
