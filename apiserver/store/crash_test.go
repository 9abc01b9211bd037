package store

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"

	"github.com/capstanhq/capstan/apiserver/api"
)

// The crash writer: when CAPSTAN_CRASH_DB is set, this test binary writes
// pods from 8 goroutines forever and prints each acknowledged name.
func TestMain(m *testing.M) {
	if path := os.Getenv("CAPSTAN_CRASH_DB"); path != "" {
		crashWriter(path)
		return
	}
	os.Exit(runWithEtcd(m))
}

func crashWriter(path string) {
	s, err := Open(path, Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	out := bufio.NewWriter(os.Stdout)
	var mu sync.Mutex
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				name := fmt.Sprintf("g%d-%d", g, i)
				obj, err := s.Create(context.Background(), testPod("crash", name, ""))
				if err != nil {
					fmt.Fprintln(os.Stderr, err)
					os.Exit(2)
				}
				mu.Lock()
				fmt.Fprintf(out, "%s %d\n", name, obj.Meta().ResourceVersion)
				out.Flush() // acknowledged only once printed
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
}

// TestCrashKeepsAcknowledgedWrites SIGKILLs a writer mid-stream and checks
// that every write it acknowledged is there after reopening, and that the
// file passes bbolt's consistency check.
func TestCrashKeepsAcknowledgedWrites(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test is not short")
	}
	path := filepath.Join(t.TempDir(), "crash.db")
	for round := 0; round < 3; round++ {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), "CAPSTAN_CRASH_DB="+path)
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		acked := map[string]int64{}
		sc := bufio.NewScanner(stdout)
		want := 300 + round*100
		for sc.Scan() {
			var name string
			var rev int64
			if _, err := fmt.Sscanf(sc.Text(), "%s %d", &name, &rev); err != nil {
				t.Fatalf("writer said %q", sc.Text())
			}
			acked[name] = rev
			if len(acked) == want {
				_ = cmd.Process.Signal(syscall.SIGKILL)
				break
			}
		}
		// Keep reading so lines written before the kill are counted too.
		for sc.Scan() {
			f := sc.Text()
			var name string
			var rev int64
			if _, err := fmt.Sscanf(f, "%s %d", &name, &rev); err == nil {
				acked[name] = rev
			}
		}
		_ = cmd.Wait()
		if len(acked) < want {
			t.Fatalf("round %d: writer acknowledged only %d writes", round, len(acked))
		}

		s, err := Open(path, Options{})
		if err != nil {
			t.Fatalf("round %d: reopen after SIGKILL: %v", round, err)
		}
		if err := s.Check(); err != nil {
			s.Close()
			t.Fatalf("round %d: consistency check: %v", round, err)
		}
		for name, rev := range acked {
			obj, err := s.Get(context.Background(), api.Key{Kind: api.KindPod, App: "crash", Name: name})
			if err != nil {
				s.Close()
				t.Fatalf("round %d: acknowledged write %s (rev %d) lost: %v", round, name, rev, err)
			}
			if obj.Meta().ResourceVersion != rev {
				t.Fatalf("round %d: %s rev %d, acknowledged %d", round, name, obj.Meta().ResourceVersion, rev)
			}
		}
		t.Logf("round %d: %d acknowledged writes all present; store at revision %s", round, len(acked), strconv.FormatInt(s.Revision(), 10))
		s.Close()
		// Each round's writer starts names at g*-0 again: clear the file.
		if err := os.Remove(path); err != nil {
			t.Fatal(err)
		}
	}
}
