package apiserver

import (
	"strings"
	"testing"

	"github.com/capstanhq/capstan/apiserver/store"
)

// An event's line is encoded once and shared; another event at the same
// slot, or the same revision with other bytes, gets its own line.
func TestWatchLinesShareOneEncoding(t *testing.T) {
	var c watchLines
	obj := []byte(`{"kind":"Pod","metadata":{"name":"a","resourceVersion":7}}`)
	e := store.Event{Type: store.Added, Rev: 7, Object: obj}
	first := c.line(e)
	if string(first) != `{"type":"ADDED","object":`+string(obj)+"}\n" {
		t.Fatalf("line = %q", first)
	}
	if again := c.line(e); &again[0] != &first[0] {
		t.Errorf("second watcher's line was encoded again")
	}
	other := append([]byte(nil), obj...) // same revision, other bytes (a redacted copy)
	if l := c.line(store.Event{Type: store.Added, Rev: 7, Object: other}); &l[0] == &first[0] {
		t.Errorf("an event with other object bytes got the cached line")
	}
	mod := c.line(store.Event{Type: store.Modified, Rev: 7 + watchLineSlots, Object: obj})
	if !strings.HasPrefix(string(mod), `{"type":"MODIFIED"`) {
		t.Errorf("event in the same slot got %q", mod)
	}
	if big := c.line(store.Event{Type: store.Added, Rev: 8, Object: make([]byte, maxSharedObject+1)}); big != nil {
		t.Errorf("an object over maxSharedObject was kept")
	}
}
