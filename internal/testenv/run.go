package testenv

import (
	"context"
	"sync"
	"testing"
)

// Starter is a component with the one lifecycle: Start blocks until ctx
// ends (nil) or the component fails.
type Starter interface{ Start(context.Context) error }

// Run starts components until the test ends (or stop is called, which
// waits for them) and fails the test if one stops with an error.
func Run(t testing.TB, ctx context.Context, cs ...Starter) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for _, c := range cs {
		wg.Go(func() {
			if err := c.Start(ctx); err != nil && ctx.Err() == nil {
				t.Errorf("%T stopped: %v", c, err)
			}
		})
	}
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); wg.Wait() }) }
	t.Cleanup(stop)
	return stop
}
