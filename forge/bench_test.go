package forge

import (
	"fmt"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/capstanhq/capstan/apiserver/api"
)

// threeGroups is an app of three pod groups at image tag v.
func threeGroups(v int) string {
	return fmt.Sprintf(`apps: shop: pods: {
	frontend: {replicas: 3, containers: web: {image: "r/hello:v%[1]d", resources: {cpu: "100m", memory: "32Mi"}}}
	backend: {replicas: 2, containers: api: {image: "r/api:v%[1]d", resources: {cpu: "100m", memory: "32Mi"}}}
	worker: {replicas: 1, containers: {worker: image: "r/worker:v%[1]d", shipper: image: "r/shipper:v1"}}
}
`, v)
}

func percentile(d []time.Duration, p float64) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[min(len(s)-1, int(float64(len(s))*p))]
}

// BenchmarkPREventToComment measures a pull-request webhook (after a push
// to its branch) to the plan comment showing the new head, for an app of
// three pod groups, on the GitHub API server in the test.
func BenchmarkPREventToComment(b *testing.B) {
	fl := startFlow(b, "github", "secret-token")
	fl.bare.commit(b, "main", "apps/shop.cue", threeGroups(1))
	fl.bare.branch(b, "change", "apps/shop.cue", threeGroups(2))
	n := fl.forge.open("change", "main", "change")
	hook(b, fl.hookURL, "github", n, "opened", "open", true)
	eventually(b, "the first comment", func() bool { return strings.Contains(fl.comment(n), "Capstan plan") })
	var lat []time.Duration
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		b.StopTimer()
		sha := fl.bare.branch(b, "change", "apps/shop.cue", threeGroups(i+3))
		fl.forge.syncHead(n)
		b.StartTimer()
		start := time.Now()
		hook(b, fl.hookURL, "github", n, "synchronize", fmt.Sprint("d", i), true)
		eventually(b, "the comment of the new head", func() bool { return strings.Contains(fl.comment(n), api.ShortCommit(sha)) })
		lat = append(lat, time.Since(start))
	}
	b.ReportMetric(float64(percentile(lat, 0.5).Milliseconds()), "p50-ms")
	b.ReportMetric(float64(percentile(lat, 0.99).Milliseconds()), "p99-ms")
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkReplan100PRs measures 100 open pull requests re-planned after a
// cluster change that flips every verdict (the only node cordoned, then
// back): from the change to the 100th status posted, and the CPU time of
// the whole test process meanwhile (API server and forge included).
func BenchmarkReplan100PRs(b *testing.B) {
	fl := startFlow(b, "github", "secret-token")
	fl.bare.commit(b, "main", "apps/shop.cue", threeGroups(1))
	var shas []string
	for i := range 100 {
		br := fmt.Sprint("pr", i)
		shas = append(shas, fl.bare.branch(b, br, "apps/shop.cue", threeGroups(i+2)))
		n := fl.forge.open(br, "main", br)
		hook(b, fl.hookURL, "github", n, "opened", br, true)
	}
	all := func(want State) func() bool {
		return func() bool {
			for _, sha := range shas {
				if s, ok := fl.forge.lastStatus(sha, PlanContext); !ok || s.State != want {
					return false
				}
			}
			return true
		}
	}
	eventually(b, "100 plans", all(StateSuccess))
	var cpu time.Duration
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		c0 := cpuTime()
		cordon := i%2 == 0
		setCordon(b, fl.cluster.Client, "n1", cordon)
		want := StateSuccess
		if cordon {
			want = StateFailure
		}
		eventually(b, "100 verdicts flipped", all(want))
		cpu += cpuTime() - c0
	}
	b.ReportMetric(float64(cpu.Milliseconds())/float64(b.N), "cpu-ms/op")
}
