package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/capstanhq/capstan/apiserver/api"
	"github.com/capstanhq/capstan/internal/testenv"
	"github.com/capstanhq/capstan/rollout"
)

// TestRolloutStatusCommitThroughGit: 'rollout status --commit' against
// a real repository synced by git sync, with the controllers and a
// hollow node. A commit that changes no file of the app (another app's,
// or notes only) and a commit pushed together with a later one (sync
// applies the head alone) are processed: the rollout shown is the app's
// current one, with a note that says so; a commit that is not on the
// tracked branch is waited for until --timeout, which says sync has not
// seen it.
func TestRolloutStatusCommitThroughGit(t *testing.T) {
	repo := t.TempDir()
	gitCmd(t, repo, "init", "-q", "-b", "main")
	gitCmd(t, repo, "config", "user.name", "Ada Lovelace")
	gitCmd(t, repo, "config", "user.email", "ada@example.com")
	write := func(name, content string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(repo, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		gitCmd(t, repo, "add", "-A")
	}
	commit := func(msg string) string {
		t.Helper()
		gitCmd(t, repo, "commit", "-q", "-m", msg)
		return gitCmd(t, repo, "rev-parse", "HEAD")
	}
	shop := func(replicas int) string {
		return fmt.Sprintf("apps: shop: pods: web: {replicas: %d, containers: c: image: \"example/shop:v1\"}\n", replicas)
	}
	cart := func(tag string) string {
		return fmt.Sprintf("apps: cart: pods: web: containers: c: image: \"example/cart:%s\"\n", tag)
	}
	write("shop.cue", shop(1))
	write("cart.cue", cart("v1"))
	first := commit("shop and cart")

	c := startGitOpsCluster(t, repo, "main")
	c.addNodes(t, 1)
	status := func(args ...string) (string, error) {
		return run(t, append([]string{"rollout", "status", "shop", "--config", c.cfg}, args...)...)
	}
	var last string
	if !testenv.Poll(60*time.Second, 50*time.Millisecond, func() bool {
		out, err := status()
		last = fmt.Sprint(out, err)
		return err == nil && strings.Contains(out, "rollout complete")
	}) {
		t.Fatalf("shop's first rollout never completed:\n%s", last)
	}
	short := api.ShortCommit

	// A commit that changes another app, then one that changes notes
	// only: shop stays at its first commit, and its rollout is complete.
	write("cart.cue", cart("v2"))
	other := commit("cart v2")
	out, err := status("-w", "--timeout", "60s", "--commit", other[:12])
	wantExit(t, err, 0, "")
	if want := fmt.Sprintf("note: commit %s changes no file of app shop; shop runs revision %s", short(other), short(first)); !strings.Contains(out, want) {
		t.Errorf("a commit of another app: want %q in\n%s", want, out)
	}
	write("NOTES.md", "nothing to deploy\n")
	notes := commit("notes")
	out, err = status("-w", "--timeout", "60s", "--commit", notes)
	wantExit(t, err, 0, "")
	if want := fmt.Sprintf("note: commit %s changes no file of app shop; shop runs revision %s", short(notes), short(first)); !strings.Contains(out, want) {
		t.Errorf("a commit of notes only: want %q in\n%s", want, out)
	}

	// Two commits reach the branch at once (a push of both): sync applies
	// the second, which brings the first, shop's change, with it.
	gitCmd(t, repo, "checkout", "-q", "-b", "next")
	write("shop.cue", shop(2))
	scale := commit("shop x2")
	write("cart.cue", cart("v3"))
	head := commit("cart v3")
	gitCmd(t, repo, "checkout", "-q", "main")
	gitCmd(t, repo, "merge", "-q", "--ff-only", "next")
	out, err = status("-w", "--timeout", "60s", "--commit", scale[:8])
	wantExit(t, err, 0, "")
	if want := fmt.Sprintf("note: commit %s was synced with commit %s, pushed after it; shop runs revision %s", scale[:8], short(head), short(head)); !strings.Contains(out, want) ||
		!strings.Contains(out, "rollout complete") || !strings.Contains(out, "2/2") {
		t.Errorf("a commit pushed with a later one: want %q and shop's 2 replicas complete in\n%s", want, out)
	}

	// A commit on another branch never reaches sync: --timeout says so.
	gitCmd(t, repo, "checkout", "-q", "-b", "elsewhere")
	write("shop.cue", shop(3))
	stray := commit("shop x3, never merged")
	gitCmd(t, repo, "checkout", "-q", "main")
	_, err = status("--timeout", "3s", "--commit", stray)
	wantExit(t, err, rollout.ExitTimeout, fmt.Sprintf("sync has not seen commit %s: a commit that is not on branch main", short(stray)))
	if !strings.Contains(err.Error(), "(the app is at "+short(head)+")") {
		t.Errorf("the timeout does not say where the app is: %v", err)
	}
}
