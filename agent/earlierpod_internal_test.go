package agent

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/capstanhq/capstan/agent/runtime"
	"github.com/capstanhq/capstan/apiserver/api"
	"github.com/capstanhq/capstan/apiserver/client"
)

// pulledRuntime has every image; the test fails on any other call.
type pulledRuntime struct{ runtime.Runtime }

func (pulledRuntime) EnsureImage(context.Context, string, runtime.PullPolicy) (runtime.ImageInfo, error) {
	return runtime.ImageInfo{}, nil
}

// A replica's new pod (an ordered pod made again under its name after
// the old one was evicted from this node while it was cut off) does not
// start its containers on the replica's volumes while this agent still
// stops the old pod's: two of the replica's processes would write its
// data at once. Once the old pod's worker is gone, the start goes on (to
// the volumes, unknown here). Before, it went straight on to the
// volumes.
func TestReplicaWaitsForItsEarlierPod(t *testing.T) {
	a := &Agent{log: slog.New(slog.DiscardHandler), rt: pulledRuntime{}, workers: map[string]*worker{}, pulls: map[string]*sync.Mutex{}}
	a.opts.Now = time.Now
	a.opts.Backoff = Backoff{Initial: time.Second, Max: time.Minute, ResetAfter: time.Hour}
	a.volumes = client.NewInformer(nil, api.KindVolume, client.ListOptions{}, nil) // never started: knows no volume
	old, w := a.newWorker("uid-a", "store/kv-0"), a.newWorker("uid-b", "store/kv-0")
	for _, x := range []*worker{old, w, a.newWorker("uid-c", "store/kv-1")} {
		a.workers[x.uid] = x
	}
	pod := api.KindPod.New().(*api.Pod)
	pod.Metadata = api.ObjectMeta{App: "store", Name: "kv-0", UID: "uid-b"}
	pod.Spec.Containers = []api.Container{{Name: "kv", Image: "example/kv:v1"}}
	pod.Spec.Volumes = []api.Volume{{Name: "data", Persistent: &api.PersistentSource{Size: api.MustParseQuantity("16Mi")}}}

	w.start(t.Context(), pod, startAction{Name: "kv"})
	f := w.mem["kv"].Failure
	if f == nil || f.Reason != ReasonCreateContainerError || !strings.Contains(f.Message, "the earlier pod store/kv-0 (uid uid-a) still stops on this node") {
		t.Fatalf("start beside the earlier pod: failure %+v, want it to wait for uid-a", f)
	}
	if wait := f.RetryAt.Sub(time.Now()); wait > earlierPodPoll {
		t.Fatalf("start beside the earlier pod retried in %s, want it looked at again within %s, not after the back-off", wait, earlierPodPoll)
	}
	a.mu.Lock()
	delete(a.workers, "uid-a") // its worker retired: the old containers are gone
	a.mu.Unlock()
	w.start(t.Context(), pod, startAction{Name: "kv"})
	if f := w.mem["kv"].Failure; f == nil || !strings.Contains(f.Message, "volume kv-0-data not known yet") {
		t.Fatalf("start once the earlier pod is gone: failure %+v, want it to go on to the volumes", f)
	}
}
