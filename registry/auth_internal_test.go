package registry

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// Anonymous pulls pass only from loopback peers: a pod or another host
// reaching the registry on the node's address must log in.
func TestAnonymousPullOnlyFromLoopback(t *testing.T) {
	a, err := newBasicAuth(map[string]string{"push": "pw"}, map[string]string{"pull": "pw2"}, true)
	if err != nil {
		t.Fatal(err)
	}
	h := a.wrap(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) }), slog.New(slog.DiscardHandler))
	for _, tc := range []struct {
		method, remote, user, pass string
		want                       int
	}{
		{"GET", "127.0.0.1:40000", "", "", 200},
		{"HEAD", "[::1]:40000", "", "", 200},
		{"GET", "[::ffff:127.0.0.1]:40000", "", "", 200},
		{"GET", "10.88.0.5:40000", "", "", 401},
		{"GET", "192.168.1.10:40000", "", "", 401},
		{"GET", "garbage", "", "", 401},
		{"GET", "10.88.0.5:40000", "pull", "pw2", 200},
		{"POST", "127.0.0.1:40000", "", "", 401},
		{"PUT", "127.0.0.1:40000", "", "", 401},
		{"PATCH", "127.0.0.1:40000", "", "", 401},
		{"DELETE", "127.0.0.1:40000", "", "", 401},
		{"POST", "127.0.0.1:40000", "pull", "pw2", 403},
		{"POST", "10.88.0.5:40000", "push", "pw", 200},
		{"POST", "127.0.0.1:40000", "push", "wrong", 401},
	} {
		req := httptest.NewRequest(tc.method, "/v2/a/b/blobs/uploads/", nil)
		req.RemoteAddr = tc.remote
		if tc.user != "" {
			req.SetBasicAuth(tc.user, tc.pass)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != tc.want {
			t.Errorf("%s from %s as %q: status %d, want %d", tc.method, tc.remote, tc.user, rec.Code, tc.want)
		}
	}

	closed, err := newBasicAuth(map[string]string{"push": "pw"}, nil, false)
	if err != nil {
		t.Fatal(err)
	}
	h = closed.wrap(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) }), slog.New(slog.DiscardHandler))
	req := httptest.NewRequest("GET", "/v2/", nil)
	req.RemoteAddr = "127.0.0.1:1"
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != 401 {
		t.Errorf("anonymous pull without AnonymousPull: status %d, want 401", rec.Code)
	}
}

// FuzzAuthDecision: whatever the method, peer address and credentials, a
// request that writes passes only with the push user's password, and one
// without credentials passes only as a read from a loopback peer.
func FuzzAuthDecision(f *testing.F) {
	f.Add("POST", "127.0.0.1:1", "", "", false)
	f.Add("GET", "[::1]:2", "", "", false)
	f.Add("GET", "10.0.0.1:3", "pull", "pw2", true)
	f.Add("PUT", "127.0.0.1:4", "push", "pw", true)
	f.Add("get", "127.0.0.1", "pull", "x", true)
	a, err := newBasicAuth(map[string]string{"push": "pw"}, map[string]string{"pull": "pw2"}, true)
	if err != nil {
		f.Fatal(err)
	}
	h := a.wrap(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) }), slog.New(slog.DiscardHandler))
	f.Fuzz(func(t *testing.T, method, remote, user, pass string, withAuth bool) {
		if !validMethod(method) {
			return
		}
		req := httptest.NewRequest(http.MethodGet, "/v2/", nil)
		req.Method, req.RemoteAddr = method, remote
		if withAuth {
			req.SetBasicAuth(user, pass)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			return
		}
		pushUser := withAuth && user == "push" && pass == "pw"
		read := method == http.MethodGet || method == http.MethodHead
		if !read && !pushUser {
			t.Fatalf("%s from %q as %q/%v passed", method, remote, user, withAuth)
		}
		if !withAuth && !fromLoopback(req) {
			t.Fatalf("anonymous %s from %q passed", method, remote)
		}
	})
}

// validMethod reports whether m is an HTTP token, as a server would parse.
func validMethod(m string) bool {
	if m == "" {
		return false
	}
	for _, c := range m {
		if c <= ' ' || c >= 0x7f || strings.ContainsRune("()<>@,;:\\\"/[]?={}", c) {
			return false
		}
	}
	return true
}
