package e2e

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/capstanhq/capstan/apiserver/api"
)

// TestVolumeSurvivesOlderRestore restores a backup made before a
// replica's volume: the restored store has no Volume object for it, and
// git sync makes the group again. The node keeps the volume's data (no
// deletion of it was ever asked for), the new Volume object of the same
// replica on that node adopts it, and the replica reads back what it
// wrote. Before, the node removed the data once the object was gone, and
// the replica started on a new, empty volume.
func TestVolumeSurvivesOlderRestore(t *testing.T) {
	repo := NewGitRepo(t, map[string]string{"keep.cue": keepApps})
	c := New(t, Options{Hosts: 1, ServerArgs: []string{"--repo", repo.Dir}})
	h := c.Hosts[0]
	v1 := c.PushExample("kv", "v1", "VERSION=v1")
	ctx := context.Background()
	pass := filepath.Join(t.TempDir(), "passphrase")
	if err := os.WriteFile(pass, []byte("e2e backup passphrase\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	backup := filepath.Join(t.TempDir(), "before-kv.age")
	if out, err := c.CLI(c.AdminConfigPath(), "backup", backup, "--passphrase-file", pass); err != nil {
		t.Fatalf("capstan backup: %v\n%s", err, out)
	}

	// The kv group and its volume are made after the backup.
	repo.Commit("kv v1", map[string]string{"kv.cue": kvApp(v1)})
	var pod *api.Pod
	c.WaitFor("kv-0 ready", 3*time.Minute, func() bool {
		pod = c.ReadyPod("store", "kv-0")
		return pod != nil
	})
	if code, _, _, err := c.KV(pod, "PUT", "greeting", "hello"); err != nil || code != 204 {
		t.Fatalf("PUT greeting = %d, %v", code, err)
	}
	volKey := api.Key{Kind: api.KindVolume, App: "store", Name: "kv-0-data"}
	o, err := c.Admin.Get(ctx, volKey)
	if err != nil {
		t.Fatal(err)
	}
	oldUID := o.Meta().UID
	volDir := filepath.Join(h.Dir, "data", "volumes", "store", "kv-0-data")

	c.RestoreServer(backup, pass)
	var again *api.Pod
	c.WaitFor("kv-0 ready again after the restore", 4*time.Minute, func() bool {
		again = c.ReadyPod("store", "kv-0")
		return again != nil && again.Metadata.UID != pod.Metadata.UID
	})
	code, body, _, err := c.KV(again, "GET", "greeting", "")
	if err != nil || code != 200 || body != "hello" {
		t.Fatalf("GET greeting after the restore = %d %q, %v; want hello, the data written before it", code, body, err)
	}
	o, err = c.Admin.Get(ctx, volKey)
	if err != nil {
		t.Fatal(err)
	}
	newUID := o.Meta().UID
	if newUID == oldUID {
		t.Fatalf("the volume after the restore has the old UID %s: want a new object", oldUID)
	}
	if _, err := os.Stat(filepath.Join(volDir, newUID, "disk.img")); err != nil {
		t.Fatalf("the adopted data under the new UID: %v", err)
	}
	if _, err := os.Stat(filepath.Join(volDir, oldUID)); !os.IsNotExist(err) {
		t.Fatalf("the old UID's directory: %v, want it adopted (renamed)", err)
	}
	out, err := c.CLI(c.AdminConfigPath(), "describe", "volume", "store/kv-0-data")
	if err != nil || !strings.Contains(out, "VolumeAdopted") || !strings.Contains(out, oldUID) {
		t.Fatalf("capstan describe volume: want the VolumeAdopted event naming %s: %v\n%s", oldUID, err, out)
	}
	c.WaitFor("no orphaned volume data reported on "+h.Name, time.Minute, func() bool {
		n, ok := c.Node(h.Name)
		if !ok {
			return false
		}
		cond := api.FindCondition(n.Status.Conditions, api.NodeVolumeDataOrphaned)
		return cond == nil || cond.Status != api.ConditionTrue
	})
}
