package store

import (
	"errors"
	"fmt"
	"strconv"
	"sync"
	"testing"

	"github.com/capstanhq/capstan/apiserver/api"
)

// claimHooks work as the API server's pod CIDR allocator does: an object
// that names its slot claims exactly that one; one that names none gets
// the first free one, written into it.
type claimHooks struct{ slots int }

func (h claimHooks) BeforeCreate(tx Allocations, obj api.Object) error {
	m := obj.Meta()
	if s, ok := m.Annotations["slot"]; ok {
		if holder, taken := tx.Get("slot/" + s); taken && holder != m.Name {
			return fmt.Errorf("slot %s is taken by %s", s, holder)
		}
		return tx.Put("slot/"+s, m.Name)
	}
	for i := range h.slots {
		k := "slot/" + strconv.Itoa(i)
		if _, taken := tx.Get(k); !taken {
			m.Annotations = map[string]string{"slot": strconv.Itoa(i)}
			return tx.Put(k, m.Name)
		}
	}
	return errors.New("no free slot")
}
func (claimHooks) BeforeUpdate(Allocations, api.Object, api.Object) error { return nil }
func (claimHooks) AfterDelete(Allocations, api.Object) error              { return nil }

// A create that loses a race on etcd runs again on fresh reads, and on
// the object as the caller sent it: not on what the first run's hooks
// wrote into it (a slot that the winner has taken since).
func TestEtcdRerunStartsFromTheCallersObject(t *testing.T) {
	ctx := t.Context()
	const n = 8
	s := openEtcdTest(t, Options{})
	s.SetHooks(claimHooks{slots: n})
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			if _, err := s.Create(ctx, testService(fmt.Sprintf("s%d", i))); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("concurrent create: %v", err)
	}
	objs, _, err := s.List(ctx, api.KindService, ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]string{}
	for _, o := range objs {
		slot := o.Meta().Annotations["slot"]
		if prev, dup := seen[slot]; dup {
			t.Fatalf("slot %s given to %s and %s", slot, prev, o.Meta().Name)
		}
		seen[slot] = o.Meta().Name
	}
	if len(seen) != n {
		t.Fatalf("%d services hold slots, want %d", len(seen), n)
	}
}
