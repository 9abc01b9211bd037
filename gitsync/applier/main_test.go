package applier_test

import (
	"context"
	"fmt"
	"os"
	"testing"
	"testing/fstest"
	"time"

	"github.com/capstanhq/capstan/apiserver/apiservertest"
	"github.com/capstanhq/capstan/gitsync"
	"github.com/capstanhq/capstan/gitsync/applier"
	"github.com/capstanhq/capstan/schema/sandbox"
)

// TestMain lets this test binary serve as the evaluation sandbox's child.
func TestMain(m *testing.M) {
	sandbox.Main()
	os.Exit(m.Run())
}

// startDemo starts an API server and an applier of the repository demo,
// with a context that ends with the test (at most a minute).
func startDemo(t *testing.T) (*apiservertest.Cluster, *applier.Applier, context.Context) {
	t.Helper()
	cl := apiservertest.Start(t, apiservertest.Options{})
	ap, err := applier.New(applier.Options{Client: cl.Client, RepoURLs: map[string]string{"demo": "file:///demo"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ap.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return cl, ap, ctx
}

// demoSnapshot is commit n (its SHA the number in hex) of the repository
// demo, holding files.
func demoSnapshot(n int, files map[string]string) gitsync.Snapshot {
	fsys := fstest.MapFS{}
	for p, data := range files {
		fsys[p] = &fstest.MapFile{Data: []byte(data)}
	}
	return gitsync.Snapshot{Repo: "demo", FS: fsys, CommitInfo: gitsync.CommitInfo{Commit: fmt.Sprintf("%040x", n)}}
}
