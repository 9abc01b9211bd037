// Command shipper is Capstan's example log shipper: it follows every file in
// $SPOOL_DIR and prints each new line to stdout as "FILE: LINE", standing in
// for a real shipper that shares a volume with the worker in its pod.
//
// Environment: SPOOL_DIR (default /spool). It exits cleanly on SIGTERM or
// SIGINT.
package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
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
	t := &tailer{dir: dir, out: os.Stdout, offsets: map[string]int64{}}
	ticker := time.NewTicker(500 * time.Millisecond)
	defer ticker.Stop()
	for {
		if err := t.scan(); err != nil {
			log.Printf("shipper: %v", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
	}
}

// maxChunk bounds what one scan reads of one file.
const maxChunk = 1 << 20

// tailer remembers how far it has read each file of dir.
type tailer struct {
	dir     string
	out     io.Writer
	offsets map[string]int64 // file name -> bytes shipped
}

// scan ships the complete new lines of every regular file in dir. A line
// still being written (no newline yet) waits for the next scan; a file that
// shrank was truncated or replaced and is read again from the start.
func (t *tailer) scan() error {
	entries, err := os.ReadDir(t.dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue
		}
		if err := t.ship(e.Name()); err != nil {
			return err
		}
	}
	return nil
}

func (t *tailer) ship(name string) error {
	f, err := os.Open(filepath.Join(t.dir, name))
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	off := t.offsets[name]
	if fi.Size() < off {
		off = 0
	}
	if fi.Size() == off {
		return nil
	}
	buf := make([]byte, min(fi.Size()-off, maxChunk))
	n, err := f.ReadAt(buf, off)
	if err != nil && err != io.EOF {
		return err
	}
	buf = buf[:n]
	chunk := buf
	if last := bytes.LastIndexByte(buf, '\n'); last >= 0 {
		chunk = buf[:last+1]
	} else if len(buf) < maxChunk {
		return nil // the rest of the line is still being written
	}
	// A line longer than maxChunk goes out in pieces.
	for line := range bytes.Lines(chunk) {
		if _, err := fmt.Fprintf(t.out, "%s: %s\n", name, bytes.TrimSuffix(line, []byte("\n"))); err != nil {
			return err
		}
	}
	t.offsets[name] = off + int64(len(chunk))
	return nil
}
