package agent

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/capstanhq/capstan/apiserver/api"
	"github.com/capstanhq/capstan/apiserver/apiservertest"
	"github.com/capstanhq/capstan/apiserver/client"
	"github.com/capstanhq/capstan/internal/testenv"
)

// volumeAgent is an agent of node n1, with its node's token, its Node
// registered Ready, and its informers of volumes and pods started unless
// listed is false (the caller starts them).
func volumeAgent(t *testing.T, c *apiservertest.Cluster, listed bool) *Agent {
	t.Helper()
	ctx := t.Context()
	nc := c.Token(t, "node:n1")
	a, err := New(Options{Client: nc, NodeName: "n1", Address: "192.0.2.7", DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	n := api.KindNode.New().(*api.Node)
	n.Metadata.Name = "n1"
	n.Status.Conditions = []api.Condition{{Type: api.NodeReady, Status: api.ConditionTrue, LastTransitionTime: time.Unix(1, 0)}}
	if _, err := nc.Create(ctx, n); err != nil {
		t.Fatal(err)
	}
	a.volumes = client.NewInformer(nc, api.KindVolume, client.ListOptions{}, nil)
	a.pods = client.NewInformer(nc, api.KindPod, client.ListOptions{Node: "n1"}, nil)
	note := func(o api.Object) { _ = a.volDirs.noteDeletion(o, "n1") }
	a.volumes.AddHandler(client.Handler{OnDelete: note, OnUpdate: func(_, o api.Object) { note(o) }})
	if listed {
		startInformers(t, a.volumes, a.pods)
	}
	return a
}

func startInformers(t *testing.T, infs ...*client.Informer) {
	t.Helper()
	for _, i := range infs {
		go func() { _ = i.Start(t.Context()) }()
		if err := i.WaitForSync(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
}

// makeVolumeDir makes a volume's directory with an image of its own (a
// plain file: collection never mounts) and returns it.
func makeVolumeDir(t *testing.T, a *Agent, d volumeDir) string {
	t.Helper()
	dir := d.path(a.volDirs.root)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "disk.img"), []byte("data"), 0o600); err != nil {
		t.Fatal(err)
	}
	return dir
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// createVolume creates volume NAME-data of replica 0 of workload name in
// app store on node n1, as the scheduler does.
func createVolume(t *testing.T, c *client.Client, name string) *api.PersistentVolume {
	t.Helper()
	v := api.KindVolume.New().(*api.PersistentVolume)
	v.Metadata = api.ObjectMeta{App: "store", Name: api.VolumeName(api.OrdinalPodName(name, 0), "data")}
	v.Spec = api.VolumeSpec{Workload: name, Volume: "data", Size: api.MustParseQuantity("16Mi"), Reclaim: api.ReclaimRetain, NodeName: "n1"}
	o, err := c.Create(t.Context(), v)
	if err != nil {
		t.Fatal(err)
	}
	return o.(*api.PersistentVolume)
}

// createVolumePod creates replica 0 of workload name in app store, on n1,
// with the persistent volume data createVolume makes.
func createVolumePod(t *testing.T, c *client.Client, name string) *api.Pod {
	t.Helper()
	pod := api.KindPod.New().(*api.Pod)
	pod.Metadata = api.ObjectMeta{App: "store", Name: api.OrdinalPodName(name, 0)}
	pod.Spec.NodeName = "n1"
	pod.Spec.Containers = []api.Container{{Name: name, Image: "example/" + name + ":v1"}}
	pod.Spec.Volumes = []api.Volume{{Name: "data", Persistent: &api.PersistentSource{Size: api.MustParseQuantity("16Mi")}}}
	if _, err := c.Create(t.Context(), pod); err != nil {
		t.Fatal(err)
	}
	return pod
}

// nodeCondition returns n1's VolumeDataOrphaned condition.
func nodeCondition(t *testing.T, c *client.Client) *api.Condition {
	t.Helper()
	o, err := c.Get(t.Context(), api.Key{Kind: api.KindNode, Name: "n1"})
	if err != nil {
		t.Fatal(err)
	}
	return api.FindCondition(o.(*api.Node).Status.Conditions, api.NodeVolumeDataOrphaned)
}

// Data whose Volume object is gone without a deletion seen (a restore
// of a backup made before the volume, a wrong write) is kept, and the
// node says so in its VolumeDataOrphaned condition until an operator
// removes it. Before, the agent removed it as soon as no pod named it.
func TestOrphanedVolumeDataKept(t *testing.T) {
	c := apiservertest.Start(t, apiservertest.Options{})
	a := volumeAgent(t, c, true)
	orphan := makeVolumeDir(t, a, volumeDir{"store", "kv-0-data", "uid-gone"})
	live := createVolume(t, c.Client, "db")
	liveDir := makeVolumeDir(t, a, volumeDir{"store", "db-0-data", live.Metadata.UID})
	testenv.Eventually(t, time.Minute, "the live volume listed", func() bool { _, ok := a.volumes.Get("store/db-0-data"); return ok })

	a.collectVolumes(t.Context())
	if !exists(filepath.Join(orphan, "disk.img")) {
		t.Fatalf("the data of store/kv-0-data, whose object is gone without a deletion, was removed")
	}
	if !exists(liveDir) {
		t.Fatalf("the data of the live volume store/db-0-data was removed")
	}
	cond := nodeCondition(t, c.Client)
	if cond == nil || cond.Status != api.ConditionTrue {
		t.Fatalf("node condition %+v: want VolumeDataOrphaned True", cond)
	}
	for _, want := range []string{"1 volume kept", "store/kv-0-data (uid uid-gone)", "adopts it", "rm -r DIR"} {
		if !strings.Contains(cond.Message, want) {
			t.Errorf("condition message lacks %q: %s", want, cond.Message)
		}
	}
	if strings.Contains(cond.Message, "db-0-data") {
		t.Errorf("condition names the live volume: %s", cond.Message)
	}

	// Removed on purpose, the documented way: no longer reported.
	if err := os.RemoveAll(orphan); err != nil {
		t.Fatal(err)
	}
	a.collectVolumes(t.Context())
	if cond := nodeCondition(t, c.Client); cond == nil || cond.Status != api.ConditionFalse {
		t.Fatalf("node condition %+v after the data's removal: want False", cond)
	}
}

// `capstan delete volume` marks the volume; its node's agent removes the
// data, then deletes the object (the finalizer cleared), with the node's
// own token. A --force delete, its object gone at once, leaves its proof
// on disk: the data goes once the pod that still names the volume has.
func TestVolumeDeletionRemovesDataThenObject(t *testing.T) {
	c := apiservertest.Start(t, apiservertest.Options{})
	ctx := t.Context()
	a := volumeAgent(t, c, true)
	v := createVolume(t, c.Client, "kv")
	dir := makeVolumeDir(t, a, volumeDir{"store", "kv-0-data", v.Metadata.UID})
	testenv.Eventually(t, time.Minute, "the volume listed", func() bool { _, ok := a.volumes.Get("store/kv-0-data"); return ok })
	a.collectVolumes(ctx)
	if !exists(dir) {
		t.Fatal("a live volume's data was removed")
	}

	o, err := c.Client.Delete(ctx, api.KeyOf(v), client.DeleteOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !api.Terminating(o) {
		t.Fatalf("delete returned %+v: want the volume marked for deletion, kept until its node removed the data", o.Meta())
	}
	if _, err := c.Client.Get(ctx, api.KeyOf(v)); err != nil {
		t.Fatalf("the volume went before its node removed the data: %v", err)
	}
	testenv.Eventually(t, time.Minute, "the data removed, then the object", func() bool {
		a.collectVolumes(ctx)
		_, err := c.Client.Get(ctx, api.KeyOf(v))
		return !exists(dir) && client.IsNotFound(err)
	})
	// The room freed is on the Node at once (the periodic check writes
	// it only once it moved by a step), for replicas waiting for room.
	no, err := c.Client.Get(ctx, api.Key{Kind: api.KindNode, Name: "n1"})
	if err != nil {
		t.Fatal(err)
	}
	if no.(*api.Node).Status.VolumeStorage == nil {
		t.Error("the node's free space for volumes was not written when a volume's data was removed")
	}

	// --force while the replica's pod still names the volume.
	v = createVolume(t, c.Client, "kv")
	dir = makeVolumeDir(t, a, volumeDir{"store", "kv-0-data", v.Metadata.UID})
	pod := createVolumePod(t, c.Client, "kv")
	testenv.Eventually(t, time.Minute, "the volume and the pod listed", func() bool {
		_, ok := a.volumes.Get("store/kv-0-data")
		_, ok2 := a.pods.Get("store/kv-0")
		return ok && ok2
	})
	if _, err := c.Client.Delete(ctx, api.KeyOf(v), client.DeleteOptions{Force: true}); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, time.Minute, "the forced delete seen", func() bool {
		_, ok := a.volumes.Get("store/kv-0-data")
		return !ok
	})
	a.collectVolumes(ctx)
	if !exists(filepath.Join(dir, "disk.img")) {
		t.Fatal("the data went while pod store/kv-0 still names the volume")
	}
	if !exists(filepath.Join(dir, deletedMarker)) {
		t.Fatal("the forced delete left no record of the deletion: its data would be kept as orphaned")
	}
	if _, err := c.Client.Delete(ctx, api.KeyOf(pod), client.DeleteOptions{Force: true}); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, time.Minute, "the data removed once the pod is gone", func() bool {
		a.collectVolumes(ctx)
		return !exists(dir)
	})
	if cond := nodeCondition(t, c.Client); cond != nil && cond.Status == api.ConditionTrue {
		t.Fatalf("deleted volumes reported as orphaned: %+v", cond)
	}
}

// A volume made again under the same name on the same node (git sync
// re-creating a group whose Volume objects a restore of an older backup
// lost) gets the data its earlier object left there, and the orphan is
// no longer reported. Before, the data was removed as soon as the object
// was gone, and the replica started on a new, empty volume. Needs root.
func TestRecreatedVolumeAdoptsData(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireBinaries(t, "mkfs.ext4", "mount")
	c := apiservertest.Start(t, apiservertest.Options{})
	ctx := t.Context()
	a := volumeAgent(t, c, true)
	t.Cleanup(func() { _ = unmountVolumes(filepath.Dir(a.volDirs.root)) })
	old := pv("store", "kv-0-data", "uid-before-restore", "n1")
	mnt, err := a.volDirs.ensure(ctx, old)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(mnt, "value"), []byte("kept"), 0o644); err != nil {
		t.Fatal(err)
	}
	// Another orphan of the same volume, older: not the one to adopt; and
	// one whose deletion was seen: removed.
	older := makeVolumeDir(t, a, volumeDir{"store", "kv-0-data", "uid-older"})
	past := time.Now().Add(-time.Hour)
	if err := os.Chtimes(filepath.Join(older, "disk.img"), past, past); err != nil {
		t.Fatal(err)
	}
	deleted := makeVolumeDir(t, a, volumeDir{"store", "kv-0-data", "uid-deleted"})
	if err := a.volDirs.mark(volumeDir{"store", "kv-0-data", "uid-deleted"}); err != nil {
		t.Fatal(err)
	}
	a.collectVolumes(ctx)
	if cond := nodeCondition(t, c.Client); cond == nil || !strings.Contains(cond.Message, "uid-before-restore") || strings.Contains(cond.Message, "uid-deleted") {
		t.Fatalf("condition %+v: want the orphans reported, not the deleted volume", cond)
	}
	if exists(deleted) {
		t.Error("the data of a volume whose deletion was seen was kept")
	}

	v := createVolume(t, c.Client, "kv")
	testenv.Eventually(t, time.Minute, "the new volume listed", func() bool { _, ok := a.volumes.Get("store/kv-0-data"); return ok })
	pod := api.KindPod.New().(*api.Pod)
	pod.Metadata = api.ObjectMeta{App: "store", Name: "kv-0"}
	pod.Spec.NodeName = "n1"
	pod.Spec.Volumes = []api.Volume{{Name: "data", Persistent: &api.PersistentSource{Size: api.MustParseQuantity("16Mi")}}}
	dirs, err := a.volumeMounts(ctx, pod)
	if err != nil {
		t.Fatal(err)
	}
	want := filepath.Join(volumeDir{"store", "kv-0-data", v.Metadata.UID}.path(a.volDirs.root), "mnt")
	if dirs["data"] != want {
		t.Fatalf("mounted at %q, want %q", dirs["data"], want)
	}
	if b, err := os.ReadFile(filepath.Join(want, "value")); err != nil || string(b) != "kept" {
		t.Fatalf("the new volume reads %q, %v: want the data its earlier object left (kept)", b, err)
	}
	if exists(volumeDir{"store", "kv-0-data", "uid-before-restore"}.path(a.volDirs.root)) {
		t.Error("the adopted directory is still under its old UID")
	}
	if !exists(filepath.Join(older, "disk.img")) {
		t.Error("adoption took more than the newest orphan")
	}
	if mps, _ := mountsUnder(a.volDirs.root); len(mps) != 1 || mps[0] != want {
		t.Errorf("mounts %v, want only %s", mps, want)
	}
	o, err := c.Client.Get(ctx, api.KeyOf(v))
	if err != nil {
		t.Fatal(err)
	}
	if got := o.(*api.PersistentVolume).Status.Capacity.Value(); got != 16<<20 {
		t.Errorf("reported capacity %d, want the adopted image's 16Mi", got)
	}
	// Adopted, it is no longer reported; the older orphan still is.
	a.collectVolumes(ctx)
	cond := nodeCondition(t, c.Client)
	if cond == nil || strings.Contains(cond.Message, "uid-before-restore") || !strings.Contains(cond.Message, "uid-older") {
		t.Fatalf("condition %+v: want only the older orphan reported", cond)
	}
}
