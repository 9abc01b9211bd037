package forge

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/cgi"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/capstanhq/capstan/apiserver/api"
	"github.com/capstanhq/capstan/apiserver/apiservertest"
	"github.com/capstanhq/capstan/apiserver/client"
	"github.com/capstanhq/capstan/gitsync"
	"github.com/capstanhq/capstan/internal/testenv"
)

// serveGit serves the bare repositories under root over smart HTTP (git
// http-backend) on 127.0.0.1 and returns the base URL.
func serveGit(t testing.TB, root string) string {
	t.Helper()
	out, err := exec.Command("git", "--exec-path").Output()
	if err != nil {
		t.Fatalf("git --exec-path: %v", err)
	}
	h := &cgi.Handler{Path: filepath.Join(strings.TrimSpace(string(out)), "git-http-backend"), Stderr: io.Discard,
		Env: []string{"GIT_PROJECT_ROOT=" + root, "GIT_HTTP_EXPORT_ALL=1", "GIT_CONFIG_NOSYSTEM=1", "HOME=" + root}}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL
}

func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	testenv.Eventually(t, 60*time.Second, what, cond)
}

const hookSecret = "hook-secret"

// hook sends a signed pull-request webhook as the forge would and returns
// the answer's status code.
func hook(t testing.TB, url, kind string, n int, action, delivery string, sign bool) int {
	t.Helper()
	return hookInto(t, url, kind, n, action, delivery, "main", sign)
}

// hookInto is hook for a pull request into base.
func hookInto(t testing.TB, url, kind string, n int, action, delivery, base string, sign bool) int {
	t.Helper()
	return hookEdit(t, url, kind, n, action, delivery, base, sign, nil)
}

// hookLabeled sends the webhook of label added to pull request n.
func hookLabeled(t testing.TB, url, kind string, n int, label, delivery string) int {
	t.Helper()
	action := "labeled"
	if kind == "gitlab" {
		action = "update"
	}
	return hookEdit(t, url, kind, n, action, delivery, "main", true, func(m map[string]any) {
		if kind == "gitlab" {
			m["changes"] = map[string]any{"labels": map[string]any{"previous": []any{}, "current": []any{map[string]any{"title": label}}}}
		} else {
			m["label"] = map[string]any{"name": label}
		}
	})
}

// hookEdit is hookInto with the payload changed by edit (when not nil).
func hookEdit(t testing.TB, url, kind string, n int, action, delivery, base string, sign bool, edit func(map[string]any)) int {
	t.Helper()
	name := map[string]string{"github": "event_pull_request", "gitea": "event_pull_request", "gitlab": "event_merge_request"}[kind]
	b, err := os.ReadFile(filepath.Join("testdata", kind, name+".json"))
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	if kind == "gitlab" {
		a := m["object_attributes"].(map[string]any)
		a["iid"], a["action"], a["target_branch"] = n, action, base
	} else {
		m["number"], m["action"] = n, action
		m["pull_request"].(map[string]any)["number"] = n
		m["pull_request"].(map[string]any)["base"].(map[string]any)["ref"] = base
	}
	if edit != nil {
		edit(m)
	}
	body, _ := json.Marshal(m)
	req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	mac := hmac.New(sha256.New, []byte(hookSecret))
	mac.Write(body)
	sig := hex.EncodeToString(mac.Sum(nil))
	if !sign {
		sig = strings.Repeat("0", 64)
	}
	switch kind {
	case "github":
		req.Header.Set("X-GitHub-Event", "pull_request")
		req.Header.Set("X-GitHub-Delivery", delivery)
		req.Header.Set("X-Hub-Signature-256", "sha256="+sig)
	case "gitea":
		req.Header.Set("X-Gitea-Event", "pull_request")
		req.Header.Set("X-Gitea-Delivery", delivery)
		req.Header.Set("X-Gitea-Signature", sig)
	case "gitlab":
		req.Header.Set("X-Gitlab-Event", "Merge Request Hook")
		req.Header.Set("X-Gitlab-Event-UUID", delivery)
		tok := hookSecret
		if !sign {
			tok = "wrong"
		}
		req.Header.Set("X-Gitlab-Token", tok)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// addNode registers a ready node with room for a few pods.
func addNode(t testing.TB, c *client.Client, name string) {
	t.Helper()
	n := api.KindNode.New().(*api.Node)
	n.Metadata.Name = name
	n.Status.Allocatable = api.ResourceList{CPU: api.MustParseQuantity("4"), Memory: api.MustParseQuantity("8Gi"), Pods: 110}
	n.Status.Conditions = []api.Condition{{Type: api.NodeReady, Status: api.ConditionTrue, Reason: "AgentReady"}}
	n.Status.Addresses = []api.NodeAddress{{Type: "InternalIP", Address: "10.0.0.1"}}
	if _, err := c.Create(context.Background(), n); err != nil {
		t.Fatal(err)
	}
}

func setCordon(t testing.TB, c *client.Client, name string, on bool) {
	t.Helper()
	for {
		o, err := c.Get(context.Background(), api.Key{Kind: api.KindNode, Name: name})
		if err != nil {
			t.Fatal(err)
		}
		n := api.Clone(o.(*api.Node))
		n.Spec.Unschedulable = on
		if _, err = c.Update(context.Background(), n); err == nil {
			return
		} else if !client.IsConflict(err) {
			t.Fatal(err)
		}
	}
}

type prFlow struct {
	t       testing.TB
	kind    string
	bare    *bareRepo
	forge   *fakeForge
	cluster *apiservertest.Cluster
	hookURL string
	cancel  context.CancelFunc
	done    chan error
	// rc and opts are the component's, for restart.
	rc   gitsync.RepoConfig
	opts Options
}

// startFlow runs the component for one repository served over real git
// smart HTTP, with the forge API in the test and a real API server; pull
// request webhooks reach it through gitsync's webhook handler.
func startFlow(t testing.TB, kind, token string, tweaks ...func(*gitsync.RepoConfig, *Options)) *prFlow {
	return startFlowOn(t, apiservertest.Options{}, kind, token, tweaks...)
}

// startFlowOn is startFlow on an API server started with server.
func startFlowOn(t testing.TB, server apiservertest.Options, kind, token string, tweaks ...func(*gitsync.RepoConfig, *Options)) *prFlow {
	bare := newBareRepo(t)
	gitURL := serveGit(t, filepath.Dir(bare.dir)) + "/deploy.git"
	f := newFakeForge(t, kind, bare.dir)
	cl := apiservertest.Start(t, server)
	addNode(t, cl.Client, "n1")
	rc := gitsync.RepoConfig{Name: "deploy", URL: gitURL, Branch: "main", Path: "apps", WebhookSecret: hookSecret,
		Forge: &gitsync.ForgeConfig{Type: kind, APIURL: f.apiURL(), Project: "org/deploy", Token: token, PollInterval: time.Hour,
			TargetURL: "https://capstan.example.com/prs/{pr}"}}
	o := Options{API: cl.Client, DataDir: t.TempDir(), ClusterDebounce: 50 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))}
	for _, tw := range tweaks {
		tw(&rc, &o)
	}
	if o.Repos == nil { // a tweak may give the component a config sync would refuse
		o.Repos = []gitsync.RepoConfig{rc}
	}
	comp, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	syncer, err := gitsync.New(gitsync.Options{DataDir: t.TempDir(), Repos: []gitsync.RepoConfig{rc}, Sink: nopSink{}, OnHook: comp.HandleHook})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle(gitsync.WebhookPath, syncer.WebhookHandler())
	hs := httptest.NewServer(mux)
	t.Cleanup(hs.Close)
	ctx, cancel := context.WithCancel(context.Background())
	fl := &prFlow{t: t, kind: kind, bare: bare, forge: f, cluster: cl, hookURL: hs.URL + "/hooks/git/deploy", cancel: cancel, done: make(chan error, 1),
		rc: rc, opts: o}
	go func() { fl.done <- comp.Start(ctx) }()
	t.Cleanup(func() { fl.stop() })
	return fl
}

// stop stops the component, as a server going down; once.
func (fl *prFlow) stop() {
	if fl.cancel == nil {
		return
	}
	fl.cancel()
	fl.cancel = nil
	if err := <-fl.done; err != nil {
		fl.t.Errorf("component: %v", err)
	}
}

// restart starts a new component, as a server starting again, on the same
// cluster, forge and data directory (webhooks still reach the first one's
// handler, so a restarted flow learns of pull requests by listing them).
func (fl *prFlow) restart() {
	fl.t.Helper()
	fl.stop()
	comp, err := New(fl.opts)
	if err != nil {
		fl.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	fl.cancel, fl.done = cancel, make(chan error, 1)
	go func() { fl.done <- comp.Start(ctx) }()
}

type nopSink struct{}

func (nopSink) Apply(context.Context, gitsync.Snapshot) error { return nil }
func (nopSink) Report(context.Context, gitsync.Result)        {}

func (fl *prFlow) waitStatus(sha string, want State, what string) Status {
	fl.t.Helper()
	if fl.kind == "gitlab" && want == StateFailure {
		want = "failed"
	}
	var st Status
	eventually(fl.t, what, func() bool {
		var ok bool
		st, ok = fl.forge.lastStatus(sha, PlanContext)
		if ok && st.State != want {
			fl.t.Logf("status of %.7s: %s %q (waiting for %s)", sha, st.State, st.Description, want)
		}
		return ok && st.State == want
	})
	return st
}

func (fl *prFlow) comment(n int) string {
	cs := fl.forge.ownComments(n)
	if len(cs) != 1 {
		return fmt.Sprintf("%d own comments", len(cs))
	}
	return cs[0].body
}

// The pull-request journey on each forge: a pull request opened through
// the forge's API gets one plan comment and a success status; a push of
// an invalid descriptor turns both to the error with file:line:col and
// failure; a human's edit of the comment and a human quoting the marker
// leave exactly one comment of ours, updated in place; a fix turns it
// green; a cordoned cluster flips the fit; a pull request from a fork is
// planned like any; a head that vanished is said so; and webhooks with
// bad signatures or replayed are refused.
func TestPullRequestFlow(t *testing.T) {
	for _, kind := range kinds {
		t.Run(kind, func(t *testing.T) {
			fl := startFlow(t, kind, "secret-token")
			f, bare := fl.forge, fl.bare
			sha := bare.branch(t, "web-v2", "apps/x.cue", "apps: x: pods: p: containers: c: image: \"r/x:v2\"\n")
			n := f.open("web-v2", "main", "web v2")
			if code := hook(t, fl.hookURL, kind, n, "opened", "d1", true); code != http.StatusAccepted {
				t.Fatalf("pull-request webhook answered %d, want 202", code)
			}
			st := fl.waitStatus(sha, StateSuccess, "a success status on the head")
			if st.TargetURL != "https://capstan.example.com/prs/1" && kind != "gitlab" {
				t.Errorf("target URL %q", st.TargetURL)
			}
			eventually(t, "the plan comment", func() bool { return strings.Contains(fl.comment(n), "r/x:v1 -> :v2") })
			body := fl.comment(n)
			for _, want := range []string{Marker("deploy"), "**Valid**", "image", "Capacity"} {
				if !strings.Contains(body, want) {
					t.Errorf("comment lacks %q:\n%s", want, body)
				}
			}

			// A replayed delivery and a bad signature change nothing.
			if code := hook(t, fl.hookURL, kind, n, "opened", "d1", true); code != http.StatusOK {
				t.Errorf("replayed delivery answered %d, want 200", code)
			}
			if code := hook(t, fl.hookURL, kind, n, "opened", "d2", false); code != http.StatusUnauthorized {
				t.Errorf("bad signature answered %d, want 401", code)
			}
			huge, _ := http.NewRequest(http.MethodPost, fl.hookURL, strings.NewReader(strings.Repeat("x", 2<<20)))
			huge.Header.Set("X-GitHub-Event", "pull_request")
			if resp, err := http.DefaultClient.Do(huge); err != nil || resp.StatusCode != http.StatusRequestEntityTooLarge {
				t.Errorf("a 2 MiB pull-request webhook: %v, %v; want 413", resp, err)
			} else {
				resp.Body.Close()
			}

			// An invalid head: comment updated with file:line:col, failure.
			bad := bare.branch(t, "web-v2", "apps/x.cue", "apps: x: pods: p: {\n\treplicas: \"three\"\n\tcontainers: c: image: \"r/x:v2\"\n}\n")
			f.syncHead(n)
			hook(t, fl.hookURL, kind, n, pushedAction(kind), "d3", true)
			fl.waitStatus(bad, StateFailure, "a failure status on the invalid head")
			eventually(t, "the comment naming the error", func() bool { return strings.Contains(fl.comment(n), "apps/x.cue:2:") })

			// A human edits our comment and another quotes the marker.
			own := f.ownComments(n)[0]
			f.editComment(own.id, own.body+"\n\nHUMAN EDIT")
			f.humanComment(n, "alice", "see "+Marker("deploy"))
			good := bare.branch(t, "web-v2", "apps/x.cue", "apps: x: pods: p: {\n\treplicas: 2\n\tcontainers: c: image: \"r/x:v2\"\n}\n")
			f.syncHead(n)
			hook(t, fl.hookURL, kind, n, pushedAction(kind), "d4", true)
			fl.waitStatus(good, StateSuccess, "success after the fix")
			eventually(t, "our comment updated in place", func() bool {
				b := fl.comment(n)
				return strings.Contains(b, "replicas") && !strings.Contains(b, "HUMAN EDIT")
			})
			if all := f.allComments(n); len(all) != 2 || all[1].body != "see "+Marker("deploy") {
				t.Errorf("comments %+v: want ours and alice's untouched", all)
			}

			// The cluster changes: a cordoned node leaves no room.
			setCordon(t, fl.cluster.Client, "n1", true)
			st = fl.waitStatus(good, StateFailure, "failure once the only node is cordoned")
			if !strings.Contains(st.Description, "would not fit") {
				t.Errorf("description %q", st.Description)
			}
			setCordon(t, fl.cluster.Client, "n1", false)
			fl.waitStatus(good, StateSuccess, "success once the node is back")

			// A pull request from a fork is planned from the forge's ref.
			forkSHA := bare.branch(t, "fork-change", "apps/y.cue", "apps: y: pods: p: containers: c: image: \"r/y:v1\"\n")
			fn := f.open("fork-change", "main", "from a fork")
			f.prs[fn].fork = true
			gitIn(t, bare.dir, "update-ref", "-d", "refs/heads/fork-change") // only the forge's ref is left
			hook(t, fl.hookURL, kind, fn, "opened", "d5", true)
			fl.waitStatus(forkSHA, StateSuccess, "the fork's pull request planned")

			// A head that is gone.
			bare.branch(t, "gone", "apps/z.cue", "apps: z: pods: p: containers: c: image: \"r/z:v1\"\n")
			gn := f.open("gone", "main", "gone")
			gitIn(t, bare.dir, "update-ref", "-d", "refs/heads/gone")
			f.syncHead(gn)
			hook(t, fl.hookURL, kind, gn, "opened", "d6", true)
			eventually(t, "the vanished head said so", func() bool { return strings.Contains(fl.comment(gn), "head not found") })
		})
	}
}

// A token rotated to another user's, then a server that starts again (or
// takes the lead): the plan comment the earlier user wrote gives way to
// the new user's, so the pull request keeps one plan comment (a second
// one was posted beside the first), and a human's comment quoting the
// marker is left alone.
func TestPlanCommentAfterTokenRotation(t *testing.T) {
	for _, kind := range kinds {
		t.Run(kind, func(t *testing.T) {
			fl := startFlow(t, kind, "secret-token")
			f, bare := fl.forge, fl.bare
			bare.branch(t, "web-v2", "apps/x.cue", "apps: x: pods: p: containers: c: image: \"r/x:v2\"\n")
			n := f.open("web-v2", "main", "web v2")
			hook(t, fl.hookURL, kind, n, "opened", "d1", true)
			eventually(t, "the plan comment", func() bool { return strings.Contains(fl.comment(n), "r/x:v1 -> :v2") })
			f.humanComment(n, "alice", "see "+Marker("deploy"))

			f.setSelf("capstan-bot-2")
			fl.restart()
			eventually(t, "one plan comment, the new user's", func() bool {
				var plans []fakeComment
				for _, c := range f.allComments(n) {
					if strings.HasPrefix(c.body, Marker("deploy")) {
						plans = append(plans, c)
					}
				}
				return len(plans) == 1 && plans[0].author == "capstan-bot-2" && strings.Contains(plans[0].body, "r/x:v1 -> :v2")
			})
			if all := f.allComments(n); len(all) != 2 || all[0].author != "alice" {
				t.Fatalf("comments %+v: want alice's and the plan", all)
			}
		})
	}
}

// A push whose plan has the same verdict as the last head's gets its own
// capstan/plan status (it got none: the status was compared with the old
// head's, so a required check waited forever on the new commit).
func TestNewHeadSameVerdictGetsStatus(t *testing.T) {
	fl := startFlow(t, "github", "secret-token")
	f, bare := fl.forge, fl.bare
	first := bare.branch(t, "web-v2", "apps/x.cue", "apps: x: pods: p: containers: c: image: \"r/x:v2\"\n")
	n := f.open("web-v2", "main", "web v2")
	hook(t, fl.hookURL, "github", n, "opened", "d1", true)
	fl.waitStatus(first, StateSuccess, "a success status on the first head")
	second := bare.branch(t, "web-v2", "apps/x.cue", "apps: x: pods: p: containers: c: image: \"r/x:v3\"\n")
	f.syncHead(n)
	hook(t, fl.hookURL, "github", n, "synchronize", "d2", true)
	fl.waitStatus(second, StateSuccess, "a success status on the second head")
}

// A token rotated, while the server runs, to another user's who may not
// edit the earlier user's comments (a GitLab developer): the next plan
// is posted as a new comment by the new user rather than failing on the
// refused edit, and the old one, which the forge does not let it delete
// either, is left with a warning.
func TestPlanCommentEditRefusedAfterRotation(t *testing.T) {
	for _, kind := range []string{"github", "gitlab"} {
		t.Run(kind, func(t *testing.T) {
			fl := startFlow(t, kind, "secret-token")
			f, bare := fl.forge, fl.bare
			bare.branch(t, "web-v2", "apps/x.cue", "apps: x: pods: p: containers: c: image: \"r/x:v2\"\n")
			n := f.open("web-v2", "main", "web v2")
			hook(t, fl.hookURL, kind, n, "opened", "d1", true)
			eventually(t, "the plan comment", func() bool { return strings.Contains(fl.comment(n), "r/x:v1 -> :v2") })

			f.mu.Lock()
			f.ownOnly = true
			f.mu.Unlock()
			f.setSelf("capstan-bot-2")
			sha := bare.branch(t, "web-v2", "apps/x.cue", "apps: x: pods: p: containers: c: image: \"r/x:v3\"\n")
			f.syncHead(n)
			hook(t, fl.hookURL, kind, n, pushedAction(kind), "d2", true)
			fl.waitStatus(sha, StateSuccess, "the new head planned")
			eventually(t, "the new plan in the new user's comment", func() bool { return strings.Contains(fl.comment(n), "r/x:v1 -> :v3") })
			if all := f.allComments(n); len(all) != 2 || all[0].author != "capstan-bot" || strings.Contains(all[0].body, ":v3") {
				t.Fatalf("comments %+v: want the old one untouched beside the new user's", all)
			}
		})
	}
}

// A token the forge refuses is recorded as a ForgeError event of the
// repository (what `capstan history` shows), and nothing stops.
func TestWrongTokenRecorded(t *testing.T) {
	fl := startFlow(t, "github", "wrong-token")
	eventually(t, "a ForgeError event", func() bool {
		objs, _, err := fl.cluster.Client.List(context.Background(), api.KindEvent, client.ListOptions{App: "deploy"})
		if err != nil {
			return false
		}
		for _, o := range objs {
			e := o.(*api.Event)
			if e.Spec.Reason == ReasonForgeError && strings.Contains(e.Spec.Message, "forge.tokenFile") && e.Spec.Reporter == Reporter {
				return true
			}
		}
		return false
	})
}

// A status the forge refused for a long rate limit is set by the next
// round, though the comment went through and the head did not move (the
// round used to skip a pull request whose comment was posted, so its
// capstan/plan check never came until a push).
func TestStatusSetAfterRateLimit(t *testing.T) {
	fl := startFlow(t, "github", "secret-token")
	f, bare := fl.forge, fl.bare
	sha := bare.branch(t, "web-v2", "apps/x.cue", "apps: x: pods: p: containers: c: image: \"r/x:v2\"\n")
	f.fail("POST", "/statuses/", 429, "error_429_secondary", map[string]string{"Retry-After": "3600"})
	n := f.open("web-v2", "main", "web v2")
	hook(t, fl.hookURL, "github", n, "opened", "d1", true)
	statuses := "POST /repos/org/deploy/statuses/" + sha
	eventually(t, "the plan comment and the refused status", func() bool {
		return strings.Contains(fl.comment(n), "r/x:v1 -> :v2") && f.callCount(statuses) == 1
	})
	if _, ok := f.lastStatus(sha, PlanContext); ok {
		t.Fatal("a status set through a rate limit")
	}
	// The next round: a webhook (as a poll would) with the head unchanged.
	hook(t, fl.hookURL, "github", n, "labeled", "d2", true)
	fl.waitStatus(sha, StateSuccess, "the status set by the next round")
}

// A pull request that adds an app another repository owns on the cluster
// is planned as sync will treat it: refused, naming the owner, and a
// failure (it said "added" and success, and sync then refused it). Once
// the other repository lets the app go, the verdict flips to success.
func TestPullRequestForeignApp(t *testing.T) {
	fl := startFlow(t, "github", "secret-token")
	c := fl.cluster.Client
	ctx := context.Background()
	blog := api.KindApp.New().(*api.App)
	blog.Metadata = api.ObjectMeta{Name: "blog", App: "blog", Labels: map[string]string{labelRepo: "marketing"}}
	if _, err := c.Create(ctx, blog); err != nil {
		t.Fatal(err)
	}
	sha := fl.bare.branch(t, "blog", "apps/blog.cue", "apps: blog: pods: web: containers: c: image: \"r/blog:v1\"\n")
	n := fl.forge.open("blog", "main", "add the blog")
	if code := hook(t, fl.hookURL, "github", n, "opened", "d1", true); code != http.StatusAccepted {
		t.Fatalf("pull-request webhook answered %d, want 202", code)
	}
	fl.waitStatus(sha, StateFailure, "a failure status on the head")
	eventually(t, "the refusal on the comment", func() bool {
		return strings.Contains(fl.comment(n), "app blog belongs to repository marketing, not to repository deploy")
	})
	if body := fl.comment(n); !strings.Contains(body, "#### App `blog`: rejected") {
		t.Errorf("comment does not show blog rejected:\n%s", body)
	}
	if _, err := c.Delete(ctx, api.KeyOf(blog), client.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	fl.waitStatus(sha, StateSuccess, "success once the other repository let the app go")
	eventually(t, "blog added on the comment", func() bool { return strings.Contains(fl.comment(n), "#### App `blog`: added") })
}

// pushedAction is the pull-request webhook's action for a new head on
// kind's forge.
func pushedAction(kind string) string {
	if kind == "gitlab" {
		return "update"
	}
	return "synchronize"
}
