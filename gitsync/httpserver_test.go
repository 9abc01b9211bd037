package gitsync

import (
	"encoding/pem"
	"io"
	"log"
	"maps"
	"net/http"
	"net/http/cgi"
	"net/http/httptest"
	"net/url"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
)

// gitHTTPServer is a real git smart-HTTP server: git http-backend behind
// net/http/cgi on 127.0.0.1, optionally with basic auth.
type gitHTTPServer struct {
	url   string
	root  string
	caPEM string // for HTTPS
	pass  *atomic.Pointer[string]
}

// setPassword changes the password the server accepts (a rotation).
func (s *gitHTTPServer) setPassword(pass string) { s.pass.Store(&pass) }

func newGitHTTPServer(t testing.TB, user, pass string) *gitHTTPServer {
	t.Helper()
	return startGitHTTPServer(t, user, pass, false)
}

// startGitHTTPServer serves over HTTPS when tls; caPEM then holds the
// certificate a client must trust.
func startGitHTTPServer(t testing.TB, user, pass string, tls bool) *gitHTTPServer {
	t.Helper()
	out, err := exec.Command("git", "--exec-path").Output()
	if err != nil {
		t.Fatalf("git --exec-path: %v", err)
	}
	backend := filepath.Join(strings.TrimSpace(string(out)), "git-http-backend")
	root := t.TempDir()
	h := &cgi.Handler{
		Path:   backend,
		Stderr: io.Discard,
		Logger: log.New(io.Discard, "", 0), // a client that hangs up is no news
		Env:    []string{"GIT_PROJECT_ROOT=" + root, "GIT_HTTP_EXPORT_ALL=1", "GIT_CONFIG_NOSYSTEM=1", "HOME=" + root},
	}
	var handler http.Handler = h
	accepted := new(atomic.Pointer[string])
	accepted.Store(&pass)
	if user != "" {
		handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			u, p, ok := r.BasicAuth()
			if !ok || u != user || p != *accepted.Load() {
				w.Header().Set("WWW-Authenticate", `Basic realm="git"`)
				http.Error(w, "unauthorized", http.StatusUnauthorized)
				return
			}
			h.ServeHTTP(w, r)
		})
	}
	if tls {
		srv := httptest.NewTLSServer(handler)
		t.Cleanup(srv.Close)
		ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
		return &gitHTTPServer{url: srv.URL, root: root, caPEM: string(ca), pass: accepted}
	}
	srv := httptest.NewServer(handler)
	t.Cleanup(srv.Close)
	return &gitHTTPServer{url: srv.URL, root: root, pass: accepted}
}

// publish makes a bare repository NAME.git on the server fed from src and
// returns its URL; call push to update it.
func (s *gitHTTPServer) publish(t testing.TB, src *gitRepo, name string) string {
	t.Helper()
	bare := filepath.Join(s.root, name+".git")
	src.git("init", "-q", "--bare", "-b", "main", bare)
	src.git("-C", bare, "config", "http.receivepack", "true")
	src.git("push", "-q", "-f", bare, "HEAD:refs/heads/main")
	return s.url + "/" + name + ".git"
}

func (s *gitHTTPServer) push(t testing.TB, src *gitRepo, name string) {
	t.Helper()
	src.git("push", "-q", "-f", filepath.Join(s.root, name+".git"), "HEAD:refs/heads/main")
}

// cuttingProxy forwards to the git server at target and, while cut holds
// n > 0, sends only the first n bytes of each upload-pack answer before
// breaking the connection (a network that drops mid-transfer).
func cuttingProxy(t testing.TB, target string, cut *atomic.Int64) string {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		out := r.Clone(r.Context())
		out.URL.Scheme, out.URL.Host, out.RequestURI = u.Scheme, u.Host, ""
		resp, err := http.DefaultTransport.RoundTrip(out)
		if err != nil {
			panic(http.ErrAbortHandler)
		}
		defer resp.Body.Close()
		maps.Copy(w.Header(), resp.Header)
		w.WriteHeader(resp.StatusCode)
		if n := cut.Load(); n > 0 && strings.HasSuffix(r.URL.Path, "/git-upload-pack") {
			io.CopyN(w, resp.Body, n)
			w.(http.Flusher).Flush()
			panic(http.ErrAbortHandler)
		}
		io.Copy(w, resp.Body)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}
