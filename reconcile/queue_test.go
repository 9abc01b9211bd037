package reconcile

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

func get(t *testing.T, q *Queue) string {
	t.Helper()
	if q.Len() == 0 {
		t.Fatal("queue is empty; Get would block")
	}
	k, ok := q.Get()
	if !ok {
		t.Fatal("queue is shut down")
	}
	return k
}

func TestQueueDeduplicates(t *testing.T) {
	q := NewQueue(QueueOptions{})
	q.Add("a")
	q.Add("b")
	q.Add("a")
	if n := q.Len(); n != 2 {
		t.Fatalf("Len = %d after adding a, b, a; want 2", n)
	}
	if k := get(t, q); k != "a" {
		t.Fatalf("first key %q, want a (FIFO)", k)
	}
	if k := get(t, q); k != "b" {
		t.Fatalf("second key %q, want b", k)
	}
}

func TestQueueHoldsKeyBeingProcessed(t *testing.T) {
	q := NewQueue(QueueOptions{})
	q.Add("a")
	k := get(t, q)
	q.Add("a")
	q.Add("a")
	if n := q.Len(); n != 0 {
		t.Fatalf("Len = %d while a is processed; a must not be handed out twice", n)
	}
	q.Done(k)
	if n := q.Len(); n != 1 {
		t.Fatalf("Len = %d after Done; the add during processing must re-queue a once", n)
	}
	q.Done(get(t, q))
	if n := q.Len(); n != 0 {
		t.Fatalf("Len = %d after the second Done with no add; want 0", n)
	}
}

func TestQueueAddAfter(t *testing.T) {
	clock := NewFakeClock(time.Unix(1000, 0))
	q := NewQueue(QueueOptions{Clock: clock})
	q.AddAfter("a", time.Second)
	q.AddAfter("b", 10*time.Second)
	q.AddAfter("b", 2*time.Second) // the earlier deadline wins
	q.AddAfter("c", 5*time.Second)
	q.AddAfter("c", 8*time.Second) // the later one is dropped
	clock.Step(999 * time.Millisecond)
	if n := q.Len(); n != 0 {
		t.Fatalf("Len = %d before any deadline", n)
	}
	clock.Step(time.Millisecond)
	if k := get(t, q); k != "a" {
		t.Fatalf("got %q at 1s, want a", k)
	}
	clock.Step(time.Second)
	if k := get(t, q); k != "b" {
		t.Fatalf("got %q at 2s, want b", k)
	}
	clock.Step(3 * time.Second)
	if k := get(t, q); k != "c" {
		t.Fatalf("got %q at 5s, want c", k)
	}
	clock.Step(10 * time.Second)
	if n := q.Len(); n != 0 {
		t.Fatalf("Len = %d: a dropped or superseded deadline fired", n)
	}
	if n := clock.Pending(); n != 0 {
		t.Fatalf("%d timers still pending", n)
	}
	q.AddAfter("now", 0)
	if k := get(t, q); k != "now" {
		t.Fatalf("AddAfter(0) gave %q, want it queued at once", k)
	}
}

func TestQueueBackoff(t *testing.T) {
	clock := NewFakeClock(time.Unix(0, 0))
	q := NewQueue(QueueOptions{Clock: clock, BaseDelay: 10 * time.Millisecond, MaxDelay: 50 * time.Millisecond})
	for i, want := range []time.Duration{10, 20, 40, 50, 50} {
		want *= time.Millisecond
		q.AddRateLimited("a")
		clock.Step(want - time.Millisecond)
		if q.Len() != 0 {
			t.Fatalf("failure %d: queued before its back-off of %v", i+1, want)
		}
		clock.Step(time.Millisecond)
		q.Done(get(t, q))
	}
	if n := q.NumRequeues("a"); n != 5 {
		t.Fatalf("NumRequeues = %d, want 5", n)
	}
	q.Forget("a")
	q.AddRateLimited("a")
	clock.Step(10 * time.Millisecond)
	if q.Len() != 1 {
		t.Fatal("after Forget the back-off did not restart at BaseDelay")
	}
}

func TestQueueShutDown(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		q := NewQueue(QueueOptions{})
		q.AddAfter("later", time.Hour)
		done := make(chan bool)
		go func() {
			_, ok := q.Get()
			done <- ok
		}()
		synctest.Wait() // the getter is blocked on the empty queue
		q.ShutDown()
		if ok := <-done; ok {
			t.Fatal("Get returned a key after shutdown")
		}
		q.Add("x")
		time.Sleep(2 * time.Hour) // fake time: the waiting add must be dropped
		if q.Len() != 0 {
			t.Fatal("keys were added after shutdown")
		}
	})
}

// TestQueueNeverHandsOutAKeyTwice runs workers that re-add random keys
// while processing and checks that no key is processed by two at once and
// that every add is eventually processed.
func TestQueueNeverHandsOutAKeyTwice(t *testing.T) {
	synctest.Test(t, testQueueNeverHandsOutAKeyTwice)
}

func testQueueNeverHandsOutAKeyTwice(t *testing.T) {
	q := NewQueue(QueueOptions{})
	var mu sync.Mutex
	active := map[string]bool{}
	processed := map[string]int{}
	const keys, adds = 20, 4000
	var wg sync.WaitGroup
	var failed sync.Once
	for w := range 4 {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(w), 1))
			for {
				k, ok := q.Get()
				if !ok {
					return
				}
				mu.Lock()
				if active[k] {
					failed.Do(func() { t.Errorf("key %s handed to two workers", k) })
				}
				active[k] = true
				processed[k]++
				mu.Unlock()
				if r.IntN(3) == 0 {
					q.Add(fmt.Sprint("k", r.IntN(keys)))
				}
				mu.Lock()
				active[k] = false
				mu.Unlock()
				q.Done(k)
			}
		})
	}
	for i := range adds {
		q.Add(fmt.Sprint("k", i%keys))
	}
	synctest.Wait() // every worker is blocked in Get: the queue is drained
	q.mu.Lock()
	idle := len(q.queue) == 0 && len(q.processing) == 0
	q.mu.Unlock()
	if !idle {
		t.Fatal("workers are blocked but the queue is not drained")
	}
	q.ShutDown()
	wg.Wait()
	for i := range keys {
		if processed[fmt.Sprint("k", i)] == 0 {
			t.Fatalf("key k%d was never processed", i)
		}
	}
}
