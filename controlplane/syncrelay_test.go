package controlplane

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cgi"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/capstanhq/capstan/apiserver/api"
	"github.com/capstanhq/capstan/apiserver/client"
	"github.com/capstanhq/capstan/gitsync"
	"github.com/capstanhq/capstan/internal/testenv"
)

// relayRepo is a git repository served over smart HTTP (git http-backend
// on 127.0.0.1): no fsnotify reaches the servers, so with a poll interval
// of an hour only a trigger explains a sync.
type relayRepo struct {
	t    *testing.T
	work string
	bare string
	URL  string
}

func newRelayRepo(t *testing.T) *relayRepo {
	t.Helper()
	out, err := exec.Command("git", "--exec-path").Output()
	if err != nil {
		t.Fatalf("git --exec-path: %v", err)
	}
	root := t.TempDir()
	h := &cgi.Handler{Path: filepath.Join(strings.TrimSpace(string(out)), "git-http-backend"), Stderr: io.Discard,
		Env: []string{"GIT_PROJECT_ROOT=" + root, "GIT_HTTP_EXPORT_ALL=1", "GIT_CONFIG_NOSYSTEM=1", "HOME=" + root}}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	r := &relayRepo{t: t, work: t.TempDir(), bare: filepath.Join(root, "apps.git"), URL: srv.URL + "/apps.git"}
	r.git("init", "-q", "-b", "main", r.work)
	r.git("init", "-q", "--bare", "-b", "main", r.bare)
	return r
}

func (r *relayRepo) git(args ...string) {
	r.t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Env = append(os.Environ(), "GIT_CONFIG_NOSYSTEM=1", "HOME="+r.work)
	if out, err := cmd.CombinedOutput(); err != nil {
		r.t.Fatalf("git %v: %v\n%s", args, err, out)
	}
}

// commit makes the repository hold exactly apps (none: a README) and
// pushes it.
func (r *relayRepo) commit(apps ...string) {
	r.t.Helper()
	files, _ := filepath.Glob(filepath.Join(r.work, "*.cue"))
	for _, f := range files {
		if err := os.Remove(f); err != nil {
			r.t.Fatal(err)
		}
	}
	for _, a := range apps {
		desc := fmt.Sprintf("apps: %s: pods: web: {\n\treplicas: 1\n\tcontainers: web: {image: \"example/web:v1\", resources: cpu: \"100m\"}\n}\n", a)
		if err := os.WriteFile(filepath.Join(r.work, a+".cue"), []byte(desc), 0o644); err != nil {
			r.t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(r.work, "README"), []byte(strings.Join(apps, ",")), 0o644); err != nil {
		r.t.Fatal(err)
	}
	r.git("-C", r.work, "add", "-A")
	r.git("-C", r.work, "-c", "user.name=Relay", "-c", "user.email=relay@example.com", "commit", "-qm", "apps: "+strings.Join(apps, ","))
	r.git("-C", r.work, "push", "-q", "-f", r.bare, "HEAD:refs/heads/main")
}

// syncedWithin is far shorter than the poll interval (an hour) and the
// leader's first sync: only a trigger explains a sync within it.
const syncedWithin = 15 * time.Second

// TestSyncTriggeredOnFollowerRunsOnLeader: two servers on one etcd track
// a repository polled hourly; 'capstan sync', a signed webhook and
// 'capstan sync --allow-prune-all' sent to the server that does not lead
// make the leader sync at once. Before, the follower answered 202 'sync
// triggered' and nothing synced until the leader's next poll, and
// --allow-prune-all answered 409 'nothing held'.
func TestSyncTriggeredOnFollowerRunsOnLeader(t *testing.T) {
	repo := newRelayRepo(t)
	repo.commit("one")
	cluster := startEtcd(t)
	const secret = "relay-secret"
	// The forge's API: no open pull request, and a record of the pull
	// requests read (the leader's forge worker reads one it was asked
	// to plan).
	var readPulls sync.Map
	forgeAPI := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if i := strings.LastIndex(r.URL.Path, "/pulls/"); i >= 0 {
			readPulls.Store(r.URL.Path[i+len("/pulls/"):], true)
		}
		if strings.HasSuffix(r.URL.Path, "/pulls") {
			_, _ = io.WriteString(w, "[]")
			return
		}
		w.WriteHeader(http.StatusNotFound)
		_, _ = io.WriteString(w, `{"message":"Not Found"}`)
	}))
	t.Cleanup(forgeAPI.Close)
	servers := startServersWith(t, cluster, 2, func(o *Options) {
		o.Repos = []gitsync.RepoConfig{{Name: "apps", URL: repo.URL, Branch: "main", Interval: time.Hour, WebhookSecret: secret,
			Forge: &gitsync.ForgeConfig{Type: "github", APIURL: forgeAPI.URL, Project: "o/r", Token: "t", Events: []string{gitsync.ForgeEventPlans}, PollInterval: time.Hour}}}
	})
	ctx := t.Context()
	var follower *haServer
	waitFor(t, "a leader", func() bool {
		for i, s := range servers {
			if s.cp.Leading() {
				follower = servers[1-i]
				return true
			}
		}
		return false
	})
	fc, err := client.FromFile(follower.cp.Server().AdminConfigPath())
	if err != nil {
		t.Fatal(err)
	}
	hasApp := func(name string) func() bool {
		return func() bool {
			_, err := fc.Get(ctx, api.Key{Kind: api.KindApp, App: name, Name: name})
			return err == nil
		}
	}
	waitFor(t, "the leader's first sync applies app one", hasApp("one"))

	// capstan sync on the follower.
	repo.commit("one", "two")
	var reply struct {
		Triggered string         `json:"triggered"`
		Relayed   string         `json:"relayed"`
		Last      map[string]any `json:"last"`
	}
	asked := time.Now()
	if err := fc.Do(ctx, http.MethodPost, "/sync/apps", nil, &reply); err != nil {
		t.Fatalf("POST /sync/apps on the follower: %v", err)
	}
	if reply.Relayed == "" || reply.Last != nil {
		t.Errorf("the follower's answer = %+v, want it to say the leader syncs, without a last status it does not know", reply)
	}
	testenv.Eventually(t, syncedWithin, "app two applied after POST /sync on the follower", hasApp("two"))
	t.Logf("app two applied %s after POST /sync on the follower", time.Since(asked).Round(time.Millisecond))

	// A signed webhook to the follower.
	repo.commit("one", "two", "three")
	if code := postHook(t, follower, secret, "d-1"); code != http.StatusAccepted {
		t.Fatalf("signed webhook to the follower = %d, want 202", code)
	}
	testenv.Eventually(t, syncedWithin, "app three applied after a webhook to the follower", hasApp("three"))
	// An unsigned one is refused where it arrives, and relays nothing.
	if code := postHook(t, follower, "wrong", "d-2"); code != http.StatusUnauthorized {
		t.Fatalf("badly signed webhook to the follower = %d, want 401", code)
	}

	// A pull-request event to the follower: the leader's forge worker
	// plans it (reads it from the forge).
	if code := postHookEvent(t, follower, secret, "pull_request", "d-3", `{"action":"opened","number":7,"pull_request":{"number":7,"base":{"ref":"main"}}}`); code != http.StatusAccepted {
		t.Fatalf("signed pull-request webhook to the follower = %d, want 202", code)
	}
	testenv.Eventually(t, syncedWithin, "the leader reads pull request 7 after a webhook to the follower", func() bool {
		_, ok := readPulls.Load("7")
		return ok
	})

	// A commit deleting every app is held; the follower's
	// --allow-prune-all reaches the leader, which holds it.
	repo.commit()
	if err := fc.Do(ctx, http.MethodPost, "/sync/apps", nil, nil); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, syncedWithin, "the deletion of every app held", func() bool {
		obj, err := fc.Get(ctx, api.Key{Kind: api.KindApp, App: "one", Name: "one"})
		return err == nil && obj.(*api.App).Status.LastSyncResult == api.SyncHeld
	})
	if err := fc.Do(ctx, http.MethodPost, "/sync/apps?allowPruneAll=true", nil, nil); err != nil {
		t.Fatalf("POST /sync/apps?allowPruneAll=true on the follower: %v", err)
	}
	testenv.Eventually(t, syncedWithin, "every app deleted after --allow-prune-all on the follower", func() bool {
		return !hasApp("one")() && !hasApp("two")() && !hasApp("three")()
	})
}

// postHook sends a GitHub push of main, signed with secret, to s.
func postHook(t *testing.T, s *haServer, secret, delivery string) int {
	t.Helper()
	return postHookEvent(t, s, secret, "push", delivery, `{"ref":"refs/heads/main"}`)
}

// postHookEvent sends a GitHub event, signed with secret, to s.
func postHookEvent(t *testing.T, s *haServer, secret, event, delivery, payload string) int {
	t.Helper()
	ca, err := os.ReadFile(filepath.Join(s.cp.opts.DataDir, "pki", "ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	body := []byte(payload)
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(body)
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, s.cp.Server().URL()+"/hooks/git/apps", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-GitHub-Event", event)
	req.Header.Set("X-GitHub-Delivery", delivery)
	req.Header.Set("X-Hub-Signature-256", "sha256="+hex.EncodeToString(mac.Sum(nil)))
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode
}

// FuzzDecodeRelayed: whatever the sync-triggers document holds (another
// version's, a damaged one), reading it never panics, and what it reads
// is written back the same.
func FuzzDecodeRelayed(f *testing.F) {
	f.Add([]byte(`{"seq":2,"triggers":[{"seq":1,"repo":"apps","kind":"sync"},{"seq":2,"repo":"all","kind":"confirm"}]}`))
	f.Add([]byte(`{"seq":1,"triggers":[{"seq":1,"repo":"apps","kind":"pull","pull":7}]}`))
	f.Add([]byte(`null`))
	f.Add([]byte(``))
	f.Fuzz(func(t *testing.T, data []byte) {
		d, err := decodeRelayed(data)
		if err != nil {
			return
		}
		b, err := json.Marshal(d)
		if err != nil {
			t.Fatal(err)
		}
		again, err := decodeRelayed(b)
		if err != nil || again.Seq != d.Seq || len(again.Triggers) != len(d.Triggers) {
			t.Fatalf("%s read back as %+v, %v; want %+v", b, again, err, d)
		}
	})
}
