// Command worker is Capstan's example batch worker: it appends a line to
// $SPOOL_DIR/worker.log every second, for the shipper container in the same
// pod to pick up through their shared volume.
//
// Environment: SPOOL_DIR (default /spool). It exits cleanly on SIGTERM or
// SIGINT.
package main

import (
	"context"
	"fmt"
	"log"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	dir := os.Getenv("SPOOL_DIR")
	if dir == "" {
		dir = "/spool"
	}
	host, _ := os.Hostname()
	ticker := time.NewTicker(time.Second)
	defer ticker.Stop()
	if err := run(ctx, dir, host, ticker.C); err != nil {
		log.Fatal(err)
	}
}

// run appends one line to dir/worker.log per tick until ctx ends. Ticks are
// an input so tests can drive them.
func run(ctx context.Context, dir, host string, ticks <-chan time.Time) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	p := filepath.Join(dir, "worker.log")
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer f.Close()
	log.Printf("worker writing to %s", p)
	for n := 1; ; n++ {
		select {
		case <-ctx.Done():
			return f.Close()
		case now := <-ticks:
			if _, err := fmt.Fprintf(f, "%s %s job %d done\n", now.UTC().Format(time.RFC3339), host, n); err != nil {
				return err
			}
		}
	}
}
