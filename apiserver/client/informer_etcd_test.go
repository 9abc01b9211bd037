package client_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/capstanhq/capstan/apiserver"
	"github.com/capstanhq/capstan/apiserver/api"
	"github.com/capstanhq/capstan/apiserver/apiservertest"
	"github.com/capstanhq/capstan/apiserver/client"
	"github.com/capstanhq/capstan/apiserver/store"
	"github.com/capstanhq/capstan/apiserver/wire"
	"github.com/capstanhq/capstan/internal/etcdtest"
)

// On the etcd store the objects of one transaction share its revision:
// the informer takes every one of them (it dropped all but the first, as
// "already seen"), and the watches the server ends (every 200 ms here)
// resume without losing or repeating any.
func TestInformerTransactionsOnEtcd(t *testing.T) {
	cluster, err := etcdtest.Start(t.TempDir(), 1)
	if err != nil {
		t.Fatal(err)
	}
	defer cluster.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	st, err := store.OpenEtcd(ctx, store.EtcdOptions{Endpoints: cluster.Endpoints()})
	if err != nil {
		t.Fatal(err)
	}
	c := apiservertest.Start(t, apiservertest.Options{Backend: st, Server: apiserver.Options{WatchMaxLifetime: 200 * time.Millisecond}})
	rec := &recorder{revs: map[string][]int64{}}
	inf := client.NewInformer(c.Client, api.KindPod, client.ListOptions{}, nil)
	inf.AddHandler(rec.handler())
	go func() { _ = inf.Start(ctx) }()
	if err := inf.WaitForSync(ctx); err != nil {
		t.Fatal(err)
	}
	const txns, each = 20, 3
	var last int64
	for i := range txns {
		ops := make([]client.TxnOp, each)
		for j := range each {
			ops[j] = client.TxnOp{Op: wire.OpCreate, Object: pod(fmt.Sprintf("t%d-%d", i, j))}
		}
		out, err := c.Client.Txn(ctx, ops)
		if err != nil {
			t.Fatal(err)
		}
		if out[0].Meta().ResourceVersion != out[each-1].Meta().ResourceVersion {
			t.Fatalf("a transaction's objects at %d and %d: want one revision on etcd", out[0].Meta().ResourceVersion, out[each-1].Meta().ResourceVersion)
		}
		last = out[0].Meta().ResourceVersion
		waitFor(t, fmt.Sprintf("the informer at transaction %d", i), func() bool { return inf.Revision() >= last })
	}
	if got := len(inf.List()); got != txns*each {
		t.Fatalf("the informer holds %d pods, want %d", got, txns*each)
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	for k, revs := range rec.revs {
		if len(revs) != 1 {
			t.Fatalf("%s notified %d times (%v), want once", k, len(revs), revs)
		}
	}
}
