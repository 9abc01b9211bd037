package apiserver

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
)

// FuzzParseRoute: whatever path a client asks for, splitting and routing
// it does not panic; a refusal is a 4xx whose message stays short (it
// quotes at most the start of what was sent); a route to an object names
// a key that validates.
func FuzzParseRoute(f *testing.F) {
	for _, p := range []string{"/api/v1/pods", "/api/v1/pods/shop/web-1", "/api/v1/nodes/n1/status", "/api/v1/pods/shop/web-1/log",
		"/api/v1/secrets/shop/db/values", "/api/v1/txn", "/api/v1/widgets", "/api/v1/pods/shop/%2e%2e", "/api/v1/pods//x", "/api/v1/pods/shop/a%2Fb", "/api/v2/pods"} {
		f.Add(p)
	}
	f.Fuzz(func(t *testing.T, p string) {
		u, err := url.Parse("https://h" + p)
		if err != nil {
			return
		}
		r := httptest.NewRequest(http.MethodGet, "https://h/", nil)
		r.URL = u
		parts, err := parsePath(r)
		if err == nil {
			if len(parts) == 0 {
				t.Fatalf("parsePath(%q) gave no segments", p)
			}
			var rt route
			if rt, err = parseRoute(parts); err == nil {
				if rt.named && rt.key.Validate() != nil {
					t.Fatalf("route %q names key %v, which does not validate", p, rt.key)
				}
				return
			}
		}
		st := statusOf(err)
		if st.Code < 400 || st.Code > 499 {
			t.Fatalf("path %q: %d %v, want a 4xx", p, st.Code, err)
		}
		if len(st.Message) > 1024 {
			t.Fatalf("path %q: the error is %d bytes long", p, len(st.Message))
		}
	})
}
