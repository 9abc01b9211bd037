package main

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
)

func get(t *testing.T, h http.Handler, path string) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	return rec.Code, rec.Body.String()
}

func TestIndexWithoutBackend(t *testing.T) {
	h := (&handler{host: "pod-1", version: "v2", client: http.DefaultClient}).routes()
	code, body := get(t, h, "/")
	if code != http.StatusOK || body != "You've hit pod-1 (version v2)\n" {
		t.Fatalf("GET / = %d %q", code, body)
	}
	if code, _ := get(t, h, "/healthz"); code != http.StatusOK {
		t.Fatalf("GET /healthz = %d", code)
	}
	if code, _ := get(t, h, "/nope"); code != http.StatusNotFound {
		t.Fatalf("GET /nope = %d, want 404", code)
	}
}

func TestIndexShowsBackend(t *testing.T) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		io.WriteString(w, `{"hostname":"api-7","count":3}`+"\n")
	}))
	defer backend.Close()
	h := (&handler{host: "pod-1", version: "v1", backend: backend.URL, client: backend.Client()}).routes()
	_, body := get(t, h, "/")
	if !strings.Contains(body, `said: {"hostname":"api-7","count":3}`) {
		t.Fatalf("GET / = %q, want the backend's answer", body)
	}

	backend.Close()
	_, body = get(t, h, "/")
	if !strings.Contains(body, "backend "+backend.URL+": error:") {
		t.Fatalf("GET / with the backend down = %q, want an error line", body)
	}
}

func TestServeStopsWhenContextEnds(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- serve(ctx, ln, (&handler{host: "h", version: "v1"}).routes()) }()
	resp, err := http.Get("http://" + ln.Addr().String() + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("serve returned %v after cancel, want nil", err)
	}
}

func TestGetCommand(t *testing.T) {
	srv := httptest.NewServer((&handler{host: "pod-1", version: "v1", client: http.DefaultClient}).routes())
	defer srv.Close()
	var out, errb strings.Builder
	if code := getCmd(srv.URL+"/", &out, &errb); code != 0 || out.String() != "You've hit pod-1 (version v1)\n" {
		t.Fatalf("get / = %d %q %q", code, out.String(), errb.String())
	}
	out.Reset()
	if code := getCmd(srv.URL+"/nope", &out, &errb); code != 1 || !strings.Contains(errb.String(), "404") {
		t.Fatalf("get /nope = %d %q", code, errb.String())
	}
}

func TestIndexShowsGreeting(t *testing.T) {
	f := t.TempDir() + "/greeting"
	if err := os.WriteFile(f, []byte("Hello from a config file\n"), 0o444); err != nil {
		t.Fatal(err)
	}
	h := (&handler{host: "pod-1", version: "v1", greeting: f, client: http.DefaultClient}).routes()
	if _, body := get(t, h, "/"); !strings.Contains(body, "greeting: Hello from a config file\n") {
		t.Fatalf("GET / = %q, want the greeting", body)
	}
	var out, errb strings.Builder
	if code := catCmd(f, &out, &errb); code != 0 || out.String() != "Hello from a config file\n" {
		t.Fatalf("cat = %d %q %q", code, out.String(), errb.String())
	}
	if code := catCmd(f+"-missing", &out, &errb); code != 1 {
		t.Fatalf("cat of a missing file = %d, want 1", code)
	}
}
