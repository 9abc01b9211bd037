package agent

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/capstanhq/capstan/apiserver"
	"github.com/capstanhq/capstan/apiserver/apiservertest"
)

// Two data directories never get the same run directory; the default
// install keeps /run/capstan.
func TestRunDirFor(t *testing.T) {
	if got := RunDirFor(DefaultDataDir); got != DefaultRunDir {
		t.Errorf("RunDirFor(%s) = %s, want %s", DefaultDataDir, got, DefaultRunDir)
	}
	if got := RunDirFor(DefaultDataDir + "/"); got != DefaultRunDir {
		t.Errorf("RunDirFor with a trailing slash = %s, want %s", got, DefaultRunDir)
	}
	a, b := RunDirFor("/var/lib/one/agent"), RunDirFor("/var/lib/two/agent")
	if a == b || a == DefaultRunDir || !strings.HasPrefix(a, DefaultRunDir+"-") {
		t.Errorf("run dirs of two data dirs: %s and %s", a, b)
	}
	if RunDirFor("/var/lib/one/agent") != a {
		t.Error("RunDirFor is not stable")
	}
	var o Options
	o.Client, o.NodeName, o.DataDir = nil, "n", "/srv/capstan/agent"
	if err := o.setDefaults(); err != nil {
		t.Fatal(err)
	}
	if o.RunDir != RunDirFor("/srv/capstan/agent") {
		t.Errorf("default RunDir %s, want the one derived from the data dir", o.RunDir)
	}
}

// A run directory held by another existing data directory is refused with
// a message that says what to do; one whose data directory is gone is
// taken over.
func TestClaimRunDir(t *testing.T) {
	base := t.TempDir()
	run := filepath.Join(base, "run")
	one, two := filepath.Join(base, "one"), filepath.Join(base, "two")
	for _, d := range []string{one, two} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	if err := claimRunDir(run, one); err != nil {
		t.Fatal(err)
	}
	if err := claimRunDir(run, one); err != nil {
		t.Fatalf("the same data dir again: %v", err)
	}
	err := claimRunDir(run, two)
	if !errors.Is(err, ErrRunDirInUse) || !strings.Contains(err.Error(), one) || !strings.Contains(err.Error(), "--run-dir") {
		t.Fatalf("a second cluster: %v, want ErrRunDirInUse naming %s and --run-dir", err, one)
	}
	if err := os.RemoveAll(one); err != nil {
		t.Fatal(err)
	}
	if err := claimRunDir(run, two); err != nil {
		t.Fatalf("after the first data dir is gone: %v", err)
	}
}

// An agent whose run directory another cluster's (existing) data
// directory holds stops at start, before it touches containerd or the
// network, and says which data directory holds it.
func TestStartRefusesAnotherClustersRunDir(t *testing.T) {
	cl := apiservertest.Start(t, apiservertest.Options{Server: apiserver.Options{Network: apiserver.NetworkOptions{PodCIDR: "10.99.0.0/16"}}})
	base := t.TempDir()
	run, other := filepath.Join(base, "run"), filepath.Join(base, "other")
	if err := os.Mkdir(other, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := claimRunDir(run, other); err != nil {
		t.Fatal(err)
	}
	a, err := New(Options{
		Client: cl.Token(t, "node:n1"), NodeName: "n1", Address: "127.0.0.1",
		DataDir: filepath.Join(base, "data"), RunDir: run, PodCIDR: "10.99.150.0/24",
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err = a.Start(ctx)
	if !errors.Is(err, ErrRunDirInUse) || !strings.Contains(err.Error(), other) {
		t.Fatalf("Start on another cluster's run dir: %v, want ErrRunDirInUse naming %s", err, other)
	}
	if _, err := os.Stat(filepath.Join(base, "data", DefaultContainerdSubdir)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a containerd directory was made before the refusal: %v", err)
	}
}
