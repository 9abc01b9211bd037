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
//
// The test waits for the cache to hold each transaction's objects, not
// for Revision to reach the transaction's revision: Revision gets there
// with the transaction's first event, and a List right then could miss
// the others, still on their way ("59 pods, want 60" in CI, the informer
// losing nothing).
func TestInformerTransactionsOnEtcd(t *testing.T) {
	cluster, err := etcdtest.Start(t.TempDir(), 1)
	if err != nil {
		t.Fatal(err)
	}
	defer cluster.Close()
	testInformerTransactions(t, cluster.Endpoints(), apiserver.Options{WatchMaxLifetime: 200 * time.Millisecond}, 40, 0)
}

// The same on Debian's etcd (3.4.23), whose answers to progress requests
// can come before events a watch has yet to send (etcd issue 15220): with
// a bookmark every few milliseconds and transactions written while the
// watches resume, a bookmark taken from such an answer right after a
// resume made the informer skip the transactions before it.
func TestInformerTransactionsOnOlderEtcd(t *testing.T) {
	testInformerTransactions(t, []string{etcdtest.StartBinary(t)}, apiserver.Options{WatchMaxLifetime: 150 * time.Millisecond, BookmarkInterval: 2 * time.Millisecond}, 200, 2)
}

// testInformerTransactions writes txns transactions of 5 pods, each once
// the informer holds the one ahead transactions before it, and checks the
// informer gets every pod once.
func testInformerTransactions(t *testing.T, endpoints []string, opts apiserver.Options, txns, ahead int) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	st, err := store.OpenEtcd(ctx, store.EtcdOptions{Endpoints: endpoints})
	if err != nil {
		t.Fatal(err)
	}
	c := apiservertest.Start(t, apiservertest.Options{Backend: st, Server: opts})
	rec := &recorder{revs: map[string][]int64{}}
	inf := client.NewInformer(c.Client, api.KindPod, client.ListOptions{}, nil)
	inf.AddHandler(rec.handler())
	go func() { _ = inf.Start(ctx) }()
	if err := inf.WaitForSync(ctx); err != nil {
		t.Fatal(err)
	}
	const each = 5
	revs := make([]int64, txns)
	held := func(i int) {
		want := (i + 1) * each
		waitFor(t, fmt.Sprintf("the informer to hold the %d pods of transactions 0 to %d", want, i), func() bool {
			return len(inf.List()) >= want
		})
		if rev := inf.Revision(); rev < revs[i] {
			t.Fatalf("the informer holds transaction %d (revision %d) but says it is at %d", i, revs[i], rev)
		}
	}
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
		revs[i] = out[0].Meta().ResourceVersion
		if i >= ahead {
			held(i - ahead)
		}
	}
	for i := max(txns-ahead, 0); i < txns; i++ {
		held(i)
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
