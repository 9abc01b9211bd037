package gitsync

import (
	"context"
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"
)

func TestCompaction(t *testing.T) {
	origin := newGitRepo(t)
	first := origin.commit("c0", map[string]string{"apps/a.cue": "v0", "apps/b.cue": "b"})
	s, rec := newTestSyncer(t, RepoConfig{Name: "deploy", URL: origin.dir, Path: "apps"})
	ctx := context.Background()
	if _, err := s.Sync(ctx, "deploy"); err != nil {
		t.Fatal(err)
	}
	old := rec.snaps[0]
	for i := 1; i <= compactAfterPacks+4; i++ {
		origin.commit(fmt.Sprintf("c%d", i), map[string]string{"apps/a.cue": fmt.Sprintf("v%d", i)})
		if _, err := s.Sync(ctx, "deploy"); err != nil {
			t.Fatal(err)
		}
		last := rec.snaps[len(rec.snaps)-1]
		if strings.Join(last.Paths, " ") != "a.cue" {
			t.Fatalf("commit %d: paths %v", i, last.Paths)
		}
	}
	packs, _ := filepath.Glob(filepath.Join(s.workers["deploy"].mirror.dir, "objects", "pack", "*.pack"))
	if len(packs) >= compactAfterPacks {
		t.Fatalf("%d packs: not compacted", len(packs))
	}
	// A snapshot taken before compaction still reads.
	if b, err := fs.ReadFile(old.FS, "a.cue"); err != nil || string(b) != "v0" {
		t.Fatalf("old snapshot after compaction: %q, %v", b, err)
	}
	// A force-push after compaction: the applied head was kept, so the
	// rewrite is detected and the changed paths are known.
	origin.git("reset", "-q", "--hard", first)
	origin.commit("rewrite", map[string]string{"apps/c.cue": "c"})
	if _, err := s.Sync(ctx, "deploy"); err != nil {
		t.Fatal(err)
	}
	last := rec.snaps[len(rec.snaps)-1]
	if !last.HistoryRewrite || strings.Join(last.Paths, " ") != "a.cue c.cue" {
		t.Fatalf("after force-push: rewrite=%v paths=%v", last.HistoryRewrite, last.Paths)
	}
}
