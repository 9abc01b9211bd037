package demo

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/capstanhq/capstan/examples/repo"
	"github.com/capstanhq/capstan/schema"
	"github.com/capstanhq/capstan/secrets"
)

// The demo repository seeded for a cluster holds the example's secret
// encrypted for that cluster: the example app loads, its files are read
// and its secret decrypts with the cluster's keys, and nothing else.
func TestRepoSealsSecretsForTheCluster(t *testing.T) {
	keys, err := secrets.LoadOrCreate(filepath.Join(t.TempDir(), "secrets"))
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "demo")
	if _, err := Repo(dir, repo.FS(), ExampleRegistry, keys.Recipient()); err != nil {
		t.Fatal(err)
	}
	recips, err := os.ReadFile(filepath.Join(dir, ".capstan", "recipients"))
	if err != nil || !strings.Contains(string(recips), keys.Recipient()) {
		t.Fatalf(".capstan/recipients = %q, %v; want the cluster's recipient", recips, err)
	}
	fsys := os.DirFS(dir)
	res, err := schema.Load(fsys, schema.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	schema.ResolveFiles(fsys, res, schema.ResolveOptions{Keys: keys, RequireKeys: true})
	if errs := res.AllErrors(); len(errs) > 0 {
		t.Fatalf("the seeded example: %v", errs)
	}
	app := res.Valid()[0]
	if len(app.Spec.Secrets) != 1 || len(app.Spec.Secrets[0].Spec.Data["token"]) == 0 {
		t.Fatalf("secrets = %+v, want the backend's sealed token", app.Spec.Secrets)
	}
	// Another cluster cannot read it.
	other, err := secrets.LoadOrCreate(filepath.Join(t.TempDir(), "secrets"))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(filepath.Join(dir, BackendSecret))
	if _, err := other.DecryptFile(b); err == nil {
		t.Fatal("another cluster's key decrypts the demo secret")
	}
}
