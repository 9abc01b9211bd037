package agent

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/capstanhq/capstan/apiserver/api"
	"github.com/capstanhq/capstan/apiserver/apiservertest"
	"github.com/capstanhq/capstan/apiserver/client"
	"github.com/capstanhq/capstan/internal/testenv"
)

func pv(app, name, uid, node string) *api.PersistentVolume {
	v := api.KindVolume.New().(*api.PersistentVolume)
	v.Metadata.App, v.Metadata.Name, v.Metadata.UID = app, name, uid
	v.Spec.NodeName, v.Spec.Size = node, api.MustParseQuantity("16Mi")
	return v
}

// The capacity a node reports for a volume, and why a growth is pending:
// what `capstan get volumes` and `describe volume` show.
func TestVolumeStatus(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	grown := func(size string) *api.PersistentVolume {
		v := pv("shop", "db-0-data", "u0", "n1")
		v.Spec.Workload, v.Spec.Size = "db", api.MustParseQuantity(size)
		v.Status.Capacity = api.MustParseQuantity("16Mi")
		return v
	}
	for _, tc := range []struct {
		name     string
		v        *api.PersistentVolume
		size     int64
		known    bool
		mounted  bool
		growErr  error
		capacity string
		reason   string // of FileSystemResizePending; "" none
		msg      string
	}{
		{name: "not made yet", v: pv("shop", "db-0-data", "u0", "n1"), capacity: "0"},
		{name: "made", v: pv("shop", "db-0-data", "u0", "n1"), size: 16 << 20, known: true, mounted: true, capacity: "16Mi"},
		{name: "raised while unmounted", v: grown("48Mi"), size: 16 << 20, known: true, capacity: "16Mi",
			reason: api.ReasonVolumeNotMounted, msg: "not mounted on node n1: it grows from 16Mi to 48Mi when replica db-0 next starts there"},
		{name: "the growth in place failed", v: grown("48Mi"), known: false, mounted: true, growErr: errors.New("resize2fs: permission denied"), capacity: "16Mi",
			reason: api.ReasonResizeFailed, msg: "growing from 16Mi to 48Mi on node n1 failed; the volume keeps its size and its data, and is grown again on its next change or when next mounted: resize2fs: permission denied"},
		{name: "grown", v: func() *api.PersistentVolume {
			v := grown("48Mi")
			v.Status.Conditions = []api.Condition{{Type: api.VolumeResizePending, Status: api.ConditionTrue, Reason: api.ReasonVolumeNotMounted}}
			return v
		}(), size: 48 << 20, known: true, mounted: true, capacity: "48Mi"},
		{name: "a smaller size asked for later", v: grown("8Mi"), size: 16 << 20, known: true, mounted: true, capacity: "16Mi"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := volumeStatus(tc.v, tc.size, tc.known, tc.mounted, tc.growErr, "n1", now)
			if got := st.Capacity.String(); got != tc.capacity {
				t.Errorf("capacity %s, want %s", got, tc.capacity)
			}
			c := api.FindCondition(st.Conditions, api.VolumeResizePending)
			switch {
			case tc.reason == "" && c != nil:
				t.Errorf("condition %+v, want none", c)
			case tc.reason != "" && (c == nil || c.Status != api.ConditionTrue || c.Reason != tc.reason || c.Message != tc.msg):
				t.Errorf("condition %+v, want %s: %q", c, tc.reason, tc.msg)
			}
		})
	}
}

func TestPlanVolumes(t *testing.T) {
	onDisk := []volumeDir{
		{"shop", "db-0-data", "u0"},     // its object is here: kept
		{"shop", "db-1-data", "old"},    // object gone, no deletion seen: kept, an orphan
		{"shop", "db-1-data", "u1"},     // ...the new object's: kept
		{"shop", "db-2-data", "u2"},     // deletion recorded, object gone, pod still here (--force): kept
		{"shop", "db-3-data", "u3"},     // object gone, no deletion seen: an orphan
		{"shop", "db-4-data", "moved"},  // object says another node: an orphan
		{"shop", "db-5-data", "u5"},     // marked for deletion, no pod: recorded and removed
		{"shop", "db-6-data", "u6"},     // marked for deletion, its pod stopping: recorded, kept
		{"shop", "db-7-data", "forced"}, // deletion recorded, object gone (--force), no pod: removed
	}
	marked := map[volumeDir]bool{{"shop", "db-2-data", "u2"}: true, {"shop", "db-7-data", "forced"}: true}
	deleting := func(v *api.PersistentVolume) *api.PersistentVolume {
		now := time.Unix(1, 0)
		v.Metadata.DeletionRequestedAt = &now
		return v
	}
	v5, v6, v8 := deleting(pv("shop", "db-5-data", "u5", "n1")), deleting(pv("shop", "db-6-data", "u6", "n1")), deleting(pv("shop", "db-8-data", "u8", "n1"))
	vols := []*api.PersistentVolume{pv("shop", "db-0-data", "u0", "n1"), pv("shop", "db-1-data", "u1", "n1"),
		pv("shop", "db-4-data", "moved", "n2"), v8, v6, v5, deleting(pv("shop", "db-9-data", "u9", "n2"))}
	podNaming := func(name string) *api.Pod {
		pod := &api.Pod{}
		pod.Metadata.App, pod.Metadata.Name = "shop", name
		pod.Spec.Volumes = []api.Volume{{Name: "data", Persistent: &api.PersistentSource{}}, {Name: "scratch"}}
		return pod
	}
	got := planVolumes(onDisk, marked, vols, []*api.Pod{podNaming("db-2"), podNaming("db-6")}, "n1")
	want := volumePlan{
		Mark:    []volumeDir{{"shop", "db-5-data", "u5"}, {"shop", "db-6-data", "u6"}},
		Remove:  []volumeDir{{"shop", "db-5-data", "u5"}, {"shop", "db-7-data", "forced"}},
		Finish:  []*api.PersistentVolume{v5, v8}, // db-8: never made here, nothing to remove
		Orphans: []volumeDir{{"shop", "db-1-data", "old"}, {"shop", "db-3-data", "u3"}, {"shop", "db-4-data", "moved"}},
	}
	if !slices.Equal(got.Mark, want.Mark) || !slices.Equal(got.Remove, want.Remove) || !slices.Equal(got.Finish, want.Finish) || !slices.Equal(got.Orphans, want.Orphans) {
		t.Fatalf("plan = %+v\nwant %+v", got, want)
	}
}

// TestVolumeDirs makes a real volume: a loop-mounted ext4 image whose size
// is a hard limit, mounted once however often it is asked for, kept across
// an unmount (an agent restart after `capstan down`), and removed with its
// data. Needs root.
func TestVolumeDirs(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireBinaries(t, "mkfs.ext4", "mount")
	d := &volumeDirs{root: filepath.Join(t.TempDir(), VolumesSubdir)}
	v := pv("shop", "db-0-data", "uid-1", "n1")
	t.Cleanup(func() { _ = unmountVolumes(filepath.Dir(d.root)) })

	mnt, err := d.ensure(t.Context(), v)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(mnt, "value"), []byte("kept"), 0o644); err != nil {
		t.Fatal(err)
	}
	// The size is a limit: 32 MiB do not fit in 16.
	err = os.WriteFile(filepath.Join(mnt, "big"), bytes.Repeat([]byte{1}, 32<<20), 0o644)
	if !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("writing 32 MiB into a 16 MiB volume: %v, want ENOSPC", err)
	}
	_ = os.Remove(filepath.Join(mnt, "big"))
	// Asked again (another container, an agent restart): the same mount.
	if again, err := d.ensure(t.Context(), v); err != nil || again != mnt {
		t.Fatalf("ensure again = %q, %v", again, err)
	}
	mps, _ := mountsUnder(d.root)
	if len(mps) != 1 {
		t.Fatalf("mounts under %s: %v, want one", d.root, mps)
	}
	// Unmounted (capstan down) and mounted again: the data is there.
	if err := unmountVolumes(filepath.Dir(d.root)); err != nil {
		t.Fatal(err)
	}
	if mnt, err = d.ensure(t.Context(), v); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(mnt, "value")); err != nil || string(b) != "kept" {
		t.Fatalf("after remount: %q, %v", b, err)
	}
	dirs, err := d.list()
	if err != nil || len(dirs) != 1 || dirs[0] != (volumeDir{"shop", "db-0-data", "uid-1"}) {
		t.Fatalf("list = %v, %v", dirs, err)
	}
	if err := d.remove(dirs[0]); err != nil {
		t.Fatal(err)
	}
	if mps, _ := mountsUnder(d.root); len(mps) != 0 {
		t.Fatalf("mounts left: %v", mps)
	}
	if _, err := os.Stat(filepath.Join(d.root, "shop")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("volume directories left: %v", err)
	}
}

// A volume its node made already (status.capacity set) whose image is
// not on this machine (the machine replaced under the node's name, its
// data directory lost) is not made again empty: the start fails with
// ErrVolumeDataMissing, saying what to do, and nothing is left on disk.
// Before, the agent made a new, empty image and the replica started on
// it as if it had no data.
func TestVolumeDataMissing(t *testing.T) {
	d := &volumeDirs{root: filepath.Join(t.TempDir(), VolumesSubdir)}
	t.Cleanup(func() { _ = unmountVolumes(filepath.Dir(d.root)) }) // the old code mounted one
	v := pv("store", "kv-0-data", "uid-1", "n1")
	v.Spec.Workload, v.Spec.Volume = "kv", "data"
	v.Status.Capacity = api.MustParseQuantity("16Mi")
	_, err := d.ensure(t.Context(), v)
	if !errors.Is(err, ErrVolumeDataMissing) {
		t.Fatalf("ensure of a made volume without its image: %v, want ErrVolumeDataMissing", err)
	}
	for _, want := range []string{"store/kv-0-data", "node n1 made it (16Mi)", "disk.img does not exist", "capstan delete volume store/kv-0-data --force' then 'capstan delete pod store/kv-0'"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q: %v", want, err)
		}
	}
	if _, err := os.Stat(filepath.Join(d.root, "store")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a refused volume left a directory: %v", err)
	}
}

// TestVolumeGrows raises a volume's size as the workload controller does
// after a larger size is committed: the file system grows with its data,
// in place while mounted when the agent may (CAP_SYS_RESOURCE), else when
// it is next mounted; a smaller size is never applied.
func TestVolumeGrows(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireBinaries(t, "mkfs.ext4", "mount", "e2fsck", "resize2fs")
	d := &volumeDirs{root: filepath.Join(t.TempDir(), VolumesSubdir)}
	v := pv("shop", "db-0-data", "uid-1", "n1")
	t.Cleanup(func() { _ = unmountVolumes(filepath.Dir(d.root)) })
	dir := volumeDir{"shop", "db-0-data", "uid-1"}.path(d.root)
	img := filepath.Join(dir, "disk.img")
	capacity := func(mnt string) int64 {
		t.Helper()
		var st unix.Statfs_t
		if err := unix.Statfs(mnt, &st); err != nil {
			t.Fatal(err)
		}
		return int64(st.Blocks) * st.Bsize
	}
	write := func(mnt, name string, n int) error {
		return os.WriteFile(filepath.Join(mnt, name), bytes.Repeat([]byte{1}, n), 0o644)
	}
	remount := func() string {
		t.Helper()
		if err := unmountVolumes(filepath.Dir(d.root)); err != nil {
			t.Fatal(err)
		}
		mnt, err := d.ensure(t.Context(), v)
		if err != nil {
			t.Fatal(err)
		}
		if b, err := os.ReadFile(filepath.Join(mnt, "value")); err != nil || string(b) != "kept" {
			t.Fatalf("after remount: %q, %v", b, err)
		}
		return mnt
	}

	if grown, err := d.grow(t.Context(), v); grown || err != nil {
		t.Fatalf("grow before the volume is made = %v, %v; want false, nil", grown, err)
	}
	mnt, err := d.ensure(t.Context(), v)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(mnt, "value"), []byte("kept"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := write(mnt, "big", 24<<20); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("writing 24 MiB into a 16 MiB volume: %v, want ENOSPC", err)
	}
	_ = os.Remove(filepath.Join(mnt, "big"))

	// Raised while unmounted (a node down, capstan down): grown on mount.
	if err := unmountVolumes(filepath.Dir(d.root)); err != nil {
		t.Fatal(err)
	}
	v.Spec.Size = api.MustParseQuantity("48Mi")
	if grown, err := d.grow(t.Context(), v); grown || err != nil {
		t.Fatalf("grow while unmounted = %v, %v; want false, nil", grown, err)
	}
	if size, known, err := d.capacity(v); size != 16<<20 || !known || err != nil {
		t.Fatalf("capacity while the growth waits for a mount = %d, %v, %v; want 16 MiB", size, known, err)
	}
	mnt = remount()
	if size, known, err := d.capacity(v); size != 48<<20 || !known || err != nil {
		t.Fatalf("capacity once mounted = %d, %v, %v; want 48 MiB", size, known, err)
	}
	if got := capacity(mnt); got < 40<<20 {
		t.Fatalf("capacity %d bytes after mounting at 48Mi", got)
	}
	if err := write(mnt, "big", 24<<20); err != nil {
		t.Fatalf("writing 24 MiB into the grown volume: %v", err)
	}
	if grown, err := d.grow(t.Context(), v); grown || err != nil {
		t.Fatalf("grow again = %v, %v; want false, nil", grown, err)
	}

	// A smaller size is never applied, mounted or not.
	v.Spec.Size = api.MustParseQuantity("16Mi")
	if grown, err := d.grow(t.Context(), v); grown || err != nil {
		t.Fatalf("grow to a smaller size = %v, %v; want false, nil", grown, err)
	}
	mnt = remount()
	if st, err := os.Stat(img); err != nil || st.Size() != 48<<20 || capacity(mnt) < 40<<20 {
		t.Fatalf("image after a smaller size: %v, %v; want 48 MiB", st, err)
	}

	// Raised while mounted: in place where the agent may; where it may
	// not, the error says so and the next mount finishes the growth.
	v.Spec.Size = api.MustParseQuantity("96Mi")
	grown, err := d.grow(t.Context(), v)
	switch {
	case grown && err == nil:
		if got := capacity(mnt); got < 88<<20 {
			t.Fatalf("capacity %d bytes after growing in place to 96Mi", got)
		}
	case err != nil && strings.Contains(err.Error(), "grows when next mounted"):
		t.Logf("no growth in place here: %v", err)
	default:
		t.Fatalf("grow in place = %v, %v", grown, err)
	}
	mnt = remount()
	if got := capacity(mnt); got < 88<<20 {
		t.Fatalf("capacity %d bytes after growing to 96Mi", got)
	}
	if _, err := os.Stat(filepath.Join(dir, growMarker)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("grow marker left: %v", err)
	}
}

// The agent reports a volume's capacity through the API with its node's
// token: a growth that waits for the next mount shows as such, and the
// growth done clears the condition.
func TestReportVolume(t *testing.T) {
	ctx := t.Context()
	c := apiservertest.Start(t, apiservertest.Options{})
	a, err := New(Options{Client: c.Token(t, "node:n1"), NodeName: "n1", Address: "192.0.2.7", DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	v := api.KindVolume.New().(*api.PersistentVolume)
	v.Metadata = api.ObjectMeta{App: "shop", Name: "db-0-data"}
	v.Spec = api.VolumeSpec{Workload: "db", Volume: "data", Size: api.MustParseQuantity("48Mi"), Reclaim: api.ReclaimRetain, NodeName: "n1"}
	o, err := c.Client.Create(ctx, v)
	if err != nil {
		t.Fatal(err)
	}
	v = o.(*api.PersistentVolume)
	// An image of 16 MiB on disk, made before the size was raised.
	dir := volumeDir{"shop", "db-0-data", v.Metadata.UID}.path(a.volDirs.root)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	img := filepath.Join(dir, "disk.img")
	if err := os.WriteFile(img, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(img, 16<<20); err != nil {
		t.Fatal(err)
	}
	stored := func() *api.PersistentVolume {
		t.Helper()
		o, err := c.Client.Get(ctx, api.KeyOf(v))
		if err != nil {
			t.Fatal(err)
		}
		return o.(*api.PersistentVolume)
	}
	a.reportVolume(ctx, v, nil)
	got := stored()
	cond := api.FindCondition(got.Status.Conditions, api.VolumeResizePending)
	if got.Status.Capacity.Value() != 16<<20 || cond == nil || cond.Reason != api.ReasonVolumeNotMounted {
		t.Fatalf("status %+v: want capacity 16Mi and the growth waiting for a mount", got.Status)
	}
	if err := os.Truncate(img, 48<<20); err != nil {
		t.Fatal(err)
	}
	a.reportVolume(ctx, got, nil)
	if got = stored(); got.Status.Capacity.Value() != 48<<20 || len(got.Status.Conditions) != 0 {
		t.Fatalf("status %+v: want capacity 48Mi, no condition", got.Status)
	}
}

// The data of a volume deleted with --force while its pod runs stays
// until the pod is gone, also when the agent collects before it has this
// node's pods (a restart: the pods' list slower than the volumes'). Before,
// collection ran as soon as the volumes were listed, found no pod naming
// the volume, and removed its data under the running pod.
func TestCollectVolumesWaitsForPods(t *testing.T) {
	ctx := t.Context()
	c := apiservertest.Start(t, apiservertest.Options{})
	a, err := New(Options{Client: c.Client, NodeName: "n1", Address: "192.0.2.7", DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	createVolumePod(t, c.Client, "kv")
	// Both deleted with --force, their deletion recorded: one's pod runs,
	// the other has none.
	forced := volumeDir{"store", "kv-0-data", "uid-forced"}.path(a.volDirs.root)
	orphan := volumeDir{"store", "kv-9-data", "uid-gone"}.path(a.volDirs.root)
	for _, d := range []string{forced, orphan} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, deletedMarker), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	exists := func(d string) bool {
		_, err := os.Stat(d)
		return err == nil
	}
	a.volumes = client.NewInformer(c.Client, api.KindVolume, client.ListOptions{}, nil)
	a.pods = client.NewInformer(c.Client, api.KindPod, client.ListOptions{Node: "n1"}, nil)
	go func() { _ = a.volumes.Start(ctx) }()
	if err := a.volumes.WaitForSync(ctx); err != nil {
		t.Fatal(err)
	}
	a.collectVolumes(ctx) // the pods not listed yet
	if !exists(forced) || !exists(orphan) {
		t.Fatalf("collected before the pods were listed: %s kept %v, %s kept %v; want both kept until then", forced, exists(forced), orphan, exists(orphan))
	}
	go func() { _ = a.pods.Start(ctx) }()
	if err := a.pods.WaitForSync(ctx); err != nil {
		t.Fatal(err)
	}
	a.collectVolumes(ctx)
	if !exists(forced) {
		t.Fatalf("the data of %s went while pod store/kv-0 still names it", forced)
	}
	if exists(orphan) {
		t.Fatalf("%s, whose object and pods are gone, was not removed once both lists were in", orphan)
	}
}

// A volume's image holds its whole size on the node's disk, made or
// grown, so a node's disk filled by something else never fails the
// volume's writes; a volume that does not fit is refused when it is made,
// saying so. Before, the image was sparse: a 128 MiB volume on a node
// with 40 MiB free showed 112 MiB free and failed writes past 40 MiB with
// I/O errors ("potential data loss" in the kernel log). Needs root.
func TestVolumeImageReservesItsSize(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireBinaries(t, "mkfs.ext4", "mount", "e2fsck", "resize2fs")
	ctx := t.Context()
	allocated := func(img string) int64 {
		t.Helper()
		var st unix.Stat_t
		if err := unix.Stat(img, &st); err != nil {
			t.Fatal(err)
		}
		return st.Blocks * 512
	}
	dir := t.TempDir()
	img := filepath.Join(dir, "disk.img")
	if err := makeImage(ctx, img, 16<<20); err != nil {
		t.Fatal(err)
	}
	if got := allocated(img); got < 16<<20 {
		t.Fatalf("a new 16 MiB image holds %d bytes of the node's disk; want all 16 MiB reserved", got)
	}
	if grew, err := growImage(ctx, dir, 32<<20); err != nil || !grew {
		t.Fatalf("grow to 32 MiB: %v, %v", grew, err)
	}
	if got := allocated(img); got < 32<<20 {
		t.Fatalf("grown to 32 MiB, the image holds %d bytes of the node's disk; want all 32 MiB reserved", got)
	}

	// A node's disk with 24 MiB free: a 32 MiB volume is refused, and
	// leaves nothing behind.
	small := t.TempDir()
	if err := unix.Mount("tmpfs", small, "tmpfs", 0, "size=24m"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = unix.Unmount(small, unix.MNT_DETACH) })
	err := makeImage(ctx, filepath.Join(small, "disk.img"), 32<<20)
	if !errors.Is(err, unix.ENOSPC) || !strings.Contains(err.Error(), "less free space than the volume's size") {
		t.Fatalf("a 32 MiB volume on a disk with 24 MiB free: %v; want it refused, saying the node lacks room", err)
	}
	if left, _ := os.ReadDir(small); len(left) != 0 {
		t.Fatalf("the refused volume left %v on the node's disk", left)
	}
}

// smallDisk mounts a fresh ext4 file system of size bytes, in a loop
// image, and returns where: a node's disk nearly full, for the growth of
// a volume on it. Needs root; unmounted and removed at the end.
func smallDisk(t *testing.T, size int64) string {
	t.Helper()
	dir := t.TempDir()
	img, mnt := filepath.Join(dir, "disk.img"), filepath.Join(dir, "mnt")
	if err := os.Mkdir(mnt, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(img, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(img, size); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mkfs.ext4", "-q", "-F", "-m", "0", img).CombinedOutput(); err != nil {
		t.Fatalf("mkfs.ext4: %v: %s", err, out)
	}
	if out, err := exec.Command("mount", "-t", "ext4", "-o", "loop", img, mnt).CombinedOutput(); err != nil {
		t.Fatalf("mount: %v: %s", err, out)
	}
	t.Cleanup(func() {
		// The volumes in it first, then the disk itself.
		_ = unmountVolumes(mnt)
		if err := unix.Unmount(mnt, 0); err != nil {
			t.Errorf("unmount the small disk: %v", err)
		}
	})
	return mnt
}

// freeBytes is what statfs says is free on the file system of path.
func freeBytes(t *testing.T, path string) int64 {
	t.Helper()
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		t.Fatal(err)
	}
	return int64(st.Bavail) * st.Bsize
}

// A growth that does not fit on the node's disk fails saying so, and
// gives back what it took: the image keeps its length and its blocks,
// the disk its free space, and the volume its size, data and reported
// capacity. Before, fallocate's partial work stayed: the image was left
// longer than its file system (and the growth marker made its capacity
// unknown), the room it took lost to the node until a later growth.
func TestVolumeGrowthOnFullDisk(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireBinaries(t, "mkfs.ext4", "mount", "e2fsck", "resize2fs")
	ctx := t.Context()
	disk := smallDisk(t, 64<<20)
	d := &volumeDirs{root: filepath.Join(disk, VolumesSubdir)}
	v := pv("shop", "db-0-data", "uid-1", "n1")
	dir := volumeDir{"shop", "db-0-data", "uid-1"}.path(d.root)
	img := filepath.Join(dir, "disk.img")
	mnt, err := d.ensure(ctx, v)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(mnt, "value"), []byte("kept"), 0o644); err != nil {
		t.Fatal(err)
	}
	// Something else fills the node's disk but for about 8 MiB.
	filler := filepath.Join(disk, "filler")
	if err := reserve(filler, freeBytes(t, disk)-8<<20); err != nil {
		t.Fatal(err)
	}
	before := freeBytes(t, disk)

	v.Spec.Size = api.MustParseQuantity("40Mi") // 24 MiB more: no room
	grown, err := d.grow(ctx, v)
	if grown || !errors.Is(err, unix.ENOSPC) || !strings.Contains(err.Error(), "the growth needs 24Mi more") {
		t.Fatalf("growing by 24 MiB with 8 MiB free = %v, %v; want ENOSPC saying how much more it needs", grown, err)
	}
	var st unix.Stat_t
	if err := unix.Stat(img, &st); err != nil {
		t.Fatal(err)
	}
	if st.Size != 16<<20 || st.Blocks*512 > 16<<20+1<<20 {
		t.Fatalf("after the failed growth the image is %d bytes long and holds %d: want 16 MiB, nothing taken past its end", st.Size, st.Blocks*512)
	}
	if after := freeBytes(t, disk); after < before {
		t.Fatalf("the failed growth kept %d bytes of the node's disk", before-after)
	}
	if size, known, err := d.capacity(v); size != 16<<20 || !known || err != nil {
		t.Fatalf("capacity after the failed growth = %d, %v, %v; want 16 MiB, known", size, known, err)
	}
	if b, err := os.ReadFile(filepath.Join(mnt, "value")); err != nil || string(b) != "kept" {
		t.Fatalf("the volume's data after the failed growth: %q, %v", b, err)
	}

	// Room freed: the growth goes through when the volume is next
	// mounted (in place too, where the agent may).
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	if err := unmountVolumes(disk); err != nil {
		t.Fatal(err)
	}
	if mnt, err = d.ensure(ctx, v); err != nil {
		t.Fatal(err)
	}
	if size, known, err := d.capacity(v); size != 40<<20 || !known || err != nil {
		t.Fatalf("capacity once room is freed = %d, %v, %v; want 40 MiB", size, known, err)
	}
	if b, err := os.ReadFile(filepath.Join(mnt, "value")); err != nil || string(b) != "kept" {
		t.Fatalf("the volume's data after growing: %q, %v", b, err)
	}
}

// A growth that does not fit on the node's disk is reported where the
// user looks: a VolumeResizeFailed event on the volume, and its status
// (capacity unchanged, FileSystemResizePending with reason ResizeFailed),
// both saying how much room the growth lacks.
func TestVolumeGrowthFailureReported(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireBinaries(t, "mkfs.ext4", "mount", "e2fsck", "resize2fs")
	ctx := t.Context()
	c := apiservertest.Start(t, apiservertest.Options{})
	disk := smallDisk(t, 64<<20)
	nc := c.Token(t, "node:n1")
	a, err := New(Options{Client: nc, NodeName: "n1", Address: "192.0.2.7", DataDir: disk})
	if err != nil {
		t.Fatal(err)
	}
	v := createVolume(t, c.Client, "db")
	if _, err := a.volDirs.ensure(ctx, v); err != nil {
		t.Fatal(err)
	}
	if err := reserve(filepath.Join(disk, "filler"), freeBytes(t, disk)-8<<20); err != nil {
		t.Fatal(err)
	}
	v.Spec.Size = api.MustParseQuantity("40Mi")
	if _, err := c.Client.Update(ctx, v); err != nil {
		t.Fatal(err)
	}
	a.volumes = client.NewInformer(nc, api.KindVolume, client.ListOptions{}, a.log)
	go func() { _ = a.volumes.Start(ctx) }()
	go a.ev.run(ctx)
	testenv.Eventually(t, 30*time.Second, "the agent sees the volume at 40Mi", func() bool {
		o, ok := a.volumes.Get("store/db-0-data")
		return ok && o.(*api.PersistentVolume).Spec.Size.Value() == 40<<20
	})
	a.growVolumes(ctx)

	const lacks = "the growth needs 24Mi more"
	o, err := c.Client.Get(ctx, api.KeyOf(v))
	if err != nil {
		t.Fatal(err)
	}
	st := o.(*api.PersistentVolume).Status
	cond := api.FindCondition(st.Conditions, api.VolumeResizePending)
	if st.Capacity.Value() != 16<<20 || cond == nil || cond.Reason != api.ReasonResizeFailed || !strings.Contains(cond.Message, lacks) {
		t.Fatalf("status %+v: want capacity 16Mi and ResizeFailed saying %q", st, lacks)
	}
	var got []string
	testenv.Eventually(t, 30*time.Second, "a VolumeResizeFailed event saying "+lacks, func() bool {
		evs, _, err := c.Client.List(ctx, api.KindEvent, client.ListOptions{App: "store"})
		if err != nil {
			t.Fatal(err)
		}
		got = got[:0]
		for _, o := range evs {
			e := o.(*api.Event)
			got = append(got, e.Spec.Reason+": "+e.Spec.Message)
			if e.Spec.Object.Kind == api.KindVolume && e.Spec.Reason == EventVolumeResizeFailed && e.Spec.Type == api.EventWarning &&
				strings.Contains(e.Spec.Message, lacks) && strings.Contains(e.Spec.Message, "keeps its size and its data") {
				return true
			}
		}
		return false
	})
	t.Logf("events: %q", got)
}
