package registry

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
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
