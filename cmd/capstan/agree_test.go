package main

import (
	"context"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/capstanhq/capstan/apiserver/api"
	"github.com/capstanhq/capstan/apiserver/apiservertest"
	"github.com/capstanhq/capstan/apiserver/client"
	"github.com/capstanhq/capstan/gitsync"
	"github.com/capstanhq/capstan/gitsync/applier"
	"github.com/capstanhq/capstan/schema"
)

// Files that belong to no app and cannot be used (a symbolic link out of
// the repository, a file over the size limit, a name that is not UTF-8)
// are errors for `capstan validate` and for sync alike: validate exits 1
// naming them, and sync records a Rejected row for the repository naming
// the same files, while the good app applies.
func TestValidateAndSyncAgreeOnRepositoryErrors(t *testing.T) {
	repo := t.TempDir()
	gitCmd(t, repo, "init", "-q", "-b", "main")
	gitCmd(t, repo, "config", "user.name", "Ada")
	gitCmd(t, repo, "config", "user.email", "ada@example.com")
	write := func(name, content string) {
		if err := os.WriteFile(filepath.Join(repo, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("good.cue", "apps: good: pods: p: containers: c: image: \"127.0.0.1:5000/x:v1\"\n")
	write("big.cue", "apps: big: pods: p: containers: c: image: \"x\"\n"+strings.Repeat("// padding\n", 40))
	write("caf\xe9.cue", "apps: cafe: pods: p: containers: c: image: \"x\"\n")
	if err := os.Symlink("/etc/passwd", filepath.Join(repo, "passwd.cue")); err != nil {
		t.Fatal(err)
	}
	gitCmd(t, repo, "add", "-A")
	gitCmd(t, repo, "commit", "-q", "-m", "bad files")
	const limit = 200

	out, err := run(t, "validate", repo, "--max-file-size", "200")
	if err == nil {
		t.Fatalf("validate passed:\n%s", out)
	}
	var fromValidate []string
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		file, _, _ := strings.Cut(line, ":")
		fromValidate = append(fromValidate, file)
	}

	c := apiservertest.Start(t, apiservertest.Options{})
	ap, err := applier.New(applier.Options{Client: c.Client, Load: schema.LoadOptions{MaxFileBytes: limit}})
	if err != nil {
		t.Fatal(err)
	}
	s, err := gitsync.New(gitsync.Options{DataDir: t.TempDir(), Sink: ap, DisableWatch: true,
		Repos: []gitsync.RepoConfig{{Name: "demo", URL: repo}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Sync(context.Background(), "demo"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Client.Get(context.Background(), api.Key{Kind: api.KindApp, App: "good", Name: "good"}); err != nil {
		t.Fatalf("the good app was not applied: %v", err)
	}
	revs, _, err := c.Client.List(context.Background(), api.KindRevision, client.ListOptions{App: "demo"})
	if err != nil || len(revs) != 1 {
		t.Fatalf("repository revisions: %d, %v", len(revs), err)
	}
	rev := revs[0].(*api.Revision)
	var fromSync []string
	for _, e := range rev.Spec.Errors {
		fromSync = append(fromSync, e.File)
	}
	sort.Strings(fromValidate)
	sort.Strings(fromSync)
	// JSON turns the non-UTF-8 byte into U+FFFD on the way through the API.
	if rev.Spec.Result != api.SyncRejected || strings.Join(fromSync, " ") != strings.ToValidUTF8(strings.Join(fromValidate, " "), "\uFFFD") {
		t.Fatalf("validate found %q, sync recorded %s %q", fromValidate, rev.Spec.Result, fromSync)
	}
}
