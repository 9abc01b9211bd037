package runtime_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/capstanhq/capstan/agent/runtime"
)

// BenchmarkPodStart measures what the agent waits for when a pod lands on a
// node whose image is present: sandbox (namespaces, CNI, name files) plus
// one container started. Removal is not timed.
func BenchmarkPodStart(b *testing.B) {
	e := newEnv(b)
	ctx := context.Background()
	if _, err := e.rt.EnsureImage(ctx, e.image, runtime.PullIfNotPresent); err != nil {
		b.Fatal(err)
	}
	var sandboxTime, containerTime time.Duration
	for i := 0; b.Loop(); i++ {
		t0 := time.Now()
		sb, err := e.rt.CreatePodSandbox(ctx, runtime.PodSpec{UID: fmt.Sprintf("bench-%d", i), Name: "bench", App: "shop"})
		if err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		if _, err := e.rt.StartContainer(ctx, sb, runtime.ContainerSpec{Name: "c", Image: e.image, Args: []string{"sleep"}}); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		sandboxTime += t1.Sub(t0)
		containerTime += time.Since(t1)
		if err := e.rt.RemovePod(ctx, sb.PodUID); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	b.ReportMetric(float64(sandboxTime.Milliseconds())/float64(b.N), "sandbox-ms/op")
	b.ReportMetric(float64(containerTime.Milliseconds())/float64(b.N), "container-ms/op")
}
