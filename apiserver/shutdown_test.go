package apiserver_test

import (
	"context"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/capstanhq/capstan/apiserver/api"
	"github.com/capstanhq/capstan/apiserver/apiservertest"
	"github.com/capstanhq/capstan/apiserver/client"
	"github.com/capstanhq/capstan/apiserver/store"
	"github.com/capstanhq/capstan/internal/testenv"
)

// heldLists is a store whose lists of pods wait for release (or for the
// request's context to end, as etcd's do): a store slow to answer.
type heldLists struct {
	store.Backend
	entered chan struct{}
	release chan struct{}
}

func (h *heldLists) List(ctx context.Context, kind api.Kind, opts store.ListOptions) ([]api.Object, int64, error) {
	if kind == api.KindPod {
		select {
		case h.entered <- struct{}{}:
		default:
		}
		select {
		case <-h.release:
		case <-ctx.Done():
			return nil, 0, ctx.Err()
		}
	}
	return h.Backend.List(ctx, kind, opts)
}

// A server that shuts down (stopped, or its leadership lost) lets the
// requests in flight finish: it canceled them, so a list waiting on etcd
// answered 500 "context canceled", which the client took as the answer
// instead of asking another server. Watches still end at once, so that
// the shutdown does not wait for them.
func TestShutdownLetsRequestsInFlightFinish(t *testing.T) {
	bolt, err := store.Open(filepath.Join(t.TempDir(), "capstan.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	st := &heldLists{Backend: bolt, entered: make(chan struct{}, 1), release: make(chan struct{})}
	c := apiservertest.Start(t, apiservertest.Options{Backend: st})
	ctx := context.Background()
	if _, err := c.Client.Create(ctx, pod("shop", "a", "")); err != nil {
		t.Fatal(err)
	}
	w, err := c.Client.Watch(ctx, api.KindNode, client.ListOptions{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	watchEnded := make(chan error, 1)
	go func() {
		for {
			if _, err := w.Next(); err != nil {
				watchEnded <- err
				return
			}
		}
	}()

	type answer struct {
		n   int
		err error
	}
	listed := make(chan answer, 1)
	go func() {
		pods, _, err := c.Client.List(ctx, api.KindPod, client.ListOptions{})
		listed <- answer{len(pods), err}
	}()
	select {
	case <-st.entered:
	case <-time.After(30 * time.Second):
		t.Fatal("the list did not reach the store")
	}
	stopped := make(chan struct{})
	go func() { c.Stop(); close(stopped) }()
	var released sync.Once
	release := func() { released.Do(func() { close(st.release) }) }
	t.Cleanup(func() { release(); <-stopped }) // before the Cleanup's c.Stop, which the one above makes a no-op
	addr := strings.TrimPrefix(c.URL(), "https://")
	testenv.Eventually(t, 30*time.Second, "the server refusing new connections", func() bool {
		conn, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			conn.Close()
		}
		return err != nil
	})
	select {
	case <-watchEnded:
	case a := <-listed:
		t.Fatalf("the list in flight ended with the shutdown, before its store answered: %d pods, %v", a.n, a.err)
	case <-time.After(30 * time.Second):
		t.Fatal("an open watch did not end at the shutdown")
	}
	select {
	case a := <-listed:
		t.Fatalf("the list in flight ended with the shutdown, before its store answered: %d pods, %v", a.n, a.err)
	default:
	}
	release()
	if a := <-listed; a.err != nil || a.n != 1 {
		t.Fatalf("the list in flight at the shutdown: %d pods, %v; want its answer, 1 pod", a.n, a.err)
	}
	select {
	case <-stopped:
	case <-time.After(30 * time.Second):
		t.Fatal("the server did not stop once its last request was answered")
	}
}
