package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

func TestCounterAndHostname(t *testing.T) {
	h := newHandler("api-7", "", "")
	for want := int64(1); want <= 3; want++ {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
		var r reply
		if err := json.Unmarshal(rec.Body.Bytes(), &r); err != nil {
			t.Fatalf("body %q: %v", rec.Body, err)
		}
		if r.Hostname != "api-7" || r.Count != want {
			t.Fatalf("reply %+v, want api-7 count %d", r, want)
		}
		if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
			t.Fatalf("content type %q", ct)
		}
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/healthz", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("GET /healthz = %d", rec.Code)
	}
}

func TestPrivateNeedsToken(t *testing.T) {
	h := newHandler("api-7", "s3cret", "")
	for auth, want := range map[string]int{"": http.StatusUnauthorized, "Bearer nope": http.StatusUnauthorized, "Bearer s3cret": http.StatusOK} {
		req := httptest.NewRequest(http.MethodGet, "/private", nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != want {
			t.Errorf("GET /private with %q = %d, want %d", auth, rec.Code, want)
		}
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
	if !strings.Contains(rec.Body.String(), `"tokenSet":true`) || strings.Contains(rec.Body.String(), "s3cret") {
		t.Errorf("GET / = %s, want tokenSet and no token", rec.Body.String())
	}
}

// TestNoteInKV: /note reads and writes the note in the store at KV_URL (a
// server in the test answering as kv does); without KV_URL it says how
// to set one, and a store that is down is a 502.
func TestNoteInKV(t *testing.T) {
	var mu sync.Mutex
	stored := map[string]string{}
	kv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		switch r.Method {
		case http.MethodPut:
			b, _ := io.ReadAll(r.Body)
			stored[r.URL.Path] = string(b)
			w.WriteHeader(http.StatusNoContent)
		case http.MethodGet:
			v, ok := stored[r.URL.Path]
			if !ok {
				http.Error(w, "no such key", http.StatusNotFound)
				return
			}
			io.WriteString(w, v)
		}
	}))
	defer kv.Close()
	h := newHandler("api-7", "", kv.URL)
	do := func(h http.Handler, method, body string) *httptest.ResponseRecorder {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(method, "/note", strings.NewReader(body)))
		return rec
	}
	if rec := do(h, http.MethodGet, ""); rec.Code != http.StatusNotFound {
		t.Errorf("GET before any PUT = %d, want 404", rec.Code)
	}
	if rec := do(h, http.MethodPut, "remember me"); rec.Code != http.StatusNoContent {
		t.Fatalf("PUT = %d %s", rec.Code, rec.Body)
	}
	if rec := do(h, http.MethodGet, ""); rec.Code != http.StatusOK || rec.Body.String() != "remember me" {
		t.Errorf("GET = %d %q, want the note", rec.Code, rec.Body)
	}
	if stored["/kv/note"] != "remember me" {
		t.Errorf("kv holds %v, want the note under /kv/note", stored)
	}
	if rec := do(newHandler("api-7", "", ""), http.MethodGet, ""); rec.Code != http.StatusNotFound || !strings.Contains(rec.Body.String(), "KV_URL") {
		t.Errorf("without KV_URL: %d %q", rec.Code, rec.Body)
	}
	kv.Close()
	if rec := do(h, http.MethodGet, ""); rec.Code != http.StatusBadGateway {
		t.Errorf("with the store down: %d, want 502", rec.Code)
	}
}
