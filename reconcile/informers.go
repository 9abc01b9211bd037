package reconcile

import (
	"context"
	"fmt"
	"sync"

	"github.com/capstanhq/capstan/apiserver/client"
)

// RunInformers starts the informers, waits until each has its first list,
// and returns a channel that yields once they all have stopped. It returns
// an error when ctx ends before they sync.
func RunInformers(ctx context.Context, informers ...*client.Informer) (<-chan struct{}, error) {
	var wg sync.WaitGroup
	for _, inf := range informers {
		wg.Go(func() { _ = inf.Start(ctx) })
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	for _, inf := range informers {
		if err := inf.WaitForSync(ctx); err != nil {
			<-done
			return done, fmt.Errorf("wait for informer caches: %w", err)
		}
	}
	return done, nil
}
