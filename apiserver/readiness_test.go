package apiserver_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/capstanhq/capstan/apiserver/apiservertest"
	"github.com/capstanhq/capstan/apiserver/store"
	"github.com/capstanhq/capstan/internal/etcdtest"
	"github.com/capstanhq/capstan/internal/testenv"
)

// /readyz says whether this server can serve: with its etcd gone (no quorum) it
// answered "ok" all along, so a load balancer in front of several servers
// kept sending requests to one that could only answer 503. It now fails,
// saying that the store does not answer and what to check, and is ready
// again by itself once etcd is back. /healthz (liveness) stays ok: a
// store outage is no reason to restart the server.
func TestReadyzFollowsTheStore(t *testing.T) {
	cluster, err := etcdtest.Start(t.TempDir(), 3)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cluster.Close)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	st, err := store.OpenEtcd(ctx, store.EtcdOptions{Endpoints: cluster.Endpoints(), RequestTimeout: 3 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	c := apiservertest.Start(t, apiservertest.Options{Backend: st})
	if code, body := raw(t, c, "", "GET", "/readyz", nil); code != 200 || body != "ok\n" {
		t.Fatalf("/readyz with etcd up: %d %q", code, body)
	}

	// Two members of three down: the one left answers serializable reads
	// from its own copy, but has no quorum.
	down := cluster.Members[:2]
	for _, m := range down {
		m.Stop()
	}
	var body string
	testenv.Eventually(t, 30*time.Second, "/readyz failing with etcd down", func() bool {
		var code int
		code, body = raw(t, c, "", "GET", "/readyz", nil)
		return code == 503
	})
	for _, want := range []string{"the store does not answer", "store unavailable", "--etcd-endpoints"} {
		if !strings.Contains(body, want) {
			t.Errorf("/readyz with etcd down says %q, want it to say %q", body, want)
		}
	}
	if code, body := raw(t, c, "", "GET", "/healthz", nil); code != 200 {
		t.Errorf("/healthz with etcd down: %d %q, want 200 (the process is alive)", code, body)
	}

	for _, m := range down {
		if err := m.Restart(); err != nil {
			t.Fatal(err)
		}
	}
	testenv.Eventually(t, 60*time.Second, "/readyz ok again with etcd back", func() bool {
		code, _ := raw(t, c, "", "GET", "/readyz", nil)
		return code == 200
	})
}
