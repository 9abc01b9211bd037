package e2e

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/capstanhq/capstan/apiserver/api"
	"github.com/capstanhq/capstan/apiserver/client"
)

// keepApps are two apps with no pods, so that removing the kv app is one
// deletion in three, not a mass deletion held for confirmation.
const keepApps = `apps: keep1: pods: idle: {replicas: 0, containers: c: image: "none"}
apps: keep2: pods: idle: {replicas: 0, containers: c: image: "none"}
`

func kvApp(image string) string { return kvGroup(image, 1, "data") }

// kvGroup is the kv example with replicas and its persistent volume
// named vol, which the server uses as its data directory.
func kvGroup(image string, replicas int, vol string) string {
	return fmt.Sprintf(`apps: store: pods: kv: {
	ordered: true
	replicas: %d
	containers: kv: {
		image: %q
		ports: http: 8080
		env: DATA_DIR: "/%s"
		readiness: {http: {path: "/healthz", port: "http"}, period: 1}
	}
	volumes: %s: persistent: size: "32Mi"
	terminationGrace: 2
	service: ports: http: 80
}
`, replicas, image, vol, vol)
}

// TestDataSurvives writes a value through the kv example, an ordered
// group of one with a persistent volume deployed from a git repository,
// and reads it back after (a) a rolling update to a new image, (b) the
// agent SIGKILLed and restarted, then the pod replaced on the same node,
// (c) the server SIGKILLed and restarted, (d) the app deleted by a commit
// and added again; the volume is listed while the app is gone, and only
// `capstan delete volume` removes it, and its data on the node.
func TestDataSurvives(t *testing.T) {
	repo := NewGitRepo(t, map[string]string{"keep.cue": keepApps})
	c := New(t, Options{Hosts: 1, ServerArgs: []string{"--repo", repo.Dir}})
	h := c.Hosts[0]
	v1 := c.PushExample("kv", "v1", "VERSION=v1")
	v2 := c.PushExample("kv", "v2", "VERSION=v2")
	volDir := filepath.Join(h.Dir, "data", "volumes", "store")

	// waitKV waits for a Ready kv-0 other than the pod old that answers as
	// version.
	waitKV := func(version string, old *api.Pod) *api.Pod {
		t.Helper()
		var p *api.Pod
		c.WaitFor("kv-0 ready on "+version, 3*time.Minute, func() bool {
			p = c.ReadyPod("store", "kv-0")
			if p == nil || old != nil && p.Metadata.UID == old.Metadata.UID {
				return false
			}
			_, _, got, err := c.KV(p, "GET", "none", "")
			return err == nil && got == version
		})
		return p
	}
	readBack := func(step string, p *api.Pod) {
		t.Helper()
		code, body, _, err := c.KV(p, "GET", "greeting", "")
		if err != nil || code != 200 || body != "hello" {
			t.Fatalf("%s: GET greeting from %s = %d %q, %v; want hello", step, p.Metadata.Name, code, body, err)
		}
	}

	repo.Commit("kv v1", map[string]string{"kv.cue": kvApp(v1)})
	pod := waitKV("v1", nil)
	if code, _, _, err := c.KV(pod, "PUT", "greeting", "hello"); err != nil || code != 204 {
		t.Fatalf("PUT greeting = %d, %v", code, err)
	}
	readBack("written", pod)
	ctx := context.Background()
	o, err := c.Admin.Get(ctx, api.Key{Kind: api.KindVolume, App: "store", Name: "kv-0-data"})
	if err != nil {
		t.Fatalf("the volume object: %v", err)
	}
	if v := o.(*api.PersistentVolume); v.Spec.NodeName != h.Name || v.Spec.Reclaim != api.ReclaimRetain {
		t.Fatalf("volume %+v, want it on %s, retained", v.Spec, h.Name)
	}

	// (a) A rolling update to a new image.
	repo.Commit("kv v2", map[string]string{"kv.cue": kvApp(v2)})
	pod = waitKV("v2", pod)
	readBack("(a) after the rolling update", pod)

	// (b) The agent crashes and comes back: it adopts the pod and its
	// mount; then the pod is replaced on the same node.
	h.Kill()
	h.Start()
	h.WaitReady()
	readBack("(b) after the agent restart", pod)
	if _, err := c.Admin.Delete(ctx, api.KeyOf(pod), client.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	pod = waitKV("v2", pod)
	readBack("(b) after the pod's replacement", pod)
	if mps, _ := mountsUnder(volDir); len(mps) != 1 {
		t.Fatalf("mounts under %s: %v, want the volume's one", volDir, mps)
	}

	// (c) The server crashes and comes back.
	c.KillServer()
	if p := c.ReadyPod("store", "kv-0"); p == nil || p.Metadata.UID != pod.Metadata.UID {
		t.Fatalf("after the server restart kv-0 is %v, want %s still ready", p, pod.Metadata.UID)
	}
	readBack("(c) after the server restart", pod)

	// (d) The app is deleted by a commit: the volume stays, listed.
	repo.Commit("remove kv", map[string]string{"kv.cue": ""})
	c.WaitFor("the kv pod gone", 2*time.Minute, func() bool { return len(c.AppPods("store")) == 0 })
	out, err := c.CLI(c.AdminConfigPath(), "get", "volumes", "--app", "store")
	if err != nil || !strings.Contains(out, "kv-0-data") || !strings.Contains(out, h.Name) {
		t.Fatalf("capstan get volumes after the app's deletion: %v\n%s", err, out)
	}
	// Its node reported the capacity it holds, shown beside the request.
	if !strings.Contains(out, "CAPACITY") || strings.Contains(out, "<pending>") || strings.Contains(out, "(") {
		t.Fatalf("capstan get volumes: want the capacity the node reports, no growth pending:\n%s", out)
	}
	repo.Commit("kv back", map[string]string{"kv.cue": kvApp(v2)})
	pod = waitKV("v2", nil)
	readBack("(d) after the app came back", pod)

	// Only the explicit command removes it: refused while its replica
	// runs, done once the app is gone; the agent then removes the data.
	if out, err := c.CLI(c.AdminConfigPath(), "delete", "volume", "store/kv-0-data"); err == nil || !strings.Contains(out, "still wants that replica") {
		t.Fatalf("delete volume with kv-0 running: %v\n%s; want it refused", err, out)
	}
	repo.Commit("remove kv again", map[string]string{"kv.cue": ""})
	c.WaitFor("the kv pod gone", 2*time.Minute, func() bool { return len(c.AppPods("store")) == 0 })
	if out, err := c.CLI(c.AdminConfigPath(), "delete", "volume", "store/kv-0-data"); err != nil {
		t.Fatalf("delete volume: %v\n%s", err, out)
	}
	c.WaitFor("the volume's data removed from "+h.Name+", then its object", time.Minute, func() bool {
		_, err := os.Stat(volDir)
		mps, _ := mountsUnder(volDir)
		_, gerr := c.Admin.Get(ctx, api.Key{Kind: api.KindVolume, App: "store", Name: "kv-0-data"})
		return os.IsNotExist(err) && len(mps) == 0 && client.IsNotFound(gerr)
	})
}

// TestOrderedGroup deploys an ordered group of 3: its replicas db-0, db-1,
// db-2 start in order, each Ready before the next is made; each answers
// in DNS as db-N.db.APP.svc.cluster.local; a rolling update replaces them
// from db-2 down to db-0, each new one Ready before the next old one goes;
// afterwards the names are the same and DNS answers with the new pods.
func TestOrderedGroup(t *testing.T) {
	const app = "ord"
	c := New(t, Options{Hosts: 1})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	// Record, from a watch, when each pod appears and when each starts to
	// terminate, with the readiness of every replica at that moment.
	var mu sync.Mutex
	var log []string
	inf := client.NewInformer(c.Admin, api.KindPod, client.ListOptions{App: app}, nil)
	seenTerm := map[string]bool{}
	readyNames := func() string {
		var names []string
		for _, o := range inf.List() {
			p := o.(*api.Pod)
			if api.IsPodReady(p) && !api.Terminating(p) {
				names = append(names, p.Metadata.Name)
			}
		}
		slices.Sort(names)
		return strings.Join(names, ",")
	}
	note := func(o api.Object) {
		p := o.(*api.Pod)
		mu.Lock()
		defer mu.Unlock()
		if api.Terminating(p) && !seenTerm[p.Metadata.UID] {
			seenTerm[p.Metadata.UID] = true
			log = append(log, fmt.Sprintf("delete %s (ready: %s)", p.Metadata.Name, readyNames()))
		}
	}
	inf.AddHandler(client.Handler{
		OnAdd: func(o api.Object) {
			mu.Lock()
			log = append(log, fmt.Sprintf("create %s (ready: %s)", o.Meta().Name, readyNames()))
			mu.Unlock()
		},
		OnUpdate: func(_, o api.Object) { note(o) },
	})
	go func() { _ = inf.Start(ctx) }()
	if err := inf.WaitForSync(ctx); err != nil {
		t.Fatal(err)
	}

	svc := api.KindService.New().(*api.Service)
	svc.Metadata.Name, svc.Metadata.App = "db", app
	svc.Spec.Selector = map[string]string{api.LabelWorkload: "db"}
	svc.Spec.Ports = []api.ServicePort{{Name: "http", Port: 80, TargetPort: api.FromInt(8080)}}
	if _, err := c.Admin.Create(ctx, svc); err != nil {
		t.Fatal(err)
	}
	w := api.KindWorkload.New().(*api.Workload)
	w.Metadata.Name, w.Metadata.App = "db", app
	w.Spec.Replicas, w.Spec.Ordered = 3, true
	w.Spec.Template.Labels = map[string]string{api.LabelWorkload: "db"}
	w.Spec.Template.TerminationGracePeriodSeconds = new(int64(2))
	w.Spec.Template.Containers = []api.Container{{
		Name: "echo", Image: c.Image, Env: []api.EnvVar{{Name: "ROUND", Value: "1"}},
		Ports:     []api.ContainerPort{{Name: "http", Port: 8080}},
		Readiness: &api.Probe{HTTP: &api.HTTPProbe{Path: "/healthz", Port: api.FromInt(8080)}, PeriodSeconds: 1, FailureThreshold: 1},
	}}
	if _, err := c.Admin.Create(ctx, w); err != nil {
		t.Fatal(err)
	}
	names := []string{"db-0", "db-1", "db-2"}
	waitAll := func(round string) map[string]*api.Pod {
		t.Helper()
		got := map[string]*api.Pod{}
		c.WaitFor("db-0..2 ready on round "+round, 3*time.Minute, func() bool {
			for _, n := range names {
				p := c.ReadyPod(app, n)
				if p == nil || p.Spec.Containers[0].Env[0].Value != round {
					return false
				}
				got[n] = p
			}
			return len(c.AppPods(app)) == 3
		})
		return got
	}
	checkDNS := func(pods map[string]*api.Pod) {
		t.Helper()
		for _, n := range names {
			name := n + ".db." + app + ".svc.cluster.local"
			var got []string
			var err error
			c.WaitFor("DNS "+name, 30*time.Second, func() bool {
				got, err = c.LookupA(pods["db-0"], c.Hosts[0].Address+":53", name)
				return err == nil && slices.Equal(got, []string{pods[n].Status.PodIP})
			})
		}
	}
	first := waitAll("1")
	checkDNS(first)

	o, err := c.Admin.Get(ctx, api.KeyOf(w))
	if err != nil {
		t.Fatal(err)
	}
	w = o.(*api.Workload)
	w.Spec.Template.Containers[0].Env[0].Value = "2"
	if _, err := c.Admin.Update(ctx, w); err != nil {
		t.Fatal(err)
	}
	second := waitAll("2")
	for _, n := range names {
		if second[n].Metadata.UID == first[n].Metadata.UID {
			t.Fatalf("%s was not replaced", n)
		}
	}
	checkDNS(second)

	mu.Lock()
	got := strings.Join(log, "\n")
	mu.Unlock()
	want := strings.Join([]string{
		"create db-0 (ready: )",
		"create db-1 (ready: db-0)",
		"create db-2 (ready: db-0,db-1)",
		"delete db-2 (ready: db-0,db-1)",
		"create db-2 (ready: db-0,db-1)",
		"delete db-1 (ready: db-0,db-2)",
		"create db-1 (ready: db-0,db-2)",
		"delete db-0 (ready: db-1,db-2)",
		"create db-0 (ready: db-1,db-2)",
	}, "\n")
	if got != want {
		t.Fatalf("order of creations and deletions:\n%s\nwant:\n%s", got, want)
	}
}

// TestVolumeNodeDies: when the node holding a replica's volume dies, the
// replica is evicted and stays Pending, not started empty elsewhere, and
// `capstan describe` says why; the volume cannot be deleted while its node
// is down, except with --force, after which the replica starts on the
// other node on a new empty volume. When the dead node comes back, its
// agent keeps the old data (it never saw the deletion) and reports it as
// orphaned until an operator removes it by hand.
func TestVolumeNodeDies(t *testing.T) {
	const app = "vol"
	c := New(t, Options{Hosts: 2, GracePeriod: 6 * time.Second, EvictionTimeout: 10 * time.Second})
	ctx := context.Background()
	w := api.KindWorkload.New().(*api.Workload)
	w.Metadata.Name, w.Metadata.App = "db", app
	w.Spec.Replicas, w.Spec.Ordered = 1, true
	w.Spec.Template.Labels = map[string]string{api.LabelWorkload: "db"}
	w.Spec.Template.TerminationGracePeriodSeconds = new(int64(2))
	w.Spec.Template.Volumes = []api.Volume{{Name: "data", Persistent: &api.PersistentSource{Size: api.MustParseQuantity("16Mi")}}}
	w.Spec.Template.Containers = []api.Container{{
		Name: "echo", Image: c.Image,
		Ports:        []api.ContainerPort{{Name: "http", Port: 8080}},
		Readiness:    &api.Probe{HTTP: &api.HTTPProbe{Path: "/healthz", Port: api.FromInt(8080)}, PeriodSeconds: 1, FailureThreshold: 1},
		VolumeMounts: []api.VolumeMount{{Name: "data", MountPath: "/data"}},
	}}
	if _, err := c.Admin.Create(ctx, w); err != nil {
		t.Fatal(err)
	}
	var first *api.Pod
	c.WaitFor("db-0 ready", 2*time.Minute, func() bool { first = c.ReadyPod(app, "db-0"); return first != nil })
	var dead, other *Host
	for _, h := range c.Hosts {
		if h.Name == first.Spec.NodeName {
			dead = h
		} else {
			other = h
		}
	}
	volKey := api.Key{Kind: api.KindVolume, App: app, Name: "db-0-data"}
	o, err := c.Admin.Get(ctx, volKey)
	if err != nil {
		t.Fatal(err)
	}
	oldUID := o.Meta().UID
	oldDir := filepath.Join(dead.Dir, "data", "volumes", app, "db-0-data", oldUID)
	if _, err := os.Stat(filepath.Join(oldDir, "disk.img")); err != nil {
		t.Fatalf("the volume's image on %s: %v", dead.Name, err)
	}

	dead.Kill()
	want := "persistent volume db-0-data is on node " + dead.Name
	c.WaitFor("db-0 evicted and pending on its volume", 2*time.Minute, func() bool {
		o, err := c.Admin.Get(ctx, api.Key{Kind: api.KindPod, App: app, Name: "db-0"})
		if err != nil {
			return false
		}
		p := o.(*api.Pod)
		cond := api.FindCondition(p.Status.Conditions, api.PodScheduled)
		return p.Metadata.UID != first.Metadata.UID && p.Spec.NodeName == "" && cond != nil && strings.Contains(cond.Message, want)
	})
	out, err := c.CLI(c.AdminConfigPath(), "describe", "pod", app+"/db-0")
	if err != nil || !strings.Contains(out, "persistent volume on another node") || !strings.Contains(out, want) {
		t.Fatalf("capstan describe pod: %v\n%s", err, out)
	}
	if out, err := c.CLI(c.AdminConfigPath(), "delete", "volume", app+"/db-0-data"); err == nil || !strings.Contains(out, "not ready") {
		t.Fatalf("delete volume on a dead node without --force: %v\n%s", err, out)
	}
	if out, err := c.CLI(c.AdminConfigPath(), "delete", "volume", app+"/db-0-data", "--force"); err != nil {
		t.Fatalf("delete volume --force: %v\n%s", err, out)
	}
	var moved *api.Pod
	c.WaitFor("db-0 ready on "+other.Name, 2*time.Minute, func() bool {
		moved = c.ReadyPod(app, "db-0")
		return moved != nil && moved.Spec.NodeName == other.Name
	})
	o, err = c.Admin.Get(ctx, volKey)
	if err != nil || o.Meta().UID == oldUID || o.(*api.PersistentVolume).Spec.NodeName != other.Name {
		t.Fatalf("the new volume: %+v, %v; want a new one on %s", o, err, other.Name)
	}

	// The old node comes back: it never saw the deletion, so it keeps the
	// old data and reports it, until an operator removes it by hand.
	dead.Start()
	dead.WaitReady()
	orphaned := func() *api.Condition {
		n, ok := c.Node(dead.Name)
		if !ok {
			return nil
		}
		return api.FindCondition(n.Status.Conditions, api.NodeVolumeDataOrphaned)
	}
	c.WaitFor("the old data reported as orphaned on "+dead.Name, time.Minute, func() bool {
		cond := orphaned()
		return cond != nil && cond.Status == api.ConditionTrue && strings.Contains(cond.Message, oldUID)
	})
	if _, err := os.Stat(filepath.Join(oldDir, "disk.img")); err != nil {
		t.Fatalf("the old data on %s, whose deletion it never saw: %v; want it kept", dead.Name, err)
	}
	if out, err := c.CLI(c.AdminConfigPath(), "get", "nodes"); err != nil || !strings.Contains(out, "Ready,OrphanedVolumes") {
		t.Fatalf("capstan get nodes: want %s shown with orphaned volumes: %v\n%s", dead.Name, err, out)
	}
	if p := c.ReadyPod(app, "db-0"); p == nil || p.Metadata.UID != moved.Metadata.UID {
		t.Fatalf("db-0 after %s came back: %v, want %s still running", dead.Name, p, moved.Metadata.UID)
	}
	// Removed on purpose, as docs/volumes.md says.
	if err := unix.Unmount(filepath.Join(oldDir, "mnt"), 0); err != nil && !errors.Is(err, unix.EINVAL) {
		t.Fatal(err)
	}
	if err := os.RemoveAll(oldDir); err != nil {
		t.Fatal(err)
	}
	c.WaitFor("no orphaned data reported on "+dead.Name, 2*time.Minute, func() bool {
		cond := orphaned()
		return cond != nil && cond.Status == api.ConditionFalse
	})
}

// TestVolumeKeptAcrossScaleAndRename walks what a team does to a
// replica's volume by commits: scaled down, the removed replica's volume
// stays (as a StatefulSet's claims do) and scaling up again finds its
// data; the volume renamed by a typo gives the replicas new, empty
// volumes and keeps the old ones, and reverting the commit finds the
// data again.
func TestVolumeKeptAcrossScaleAndRename(t *testing.T) {
	repo := NewGitRepo(t, map[string]string{"keep.cue": keepApps})
	c := New(t, Options{Hosts: 1, ServerArgs: []string{"--repo", repo.Dir}})
	v1 := c.PushExample("kv", "v1", "VERSION=v1")
	ctx := context.Background()

	// replica waits for a Ready kv-N other than the pod old, mounting
	// volume vol.
	replica := func(n int, vol string, old *api.Pod) *api.Pod {
		t.Helper()
		var p *api.Pod
		c.WaitFor(fmt.Sprintf("kv-%d ready on volume %s", n, vol), 3*time.Minute, func() bool {
			p = c.ReadyPod("store", fmt.Sprintf("kv-%d", n))
			return p != nil && (old == nil || p.Metadata.UID != old.Metadata.UID) &&
				slices.ContainsFunc(p.Spec.Volumes, func(v api.Volume) bool { return v.Name == vol })
		})
		return p
	}
	get := func(p *api.Pod) string {
		t.Helper()
		code, body, _, err := c.KV(p, "GET", "greeting", "")
		if err != nil {
			t.Fatalf("GET greeting from %s: %v", p.Metadata.Name, err)
		}
		return fmt.Sprintf("%d %s", code, strings.TrimSpace(body))
	}
	put := func(p *api.Pod, value string) {
		t.Helper()
		if code, _, _, err := c.KV(p, "PUT", "greeting", value); err != nil || code != 204 {
			t.Fatalf("PUT greeting on %s = %d, %v", p.Metadata.Name, code, err)
		}
	}
	volumeExists := func(name string) bool {
		_, err := c.Admin.Get(ctx, api.Key{Kind: api.KindVolume, App: "store", Name: name})
		return err == nil
	}

	repo.Commit("kv, 2 replicas", map[string]string{"kv.cue": kvGroup(v1, 2, "data")})
	replica(0, "data", nil)
	kv1 := replica(1, "data", nil)
	put(kv1, "hello")

	repo.Commit("scale kv to 1", map[string]string{"kv.cue": kvGroup(v1, 1, "data")})
	c.WaitFor("kv-1 gone", 2*time.Minute, func() bool { return len(c.AppPods("store")) == 1 })
	if !volumeExists("kv-1-data") {
		t.Fatal("scaled down, the volume kv-1-data of the removed replica is gone; want it kept")
	}
	repo.Commit("scale kv to 2", map[string]string{"kv.cue": kvGroup(v1, 2, "data")})
	kv1 = replica(1, "data", kv1)
	if got := get(kv1); got != "200 hello" {
		t.Fatalf("scaled up again, kv-1 answers %q; want its data back, 200 hello", got)
	}

	repo.Commit("rename the volume (a typo)", map[string]string{"kv.cue": kvGroup(v1, 2, "dta")})
	replica(0, "dta", nil)
	kv1 = replica(1, "dta", kv1)
	if got := get(kv1); got != "404 no such key" {
		t.Fatalf("on the renamed volume kv-1 answers %q; want a new, empty volume", got)
	}
	put(kv1, "typo")
	for _, name := range []string{"kv-0-data", "kv-1-data", "kv-1-dta"} {
		if !volumeExists(name) {
			t.Fatalf("volume %s gone after the rename; want the old ones kept and the new one made", name)
		}
	}
	repo.Commit("Revert the rename", map[string]string{"kv.cue": kvGroup(v1, 2, "data")})
	replica(0, "data", nil)
	kv1 = replica(1, "data", kv1)
	if got := get(kv1); got != "200 hello" {
		t.Fatalf("after the revert kv-1 answers %q; want its data back, 200 hello", got)
	}
}
