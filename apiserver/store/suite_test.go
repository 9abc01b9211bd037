package store

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/capstanhq/capstan/internal/etcdtest"
)

// One suite, two backends: a test written as func(t, backend) runs on a
// Bolt file in t.TempDir() and on the package's three-member etcd cluster
// (started once in TestMain, see runWithEtcd), each test under a key
// prefix of its own. etcd's revision is global, so a test compares
// revisions relative to the revision its store opened at (base).

// backend opens a fresh store for one test.
type backend struct {
	name string
	open func(t testing.TB, opts Options) (s Backend, base int64)
	// sharedTxnRevision: the steps of a transaction share its one
	// revision (etcd) instead of taking consecutive ones (Bolt).
	sharedTxnRevision bool
	// waitLive waits until a watcher gets live events (Bolt's watchers
	// first catch up from the log; etcd's are bounded from the start).
	waitLive func(t *testing.T, w *Watcher)
}

// testCluster is the package's etcd cluster.
var testCluster *etcdtest.Cluster

// runWithEtcd starts the package's etcd cluster, runs the tests and stops
// it. etcd is a Go module, so there is no prerequisite to miss: a cluster
// that does not start fails the run.
func runWithEtcd(m *testing.M) int {
	dir, err := etcdtest.MainDir()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	testCluster, err = etcdtest.Start(dir, 3)
	if err != nil {
		fmt.Fprintln(os.Stderr, "start the test etcd cluster:", err)
		return 1
	}
	defer testCluster.Close()
	return m.Run()
}

var boltBackend = backend{
	name:     "bolt",
	open:     func(t testing.TB, opts Options) (Backend, int64) { return openTest(t, opts), 0 },
	waitLive: waitLive,
}

var etcdPrefixes atomic.Int64

var etcdBackend = backend{
	name:              "etcd",
	sharedTxnRevision: true,
	open: func(t testing.TB, opts Options) (Backend, int64) {
		s := openEtcdTest(t, opts)
		return s, s.Revision()
	},
	waitLive: func(*testing.T, *Watcher) {},
}

// migratedBase is the revision base of the "etcd-migrated" backend: far
// above etcd's own revisions, so a revision that skips the base (an etcd
// revision shown as the store's, or the reverse) breaks its tests.
const migratedBase = 1 << 40

// etcdMigratedBackend is the etcd store as a migration leaves it: every
// revision it shows is etcd's plus a base (see LoadEtcd).
var etcdMigratedBackend = backend{
	name:              "etcd-migrated",
	sharedTxnRevision: true,
	open: func(t testing.TB, opts Options) (Backend, int64) {
		s := openEtcdTestBase(t, opts, migratedBase)
		if s.Revision() < migratedBase {
			t.Fatalf("store revision %d, want above the base %d", s.Revision(), int64(migratedBase))
		}
		return s, s.Revision()
	},
	waitLive: func(*testing.T, *Watcher) {},
}

// openEtcdTest opens an Etcd store on the test cluster under a fresh
// prefix, with Options' watch bounds and clock.
func openEtcdTest(t testing.TB, opts Options) *Etcd { return openEtcdTestBase(t, opts, 0) }

// openEtcdTestBase is openEtcdTest with the revision base set to base
// (when not 0) before the store opens.
func openEtcdTestBase(t testing.TB, opts Options, base int64) *Etcd {
	t.Helper()
	if testCluster == nil {
		t.Fatal("the package's etcd cluster is not running (TestMain starts it)")
	}
	prefix := fmt.Sprintf("/test/%d/", etcdPrefixes.Add(1))
	if base != 0 {
		cli, err := testCluster.Client()
		if err != nil {
			t.Fatal(err)
		}
		_, err = cli.Put(context.Background(), prefix+"meta/revision-base", strconv.FormatInt(base, 10))
		cli.Close()
		if err != nil {
			t.Fatal(err)
		}
	}
	s, err := OpenEtcd(context.Background(), EtcdOptions{
		Endpoints: testCluster.Endpoints(), Prefix: prefix,
		WatchBuffer: opts.WatchBuffer, WatchBufferBytes: opts.WatchBufferBytes, Now: opts.Now,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	s.SetHooks(podNodes{})
	return s
}

// eachBackend runs test on every backend, as subtests named for them.
func eachBackend(t *testing.T, test func(t *testing.T, b backend)) {
	for _, b := range []backend{boltBackend, etcdBackend, etcdMigratedBackend} {
		t.Run(b.name, func(t *testing.T) { test(t, b) })
	}
}
