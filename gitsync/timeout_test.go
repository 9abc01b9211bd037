package gitsync

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// silentServer accepts TCP connections and never answers (a hung git
// server, a load balancer with no backend); its connections are closed
// when the test ends.
func silentServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return ln.Addr().String()
}

// TestRemoteThatNeverAnswers: a fetch from a server that takes the
// connection and says nothing ends after the repository's timeout with
// an error saying so, every time (the ssh handshake of go-git ignored the
// context: the sync, and every later one, hung for ever), and a rollback
// push to it too.
func TestRemoteThatNeverAnswers(t *testing.T) {
	keys := newGitSSHServer(t) // only its key and known_hosts files
	addr := silentServer(t)
	for name, cfg := range map[string]RepoConfig{
		"http": {URL: "http://" + addr + "/deploy.git"},
		"ssh":  {URL: "ssh://git@" + addr + "/deploy.git", Auth: Auth{SSHKeyFile: keys.keyFile, KnownHostsFile: keys.knownHosts}},
	} {
		t.Run(name, func(t *testing.T) {
			cfg.Name, cfg.Path, cfg.Timeout = "deploy", "apps", time.Second
			s, rec := newTestSyncer(t, cfg)
			for range 2 {
				_, err := s.Sync(context.Background(), "deploy")
				var fe *FetchError
				if !errors.Is(err, ErrTimeout) || !errors.Is(err, ErrUnreachable) || !errors.As(err, &fe) {
					t.Fatalf("err %v, want a FetchError wrapping ErrTimeout and ErrUnreachable", err)
				}
				for _, want := range []string{"did not finish answering within 1s", "raise the repository's timeout"} {
					if !strings.Contains(err.Error(), want) {
						t.Errorf("error %q does not say %q", err, want)
					}
				}
			}
			if len(rec.snaps) != 0 {
				t.Fatal("applied something")
			}
			_, err := RevertPaths(context.Background(), cfg, []string{"apps/web.cue"}, strings.Repeat("a", 40), rollbacker)
			if !errors.Is(err, ErrTimeout) || errors.Is(err, ErrPushRejected) {
				t.Fatalf("rollback: %v, want ErrTimeout", err)
			}
		})
	}
}
