package apiserver

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/capstanhq/capstan/apiserver/store"
)

func TestLookupLimit(t *testing.T) {
	t0 := time.Date(2026, 12, 5, 1, 0, 0, 0, time.UTC)
	var l lookupLimit
	steps := []struct {
		name string
		now  time.Time
		end  bool // end the lookup that began
		want bool
	}{
		{"first", t0, false, true},
		{"while one is in flight", t0.Add(2 * time.Second), false, false},
		{"ended, within the interval", t0.Add(500 * time.Millisecond), true, false},
		{"an interval later", t0.Add(time.Second), false, true},
		{"clock went back", t0.Add(-time.Hour), true, true},
	}
	for _, st := range steps {
		if st.end {
			l.end()
		}
		if got := l.begin(st.now); got != st.want {
			t.Fatalf("%s: begin = %v, want %v", st.name, got, st.want)
		}
	}
}

// stalledDocs is an etcd that does not answer: Document blocks until
// release is closed.
type stalledDocs struct {
	entered chan struct{}
	release chan struct{}
	once    sync.Once
}

func (d *stalledDocs) Document(ctx context.Context, _ string) ([]byte, int64, error) {
	d.once.Do(func() { close(d.entered) })
	select {
	case <-d.release:
		return nil, 1, nil
	case <-ctx.Done():
		return nil, 0, ctx.Err()
	}
}

func (d *stalledDocs) PutDocument(context.Context, string, []byte, int64) (int64, error) {
	return 0, store.ErrUnavailable
}

func (d *stalledDocs) WatchDocument(context.Context, string, int64, func([]byte, int64)) {}

// An unknown token ID reads the shared table without holding the table
// up: while etcd stalls on that read, known tokens authenticate and other
// unknown IDs are refused at once.
func TestUnknownTokenLookupDoesNotBlockOthers(t *testing.T) {
	docs := &stalledDocs{entered: make(chan struct{}), release: make(chan struct{})}
	defer close(docs.release)
	now := time.Date(2026, 12, 5, 1, 0, 0, 0, time.UTC)
	tokens := &Tokens{shared: docs, byID: map[string]Token{
		"known": {ID: "known", Role: RoleViewer, Hash: hashSecret("s")},
	}}
	stuck := make(chan error, 1)
	go func() {
		_, err := tokens.Authenticate("random1.x", now)
		stuck <- err
	}()
	<-docs.entered
	done := make(chan error, 2)
	go func() {
		_, err := tokens.Authenticate("known.s", now)
		done <- err
		_, err = tokens.Authenticate("random2.x", now)
		done <- err
	}()
	deadline := time.After(10 * time.Second)
	for i, want := range []bool{true, false} {
		select {
		case err := <-done:
			if (err == nil) != want {
				t.Fatalf("authentication %d: %v", i, err)
			}
		case <-deadline:
			t.Fatalf("authentication %d waits for the stalled lookup of another token", i)
		}
	}
	select {
	case err := <-stuck:
		t.Fatalf("the stalled lookup ended: %v", err)
	default:
	}
}
