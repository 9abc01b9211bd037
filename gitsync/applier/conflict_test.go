package applier_test

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"crypto/tls"
	"crypto/x509"

	"github.com/capstanhq/capstan/apiserver/api"
	"github.com/capstanhq/capstan/apiserver/apiservertest"
	"github.com/capstanhq/capstan/apiserver/client"
	"github.com/capstanhq/capstan/gitsync"
	"github.com/capstanhq/capstan/gitsync/applier"
)

// interferer is a proxy in front of the API server that, before
// forwarding the first write of each App's status or spec since reset,
// writes that App's health itself, as the app controller does: the write
// it forwards then loses the compare-and-swap.
type interferer struct {
	t      *testing.T
	direct *client.Client
	mu     sync.Mutex
	done   map[string]bool
	bumps  int
}

func (in *interferer) reset() {
	in.mu.Lock()
	in.done = map[string]bool{}
	in.mu.Unlock()
}

// touched lists the apps a request writes (updates and status writes,
// not creates).
func touched(r *http.Request, body []byte) []string {
	var out []string
	name := func(raw json.RawMessage) string {
		var o struct {
			Kind     string `json:"kind"`
			Metadata struct {
				Name string `json:"name"`
			} `json:"metadata"`
		}
		if json.Unmarshal(raw, &o) != nil || o.Kind != "App" {
			return ""
		}
		return o.Metadata.Name
	}
	switch {
	case r.Method == http.MethodPost && r.URL.Path == "/api/v1/txn":
		var req struct {
			Ops []struct {
				Op     string          `json:"op"`
				Object json.RawMessage `json:"object"`
			} `json:"ops"`
		}
		if json.Unmarshal(body, &req) == nil {
			for _, op := range req.Ops {
				if n := name(op.Object); n != "" && (op.Op == "update" || op.Op == "status") {
					out = append(out, n)
				}
			}
		}
	case r.Method == http.MethodPut && strings.HasPrefix(r.URL.Path, "/api/v1/apps/"):
		if n := name(body); n != "" {
			out = append(out, n)
		}
	}
	return out
}

func (in *interferer) before(ctx context.Context, apps []string) {
	for _, n := range apps {
		in.mu.Lock()
		first := !in.done[n]
		in.done[n] = true
		in.mu.Unlock()
		if !first {
			continue
		}
		obj, err := in.direct.Get(ctx, api.Key{Kind: api.KindApp, App: n, Name: n})
		if err != nil {
			in.t.Errorf("interferer: get %s: %v", n, err)
			continue
		}
		app := obj.(*api.App)
		app.Status.Health, app.Status.HealthMessage = api.HealthHealthy, "written by the interferer"
		if _, err := in.direct.UpdateStatus(ctx, app); err != nil {
			in.t.Errorf("interferer: write %s: %v", n, err)
		}
		in.mu.Lock()
		in.bumps++
		in.mu.Unlock()
	}
}

func startInterferer(t *testing.T, cl *apiservertest.Cluster) (*interferer, *client.Client) {
	in := &interferer{t: t, direct: cl.Client, done: map[string]bool{}}
	target, err := url.Parse(cl.Config.Server)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM([]byte(cl.Config.CA))
	rp := httputil.NewSingleHostReverseProxy(target)
	rp.Transport = &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		in.before(r.Context(), touched(r, body))
		rp.ServeHTTP(w, r)
	}))
	srv.EnableHTTP2 = true
	srv.StartTLS()
	t.Cleanup(srv.Close)
	cfg := *cl.Config
	cfg.Server = srv.URL
	cfg.CA = string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}))
	c, err := client.New(&cfg)
	if err != nil {
		t.Fatal(err)
	}
	return in, c
}

// TestStatusWritesSurviveConflicts: every write of an App's status loses
// a compare-and-swap to a concurrent health write once; the applier
// retries on the fresh object, so every app ends with its Synced
// condition and sync result, and the concurrent health is kept.
func TestStatusWritesSurviveConflicts(t *testing.T) {
	cl := apiservertest.Start(t, apiservertest.Options{})
	in, c := startInterferer(t, cl)
	ap, err := applier.New(applier.Options{Client: c, RepoURLs: map[string]string{"demo": "file:///demo"}})
	if err != nil {
		t.Fatal(err)
	}
	if c, ok := any(ap).(interface{ Close() error }); ok {
		defer c.Close()
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	const n = 20
	fsys := fstest.MapFS{}
	write := func(image string) {
		for i := range n {
			fsys[fmt.Sprintf("app%02d.cue", i)] = &fstest.MapFile{Data: fmt.Appendf(nil, "apps: app%02d: pods: web: containers: c: image: %q\n", i, image)}
		}
	}
	sync := func(commit int) {
		t.Helper()
		in.reset()
		sha := fmt.Sprintf("%040x", commit)
		snap := gitsync.Snapshot{Repo: "demo", FS: fsys, CommitInfo: gitsync.CommitInfo{Commit: sha, Message: fmt.Sprintf("commit %d", commit)}}
		if _, err := ap.ApplySnapshot(ctx, snap); err != nil {
			t.Errorf("commit %d: apply: %v", commit, err)
		}
		ap.Report(ctx, gitsync.Result{Repo: "demo", Head: sha, Applied: true, Changed: true, At: time.Now()})
	}
	check := func(commit int, result string) {
		t.Helper()
		objs, _, err := cl.Client.List(ctx, api.KindApp, client.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if len(objs) != n {
			t.Fatalf("%d apps, want %d", len(objs), n)
		}
		// A rejected app is not in sync with its repository.
		want := api.ConditionTrue
		if result == api.SyncRejected {
			want = api.ConditionFalse
		}
		missing := 0
		for _, o := range objs {
			a := o.(*api.App)
			cond := api.FindCondition(a.Status.Conditions, "Synced")
			if cond == nil || cond.Status != want || a.Status.LastSyncResult != result || a.Status.AttemptedCommit != fmt.Sprintf("%040x", commit) {
				missing++
				t.Logf("app %s after commit %d: result %s at %s, Synced %v", a.Metadata.Name, commit, a.Status.LastSyncResult, a.Status.AttemptedCommit, cond)
			}
		}
		if missing > 0 {
			t.Errorf("after commit %d: %d of %d apps lack their sync status", commit, missing, n)
		}
	}
	write("reg/a:v1")
	sync(1)
	check(1, api.SyncApplied)

	write("reg/a:v2") // every app changes: an update each
	sync(2)
	check(2, api.SyncApplied)
	if in.bumps == 0 {
		t.Fatal("the interferer never wrote: the test provoked no conflict")
	}
	for i := range n {
		obj, err := cl.Client.Get(ctx, api.Key{Kind: api.KindApp, App: fmt.Sprintf("app%02d", i), Name: fmt.Sprintf("app%02d", i)})
		if err != nil {
			t.Fatal(err)
		}
		if a := obj.(*api.App); a.Status.HealthMessage != "written by the interferer" {
			t.Errorf("app %s: the concurrent health write was overwritten (health %q)", a.Metadata.Name, a.Status.HealthMessage)
		}
	}

	for i := range n { // every app breaks: a rejection each
		fsys[fmt.Sprintf("app%02d.cue", i)] = &fstest.MapFile{Data: fmt.Appendf(nil, "apps: app%02d: pods: web: replicas: \"x\"\n", i)}
	}
	sync(3)
	check(3, api.SyncRejected)
}

// TestDeletedAppRestoredOnNextCommit: an App deleted through the API is
// created again by the next commit, although that commit does not change
// it (the applier compares git with the apps as they are, not as it last
// wrote them).
func TestDeletedAppRestoredOnNextCommit(t *testing.T) {
	cl, ap, ctx := startDemo(t)
	fsys := fstest.MapFS{
		"a.cue": {Data: []byte(`apps: a: pods: web: containers: c: image: "reg/a:v1"`)},
		"b.cue": {Data: []byte(`apps: b: pods: web: containers: c: image: "reg/b:v1"`)},
	}
	apply := func(commit int) applier.Outcome {
		t.Helper()
		out, err := ap.ApplySnapshot(ctx, gitsync.Snapshot{Repo: "demo", FS: fsys, CommitInfo: gitsync.CommitInfo{Commit: fmt.Sprintf("%040x", commit)}})
		if err != nil {
			t.Fatalf("commit %d: %v", commit, err)
		}
		return out
	}
	apply(1)
	key := api.Key{Kind: api.KindApp, App: "a", Name: "a"}
	if _, err := cl.Client.Delete(ctx, key, client.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	// Wait until the deletion is visible through a watch, as the
	// applier's cache is.
	w, err := cl.Client.Watch(ctx, api.KindApp, client.ListOptions{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	for {
		e, err := w.Next()
		if err != nil {
			t.Fatal(err)
		}
		if e.Type == "DELETED" && e.Object.Meta().Name == "a" {
			break
		}
	}
	w.Close()
	fsys["b.cue"] = &fstest.MapFile{Data: []byte(`apps: b: pods: web: containers: c: image: "reg/b:v2"`)}
	deadline := time.Now().Add(30 * time.Second)
	for {
		out := apply(2)
		if _, err := cl.Client.Get(ctx, key); err == nil {
			break
		} else if !client.IsNotFound(err) {
			t.Fatal(err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("app a deleted through the API was not created again (outcome %+v)", out)
		}
	}
}

// An app that two repositories declare stays with the one that created
// it; the other repository's commit applies its other apps and records
// the clash as a repository error, instead of failing whole and being
// tried again on every sync.
func TestAppOfAnotherRepositoryRefusedAlone(t *testing.T) {
	cl, ap, ctx := startDemo(t)
	one := fstest.MapFS{"a.cue": {Data: []byte(`apps: a: pods: web: containers: c: image: "reg/a:v1"`)}}
	two := fstest.MapFS{
		"a.cue": {Data: []byte(`apps: a: pods: web: containers: c: image: "reg/a:v2"`)},
		"b.cue": {Data: []byte(`apps: b: pods: web: containers: c: image: "reg/b:v1"`)},
	}
	if _, err := ap.ApplySnapshot(ctx, gitsync.Snapshot{Repo: "one", FS: one, CommitInfo: gitsync.CommitInfo{Commit: fmt.Sprintf("%040x", 1)}}); err != nil {
		t.Fatal(err)
	}
	out, err := ap.ApplySnapshot(ctx, gitsync.Snapshot{Repo: "two", FS: two, CommitInfo: gitsync.CommitInfo{Commit: fmt.Sprintf("%040x", 2)}})
	if err != nil {
		t.Fatalf("repository two failed whole for one app of repository one (it would be tried again on every sync): %v", err)
	}
	if fmt.Sprint(out.Applied) != "[b]" {
		t.Errorf("applied %v, want [b]", out.Applied)
	}
	if len(out.Errors) != 1 || out.Errors[0].File != "a.cue" || !strings.Contains(out.Errors[0].Message, "belongs to repository one") ||
		!strings.Contains(out.Errors[0].Message, "rename") {
		t.Errorf("repository errors %+v, want one naming a.cue, repository one and what to do", out.Errors)
	}
	obj, err := cl.Client.Get(ctx, api.Key{Kind: api.KindApp, App: "a", Name: "a"})
	if err != nil {
		t.Fatal(err)
	}
	a := obj.(*api.App)
	if a.Metadata.Labels[applier.LabelRepo] != "one" || !strings.Contains(fmt.Sprint(a.Spec), "reg/a:v1") {
		t.Errorf("app a changed hands: repo %q, spec %v", a.Metadata.Labels[applier.LabelRepo], a.Spec)
	}
	revs, _, err := cl.Client.List(ctx, api.KindRevision, client.ListOptions{Labels: map[string]string{applier.LabelScope: applier.ScopeRepository}})
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, o := range revs {
		r := o.(*api.Revision)
		found = found || (r.Metadata.App == "two" && r.Spec.Result == api.SyncRejected)
	}
	if !found {
		t.Errorf("no Rejected revision of repository two in history (%d repository revisions)", len(revs))
	}
	if drift, err := ap.Drifted(ctx, "two"); err != nil || drift {
		t.Fatalf("Drifted while repository one still owns app a = %v, %v; want false", drift, err)
	}
	// Repository one lets go of app a: repository two takes it up at its
	// next sync, though its head did not move.
	if _, err := ap.ApplySnapshot(ctx, gitsync.Snapshot{Repo: "one", FS: fstest.MapFS{}, PruneConfirmed: true,
		CommitInfo: gitsync.CommitInfo{Commit: fmt.Sprintf("%040x", 3)}}); err != nil {
		t.Fatal(err)
	}
	if drift, err := ap.Drifted(ctx, "two"); err != nil || !drift {
		t.Fatalf("Drifted after repository one dropped app a = %v, %v; want true", drift, err)
	}
	out, err = ap.ApplySnapshot(ctx, gitsync.Snapshot{Repo: "two", FS: two, Previous: fmt.Sprintf("%040x", 2),
		CommitInfo: gitsync.CommitInfo{Commit: fmt.Sprintf("%040x", 2)}})
	if err != nil || fmt.Sprint(out.Applied) != "[a]" || len(out.Errors) != 0 {
		t.Fatalf("repository two applied again: %+v, %v; want app a applied and no errors", out, err)
	}
}

// A head refused by the signature policy is recorded once per app: a
// restarted server (or a new leader) reporting the same refusal adds no
// second Rejected row to the history.
func TestSignatureRefusalRecordedOnce(t *testing.T) {
	cl := apiservertest.Start(t, apiservertest.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	fsys := fstest.MapFS{"a.cue": {Data: []byte(`apps: a: pods: web: containers: c: image: "reg/a:v1"`)}}
	now := time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)
	ap, err := applier.New(applier.Options{Client: cl.Client, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ap.ApplySnapshot(ctx, gitsync.Snapshot{Repo: "demo", FS: fsys, CommitInfo: gitsync.CommitInfo{Commit: fmt.Sprintf("%040x", 1)}}); err != nil {
		t.Fatal(err)
	}
	ap.Close()
	refused := fmt.Sprintf("%040x", 2)
	for restart := range 2 {
		now = now.Add(time.Minute) // each server reports in its own second
		ap, err := applier.New(applier.Options{Client: cl.Client, Now: func() time.Time { return now }})
		if err != nil {
			t.Fatal(err)
		}
		ap.Report(ctx, gitsync.Result{Repo: "demo", Head: refused, At: now, Changed: true, Err: &gitsync.SignatureError{
			Repo: "demo", Head: gitsync.CommitInfo{Commit: refused, Author: "Eve", Message: "unsigned"}, Err: gitsync.ErrUnsigned}})
		ap.Close()
		revs, _, err := cl.Client.List(ctx, api.KindRevision, client.ListOptions{App: "a"})
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, o := range revs {
			if r := o.(*api.Revision); r.Spec.Commit == refused && r.Spec.Result == api.SyncRejected {
				n++
			}
		}
		if n != 1 {
			t.Fatalf("after %d restart(s), %d Rejected revisions of the refused head, want 1", restart, n)
		}
	}
}

// A force-push is said in the server's log, not only in the history.
func TestHistoryRewriteLogged(t *testing.T) {
	cl := apiservertest.Start(t, apiservertest.Options{})
	var logs bytes.Buffer
	var mu sync.Mutex
	ap, err := applier.New(applier.Options{Client: cl.Client, Logger: slog.New(slog.NewTextHandler(&lockedWriter{mu: &mu, w: &logs}, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer ap.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	fsys := fstest.MapFS{"a.cue": {Data: []byte(`apps: a: pods: web: containers: c: image: "reg/a:v1"`)}}
	if err := ap.Apply(ctx, gitsync.Snapshot{Repo: "demo", FS: fsys, CommitInfo: gitsync.CommitInfo{Commit: fmt.Sprintf("%040x", 1)}}); err != nil {
		t.Fatal(err)
	}
	if err := ap.Apply(ctx, gitsync.Snapshot{Repo: "demo", FS: fsys, Previous: fmt.Sprintf("%040x", 1), HistoryRewrite: true,
		CommitInfo: gitsync.CommitInfo{Commit: fmt.Sprintf("%040x", 2)}}); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if !strings.Contains(logs.String(), "level=WARN msg=\"history rewritten") {
		t.Fatalf("no warning of the history rewrite in the log:\n%s", logs.String())
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// A new app whose first commit is rejected claims its name for its
// repository, as an Argo CD Application belongs to whoever made it: a
// second repository that declares the name is refused, saying whose it
// is and what to do, and the app stays the first one's (nothing
// deployed); it does not change hands because its owner pushed a typo.
func TestRejectedNewAppKeepsItsName(t *testing.T) {
	cl, ap, ctx := startDemo(t)
	one := fstest.MapFS{"a.cue": {Data: []byte(`apps: a: pods: web: {replicas: "two", containers: c: image: "reg/a:v1"}`)}}
	two := fstest.MapFS{"a.cue": {Data: []byte(`apps: a: pods: web: containers: c: image: "reg/a:v2"`)}}
	if out, err := ap.ApplySnapshot(ctx, gitsync.Snapshot{Repo: "one", FS: one, CommitInfo: gitsync.CommitInfo{Commit: fmt.Sprintf("%040x", 1)}}); err != nil || fmt.Sprint(out.Rejected) != "[a]" {
		t.Fatalf("repository one: %+v, %v; want app a rejected", out, err)
	}
	out, err := ap.ApplySnapshot(ctx, gitsync.Snapshot{Repo: "two", FS: two, CommitInfo: gitsync.CommitInfo{Commit: fmt.Sprintf("%040x", 2)}})
	if err != nil || fmt.Sprint(out.Foreign) != "[a]" || len(out.Errors) != 1 || !strings.Contains(out.Errors[0].Message, "belongs to repository one") {
		t.Fatalf("repository two: %+v, %v; want app a refused as repository one's", out, err)
	}
	obj, err := cl.Client.Get(ctx, api.Key{Kind: api.KindApp, App: "a", Name: "a"})
	if err != nil {
		t.Fatal(err)
	}
	if a := obj.(*api.App); a.Metadata.Labels[applier.LabelRepo] != "one" || len(a.Spec.Workloads) != 0 || !a.Status.NeverApplied() {
		t.Errorf("app a: repo %q, %d pod groups, never applied %v; want repository one's, nothing deployed", a.Metadata.Labels[applier.LabelRepo], len(a.Spec.Workloads), a.Status.NeverApplied())
	}
}

// The other way round: an app another repository runs is not this
// repository's to reject. A commit declaring it, invalid, is refused as
// an app of another repository (a repository error saying whose it is
// and what to do), and the running app gets no Rejected revision or
// event from it, which said 'nothing was deployed' of an app that runs.
func TestRejectedAppOfAnotherRepositoryLeftAlone(t *testing.T) {
	cl, ap, ctx := startDemo(t)
	one := fstest.MapFS{"a.cue": {Data: []byte(`apps: a: pods: web: containers: c: image: "reg/a:v1"`)}}
	two := fstest.MapFS{"a.cue": {Data: []byte(`apps: a: pods: web: {replicas: "two", containers: c: image: "reg/a:v2"}`)}}
	if _, err := ap.ApplySnapshot(ctx, gitsync.Snapshot{Repo: "one", FS: one, CommitInfo: gitsync.CommitInfo{Commit: fmt.Sprintf("%040x", 1)}}); err != nil {
		t.Fatal(err)
	}
	out, err := ap.ApplySnapshot(ctx, gitsync.Snapshot{Repo: "two", FS: two, CommitInfo: gitsync.CommitInfo{Commit: fmt.Sprintf("%040x", 2)}})
	if err != nil || fmt.Sprint(out.Foreign) != "[a]" || len(out.Rejected) != 0 || len(out.Errors) != 1 ||
		!strings.Contains(out.Errors[0].Message, "belongs to repository one") || out.Errors[0].File != "a.cue" {
		t.Fatalf("repository two: %+v, %v; want app a refused as repository one's, in a.cue", out, err)
	}
	revs, _, err := cl.Client.List(ctx, api.KindRevision, client.ListOptions{App: "a"})
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range revs {
		if r := o.(*api.Revision); r.Metadata.Labels[applier.LabelRepo] != "one" {
			t.Errorf("app a, repository one's, has a revision of repository %s: %+v", r.Metadata.Labels[applier.LabelRepo], r.Spec)
		}
	}
	evs, _, err := cl.Client.List(ctx, api.KindEvent, client.ListOptions{App: "a"})
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range evs {
		t.Errorf("app a, running repository one's commit, got an event from repository two: %+v", o)
	}
	obj, err := cl.Client.Get(ctx, api.Key{Kind: api.KindApp, App: "a", Name: "a"})
	if err != nil {
		t.Fatal(err)
	}
	if a := obj.(*api.App); a.Status.LastSyncResult != api.SyncApplied || a.Status.SyncedCommit != fmt.Sprintf("%040x", 1) {
		t.Errorf("app a's status changed: %+v", a.Status)
	}
}
