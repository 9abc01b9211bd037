package apiserver

import (
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/capstanhq/capstan/apiserver/store"
	"github.com/capstanhq/capstan/apiserver/wire"
	"github.com/capstanhq/capstan/internal/etcdtest"
	"github.com/capstanhq/capstan/internal/testenv"
)

// The status says a request was not applied only where that is certain.
func TestStatusNotApplied(t *testing.T) {
	notSent := fmt.Errorf("%w; the write was not sent", store.ErrUnavailable)
	for _, tc := range []struct {
		name string
		err  error
		want bool
	}{
		{"the store says not applied", fmt.Errorf("create: %w", fakeNotApplied{notSent}), true},
		{"the store's write may have been applied", fmt.Errorf("%w; the write may have been applied all the same", store.ErrUnavailable), false},
		{"the store closed under a write", store.ErrClosed, false},
		{"the server shutting down before the handler", errorf(http.StatusServiceUnavailable, wire.ReasonShuttingDown, errShutdown), true},
		{"the server at its connection limit", errorf(http.StatusServiceUnavailable, wire.ReasonTooManyConnections, errors.New("full")), true},
		{"an internal error", errors.New("boom"), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := toStatus(tc.err).NotApplied; got != tc.want {
				t.Fatalf("toStatus(%v).NotApplied = %v, want %v", tc.err, got, tc.want)
			}
		})
	}
}

// fakeNotApplied stands for the store's mark of a call that changed
// nothing.
type fakeNotApplied struct{ error }

func (e fakeNotApplied) Unwrap() error        { return e.error }
func (e fakeNotApplied) Is(target error) bool { return target == store.ErrNotApplied }

// A join takes the node's rejoin permission (a write of the store) before
// it writes the token table; when that second write fails unsent, the
// first has landed, and the join must not be said not applied (a client
// would send it to another server). The table's write now goes with the
// request's context, which knows of the first (store.TrackWrites).
func TestJoinWriteAfterAWriteIsNotNotApplied(t *testing.T) {
	cluster, err := etcdtest.Start(t.TempDir(), 1)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cluster.Close)
	st, err := store.OpenEtcd(t.Context(), store.EtcdOptions{Endpoints: cluster.Endpoints(), RequestTimeout: 3 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	toks, err := openSharedTokens(t.Context(), st, filepath.Join(t.TempDir(), "tokens.json"))
	if err != nil {
		t.Fatal(err)
	}
	grants, err := openSharedRejoinGrants(t.Context(), st, filepath.Join(t.TempDir(), "rejoin.json"))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	join, _, err := toks.create(Token{Role: RoleJoin}, 0, now)
	if err != nil {
		t.Fatal(err)
	}
	request := store.TrackWrites(t.Context())
	if err := grants.allow(request, "n1", now.Add(time.Hour), now); err != nil {
		t.Fatal(err)
	}

	cluster.Members[0].Partition()
	t.Cleanup(cluster.Members[0].Heal)
	testenv.Eventually(t, 60*time.Second, "a write of the store to fail 'not applied'", func() bool {
		_, err := st.PutDocument(store.TrackWrites(t.Context()), "probe", nil, 0)
		return errors.Is(err, store.ErrNotApplied)
	})
	_, _, err = toks.admit(request, join, "n1", false, true, now)
	if st := toStatus(err); st.Reason != wire.ReasonStoreUnavailable || st.NotApplied {
		t.Fatalf("the token table's write after the join's first write landed: %v (%s, notApplied %v); want StoreUnavailable, not notApplied", err, st.Reason, st.NotApplied)
	}
	_, _, err = toks.admit(store.TrackWrites(t.Context()), join, "n1", false, false, now)
	if st := toStatus(err); st.Reason != wire.ReasonStoreUnavailable || !st.NotApplied {
		t.Fatalf("a join whose only write was not sent: %v (%s, notApplied %v); want StoreUnavailable, notApplied", err, st.Reason, st.NotApplied)
	}
}
