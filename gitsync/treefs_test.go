package gitsync

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"
)

func TestTreeFS(t *testing.T) {
	r := newGitRepo(t)
	base := r.commit("base", map[string]string{
		"apps/shop/web.cue": "web", "apps/shop/db.yaml": "db", "apps/run.sh": "#!/bin/sh", "README.md": "hi",
	})
	if err := os.Symlink("shop/web.cue", filepath.Join(r.dir, "apps", "link.cue")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../../etc/passwd", filepath.Join(r.dir, "apps", "escape.cue")); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(r.dir, "apps", "run.sh"), 0o755); err != nil {
		t.Fatal(err)
	}
	head := r.commit("links", nil)

	root, err := TreeAt(r.dir, "main")
	if err != nil {
		t.Fatal(err)
	}
	apps, err := fs.Sub(root, "apps")
	if err != nil {
		t.Fatal(err)
	}
	// fstest checks the fs.FS contract; the escaping link is left out since
	// it cannot be opened by design.
	tfs := root.(TreeFS)
	if err := fstest.TestFS(mustSub(t, tfs, "apps/shop"), "web.cue", "db.yaml"); err != nil {
		t.Fatal(err)
	}
	if b, err := fs.ReadFile(apps, "link.cue"); err != nil || string(b) != "web" {
		t.Errorf("symlink inside the tree: %q, %v", b, err)
	}
	if _, err := fs.ReadFile(apps, "escape.cue"); !errors.Is(err, fs.ErrPermission) {
		t.Errorf("symlink leaving the tree: err %v, want ErrPermission", err)
	}
	if fi, err := tfs.Lstat("apps/link.cue"); err != nil || fi.Mode()&fs.ModeSymlink == 0 {
		t.Errorf("Lstat of a symlink: %v, %v", fi, err)
	}
	if target, err := tfs.ReadLink("apps/escape.cue"); err != nil || target != "../../etc/passwd" {
		t.Errorf("ReadLink: %q, %v", target, err)
	}
	if fi, err := fs.Stat(apps, "run.sh"); err != nil || fi.Mode().Perm() != 0o555 {
		t.Errorf("executable mode: %v, %v", fi, err)
	}
	for _, bad := range []string{"/apps", "../x", "apps/missing.cue"} {
		if _, err := fs.ReadFile(root, bad); err == nil {
			t.Errorf("ReadFile(%q) succeeded", bad)
		}
	}

	paths, err := Diff(context.Background(), r.dir, base, head)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(paths, " "); got != "apps/escape.cue apps/link.cue apps/run.sh" {
		t.Errorf("Diff = %s", got)
	}
	if _, err := Diff(context.Background(), r.dir, "nope", head); !errors.Is(err, ErrRefNotFound) {
		t.Errorf("Diff with a bad base: %v", err)
	}
}

func mustSub(t *testing.T, fsys fs.FS, dir string) fs.FS {
	t.Helper()
	sub, err := fs.Sub(fsys, dir)
	if err != nil {
		t.Fatal(err)
	}
	return sub
}

// TestDiffMatchesGit compares Diff with `git diff --name-only` over a
// series of changes: edits, additions, removals, a file becoming a
// directory and back, a mode change and nested directories.
func TestDiffMatchesGit(t *testing.T) {
	r := newGitRepo(t)
	steps := []map[string]string{
		{"a/b/c.txt": "1", "a/d.txt": "1", "e.txt": "1", "x": "file"},
		{"a/b/c.txt": "2"},
		{"a/b/new.txt": "1", "e.txt": ""},
		{"x": ""},
		{"x/inner.txt": "now a dir"},
		{"a/b": "", "z/y/w.txt": "deep"},
		{"x": ""},
		{"x": "file again"},
	}
	var shas []string
	for i, files := range steps {
		shas = append(shas, r.commit(fmt.Sprintf("step %d", i), files))
	}
	if err := os.Chmod(filepath.Join(r.dir, "a", "d.txt"), 0o755); err != nil {
		t.Fatal(err)
	}
	shas = append(shas, r.commit("chmod", nil))
	for i := range shas {
		for j := range shas {
			want := r.git("diff", "--no-renames", "--name-only", shas[i], shas[j])
			got, err := Diff(context.Background(), r.dir, shas[i], shas[j])
			if err != nil {
				t.Fatal(err)
			}
			if strings.Join(got, "\n") != want {
				t.Errorf("Diff(%d, %d) = %q, git says %q", i, j, got, want)
			}
		}
	}
}
