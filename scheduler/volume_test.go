package scheduler

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/capstanhq/capstan/apiserver/api"
	"github.com/capstanhq/capstan/apiserver/apiservertest"
)

// makeReplica returns replica name of ordered workload "db" with the given
// persistent volumes (reclaim Retain, or Delete for names ending in "!").
func makeReplica(name string, volumes ...string) *api.Pod {
	p := makePod("shop", name, "100m", "64Mi", "db")
	for _, v := range volumes {
		reclaim := api.ReclaimRetain
		if n, ok := strings.CutSuffix(v, "!"); ok {
			v, reclaim = n, api.ReclaimDelete
		}
		p.Spec.Volumes = append(p.Spec.Volumes, api.Volume{Name: v,
			Persistent: &api.PersistentSource{Size: api.MustParseQuantity("1Gi"), Reclaim: reclaim}})
	}
	return p
}

func TestScheduleVolumePinsReplica(t *testing.T) {
	snap := NewSnapshot()
	for _, n := range []string{"n1", "n2", "n3"} {
		snap.AddNode(makeNode(n, "4", "8Gi", 110))
	}
	pod := makeReplica("db-0", "data", "scratch")
	pod.Spec.Volumes[1].Persistent = nil

	// No volume yet: any node.
	if res, err := Schedule(pod, snap); err != nil || res.Feasible != 3 {
		t.Fatalf("no volume: %+v, %v; want 3 feasible nodes", res, err)
	}
	snap.SetVolume(makeVolume("shop", "db-0-data", "n2", "1Gi", "1Gi"))
	res, err := Schedule(pod, snap)
	if err != nil || res.NodeName != "n2" || res.Feasible != 1 {
		t.Fatalf("volume on n2: %+v, %v; want n2 alone", res, err)
	}

	// Its node dies: the replica waits, and says why.
	down := makeNode("n2", "4", "8Gi", 110)
	down.Status.Conditions[0].Status = api.ConditionFalse
	snap.UpdateNode(down)
	res, err = Schedule(pod, snap)
	if !errors.Is(err, ErrUnschedulable) {
		t.Fatalf("volume on a dead node: %+v, %v; want unschedulable", res, err)
	}
	want := "0/3 nodes available: 2 persistent volume on another node, 1 not ready (persistent volume db-0-data is on node n2, " +
		"which is not ready: the replica starts there again when the node is back, or `capstan delete volume shop/db-0-data --force` gives the replica a new empty volume elsewhere)"
	if res.Message != want {
		t.Fatalf("message %q, want %q", res.Message, want)
	}
	// Back, but cordoned (drained for maintenance): uncordon it.
	cordoned := makeNode("n2", "4", "8Gi", 110)
	cordoned.Spec.Unschedulable = true
	snap.UpdateNode(cordoned)
	res, _ = Schedule(pod, snap)
	want = "0/3 nodes available: 2 persistent volume on another node, 1 cordoned (persistent volume db-0-data is on node n2, " +
		"which is cordoned: `capstan uncordon n2` lets the replica start there again on its data, or `capstan delete volume shop/db-0-data --force` gives the replica a new empty volume elsewhere)"
	if res.Message != want {
		t.Fatalf("message %q, want %q", res.Message, want)
	}
	// Deleted from the cluster: only --force helps.
	snap.RemoveNode("n2")
	res, _ = Schedule(pod, snap)
	want = "0/2 nodes available: 2 persistent volume on another node (persistent volume db-0-data is on node n2, " +
		"which is no longer in the cluster: `capstan delete volume shop/db-0-data --force` gives the replica a new empty volume elsewhere)"
	if res.Message != want {
		t.Fatalf("message %q, want %q", res.Message, want)
	}
	snap.AddNode(down)

	// Another replica's volume does not pin this one.
	if res, err := Schedule(makeReplica("db-1", "data"), snap); err != nil || res.Feasible != 2 {
		t.Fatalf("db-1: %+v, %v; want the 2 ready nodes", res, err)
	}
	// Volumes on two nodes: nowhere.
	snap.SetVolume(makeVolume("shop", "db-1-data", "n1", "1Gi", "1Gi"))
	snap.SetVolume(makeVolume("shop", "db-1-logs", "n3", "1Gi", "1Gi"))
	if _, err := Schedule(makeReplica("db-1", "data", "logs"), snap); !errors.Is(err, ErrUnschedulable) {
		t.Fatalf("volumes on n1 and n3: %v, want unschedulable", err)
	}
	// The volume removed (--force): the replica runs elsewhere.
	snap.RemoveVolume("shop", "db-0-data")
	if res, err := Schedule(pod, snap); err != nil || res.NodeName == "n2" {
		t.Fatalf("volume removed: %+v, %v; want a ready node", res, err)
	}
}

func TestMissingVolumes(t *testing.T) {
	snap := NewSnapshot()
	snap.SetVolume(makeVolume("shop", "db-2-data", "n1", "1Gi", "1Gi"))
	vols, err := snap.missingVolumes(makeReplica("db-2", "data", "logs!"), "n1")
	if err != nil || len(vols) != 1 {
		t.Fatalf("missingVolumes = %v, %v; want logs alone", vols, err)
	}
	v := vols[0]
	if v.Metadata.Name != "db-2-logs" || v.Spec.Ordinal != 2 || v.Spec.Workload != "db" || v.Spec.NodeName != "n1" ||
		v.Spec.Reclaim != api.ReclaimDelete || v.Metadata.Owner == nil || v.Metadata.Owner.UID != "uid-db" {
		t.Fatalf("volume %+v %+v", v.Metadata, v.Spec)
	}
	if err := api.Validate(v); err != nil {
		t.Fatalf("the scheduler's volume does not validate: %v", err)
	}
	if vols, _ := snap.missingVolumes(makeReplica("db-3", "data"), "n1"); vols[0].Metadata.Owner != nil {
		t.Fatalf("a retained volume has owner %+v; it must outlive its workload", vols[0].Metadata.Owner)
	}
	if _, err := snap.missingVolumes(makeReplica("db-x", "data"), "n1"); err == nil {
		t.Fatal("a pod not named WORKLOAD-N got a volume")
	}
}

// TestSchedulerBindsVolumes runs the scheduler against a real API server:
// a replica's first binding creates its volumes on its node, and a
// replica whose volume exists is bound where the volume is.
func TestSchedulerBindsVolumes(t *testing.T) {
	cl := apiservertest.Start(t, apiservertest.Options{})
	c := cl.Client
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	for _, name := range []string{"n1", "n2", "n3"} {
		if _, err := c.Create(ctx, makeNode(name, "4", "8Gi", 110)); err != nil {
			t.Fatal(err)
		}
	}
	// db-1's volume already lives on n3 (made by an earlier pod).
	pinned := api.KindVolume.New().(*api.PersistentVolume)
	pinned.Metadata.App, pinned.Metadata.Name = "shop", "db-1-data"
	pinned.Spec = api.VolumeSpec{Workload: "db", Volume: "data", Ordinal: 1, Size: api.MustParseQuantity("1Gi"), NodeName: "n3"}
	if _, err := c.Create(ctx, pinned); err != nil {
		t.Fatal(err)
	}
	runScheduler(t, ctx, c, prometheus.NewRegistry())

	for _, p := range []*api.Pod{makeReplica("db-0", "data"), makeReplica("db-1", "data")} {
		if _, err := c.Create(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	p0 := waitScheduled(t, ctx, c, "db-0", api.ConditionTrue)
	p1 := waitScheduled(t, ctx, c, "db-1", api.ConditionTrue)
	if p1.Spec.NodeName != "n3" {
		t.Fatalf("db-1 bound to %s, want n3 where its volume is", p1.Spec.NodeName)
	}
	o, err := c.Get(ctx, api.Key{Kind: api.KindVolume, App: "shop", Name: "db-0-data"})
	if err != nil {
		t.Fatalf("db-0's volume: %v", err)
	}
	if v := o.(*api.PersistentVolume); v.Spec.NodeName != p0.Spec.NodeName || v.Spec.Size.String() != "1Gi" {
		t.Fatalf("db-0's volume %+v, want it on %s with 1Gi", v.Spec, p0.Spec.NodeName)
	}
}

// TestSchedulerVolumeRoom runs the scheduler against a real API server:
// a replica's new volume goes to a node whose agent reports room for it
// (not to the first by name, where it would wait on a full disk), the
// volumes bound to a node and not made yet count against its room, a
// replica that fits nowhere says why in its Scheduled condition, and it
// is bound once a node reports room.
func TestSchedulerVolumeRoom(t *testing.T) {
	cl := apiservertest.Start(t, apiservertest.Options{})
	c := cl.Client
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	withDisk := func(name, free string) *api.Node {
		n := makeNode(name, "4", "8Gi", 110)
		n.Status.VolumeStorage = &api.NodeVolumeStorage{Capacity: api.MustParseQuantity("10Gi"), Available: api.MustParseQuantity(free)}
		return n
	}
	for _, n := range []*api.Node{withDisk("n1", "512Mi"), withDisk("n2", "1536Mi")} {
		if _, err := c.Create(ctx, n); err != nil {
			t.Fatal(err)
		}
	}
	runScheduler(t, ctx, c, prometheus.NewRegistry())

	if _, err := c.Create(ctx, makeReplica("db-0", "data")); err != nil {
		t.Fatal(err)
	}
	if p := waitScheduled(t, ctx, c, "db-0", api.ConditionTrue); p.Spec.NodeName != "n2" {
		t.Fatalf("db-0 (a 1Gi volume) bound to %s, want n2, the only node with room", p.Spec.NodeName)
	}
	// n2 still reports 1536Mi free (its agent has not made db-0-data
	// yet): 512Mi of it is left for db-1's 1Gi.
	if _, err := c.Create(ctx, makeReplica("db-1", "data")); err != nil {
		t.Fatal(err)
	}
	p := waitScheduled(t, ctx, c, "db-1", api.ConditionFalse)
	want := "0/2 nodes available: 2 insufficient disk for volumes; disk: the pod's new persistent volumes take 1Gi, at most 512Mi is free for volumes (on n1); " +
		"lower the volume's size, free room on a node's disk (AGENT_DATA_DIR/volumes), or add a node"
	if got := api.FindCondition(p.Status.Conditions, api.PodScheduled).Message; got != want {
		t.Fatalf("db-1's Scheduled message\n%q, want\n%q", got, want)
	}
	// Room freed on n1: its agent reports it, and db-1 goes there.
	o, err := c.Get(ctx, api.Key{Kind: api.KindNode, Name: "n1"})
	if err != nil {
		t.Fatal(err)
	}
	n1 := o.(*api.Node)
	n1.Status.VolumeStorage.Available = api.MustParseQuantity("4Gi")
	if _, err := c.UpdateStatus(ctx, n1); err != nil {
		t.Fatal(err)
	}
	if p := waitScheduled(t, ctx, c, "db-1", api.ConditionTrue); p.Spec.NodeName != "n1" {
		t.Fatalf("db-1 bound to %s, want n1, which has room now", p.Spec.NodeName)
	}
}

// TestVolumeRoomProperty drives the snapshot's volumes through random
// changes (made, grown, moved by a delete and a new object, removed,
// placed by Schedule) and checks after each that the room it counts
// against every node is the sum a model keeps by recomputing, and that
// no placement puts more new volume on a node than it reports free.
func TestVolumeRoomProperty(t *testing.T) {
	const mi = 1 << 20
	rng := rand.New(rand.NewPCG(7, 11))
	snap := NewSnapshot()
	nodes := []string{"n1", "n2", "n3"}
	free := map[string]int64{}
	for _, n := range nodes {
		node := makeNode(n, "64", "256Gi", 1000)
		free[n] = int64(rng.IntN(64)) * 64 * mi
		node.Status.VolumeStorage = &api.NodeVolumeStorage{Capacity: api.NewQuantity(8<<30, api.BinarySI), Available: api.NewQuantity(free[n], api.BinarySI)}
		snap.AddNode(node)
	}
	model := map[string]*api.PersistentVolume{} // app/name -> volume
	pending := func(node string) (sum int64) {
		for _, v := range model {
			if v.Spec.NodeName == node {
				sum += max(v.Spec.Size.Value()-v.Status.Capacity.Value(), 0)
			}
		}
		return sum
	}
	size := func() string { return fmt.Sprintf("%dMi", 64*(1+rng.IntN(16))) }
	placed, refused := 0, 0
	for step := range 2000 {
		name := fmt.Sprintf("db-%d-data", rng.IntN(12))
		switch rng.IntN(4) {
		case 0: // made, or changed (its node may make or grow it)
			v := makeVolume("shop", name, nodes[rng.IntN(len(nodes))], size(), "")
			if rng.IntN(2) == 0 {
				v.Status.Capacity = api.MustParseQuantity(size())
			}
			if old := model[name]; old != nil {
				v.Spec.NodeName = old.Spec.NodeName // a volume never moves
			}
			model[name] = v
			snap.SetVolume(v)
		case 1:
			delete(model, name)
			snap.RemoveVolume("shop", name)
		default: // a replica placed, its new volume counted as created
			pod := makeReplica(strings.TrimSuffix(name, "-data"))
			pod.Spec.Volumes = []api.Volume{{Name: "data", Persistent: &api.PersistentSource{Size: api.MustParseQuantity(size())}}}
			res, err := Schedule(pod, snap)
			if err != nil {
				refused++
				continue
			}
			if model[name] == nil {
				placed++
				if room := free[res.NodeName] - pending(res.NodeName); pod.Spec.Volumes[0].Persistent.Size.Value() > room {
					t.Fatalf("step %d: %s (%s) placed on %s with %d bytes of room", step, name, pod.Spec.Volumes[0].Persistent.Size, res.NodeName, room)
				}
				v := makeVolume("shop", name, res.NodeName, pod.Spec.Volumes[0].Persistent.Size.String(), "")
				model[name] = v
				snap.SetVolume(v)
			} else if res.NodeName != model[name].Spec.NodeName {
				t.Fatalf("step %d: %s placed on %s, its volume is on %s", step, name, res.NodeName, model[name].Spec.NodeName)
			}
		}
		for _, n := range nodes {
			if got, _ := snap.volumeFree(snap.Node(n)); got != free[n]-pending(n) {
				t.Fatalf("step %d: node %s: snapshot counts %d bytes free for volumes, the model %d", step, n, got, free[n]-pending(n))
			}
		}
	}
	if placed < 20 || refused < 20 {
		t.Fatalf("%d new volumes placed, %d refused: the walk does not exercise both", placed, refused)
	}
}
