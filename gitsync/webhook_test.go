package gitsync

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func sign(secret string, body []byte) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(body)
	return hex.EncodeToString(mac.Sum(nil))
}

func TestWebhook(t *testing.T) {
	const secret = "s3cret-for-tests"
	origin := newGitRepo(t)
	origin.commit("init", map[string]string{"a": "1"})
	s, _ := newTestSyncer(t,
		RepoConfig{Name: "deploy", URL: origin.dir, WebhookSecret: secret},
		RepoConfig{Name: "tagged", URL: origin.dir, Tag: "v1", WebhookSecret: secret},
		RepoConfig{Name: "nosecret", URL: origin.dir},
	)
	s.opts.MaxWebhookBody = 4096
	mux := http.NewServeMux()
	mux.Handle(WebhookPath, s.WebhookHandler())
	srv := httptest.NewServer(mux)
	defer srv.Close()

	push := func(ref string) []byte { return []byte(`{"ref":"` + ref + `","after":"abc"}`) }
	main := push("refs/heads/main")
	huge := append([]byte(`{"ref":"refs/heads/main","pad":"`), bytes.Repeat([]byte("x"), 5000)...)
	huge = append(huge, `"}`...)
	form := []byte("payload=" + url.QueryEscape(string(main)))
	// GitLab's tag push payload, abridged.
	gitlabTag := []byte(`{"object_kind":"tag_push","before":"0000000000000000000000000000000000000000","after":"82b3d5ae55f7080f1e6022629cdb57bfae7cccc7","ref":"refs/tags/v1","checkout_sha":"82b3d5ae55f7080f1e6022629cdb57bfae7cccc7","project":{"id":1,"path_with_namespace":"org/deploy"}}`)

	tests := []struct {
		name      string
		repo      string
		method    string
		body      []byte
		headers   map[string]string
		chunked   bool
		want      int
		triggered string // repo expected to be triggered
	}{
		{name: "github push", repo: "deploy", body: main,
			headers: map[string]string{"X-GitHub-Event": "push", "X-Hub-Signature-256": "sha256=" + sign(secret, main)},
			want:    http.StatusAccepted, triggered: "deploy"},
		{name: "github form-encoded push", repo: "deploy", body: form,
			headers: map[string]string{"X-GitHub-Event": "push", "Content-Type": "application/x-www-form-urlencoded", "X-Hub-Signature-256": "sha256=" + sign(secret, form)},
			want:    http.StatusAccepted, triggered: "deploy"},
		{name: "github ping", repo: "deploy", body: []byte(`{"zen":"hi"}`),
			headers: map[string]string{"X-GitHub-Event": "ping", "X-Hub-Signature-256": "sha256=" + sign(secret, []byte(`{"zen":"hi"}`))},
			want:    http.StatusOK},
		{name: "github bad signature", repo: "deploy", body: main,
			headers: map[string]string{"X-GitHub-Event": "push", "X-Hub-Signature-256": "sha256=" + sign("wrong", main)},
			want:    http.StatusUnauthorized},
		{name: "github signature of another body", repo: "deploy", body: main,
			headers: map[string]string{"X-GitHub-Event": "push", "X-Hub-Signature-256": "sha256=" + sign(secret, push("refs/heads/dev"))},
			want:    http.StatusUnauthorized},
		{name: "github missing signature", repo: "deploy", body: main,
			headers: map[string]string{"X-GitHub-Event": "push"}, want: http.StatusUnauthorized},
		{name: "github sha1 only", repo: "deploy", body: main,
			headers: map[string]string{"X-GitHub-Event": "push", "X-Hub-Signature": "sha1=00"}, want: http.StatusUnauthorized},
		{name: "github other branch", repo: "deploy", body: push("refs/heads/dev"),
			headers: map[string]string{"X-GitHub-Event": "push", "X-Hub-Signature-256": "sha256=" + sign(secret, push("refs/heads/dev"))},
			want:    http.StatusOK},
		{name: "github tag push to tag-tracking repo", repo: "tagged", body: push("refs/tags/v1"),
			headers: map[string]string{"X-GitHub-Event": "push", "X-Hub-Signature-256": "sha256=" + sign(secret, push("refs/tags/v1"))},
			want:    http.StatusAccepted, triggered: "tagged"},
		{name: "github branch push to tag-tracking repo", repo: "tagged", body: main,
			headers: map[string]string{"X-GitHub-Event": "push", "X-Hub-Signature-256": "sha256=" + sign(secret, main)},
			want:    http.StatusOK},
		{name: "gitlab push", repo: "deploy", body: main,
			headers: map[string]string{"X-Gitlab-Event": "Push Hook", "X-Gitlab-Token": secret},
			want:    http.StatusAccepted, triggered: "deploy"},
		{name: "gitlab bad token", repo: "deploy", body: main,
			headers: map[string]string{"X-Gitlab-Event": "Push Hook", "X-Gitlab-Token": secret + "x"},
			want:    http.StatusUnauthorized},
		{name: "gitlab missing token", repo: "deploy", body: main,
			headers: map[string]string{"X-Gitlab-Event": "Push Hook"}, want: http.StatusUnauthorized},
		{name: "gitlab other branch", repo: "deploy", body: push("refs/heads/dev"),
			headers: map[string]string{"X-Gitlab-Event": "Push Hook", "X-Gitlab-Token": secret}, want: http.StatusOK},
		{name: "gitlab tag push to tag-tracking repo", repo: "tagged", body: gitlabTag,
			headers: map[string]string{"X-Gitlab-Event": "Tag Push Hook", "X-Gitlab-Token": secret},
			want:    http.StatusAccepted, triggered: "tagged"},
		{name: "gitlab pipeline event", repo: "deploy", body: []byte(`{"object_kind":"pipeline"}`),
			headers: map[string]string{"X-Gitlab-Event": "Pipeline Hook", "X-Gitlab-Token": secret},
			want:    http.StatusOK},
		{name: "gitea tag push to tag-tracking repo", repo: "tagged", body: push("refs/tags/v1"),
			headers: map[string]string{"X-Gitea-Event": "push", "X-Gitea-Signature": sign(secret, push("refs/tags/v1")), "X-Hub-Signature-256": "sha256=" + sign(secret, push("refs/tags/v1"))},
			want:    http.StatusAccepted, triggered: "tagged"},
		{name: "gitea with the GitHub header only", repo: "deploy", body: main,
			headers: map[string]string{"X-Gitea-Event": "push", "X-Hub-Signature-256": "sha256=" + sign(secret, main)},
			want:    http.StatusAccepted, triggered: "deploy"},
		{name: "gitea create event", repo: "tagged", body: []byte(`{"ref":"v1","ref_type":"tag"}`),
			headers: map[string]string{"X-Gitea-Event": "create", "X-Gitea-Signature": sign(secret, []byte(`{"ref":"v1","ref_type":"tag"}`))},
			want:    http.StatusOK},
		{name: "gitea push", repo: "deploy", body: main,
			headers: map[string]string{"X-Gitea-Event": "push", "X-Gitea-Signature": sign(secret, main)},
			want:    http.StatusAccepted, triggered: "deploy"},
		{name: "gitea bad signature", repo: "deploy", body: main,
			headers: map[string]string{"X-Gitea-Event": "push", "X-Gitea-Signature": sign("nope", main)},
			want:    http.StatusUnauthorized},
		{name: "gitea truncated signature", repo: "deploy", body: main,
			headers: map[string]string{"X-Gitea-Event": "push", "X-Gitea-Signature": sign(secret, main)[:10]},
			want:    http.StatusUnauthorized},
		{name: "gitea other branch", repo: "deploy", body: push("refs/heads/dev"),
			headers: map[string]string{"X-Gitea-Event": "push", "X-Gitea-Signature": sign(secret, push("refs/heads/dev"))},
			want:    http.StatusOK},
		{name: "no forge headers", repo: "deploy", body: main, want: http.StatusUnauthorized},
		{name: "unknown repo", repo: "nope", body: main,
			headers: map[string]string{"X-GitHub-Event": "push", "X-Hub-Signature-256": "sha256=" + sign(secret, main)},
			want:    http.StatusUnauthorized},
		{name: "repo without secret", repo: "nosecret", body: main,
			headers: map[string]string{"X-GitHub-Event": "push", "X-Hub-Signature-256": "sha256=" + sign("", main)},
			want:    http.StatusUnauthorized},
		{name: "github delivery", repo: "deploy", body: main,
			headers: map[string]string{"X-GitHub-Event": "push", "X-GitHub-Delivery": "d-1", "X-Hub-Signature-256": "sha256=" + sign(secret, main)},
			want:    http.StatusAccepted, triggered: "deploy"},
		{name: "github delivery replayed", repo: "deploy", body: main,
			headers: map[string]string{"X-GitHub-Event": "push", "X-GitHub-Delivery": "d-1", "X-Hub-Signature-256": "sha256=" + sign(secret, main)},
			want:    http.StatusOK},
		{name: "github next delivery", repo: "deploy", body: main,
			headers: map[string]string{"X-GitHub-Event": "push", "X-GitHub-Delivery": "d-2", "X-Hub-Signature-256": "sha256=" + sign(secret, main)},
			want:    http.StatusAccepted, triggered: "deploy"},
		{name: "gitea delivery", repo: "deploy", body: main,
			headers: map[string]string{"X-Gitea-Event": "push", "X-Gitea-Delivery": "g-1", "X-Gitea-Signature": sign(secret, main)},
			want:    http.StatusAccepted, triggered: "deploy"},
		{name: "gitea delivery replayed", repo: "deploy", body: main,
			headers: map[string]string{"X-Gitea-Event": "push", "X-Gitea-Delivery": "g-1", "X-Gitea-Signature": sign(secret, main)},
			want:    http.StatusOK},
		{name: "gitlab delivery", repo: "deploy", body: main,
			headers: map[string]string{"X-Gitlab-Event": "Push Hook", "X-Gitlab-Event-UUID": "l-1", "X-Gitlab-Token": secret},
			want:    http.StatusAccepted, triggered: "deploy"},
		{name: "gitlab delivery replayed", repo: "deploy", body: main,
			headers: map[string]string{"X-Gitlab-Event": "Push Hook", "X-Gitlab-Event-UUID": "l-1", "X-Gitlab-Token": secret},
			want:    http.StatusOK},
		{name: "unsigned replay of a known delivery", repo: "deploy", body: main,
			headers: map[string]string{"X-GitHub-Event": "push", "X-GitHub-Delivery": "d-9", "X-Hub-Signature-256": "sha256=" + sign("wrong", main)},
			want:    http.StatusUnauthorized},
		{name: "huge body", repo: "deploy", body: huge,
			headers: map[string]string{"X-GitHub-Event": "push", "X-Hub-Signature-256": "sha256=" + sign(secret, huge)},
			want:    http.StatusRequestEntityTooLarge},
		{name: "huge body chunked", repo: "deploy", body: huge, chunked: true,
			headers: map[string]string{"X-GitHub-Event": "push", "X-Hub-Signature-256": "sha256=" + sign(secret, huge)},
			want:    http.StatusRequestEntityTooLarge},
		{name: "signed garbage", repo: "deploy", body: []byte("{not json"),
			headers: map[string]string{"X-GitHub-Event": "push", "X-Hub-Signature-256": "sha256=" + sign(secret, []byte("{not json"))},
			want:    http.StatusBadRequest},
		{name: "GET", repo: "deploy", method: http.MethodGet, want: http.StatusMethodNotAllowed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			method := tt.method
			if method == "" {
				method = http.MethodPost
			}
			var body io.Reader = bytes.NewReader(tt.body)
			if tt.chunked {
				body = io.MultiReader(body) // hides the length: sent chunked
			}
			req, err := http.NewRequest(method, srv.URL+"/hooks/git/"+tt.repo, body)
			if err != nil {
				t.Fatal(err)
			}
			for k, v := range tt.headers {
				req.Header.Set(k, v)
			}
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			msg, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.want {
				t.Errorf("status %d, want %d (%s)", resp.StatusCode, tt.want, strings.TrimSpace(string(msg)))
			}
			if tt.want == http.StatusRequestEntityTooLarge && !strings.Contains(string(msg), fmt.Sprintf("limit of %d bytes", s.opts.MaxWebhookBody)) {
				t.Errorf("413 %s does not name the limit", msg)
			}
			for name, w := range s.workers {
				got := drain(w.trigger)
				if got != (name == tt.triggered) {
					t.Errorf("repo %s triggered=%v, want %v", name, got, name == tt.triggered)
				}
			}
		})
	}
}

func drain(c chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

func FuzzParseHook(f *testing.F) {
	f.Add("push", "", []byte(`{"ref":"refs/heads/main"}`))
	f.Add("push", "application/x-www-form-urlencoded", []byte(`payload=%7B%22ref%22%3A%22refs%2Fheads%2Fmain%22%7D`))
	f.Add("ping", "", []byte(`{}`))
	f.Add("push", "", []byte(`{"ref":5}`))
	f.Fuzz(func(t *testing.T, event, contentType string, body []byte) {
		for _, h := range []http.Header{
			{"X-Github-Event": {event}, "Content-Type": {contentType}},
			{"X-Gitlab-Event": {event}},
			{"X-Gitea-Event": {event}},
		} {
			hk, err := parseHook(h, body)
			if err == nil && (hk.event == "push" || hk.event == "tag_push") && !strings.HasPrefix(hk.ref, "refs/") {
				t.Fatalf("accepted push without a full ref: %+v", hk)
			}
			// Authentication must never pass with a wrong secret.
			if authenticate(hk.forge, h, body, "secret") {
				t.Fatalf("authenticated without a signature: %v", h)
			}
		}
	})
}

// postHook posts a GitHub event with body, signed with secret, to repo's
// webhook on srv, and returns the answer's code and body.
func postHook(t *testing.T, srv *httptest.Server, repo, event, secret string, body []byte) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/hooks/git/"+repo, bytes.NewReader(body))
	req.Header.Set("X-GitHub-Event", event)
	req.Header.Set("X-Hub-Signature-256", "sha256="+sign(secret, body))
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// An unknown repository answers exactly like a known one with a bad
// signature, so the answer does not tell which repositories exist.
func TestWebhookUnknownRepoAnswersLikeBadSignature(t *testing.T) {
	origin := newGitRepo(t)
	origin.commit("init", map[string]string{"a": "1"})
	s, _ := newTestSyncer(t, RepoConfig{Name: "deploy", URL: origin.dir, WebhookSecret: "right"}, RepoConfig{Name: "open", URL: origin.dir})
	mux := http.NewServeMux()
	mux.Handle(WebhookPath, s.WebhookHandler())
	srv := httptest.NewServer(mux)
	defer srv.Close()
	body := []byte(`{"ref":"refs/heads/main"}`)
	answer := func(repo string) (int, string) {
		code, b := postHook(t, srv, repo, "push", "wrong", body)
		return code, strings.ReplaceAll(b, `"repo":"`+repo+`"`, `"repo":"X"`)
	}
	code, known := answer("deploy")
	for _, other := range []string{"nope", "open"} {
		if c, a := answer(other); c != code || a != known {
			t.Errorf("%s answers %d %s; a known repository with a bad signature %d %s", other, c, a, code, known)
		}
	}
}

// A webhook secret rotated in its webhookSecretFile is checked from the
// next delivery on, without a restart; the old one is refused.
func TestWebhookSecretFileRotates(t *testing.T) {
	origin := newGitRepo(t)
	origin.commit("init", map[string]string{"a": "1"})
	file := filepath.Join(t.TempDir(), "hook-secret")
	if err := os.WriteFile(file, []byte("old-secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s, _ := newTestSyncer(t, RepoConfig{Name: "deploy", URL: origin.dir, WebhookSecret: "old-secret", WebhookSecretFile: file})
	mux := http.NewServeMux()
	mux.Handle(WebhookPath, s.WebhookHandler())
	srv := httptest.NewServer(mux)
	defer srv.Close()
	body := []byte(`{"zen":"hi"}`)
	answer := func(secret string) int {
		code, _ := postHook(t, srv, "deploy", "ping", secret, body)
		return code
	}
	if code := answer("old-secret"); code != http.StatusOK {
		t.Fatalf("with the secret of the file: %d", code)
	}
	if err := os.WriteFile(file, []byte("new-secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if code := answer("new-secret"); code != http.StatusOK {
		t.Fatalf("with the rotated secret: %d, want 200", code)
	}
	if code := answer("old-secret"); code != http.StatusUnauthorized {
		t.Fatalf("with the secret before the rotation: %d, want 401", code)
	}
}

func TestDeliveriesWindowAndBound(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	d := newDeliveries(time.Hour, 3)
	if !d.first("a", t0) || d.first("a", t0.Add(59*time.Minute)) {
		t.Fatal("a delivery within the window was not refused")
	}
	if !d.first("a", t0.Add(61*time.Minute)) {
		t.Fatal("a delivery after the window is still remembered")
	}
	for _, k := range []string{"b", "c", "d"} {
		d.first(k, t0.Add(62*time.Minute))
	}
	if len(d.seen) > 3 || len(d.order) > 3 {
		t.Fatalf("remembers %d deliveries, bound 3", len(d.seen))
	}
	if d.first("d", t0.Add(62*time.Minute)) {
		t.Fatal("the newest delivery was forgotten")
	}
}

// TestWebhookRelay: on a server that does not lead (Relay says true) a
// push is passed on, not synced here; when it cannot be passed on the
// forge gets 503 and its redelivery (same delivery ID) is taken, not
// ignored as already received.
func TestWebhookRelay(t *testing.T) {
	const secret = "s3cret-for-tests"
	origin := newGitRepo(t)
	origin.commit("init", map[string]string{"a": "1"})
	s, _ := newTestSyncer(t, RepoConfig{Name: "deploy", URL: origin.dir, WebhookSecret: secret})
	var relayed []string
	var relayErr error
	leading := false
	s.opts.Relay = func(repo string) (bool, error) {
		if leading {
			return false, nil
		}
		if relayErr != nil {
			return false, relayErr
		}
		relayed = append(relayed, repo)
		return true, nil
	}
	mux := http.NewServeMux()
	mux.Handle(WebhookPath, s.WebhookHandler())
	srv := httptest.NewServer(mux)
	defer srv.Close()
	body := []byte(`{"ref":"refs/heads/main"}`)
	deliver := func(id string) int {
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/hooks/git/deploy", bytes.NewReader(body))
		req.Header.Set("X-GitHub-Event", "push")
		req.Header.Set("X-GitHub-Delivery", id)
		req.Header.Set("X-Hub-Signature-256", "sha256="+sign(secret, body))
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	trigger := s.workers["deploy"].trigger
	relayErr = io.ErrUnexpectedEOF
	if code := deliver("d1"); code != http.StatusServiceUnavailable {
		t.Fatalf("push while the relay fails = %d, want 503", code)
	}
	relayErr = nil
	if code := deliver("d1"); code != http.StatusAccepted {
		t.Fatalf("redelivery after the relay failed = %d, want 202", code)
	}
	if synced := drain(trigger); len(relayed) != 1 || synced {
		t.Fatalf("relayed %v, synced here %v; want the one push relayed and no sync here", relayed, synced)
	}
	leading = true
	if code := deliver("d2"); code != http.StatusAccepted || !drain(trigger) || len(relayed) != 1 {
		t.Fatalf("push on the leader = %d, relayed %v; want 202 and a sync here", code, relayed)
	}
}
