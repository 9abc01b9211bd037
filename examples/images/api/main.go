// Command api is Capstan's example backend: an HTTP server answering JSON
// with its host name and how many requests it has served, for the hello
// frontend to show.
//
// Environment: PORT (default 9000); API_TOKEN (optional, a secret): when
// set, GET /private answers only requests carrying "Authorization: Bearer
// <token>", and "/" says a token is set (never which). It exits cleanly on
// SIGTERM or SIGINT.
package main

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
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
	if err := serve(ctx, ln, newHandler(host, os.Getenv("API_TOKEN"))); err != nil {
		log.Fatal(err)
	}
}

// reply is the JSON body of "/".
type reply struct {
	Hostname string `json:"hostname"`
	Count    int64  `json:"count"`
	TokenSet bool   `json:"tokenSet,omitempty"`
}

func newHandler(host, token string) http.Handler {
	var count atomic.Int64
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(reply{Hostname: host, Count: count.Add(1), TokenSet: token != ""})
	})
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
