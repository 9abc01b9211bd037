package main

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/capstanhq/capstan/apiserver/api"
	"github.com/capstanhq/capstan/examples/demo"
	"github.com/capstanhq/capstan/examples/repo"
	"github.com/capstanhq/capstan/internal/testenv"
	"github.com/capstanhq/capstan/registry"
	"github.com/capstanhq/capstan/secrets"
)

// TestUpPreview is a preview environment end to end, as root, on real
// containerd: capstan up tracks the demo repository with a GitHub
// forge (an API server in the test, answering with the forge package's
// recorded payloads); a pull request labelled "preview" that changes the
// frontend's greeting deploys shop-pr-1, whose node-port URL on the pull
// request answers with the new greeting (through the preview's own
// backend, which opens the secret sealed for it); a push updates it;
// closing the pull request deletes it with its persistent volume;
// production's pods are never restarted or replaced.
func TestUpPreview(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireBinaries(t, "containerd", "runc", "nft", "ip", "nsenter", "curl", "git")
	bin, imgs := buildUpInputs(t)
	ns, hostIP := newUpNetns(t)
	data := t.TempDir()
	demoDir := filepath.Join(data, "demo-repo")
	keys, err := secrets.LoadOrCreate(filepath.Join(data, "secrets"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := demo.Repo(demoDir, repo.FS(), registry.DefaultAddr, keys.Recipient()); err != nil {
		t.Fatal(err)
	}
	gh := startPRForge(t, ns, hostIP+":0")
	token := filepath.Join(data, "forge-token")
	if err := os.WriteFile(token, []byte(gh.token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(data, "repos.yaml")
	if err := os.WriteFile(cfg, fmt.Appendf(nil, `repos:
  - name: demo
    url: %s
    branch: main
    interval: 2s
    forge:
      type: github
      apiURL: %s
      project: acme/demo
      tokenFile: %s
      events: [plans]
      pollInterval: 5s
      previews: {secrets: true}
`, demoDir, gh.url, token), 0o600); err != nil {
		t.Fatal(err)
	}
	e := &upEnv{t: t, bin: bin, ns: ns, data: data, imgs: imgs, repo: demoDir, hostIP: hostIP, upArgs: []string{"--repo-config", cfg}}
	t.Cleanup(e.cleanup)
	e.start()
	for group, n := range map[string]int{"frontend": 3, "backend": 2, "worker": 1} {
		e.wait(group+" running", 5*time.Minute, func() (bool, string) { return e.running(group, n, "") })
	}
	production := func() map[string]string {
		pods, _ := e.pods()
		out := map[string]string{}
		for _, p := range pods {
			if p.Metadata.App != "shop" {
				continue
			}
			restarts := 0
			for _, c := range p.Status.Containers {
				restarts += int(c.RestartCount)
			}
			out[p.Metadata.Name] = fmt.Sprintf("%s restarts=%d", p.Metadata.UID, restarts)
		}
		return out
	}
	before := production()

	// A pull request: the preview opt-in and a new greeting.
	git := func(args ...string) string {
		return gitCmd(t, demoDir, append([]string{"-c", "user.name=E2E", "-c", "user.email=e2e@example.com"}, args...)...)
	}
	push := func(greeting string, more func()) string {
		git("checkout", "-q", "try")
		if err := os.WriteFile(filepath.Join(demoDir, "config", "greeting.txt"), []byte(greeting+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		if more != nil {
			more()
		}
		git("commit", "-qam", greeting)
		sha := git("rev-parse", "HEAD")
		git("checkout", "-q", "main")
		git("update-ref", "refs/pull/1/head", sha)
		return sha
	}
	git("branch", "try", "main")
	sha := push("Hello from the preview", func() {
		f, err := os.OpenFile(filepath.Join(demoDir, "shop.cue"), os.O_APPEND|os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		fmt.Fprintln(f, `apps: shop: preview: enabled: true`)
	})
	gh.setPR("try", sha, true)

	urlRE := regexp.MustCompile("`shop-pr-1`: (http://[0-9.]+:[0-9]+)")
	var previewURL string
	e.wait("the preview's URL on the pull request", 5*time.Minute, func() (bool, string) {
		c := gh.comment()
		if m := urlRE.FindStringSubmatch(c); m != nil {
			previewURL = m[1]
		}
		return previewURL != "", c
	})
	// The comment names its services inside the cluster, the backend's
	// (no node port) too.
	if c := gh.comment(); !strings.Contains(c, "`backend.shop-pr-1.svc:80`") || !strings.Contains(c, "`frontend.shop-pr-1.svc:80`") {
		t.Errorf("the comment does not name the preview's services in the cluster:\n%s", c)
	}
	answers := func(url, want string) func() (bool, string) {
		return func() (bool, string) {
			body, err := e.curl(url + "/")
			if err == nil && strings.Contains(body, want) && strings.Contains(body, `said: {"hostname":"backend-`) {
				return true, ""
			}
			_, pods := e.pods()
			apps, _ := e.cli("get", "apps", "-A")
			svcs, _ := e.cli("get", "services", "-A")
			wls, _ := e.cli("get", "workloads", "-A")
			desc, _ := e.cli("describe", "app", "shop-pr-1/shop-pr-1")
			if b, err := os.ReadFile(filepath.Join(e.data, "capstan.log")); err == nil {
				var lines []string
				for _, l := range strings.Split(string(b), "\n") {
					if strings.Contains(l, "pr-1") {
						lines = append(lines, l)
					}
				}
				desc += "\n" + strings.Join(lines[max(0, len(lines)-30):], "\n")
			}
			return false, body + "\n" + pods + apps + "\n" + svcs + "\n" + wls + "\n" + desc + "\n" + gh.comment()
		}
	}
	e.wait("the preview answers with its greeting and its backend", 5*time.Minute, answers(previewURL, "Hello from the preview"))
	out, err := e.cli("get", "services", "-A", "-o", "json")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	var svcs struct{ Items []api.Service }
	json.Unmarshal([]byte(out), &svcs)
	prodURL := ""
	for _, s := range svcs.Items {
		if s.Metadata.App == "shop" && s.Metadata.Name == "frontend" {
			prodURL = "http://" + hostIP + ":" + strconv.Itoa(int(s.Spec.Ports[0].NodePort))
		}
	}
	e.wait("production answers with its own greeting", time.Minute, answers(prodURL, "Hello from config/greeting.txt"))

	// A push updates the preview.
	gh.setPR("try", push("Hello again from the preview", nil), true)
	e.wait("the preview updated", 5*time.Minute, answers(previewURL, "Hello again from the preview"))

	// Closing the pull request deletes the preview.
	gh.setPR("try", gh.sha(), false)
	e.wait("the preview deleted", 3*time.Minute, func() (bool, string) {
		pods, out := e.pods()
		for _, p := range pods {
			if p.Metadata.App == "shop-pr-1" {
				return false, out
			}
		}
		apps, err := e.cli("get", "apps", "-A")
		if err != nil || strings.Contains(apps, "shop-pr-1") {
			return false, apps
		}
		// Its kv replica's persistent volume goes with it.
		vols, err := e.cli("get", "volumes", "-A")
		return err == nil && !strings.Contains(vols, "shop-pr-1"), vols
	})
	if after := production(); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Errorf("production's pods changed:\nbefore %v\nafter  %v", before, after)
	}
	e.wait("production still answers", time.Minute, answers(prodURL, "Hello from config/greeting.txt"))
}

// prForge is a GitHub API with one pull request (#1, into main), as much
// as the forge component uses, answering with the payloads recorded in
// forge/testdata/github.
type prForge struct {
	t     testing.TB
	url   string
	token string

	mu       sync.Mutex
	head     string
	headSHA  string
	open     bool
	labelled bool
	comments []map[string]any
}

// startPRForge serves the forge on addr inside the network namespace ns.
func startPRForge(t testing.TB, ns, addr string) *prForge {
	ln := listenInNetns(t, "/run/netns/"+ns, addr)
	f := &prForge{t: t, url: "http://" + ln.Addr().String() + "/", token: "e2e-forge-token"}
	srv := &http.Server{Handler: http.HandlerFunc(f.serve)}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return f
}

// listenInNetns listens on addr inside the network namespace at path.
func listenInNetns(t testing.TB, path, addr string) net.Listener {
	t.Helper()
	type result struct {
		ln  net.Listener
		err error
	}
	done := make(chan result, 1)
	go func() {
		// The thread enters the namespace and never serves another
		// goroutine: it ends with this one unless it got back home.
		runtime.LockOSThread()
		home, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			done <- result{err: err}
			return
		}
		defer home.Close()
		target, err := os.Open(path)
		if err != nil {
			done <- result{err: err}
			return
		}
		defer target.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			done <- result{err: err}
			return
		}
		ln, err := net.Listen("tcp", addr)
		if unix.Setns(int(home.Fd()), unix.CLONE_NEWNET) == nil {
			runtime.UnlockOSThread()
		}
		done <- result{ln, err}
	}()
	r := <-done
	if r.err != nil {
		t.Fatalf("listen on %s in %s: %v", addr, path, r.err)
	}
	return r.ln
}

func (f *prForge) setPR(head, sha string, open bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.head, f.headSHA, f.open, f.labelled = head, sha, open, true
}

func (f *prForge) sha() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.headSHA
}

// comment is the pull request's last comment.
func (f *prForge) comment() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.comments) == 0 {
		return "(no comment)"
	}
	return f.comments[len(f.comments)-1]["body"].(string)
}

func (f *prForge) fixture(name string) map[string]any {
	b, err := os.ReadFile(filepath.Join("..", "..", "forge", "testdata", "github", name+".json"))
	if err != nil {
		f.t.Error(err)
		return map[string]any{}
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		f.t.Errorf("%s: %v", name, err)
	}
	return m
}

var prForgeRoute = regexp.MustCompile(`^/repos/acme/demo/(pulls|pulls/1|issues/1/comments|issues/comments/(\d+)|statuses/[0-9a-f]+)$`)

func (f *prForge) serve(w http.ResponseWriter, r *http.Request) {
	reply := func(code int, v any) {
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		w.WriteHeader(code)
		json.NewEncoder(w).Encode(v)
	}
	if r.Header.Get("Authorization") != "Bearer "+f.token {
		reply(http.StatusUnauthorized, f.fixture("error_401"))
		return
	}
	if r.URL.Path == "/user" {
		u := f.fixture("user")
		u["login"] = "capstan-bot"
		reply(http.StatusOK, u)
		return
	}
	m := prForgeRoute.FindStringSubmatch(r.URL.Path)
	if m == nil {
		reply(http.StatusNotFound, f.fixture("error_404"))
		return
	}
	var body struct{ Body string }
	if r.Method != http.MethodGet {
		json.NewDecoder(r.Body).Decode(&body)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	switch {
	case m[1] == "pulls":
		list := []any{}
		if f.open && f.headSHA != "" {
			list = append(list, f.pull())
		}
		reply(http.StatusOK, list)
	case m[1] == "pulls/1" && f.headSHA != "":
		reply(http.StatusOK, f.pull())
	case m[1] == "issues/1/comments" && r.Method == http.MethodGet:
		reply(http.StatusOK, append([]map[string]any{}, f.comments...))
	case m[1] == "issues/1/comments":
		c := f.fixture("comment")
		c["id"], c["body"] = len(f.comments)+1, body.Body
		c["user"].(map[string]any)["login"] = "capstan-bot"
		f.comments = append(f.comments, c)
		reply(http.StatusCreated, c)
	case m[2] != "":
		id, _ := strconv.Atoi(m[2])
		if id < 1 || id > len(f.comments) {
			reply(http.StatusNotFound, f.fixture("error_404"))
			return
		}
		f.comments[id-1]["body"] = body.Body
		reply(http.StatusOK, f.comments[id-1])
	case strings.HasPrefix(m[1], "statuses/"):
		reply(http.StatusCreated, f.fixture("status"))
	default:
		reply(http.StatusNotFound, f.fixture("error_404"))
	}
}

// pull is the pull request as GitHub shows it. f.mu is held.
func (f *prForge) pull() map[string]any {
	p := f.fixture("pull")
	p["number"], p["title"], p["merged"] = 1, "try a new greeting", false
	p["state"] = map[bool]string{true: "open", false: "closed"}[f.open]
	head, base := p["head"].(map[string]any), p["base"].(map[string]any)
	head["ref"], head["sha"], base["ref"] = f.head, f.headSHA, "main"
	labels := []any{}
	if f.labelled {
		labels = append(labels, map[string]any{"id": 1, "name": "preview", "color": "ededed"})
	}
	p["labels"] = labels
	return p
}
