package e2e

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/capstanhq/capstan/apiserver/api"
	"github.com/capstanhq/capstan/apiserver/client"
)

// syncApp is an app of one idle pod group whose env carries version.
func syncApp(name, version string) string {
	return fmt.Sprintf("apps: %s: pods: idle: {replicas: 0, containers: c: {image: \"none\", env: V: %q}}\n", name, version)
}

// TestSyncAcrossServerSIGKILL: the server is SIGKILLed as it syncs a
// commit that changes four apps and deletes a fifth, as soon as an app
// shows the commit (the apps' writes take milliseconds: in practice the
// kill lands after them, around the prune and the saving of the applied
// head, which the restarted server does not trust: it applies the head
// again). Started again, every changed app is at the commit with exactly
// one Applied revision of it, the deleted app is gone, and the apps the
// commit left alone are still there.
func TestSyncAcrossServerSIGKILL(t *testing.T) {
	files := map[string]string{"keep.cue": keepApps, "gone.cue": syncApp("gone", "v1")}
	changed := []string{"s1", "s2", "s3", "s4"}
	for _, a := range changed {
		files[a+".cue"] = syncApp(a, "v1")
	}
	repo := NewGitRepo(t, files)
	c := New(t, Options{Hosts: 1, ServerArgs: []string{"--repo", repo.Dir}})
	ctx := context.Background()
	app := func(name string) (*api.App, error) {
		o, err := c.Admin.Get(ctx, api.Key{Kind: api.KindApp, App: name, Name: name})
		if err != nil {
			return nil, err
		}
		return o.(*api.App), nil
	}
	c.WaitFor("the first commit synced", 2*time.Minute, func() bool {
		for _, a := range append([]string{"gone", "keep1"}, changed...) {
			if _, err := app(a); err != nil {
				return false
			}
		}
		return true
	})

	next := map[string]string{"gone.cue": ""}
	for _, a := range changed {
		next[a+".cue"] = syncApp(a, "v2")
	}
	repo.Commit("v2 of four apps, one app removed", next)
	head := repo.Head()
	atHead := 0
	c.WaitFor("one app at the new commit", time.Minute, func() bool {
		for _, a := range changed {
			if x, err := app(a); err == nil && x.Status.SyncedCommit == head {
				atHead++
			}
		}
		return atHead > 0
	})
	_, err := app("gone")
	c.KillServer()
	t.Logf("killed with %d of %d changed apps at the commit, the app to delete there: %v", atHead, len(changed), err == nil)

	c.WaitFor("every changed app at the new commit", 2*time.Minute, func() bool {
		for _, a := range changed {
			if x, err := app(a); err != nil || x.Status.SyncedCommit != head || x.Status.LastSyncResult != api.SyncApplied {
				return false
			}
		}
		_, err := app("gone")
		return client.IsNotFound(err)
	})
	for _, a := range changed {
		objs, _, err := c.Admin.List(ctx, api.KindRevision, client.ListOptions{App: a})
		if err != nil {
			t.Fatal(err)
		}
		var of []string
		for _, o := range objs {
			if r := o.(*api.Revision); r.Spec.Commit == head {
				of = append(of, r.Metadata.Name+" "+r.Spec.Result)
			}
		}
		if len(of) != 1 || !strings.HasSuffix(of[0], " "+api.SyncApplied) {
			t.Errorf("app %s: revisions of the commit %v, want one Applied", a, of)
		}
	}
	for _, a := range []string{"keep1", "keep2"} {
		if _, err := app(a); err != nil {
			t.Errorf("app %s, which the commit left alone: %v", a, err)
		}
	}
}

// Head is the full hash of the repository's head commit.
func (r *GitRepo) Head() string {
	r.t.Helper()
	out, err := exec.Command("git", "-C", r.Dir, "rev-parse", "HEAD").Output()
	if err != nil {
		r.t.Fatalf("e2e: git rev-parse HEAD: %v", err)
	}
	return strings.TrimSpace(string(out))
}
