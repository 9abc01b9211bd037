package autorevert

import (
	"net/http"
	"net/http/cgi"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/capstanhq/capstan/apiserver/apiservertest"
)

// Reverts pushed to remotes that move, refuse or do not answer.

// A commit that landed on the branch between the revert's planning and
// its push (here another app's, pushed by the remote's pre-receive hook
// during the revert's push) made the push fail, and the revert was
// given up for good: the failed rollout stayed. The revert is planned
// again on the new tip and pushed; the other app's commit stays.
func TestAutoRevertPlansAgainWhenTheBranchMoved(t *testing.T) {
	work := newAppsRepo(t)
	good := commit(t, work, desc("v1"), "x v1")
	bad := commit(t, work, desc("v2"), "x v2: the new image")
	remote := filepath.Join(t.TempDir(), "deploy.git")
	git(t, work, "clone", "-q", "--bare", work, remote)
	git(t, work, "remote", "add", "origin", remote)
	other := commitFile(t, work, "y.cue", `apps: y: pods: web: containers: c: image: "r/y:v1"`+"\n", "y v1")
	// The hook pushes other once, before the revert's ref update.
	hook := "#!/bin/sh\ncat >/dev/null\n[ -e " + work + "/.pushed ] && exit 0\ntouch " + work + "/.pushed\n" +
		"exec env -i PATH=\"$PATH\" HOME=" + work + " GIT_CONFIG_NOSYSTEM=1 git -C " + work + " push -q origin main >&2\n"
	if err := os.WriteFile(filepath.Join(remote, "hooks", "pre-receive"), []byte(hook), 0o755); err != nil {
		t.Fatal(err)
	}
	cl := apiservertest.Start(t, apiservertest.Options{})
	c := cl.Client
	synced(t, c, remote, good, rollComplete)
	startComponent(t, c, remote)
	synced(t, c, remote, bad, rollStalled)
	eventually(t, "the revert or the AutoRevertStopped event", func() bool {
		return event(c, ReasonReverted) != nil || event(c, ReasonStopped) != nil
	})
	if e := event(c, ReasonStopped); e != nil {
		t.Fatalf("not reverted: %s", e.Spec.Message)
	}
	if _, err := os.Stat(filepath.Join(work, ".pushed")); err != nil {
		t.Fatalf("the hook did not move the branch: %v", err)
	}
	head := git(t, remote, "rev-parse", "main")
	if parent := git(t, remote, "rev-parse", "main^"); parent != other {
		t.Errorf("the revert %s is on %s, want on the commit that landed meanwhile %s", head[:12], parent[:12], other[:12])
	}
	if got := git(t, remote, "show", "main:apps/x.cue") + "\n"; got != desc("v1") {
		t.Errorf("apps/x.cue after the revert = %q, want v1", got)
	}
	if _, err := tryGit(remote, "cat-file", "-e", "main:apps/y.cue"); err != nil {
		t.Errorf("the commit that landed meanwhile was undone: %v", err)
	}
}

// A remote that refuses the server's push (a protected branch) was
// reported as "the branch may have moved meanwhile: run the rollback
// again", which the operator never ran. The event says the branch did
// not move and gives the command that reverts by hand.
func TestAutoRevertRefusedPushSaysWhatToDo(t *testing.T) {
	work := newAppsRepo(t)
	good := commit(t, work, desc("v1"), "x v1")
	bad := commit(t, work, desc("v2"), "x v2: the new image")
	remote := filepath.Join(t.TempDir(), "deploy.git")
	git(t, work, "clone", "-q", "--bare", work, remote)
	hook := "#!/bin/sh\necho 'refs/heads/main is protected' >&2\nexit 1\n"
	if err := os.WriteFile(filepath.Join(remote, "hooks", "pre-receive"), []byte(hook), 0o755); err != nil {
		t.Fatal(err)
	}
	cl := apiservertest.Start(t, apiservertest.Options{})
	c := cl.Client
	synced(t, c, remote, good, rollComplete)
	startComponent(t, c, remote)
	synced(t, c, remote, bad, rollStalled)
	eventually(t, "the AutoRevertStopped event", func() bool { return event(c, ReasonStopped) != nil })
	msg := event(c, ReasonStopped).Spec.Message
	for _, want := range []string{"push rejected", "did not move", "capstan rollback x --to " + good[:12]} {
		if !strings.Contains(msg, want) {
			t.Errorf("event lacks %q: %s", want, msg)
		}
	}
	if strings.Contains(msg, "run the rollback again") {
		t.Errorf("event tells to run a rollback nobody ran: %s", msg)
	}
	if head := git(t, remote, "rev-parse", "main"); head != bad {
		t.Errorf("main moved to %s", head[:12])
	}
}

// httpRemote serves the bare repository dir over git's smart HTTP (git
// http-backend, pushes allowed) on 127.0.0.1, answering 503 while down
// is set, and returns its URL.
func httpRemote(t *testing.T, dir string, down *atomic.Bool) string {
	t.Helper()
	gitBin, err := exec.LookPath("git")
	if err != nil {
		t.Fatal(err)
	}
	git(t, dir, "config", "http.receivepack", "true")
	backend := &cgi.Handler{Path: gitBin, Args: []string{"http-backend"},
		Env: []string{"GIT_PROJECT_ROOT=" + filepath.Dir(dir), "GIT_HTTP_EXPORT_ALL=1", "GIT_CONFIG_NOSYSTEM=1", "HOME=" + dir}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if down.Load() {
			http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
			return
		}
		backend.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv.URL + "/" + filepath.Base(dir)
}

// A remote that could not be reached when the rollout failed (a forge
// outage, a network blip) made the revert be given up for good: the
// failed rollout stayed. It is tried again with back-off, said once,
// and made when the remote answers again.
func TestAutoRevertRetriedWhileTheRemoteIsDown(t *testing.T) {
	work := newAppsRepo(t)
	good := commit(t, work, desc("v1"), "x v1")
	bad := commit(t, work, desc("v2"), "x v2: the new image")
	remote := filepath.Join(t.TempDir(), "deploy.git")
	git(t, work, "clone", "-q", "--bare", work, remote)
	var down atomic.Bool
	down.Store(true)
	url := httpRemote(t, remote, &down)
	cl := apiservertest.Start(t, apiservertest.Options{})
	c := cl.Client
	synced(t, c, remote, good, rollComplete)
	runComponent(t, c, url, func(o *Options) { o.Backoff = 200 * time.Millisecond })
	synced(t, c, remote, bad, rollStalled)
	eventually(t, "the AutoRevertRetrying event", func() bool { return event(c, ReasonRetrying) != nil || event(c, ReasonStopped) != nil })
	if e := event(c, ReasonStopped); e != nil {
		t.Fatalf("given up: %s", e.Spec.Message)
	}
	if msg := event(c, ReasonRetrying).Spec.Message; !strings.Contains(msg, "503") || !strings.Contains(msg, "tried again in") {
		t.Errorf("event: %s", msg)
	}
	down.Store(false)
	eventually(t, "the AutoReverted event", func() bool { return event(c, ReasonReverted) != nil })
	if got := git(t, remote, "show", "main:apps/x.cue") + "\n"; got != desc("v1") {
		t.Errorf("apps/x.cue on the remote after the revert = %q, want v1", got)
	}
	if e := event(c, ReasonStopped); e != nil {
		t.Errorf("AutoRevertStopped after the revert: %s", e.Spec.Message)
	}
}
