package controlplane

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/capstanhq/capstan/apiserver"
	"github.com/capstanhq/capstan/apiserver/store"
)

// A second server on the store whose data directory has the cluster CA
// but not the first server's secrets key ring would seal and open the
// store's secret values with another key: it refuses to start, and says
// which files to copy; with them copied it starts.
func TestServerWithAnotherSecretsKeyRefused(t *testing.T) {
	cluster := startEtcd(t)
	first := startServers(t, cluster, 1)[0]
	firstDir := filepath.Dir(first.cp.Server().AdminConfigPath())
	dir := filepath.Join(t.TempDir(), "second")
	copyFiles := func(files ...string) {
		t.Helper()
		for _, f := range files {
			b, err := os.ReadFile(filepath.Join(firstDir, f))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, f)), 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, f), b, 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	copyFiles("pki/ca.crt", "pki/ca.key")
	opts := Options{
		DataDir: dir,
		API:     apiserver.Options{Listen: "127.0.0.1:0"},
		Store:   StoreOptions{Backend: StoreEtcd, Etcd: store.EtcdOptions{Endpoints: cluster.Endpoints()}},
		Leader:  LeaderOptions{TTL: 2 * time.Second, ID: "second"},
	}
	cp, err := New(opts)
	if err == nil {
		cp.Close()
		t.Fatal("a server with a secrets key ring of its own started on the cluster's store")
	}
	if !strings.Contains(err.Error(), "store.key") || !strings.Contains(err.Error(), "cluster.agekey") {
		t.Fatalf("the refusal does not say which files to copy: %v", err)
	}
	copyFiles("secrets/store.key", "secrets/cluster.agekey")
	cp, err = New(opts)
	if err != nil {
		t.Fatalf("with the first server's key ring copied: %v", err)
	}
	cp.Close()
}
