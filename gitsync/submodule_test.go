package gitsync

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

type syncWriter struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (w *syncWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func (w *syncWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}

// Descriptors in a submodule are never read. Sync says so, instead of
// applying the rest as if the submodule were not there, and a descriptor
// path that is a submodule is not reported as missing.
func TestSubmoduleUnderDescriptorPathSaid(t *testing.T) {
	r := newGitRepo(t)
	r.write(map[string]string{"apps/a.cue": `apps: a: pods: web: containers: c: image: "reg/a:v1"`})
	r.git("add", "-A")
	// A gitlink, as 'git submodule add' makes (its commit need not exist).
	r.git("update-index", "--add", "--cacheinfo", "160000,"+strings.Repeat("1", 40)+",apps/vendor")
	r.git("commit", "-q", "-m", "apps and a submodule")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	var logs syncWriter
	rec := newRecorder()
	s, err := New(Options{DataDir: t.TempDir(), Repos: []RepoConfig{{Name: "r", URL: r.dir, Branch: "main", Path: "apps"}},
		Sink: rec, DisableWatch: true, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if res, err := s.Sync(ctx, "r"); err != nil || res.Err != nil {
		t.Fatalf("sync: %v %v", err, res.Err)
	}
	if got := logs.String(); !strings.Contains(got, "level=WARN") || !strings.Contains(got, "submodule") || !strings.Contains(got, "path=apps/vendor") {
		t.Errorf("no warning that apps/vendor is a submodule sync does not read:\n%s", got)
	}

	s, err = New(Options{DataDir: t.TempDir(), Repos: []RepoConfig{{Name: "r", URL: r.dir, Branch: "main", Path: "apps/vendor"}},
		Sink: rec, DisableWatch: true})
	if err != nil {
		t.Fatal(err)
	}
	res, _ := s.Sync(ctx, "r")
	if res.Err == nil || !strings.Contains(res.Err.Error(), "is a submodule") {
		t.Errorf("descriptor path that is a submodule: %v, want it said", res.Err)
	}
}
