package forge

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/capstanhq/capstan/gitsync"
	"github.com/capstanhq/capstan/schema/sandbox"
)

// TestMain lets this test binary serve as the evaluation sandbox's child.
func TestMain(m *testing.M) {
	sandbox.Main()
	os.Exit(m.Run())
}

var kinds = []string{"github", "gitlab", "gitea"}

// sleeps records the waits of the retrying transport instead of waiting.
type sleeps struct {
	mu sync.Mutex
	d  []time.Duration
}

func (s *sleeps) sleep(_ context.Context, d time.Duration) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.d = append(s.d, d)
	return nil
}

func (s *sleeps) all() []time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]time.Duration(nil), s.d...)
}

var testNow = time.Date(2026, 12, 5, 1, 0, 0, 0, time.UTC)

func testClient(t *testing.T, f *fakeForge, token string, sl *sleeps) Client {
	t.Helper()
	fc := gitsync.ForgeConfig{Type: f.kind, APIURL: f.apiURL(), Project: "org/deploy", Token: token}
	c, err := NewClient(fc, ClientOptions{Retry: RetryOptions{Now: func() time.Time { return testNow }, Sleep: sl.sleep}})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// Each forge's client reads pull requests and comments page by page,
// writes comments and statuses, and finds its own comment again after a
// human edited it, against payloads recorded from the forge's API.
func TestClients(t *testing.T) {
	for _, kind := range kinds {
		t.Run(kind, func(t *testing.T) {
			bare := newBareRepo(t)
			f := newFakeForge(t, kind, bare.dir)
			for i, b := range []string{"a", "b", "c"} {
				bare.branch(t, b, "apps/x.cue", "apps: x: pods: p: containers: c: image: \"r/x:v"+string(rune('2'+i))+"\"\n")
				f.open(b, "main", "change "+b)
			}
			f.prs[2].fork = true
			f.prs[3].labels = []string{"preview"}
			bare.branch(t, "other", "apps/x.cue", "apps: x: pods: p: containers: c: image: \"r/x:v9\"\n")
			f.open("other", "release", "not into main")
			ctx := context.Background()
			c := testClient(t, f, f.token, &sleeps{})
			self, err := c.Self(ctx)
			if err != nil || self != f.self {
				t.Fatalf("Self = %q, %v; want %q", self, err, f.self)
			}
			prs, err := c.OpenPullRequests(ctx, "main")
			if err != nil {
				t.Fatal(err)
			}
			if len(prs) != 3 {
				t.Fatalf("open pull requests into main: %d (%+v), want 3 over two pages", len(prs), prs)
			}
			if prs[0].HeadSHA != f.prs[1].sha || prs[0].Head != "a" || prs[0].Base != "main" || !prs[0].Open || prs[0].Fork {
				t.Errorf("first pull request %+v does not match %+v", prs[0], *f.prs[1])
			}
			if !prs[1].Fork {
				t.Errorf("pull request from a fork not told: %+v", prs[1])
			}
			if len(prs[2].Labels) != 1 || prs[2].Labels[0] != "preview" {
				t.Errorf("labels %v, want [preview]", prs[2].Labels)
			}
			pr, err := c.PullRequest(ctx, 1)
			if err != nil || pr.Number != 1 || pr.Title != "change a" {
				t.Fatalf("PullRequest(1) = %+v, %v", pr, err)
			}
			if _, err := c.PullRequest(ctx, 99); !errors.Is(err, ErrNotFound) {
				t.Errorf("PullRequest(99): %v, want ErrNotFound", err)
			}
			f.humanComment(1, "alice", "LGTM")
			f.humanComment(1, "bob", "quoting "+Marker("apps")+" here")
			mine, err := c.CreateComment(ctx, 1, Marker("apps")+"\nplan v1")
			if err != nil {
				t.Fatal(err)
			}
			f.editComment(mine.ID, Marker("apps")+"\nplan v1, edited by a human")
			all, err := c.Comments(ctx, 1)
			if err != nil || len(all) != 3 {
				t.Fatalf("Comments = %d, %v; want 3 over two pages", len(all), err)
			}
			own, ok := FindOwn(all, self, Marker("apps"))
			if !ok || own.ID != mine.ID {
				t.Fatalf("FindOwn = %+v, %v; want comment %d (not bob's quote)", own, ok, mine.ID)
			}
			if err := c.EditComment(ctx, 1, own.ID, Marker("apps")+"\nplan v2"); err != nil {
				t.Fatal(err)
			}
			if got := f.ownComments(1); len(got) != 1 || !strings.HasSuffix(got[0].body, "plan v2") {
				t.Fatalf("own comments after edit: %+v", got)
			}
			if err := c.SetStatus(ctx, pr.HeadSHA, Status{State: StateFailure, Context: PlanContext, Description: strings.Repeat("x", 300)}); err != nil {
				t.Fatal(err)
			}
			st, ok := f.lastStatus(pr.HeadSHA, PlanContext)
			want := State("failure")
			if kind == "gitlab" {
				want = "failed"
			}
			if !ok || st.State != want || len([]rune(st.Description)) > 140 {
				t.Fatalf("status %+v, want %s with a description cut to 140", st, want)
			}
			// GitLab refuses a state a status already has: not an error.
			if err := c.SetStatus(ctx, pr.HeadSHA, Status{State: StateFailure, Context: PlanContext}); err != nil {
				t.Fatalf("setting the same status again: %v", err)
			}
		})
	}
}

// A wrong token, a token without the scope, rate limits, 5xx: each forge's
// answer becomes an error that says what to do, and the transport retries
// what may be retried after the wait the forge asked for.
func TestClientFailures(t *testing.T) {
	for _, kind := range kinds {
		t.Run(kind, func(t *testing.T) {
			bare := newBareRepo(t)
			f := newFakeForge(t, kind, bare.dir)
			bare.branch(t, "a", "apps/x.cue", "apps: x: pods: p: containers: c: image: \"r/x:v2\"\n")
			f.open("a", "main", "a")
			ctx := context.Background()

			_, err := testClient(t, f, "wrong", &sleeps{}).OpenPullRequests(ctx, "main")
			if !errors.Is(err, ErrUnauthorized) || !strings.Contains(err.Error(), "forge.tokenFile") {
				t.Errorf("wrong token: %v, want ErrUnauthorized naming forge.tokenFile", err)
			}

			sl := &sleeps{}
			c := testClient(t, f, f.token, sl)
			rl := map[string]string{"Retry-After": "7"}
			fix := "error_429"
			if kind == "github" {
				// GitHub's primary limit: 403 with the reset time.
				rl = map[string]string{"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": strconv.FormatInt(testNow.Unix()+20, 10)}
				fix = "error_403_ratelimit"
				f.fail("GET", "/pulls", 403, fix, rl)
				f.fail("GET", "/pulls", 429, "error_429_secondary", map[string]string{"Retry-After": "7"})
			} else {
				f.fail("GET", "merge_requests", 429, fix, rl)
				f.fail("GET", "/pulls", 429, fix, rl)
			}
			if prs, err := c.OpenPullRequests(ctx, "main"); err != nil || len(prs) != 1 {
				t.Fatalf("after rate limits: %v, %v", prs, err)
			}
			waits := sl.all()
			if len(waits) == 0 || waits[len(waits)-1] != 7*time.Second {
				t.Errorf("waits %v, want the last to be the 7s Retry-After", waits)
			}
			if kind == "github" && waits[0] != 20*time.Second {
				t.Errorf("first wait %v, want until X-RateLimit-Reset", waits[0])
			}

			// A limit longer than MaxWait fails at once with the wait.
			// Each forge's own bodies: GitHub's secondary limit and 5xx.
			limitBody, serverErr := "error_429", "error_404"
			if kind == "github" {
				limitBody, serverErr = "error_429_secondary", "error_502"
			}
			f.fail("GET", "/user", 429, limitBody, map[string]string{"Retry-After": "3600"})
			_, err = c.Self(ctx)
			var ae *APIError
			if !errors.Is(err, ErrRateLimited) || !errors.As(err, &ae) || ae.RetryAfter != time.Hour {
				t.Errorf("long rate limit: %v, want ErrRateLimited asking for 1h", err)
			}

			// 5xx on a read is retried with back-off.
			before := len(sl.all())
			f.fail("GET", "/user", 502, serverErr, nil)
			if _, err := c.Self(ctx); err != nil {
				t.Fatalf("read after a 502: %v", err)
			}
			if got := sl.all()[before:]; len(got) != 1 || got[0] != 500*time.Millisecond {
				t.Errorf("back-off %v, want one 500ms", got)
			}
			// ... but a comment is never posted twice.
			path := "/comments"
			if kind == "gitlab" {
				path = "/notes"
			}
			f.fail("POST", path, 502, serverErr, nil)
			if _, err := c.CreateComment(ctx, 1, "x"); err == nil {
				t.Error("a 502 on posting a comment was retried")
			}
			if n := len(f.allComments(1)); n != 0 {
				t.Errorf("%d comments posted, want 0", n)
			}
			if kind == "github" {
				f.fail("POST", "/statuses/", 403, "error_403_scope", nil)
				err := c.SetStatus(ctx, f.prs[1].sha, Status{State: StatePending, Context: PlanContext})
				if !errors.Is(err, ErrUnauthorized) || errors.Is(err, ErrRateLimited) {
					t.Errorf("token without the statuses scope: %v, want ErrUnauthorized", err)
				}
			}
		})
	}
}

// A token rotated in forge.tokenFile is sent from the next call on,
// without a restart, in each forge's own header; a token file gone fails
// the call naming it.
func TestClientsReadRotatedTokenFile(t *testing.T) {
	for _, kind := range kinds {
		t.Run(kind, func(t *testing.T) {
			f := newFakeForge(t, kind, newBareRepo(t).dir)
			file := filepath.Join(t.TempDir(), "forge-token")
			if err := os.WriteFile(file, []byte(f.token+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			fc := gitsync.ForgeConfig{Type: f.kind, APIURL: f.apiURL(), Project: "org/deploy", Token: f.token, TokenFile: file}
			c, err := NewClient(fc, ClientOptions{Retry: RetryOptions{Now: func() time.Time { return testNow }, Sleep: (&sleeps{}).sleep}})
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			if _, err := c.Self(ctx); err != nil {
				t.Fatalf("Self with the first token: %v", err)
			}
			f.setToken("rotated-token")
			if err := os.WriteFile(file, []byte("rotated-token\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			if self, err := c.Self(ctx); err != nil || self != f.self {
				t.Fatalf("Self after the rotation = %q, %v", self, err)
			}
			if err := os.Remove(file); err != nil {
				t.Fatal(err)
			}
			if _, err := c.Self(ctx); err == nil || !strings.Contains(err.Error(), "forge.tokenFile") || !strings.Contains(err.Error(), file) {
				t.Fatalf("Self without the token file: %v, want an error naming forge.tokenFile %s", err, file)
			}
		})
	}
}
