package apiserver

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/capstanhq/capstan/apiserver/store"
)

// countingSwitch is a store whose read-only switch counts its reads and
// answers err.
type countingSwitch struct {
	store.Store
	reads int
	err   error
}

func (c *countingSwitch) ReadOnly(context.Context) (string, error)  { c.reads++; return "", c.err }
func (c *countingSwitch) SetReadOnly(context.Context, string) error { return nil }

// /readyz needs no token: however many probes come, the store is read at
// most once a second, and the probes in between get its last answer.
func TestStoreProbeAsksAtMostOnceASecond(t *testing.T) {
	st := &countingSwitch{}
	now := time.Unix(1_000_000, 0)
	p := &storeProbe{st: st, now: func() time.Time { return now }}
	for range 100 {
		if err := p.check(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	if st.reads != 1 {
		t.Fatalf("100 probes within a second read the store %d times, want 1", st.reads)
	}
	st.err = store.ErrUnavailable
	now = now.Add(readyProbeEvery)
	if err := p.check(context.Background()); !errors.Is(err, store.ErrUnavailable) || st.reads != 2 {
		t.Fatalf("a probe a second later: %v after %d reads, want the store's error after 2", err, st.reads)
	}
	now = now.Add(readyProbeEvery / 2)
	if err := p.check(context.Background()); !errors.Is(err, store.ErrUnavailable) || st.reads != 2 {
		t.Fatalf("a probe half a second later: %v after %d reads, want the last answer without a read", err, st.reads)
	}
}
