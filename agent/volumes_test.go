package agent

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"testing"

	"github.com/capstanhq/capstan/apiserver/api"
	"github.com/capstanhq/capstan/internal/testenv"
)

func pv(app, name, uid, node string) *api.PersistentVolume {
	v := api.KindVolume.New().(*api.PersistentVolume)
	v.Metadata.App, v.Metadata.Name, v.Metadata.UID = app, name, uid
	v.Spec.NodeName, v.Spec.Size = node, api.MustParseQuantity("16Mi")
	return v
}

func TestOrphanedVolumes(t *testing.T) {
	onDisk := []volumeDir{
		{"shop", "db-0-data", "u0"},    // its object is here: kept
		{"shop", "db-1-data", "old"},   // deleted and made again: the old UID goes
		{"shop", "db-1-data", "u1"},    // ...the new one stays
		{"shop", "db-2-data", "u2"},    // object gone, pod still here (--force): kept
		{"shop", "db-3-data", "u3"},    // object gone: removed
		{"shop", "db-4-data", "moved"}, // object says another node: removed
	}
	vols := []*api.PersistentVolume{pv("shop", "db-0-data", "u0", "n1"), pv("shop", "db-1-data", "u1", "n1"),
		pv("shop", "db-4-data", "moved", "n2")}
	pod := &api.Pod{}
	pod.Metadata.App, pod.Metadata.Name = "shop", "db-2"
	pod.Spec.Volumes = []api.Volume{{Name: "data", Persistent: &api.PersistentSource{}}, {Name: "scratch"}}
	got := orphanedVolumes(onDisk, vols, []*api.Pod{pod}, "n1")
	want := []volumeDir{{"shop", "db-1-data", "old"}, {"shop", "db-3-data", "u3"}, {"shop", "db-4-data", "moved"}}
	if !slices.Equal(got, want) {
		t.Fatalf("orphaned = %v, want %v", got, want)
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
