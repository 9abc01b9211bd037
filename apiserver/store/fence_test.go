package store

import (
	"context"
	"errors"
	"testing"

	"github.com/capstanhq/capstan/apiserver/api"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
)

// campaign makes a leader of a new session on cli and returns its fence
// and session.
func campaign(t *testing.T, cli *clientv3.Client, prefix string) (Fence, *concurrency.Session) {
	t.Helper()
	sess, err := concurrency.NewSession(cli, concurrency.WithTTL(5))
	if err != nil {
		t.Fatal(err)
	}
	el := concurrency.NewElection(sess, prefix+"leader")
	if err := el.Campaign(t.Context(), "x"); err != nil {
		t.Fatal(err)
	}
	return Fence{Key: el.Key(), Rev: el.Rev()}, sess
}

// A write fenced on a leadership commits while it lasts and is refused,
// without being applied, once its lease is gone and another server leads:
// a leader paused past its lease cannot write over its successor.
func TestEtcdFence(t *testing.T) {
	ctx := t.Context()
	s := openEtcdTest(t, Options{})
	cli := s.Client()
	old, oldSess := campaign(t, cli, s.opts.Prefix)
	oldCtx := WithFence(ctx, old)
	created, err := s.Create(oldCtx, testPod("shop", "p1", ""))
	if err != nil {
		t.Fatalf("a write of the leader: %v", err)
	}
	// The old leader's lease ends (as when it is paused past its TTL);
	// it does not know yet, and another server wins the election.
	oldSess.Orphan()
	if _, err := cli.Revoke(ctx, oldSess.Lease()); err != nil {
		t.Fatal(err)
	}
	cur, curSess := campaign(t, cli, s.opts.Prefix)
	defer curSess.Close()

	upd := api.Clone(created.(*api.Pod))
	upd.Metadata.Labels = map[string]string{"by": "old"}
	if _, err := s.Update(oldCtx, upd); !errors.Is(err, ErrFenced) {
		t.Fatalf("update by the old leader: %v, want ErrFenced", err)
	}
	if _, err := s.Create(oldCtx, testPod("shop", "p2", "")); !errors.Is(err, ErrFenced) {
		t.Fatalf("create by the old leader: %v, want ErrFenced", err)
	}
	if _, err := s.Txn(oldCtx, []Op{{Type: OpDelete, Key: api.KeyOf(created)}}); !errors.Is(err, ErrFenced) {
		t.Fatalf("transaction by the old leader: %v, want ErrFenced", err)
	}
	if _, err := s.Get(ctx, api.Key{Kind: api.KindPod, App: "shop", Name: "p2"}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("a refused create was applied: %v", err)
	}
	got, err := s.Get(ctx, api.KeyOf(created))
	if err != nil || got.Meta().Labels["by"] != "" {
		t.Fatalf("a refused update was applied: %+v, %v", got, err)
	}
	upd.Metadata.Labels = map[string]string{"by": "new"}
	if _, err := s.Update(WithFence(ctx, cur), upd); err != nil {
		t.Fatalf("update by the new leader: %v", err)
	}
	// An unfenced write (an agent's, an admin's) is not tied to any
	// leadership.
	if _, err := s.Create(context.Background(), testPod("shop", "p3", "")); err != nil {
		t.Fatal(err)
	}
}
