// Command api is Capstan's example backend: an HTTP server answering JSON
// with its host name and how many requests it has served, for the hello
// frontend to show.
//
// Environment: PORT (default 9000); API_TOKEN (optional, a secret): when
// set, GET /private answers only requests carrying "Authorization: Bearer
// <token>", and "/" says a token is set (never which); KV_URL (optional,
// the kv example store, e.g. http://kv:80): GET and PUT /note read and
// write the note kept there, which outlives every pod of this group. It
// exits cleanly on SIGTERM or SIGINT.
package main

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	port := os.Getenv("PORT")
	if port == "" {
		port = "9000"
	}
	ln, err := net.Listen("tcp", ":"+port)
	if err != nil {
		log.Fatal(err)
	}
	host, _ := os.Hostname()
	h := newHandler(host, os.Getenv("API_TOKEN"), os.Getenv("KV_URL"))
	if err := serve(ctx, ln, h); err != nil {
		log.Fatal(err)
	}
}

// reply is the JSON body of "/".
type reply struct {
	Hostname string `json:"hostname"`
	Count    int64  `json:"count"`
	TokenSet bool   `json:"tokenSet,omitempty"`
}

func newHandler(host, token, kvURL string) http.Handler {
	var count atomic.Int64
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(reply{Hostname: host, Count: count.Add(1), TokenSet: token != ""})
	})
	kv := &http.Client{Timeout: 5 * time.Second}
	note := func(w http.ResponseWriter, r *http.Request) {
		if kvURL == "" {
			http.Error(w, "no store: set KV_URL to the kv example's address", http.StatusNotFound)
			return
		}
		req, err := http.NewRequestWithContext(r.Context(), r.Method, strings.TrimRight(kvURL, "/")+"/kv/note",
			http.MaxBytesReader(w, r.Body, 64<<10))
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		resp, err := kv.Do(req)
		if err != nil {
			http.Error(w, "kv: "+err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		w.WriteHeader(resp.StatusCode)
		_, _ = io.Copy(w, io.LimitReader(resp.Body, 1<<20))
	}
	mux.HandleFunc("GET /note", note)
	mux.HandleFunc("PUT /note", note)
	mux.HandleFunc("GET /private", func(w http.ResponseWriter, r *http.Request) {
		want := "Bearer " + token
		if token == "" || subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), []byte(want)) != 1 {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		fmt.Fprintln(w, "welcome")
	})
	return mux
}

// serve runs an HTTP server on ln until ctx ends, then shuts down within a
// second.
func serve(ctx context.Context, ln net.Listener, h http.Handler) error {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	log.Printf("api listening on %s", ln.Addr())
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shut, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	err := srv.Shutdown(shut)
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return err
}
