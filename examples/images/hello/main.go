// Command hello is Capstan's example frontend: an HTTP server that answers
// "/" with its host name, its version and, when BACKEND_URL is set, what the
// backend said, so a browser shows one pod of a service talking to another
// through its DNS name.
//
// Environment: PORT (default 8080), VERSION (default v1), BACKEND_URL
// (optional, for example http://backend.shop.svc.cluster.local),
// GREETING_FILE (optional: a config file whose text "/" shows as the
// greeting). It exits cleanly on SIGTERM or SIGINT.
//
// `hello get URL` instead prints what URL answers and exits 0 on a 2xx, 1
// otherwise: the image has no shell or curl, and this is what `capstan exec`
// runs to look at the cluster from inside a pod (DNS, services).
// `hello cat FILE` prints a file and `hello env NAME` a variable (exit 1
// when missing), to look at a pod's config files and secrets.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

func main() {
	if len(os.Args) == 3 && os.Args[1] == "get" {
		os.Exit(getCmd(os.Args[2], os.Stdout, os.Stderr))
	}
	if len(os.Args) == 3 && os.Args[1] == "cat" {
		os.Exit(catCmd(os.Args[2], os.Stdout, os.Stderr))
	}
	if len(os.Args) == 3 && os.Args[1] == "env" {
		v, ok := os.LookupEnv(os.Args[2])
		if !ok {
			fmt.Fprintf(os.Stderr, "%s is not set\n", os.Args[2])
			os.Exit(1)
		}
		fmt.Println(v)
		os.Exit(0)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if err := run(ctx, ":"+envOr("PORT", "8080")); err != nil {
		log.Fatal(err)
	}
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

// run serves on addr until ctx ends.
func run(ctx context.Context, addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	host, _ := os.Hostname()
	h := &handler{
		host:     host,
		version:  envOr("VERSION", "v1"),
		backend:  os.Getenv("BACKEND_URL"),
		greeting: os.Getenv("GREETING_FILE"),
		client:   &http.Client{Timeout: 2 * time.Second},
	}
	return serve(ctx, ln, h.routes())
}

// serve runs srv on ln until ctx ends, then shuts down within a second.
func serve(ctx context.Context, ln net.Listener, h http.Handler) error {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	log.Printf("hello listening on %s", ln.Addr())
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

type handler struct {
	host, version, backend string
	// greeting is the path of a file whose text is shown on "/".
	greeting string
	client   *http.Client
}

func (h *handler) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /{$}", h.index)
	return mux
}

func (h *handler) index(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	fmt.Fprintf(w, "You've hit %s (version %s)\n", h.host, h.version)
	if h.greeting != "" {
		if b, err := os.ReadFile(h.greeting); err == nil {
			fmt.Fprintf(w, "greeting: %s\n", strings.TrimSpace(string(b)))
		} else {
			fmt.Fprintf(w, "greeting: error: %v\n", err)
		}
	}
	if h.backend == "" {
		return
	}
	body, err := h.fetch(r.Context())
	if err != nil {
		fmt.Fprintf(w, "backend %s: error: %v\n", h.backend, err)
		return
	}
	fmt.Fprintf(w, "backend %s said: %s\n", h.backend, body)
}

// fetch returns the backend's answer, at most 64 KiB of it.
func (h *handler) fetch(ctx context.Context) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, h.backend, nil)
	if err != nil {
		return "", err
	}
	resp, err := h.client.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("status %s", resp.Status)
	}
	for len(body) > 0 && body[len(body)-1] == '\n' {
		body = body[:len(body)-1]
	}
	return string(body), nil
}

// getCmd prints what url answers; it returns the exit code.
func getCmd(url string, stdout, stderr io.Writer) int {
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	defer resp.Body.Close()
	if _, err := io.Copy(stdout, io.LimitReader(resp.Body, 1<<20)); err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	if resp.StatusCode/100 != 2 {
		fmt.Fprintln(stderr, resp.Status)
		return 1
	}
	return 0
}

// catCmd prints a file; it returns the exit code.
func catCmd(path string, stdout, stderr io.Writer) int {
	b, err := os.ReadFile(path)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	_, _ = stdout.Write(b)
	return 0
}
