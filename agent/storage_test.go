package agent

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/capstanhq/capstan/apiserver/api"
	"github.com/capstanhq/capstan/apiserver/apiservertest"
	"github.com/capstanhq/capstan/internal/testenv"
)

func TestStorageMoved(t *testing.T) {
	vs := func(capacity, available int64) *api.NodeVolumeStorage {
		return &api.NodeVolumeStorage{Capacity: api.NewQuantity(capacity, api.BinarySI), Available: api.NewQuantity(available, api.BinarySI)}
	}
	const gi = 1 << 30
	tests := []struct {
		name      string
		last, cur *api.NodeVolumeStorage
		want      bool
	}{
		{"first report", nil, vs(10*gi, 5*gi), true},
		{"not measured", vs(10*gi, 5*gi), nil, false},
		{"unchanged", vs(10*gi, 5*gi), vs(10*gi, 5*gi), false},
		{"small disk: under 64Mi", vs(gi, gi/2), vs(gi, gi/2-63<<20), false},
		{"small disk: 64Mi", vs(gi, gi/2), vs(gi, gi/2-64<<20), true},
		{"1% of 100Gi taken", vs(100*gi, 50*gi), vs(100*gi, 49*gi), true},
		{"under 1% of 100Gi freed", vs(100*gi, 50*gi), vs(100*gi, 50*gi+gi-1), false},
		{"huge disk: 1Gi at most", vs(1000*gi, 500*gi), vs(1000*gi, 499*gi), true},
		{"another file system", vs(10*gi, 5*gi), vs(20*gi, 5*gi), true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := storageMoved(tc.last, tc.cur); got != tc.want {
				t.Errorf("storageMoved = %v, want %v", got, tc.want)
			}
		})
	}
}

// The node reports the free space of the file system holding its volumes
// when it registers, and writes it again when a volume it makes takes
// room, before the volume's capacity, so that the scheduler never counts
// the volume made without that room taken; a change under a step is no
// write (the heartbeat stays cheap), also when the agent registers again.
// Before, nodes reported no disk at all.
func TestReportStorage(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireBinaries(t, "mkfs.ext4", "mount", "e2fsck", "resize2fs")
	ctx := t.Context()
	c := apiservertest.Start(t, apiservertest.Options{})
	disk := smallDisk(t, 64<<20)
	a, err := New(Options{Client: c.Token(t, "node:n1"), NodeName: "n1", Address: "192.0.2.7", DataDir: disk})
	if err != nil {
		t.Fatal(err)
	}
	node := func() *api.Node {
		t.Helper()
		o, err := c.Client.Get(ctx, api.Key{Kind: api.KindNode, Name: "n1"})
		if err != nil {
			t.Fatal(err)
		}
		return o.(*api.Node)
	}
	wantFree := func(n *api.Node, what string) {
		t.Helper()
		vs := n.Status.VolumeStorage
		if free := freeBytes(t, disk); vs == nil || vs.Available.Value() != free || vs.Capacity.Value() < 48<<20 || vs.Capacity.Value() > 64<<20 {
			t.Fatalf("%s: node reports %+v, want the 64 MiB disk with %d bytes free", what, vs, free)
		}
	}
	if _, err := a.register(ctx, true, "AgentReady", "ready"); err != nil {
		t.Fatal(err)
	}
	wantFree(node(), "registered")
	if _, err := os.Stat(a.volDirs.root); !os.IsNotExist(err) {
		t.Fatalf("measuring made %s (%v): the agent makes it with its first volume", a.volDirs.root, err)
	}

	// 8 MiB taken by something else: under a step, nothing is written.
	if err := reserve(filepath.Join(disk, "filler"), 8<<20); err != nil {
		t.Fatal(err)
	}
	rv := node().Metadata.ResourceVersion
	if err := a.reportStorage(ctx, false); err != nil {
		t.Fatal(err)
	}
	if _, err := a.register(ctx, true, "AgentReady", "ready"); err != nil {
		t.Fatal(err)
	}
	if n := node(); n.Metadata.ResourceVersion != rv {
		t.Fatalf("a change of 8 MiB rewrote the node: %+v", n.Status.VolumeStorage)
	}

	// A volume made here: the node's free space is written before the
	// volume's capacity.
	v := createVolume(t, c.Client, "db")
	if _, err := a.volDirs.ensure(ctx, v); err != nil {
		t.Fatal(err)
	}
	a.reportVolume(ctx, v, nil)
	n := node()
	wantFree(n, "volume made")
	o, err := c.Client.Get(ctx, api.KeyOf(v))
	if err != nil {
		t.Fatal(err)
	}
	if got := o.(*api.PersistentVolume); got.Status.Capacity.Value() != 16<<20 || got.Metadata.ResourceVersion < n.Metadata.ResourceVersion {
		t.Fatalf("volume capacity %v at revision %d, node's free space at %d: want 16Mi, written after the node's",
			got.Status.Capacity, got.Metadata.ResourceVersion, n.Metadata.ResourceVersion)
	}
}
