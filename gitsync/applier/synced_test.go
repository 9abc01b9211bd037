package applier_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/capstanhq/capstan/apiserver/api"
	"github.com/capstanhq/capstan/gitsync"
	"github.com/capstanhq/capstan/gitsync/applier"
)

// TestRejectedAppIsNotSynced: a commit that rejects an app's descriptor
// makes that app's Synced condition False/SyncRejected with the commit
// and the first error's file:line (what scripts, 'capstan describe app'
// and the API read), also after the syncer reports the head as fetched
// fine; the app that applied stays True; a later commit that applies
// makes it True again. Argo CD shows such an app OutOfSync, Flux sets
// Ready=False.
func TestRejectedAppIsNotSynced(t *testing.T) {
	cl, ap, ctx := startDemo(t)
	// sync is what the Syncer does with a head: apply it, then report.
	sync := func(commit int, files map[string]string) string {
		t.Helper()
		snap := demoSnapshot(commit, files)
		if err := ap.Apply(ctx, snap); err != nil {
			t.Fatalf("commit %d: %v", commit, err)
		}
		ap.Report(ctx, gitsync.Result{Repo: "demo", Head: snap.Commit, Applied: true, Changed: true, At: time.Now()})
		return snap.Commit
	}
	synced := func(app string) api.Condition {
		t.Helper()
		obj, err := cl.Client.Get(ctx, api.Key{Kind: api.KindApp, App: app, Name: app})
		if err != nil {
			t.Fatal(err)
		}
		c := api.FindCondition(obj.(*api.App).Status.Conditions, "Synced")
		if c == nil {
			t.Fatalf("app %s has no Synced condition", app)
		}
		return *c
	}
	web := `apps: web: pods: web: containers: c: image: "reg/web:v1"` + "\n"
	good := `apps: bad: pods: web: containers: c: image: "reg/bad:v1"` + "\n"
	broken := `apps: bad: pods: web: replicas: -3, containers: c: image: "reg/bad:v1"` + "\n"

	sync(1, map[string]string{"web.cue": web, "bad.cue": good})
	if c := synced("bad"); c.Status != api.ConditionTrue {
		t.Fatalf("after a good commit: Synced %+v, want True", c)
	}
	sha := sync(2, map[string]string{"web.cue": web, "bad.cue": broken})
	c := synced("bad")
	if c.Status != api.ConditionFalse || c.Reason != applier.ReasonSyncRejected ||
		!strings.Contains(c.Message, api.ShortCommit(sha)) || !strings.Contains(c.Message, "bad.cue:1:") {
		t.Errorf("after a rejected commit: Synced %+v, want False/%s naming commit %s and bad.cue:1:", c, applier.ReasonSyncRejected, api.ShortCommit(sha))
	}
	if c := synced("web"); c.Status != api.ConditionTrue {
		t.Errorf("app web applied, yet Synced %+v", c)
	}
	// A commit that leaves the broken file as it is: still rejected.
	sha = sync(3, map[string]string{"web.cue": web, "bad.cue": broken, "other.cue": "// unrelated\n"})
	if c := synced("bad"); c.Status != api.ConditionFalse || c.Reason != applier.ReasonSyncRejected {
		t.Errorf("after a second rejected commit: Synced %+v, want False/%s", c, applier.ReasonSyncRejected)
	}
	// The remote fails for a while, then answers with the same head: the
	// app says why it is out of sync each time.
	ap.Report(ctx, gitsync.Result{Repo: "demo", Head: sha, Changed: true, At: time.Now(), Err: errors.New("fetch: connection refused")})
	if c := synced("bad"); c.Status != api.ConditionFalse || c.Reason != applier.ReasonSyncFailed {
		t.Errorf("while the fetch fails: Synced %+v, want False/%s", c, applier.ReasonSyncFailed)
	}
	ap.Report(ctx, gitsync.Result{Repo: "demo", Head: sha, Changed: true, At: time.Now()})
	if c := synced("bad"); c.Status != api.ConditionFalse || c.Reason != applier.ReasonSyncRejected || !strings.Contains(c.Message, "bad.cue:1:") {
		t.Errorf("fetched again, head still rejected: Synced %+v, want False/%s naming bad.cue:1:", c, applier.ReasonSyncRejected)
	}
	if c := synced("web"); c.Status != api.ConditionTrue {
		t.Errorf("fetched again: app web Synced %+v, want True", c)
	}
	sync(4, map[string]string{"web.cue": web, "bad.cue": good})
	if c := synced("bad"); c.Status != api.ConditionTrue || c.Reason != applier.ReasonSynced {
		t.Errorf("after the fix: Synced %+v, want True/%s", c, applier.ReasonSynced)
	}
}
