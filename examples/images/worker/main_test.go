package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestWritesOneLinePerTick(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "spool")
	ticks := make(chan time.Time)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- run(ctx, dir, "w-1", ticks) }()
	ticks <- time.Unix(0, 0)
	ticks <- time.Unix(1, 0) // received only after the first line is written
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("run: %v", err)
	}
	b, err := os.ReadFile(filepath.Join(dir, "worker.log"))
	if err != nil {
		t.Fatal(err)
	}
	want := "1970-01-01T00:00:00Z w-1 job 1 done\n1970-01-01T00:00:01Z w-1 job 2 done\n"
	if string(b) != want {
		t.Fatalf("worker.log = %q, want %q", b, want)
	}
	if strings.Count(string(b), "\n") != 2 {
		t.Fatal("want exactly two lines")
	}
}
