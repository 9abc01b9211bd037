// Command echo is the end-to-end tests' pod program: an HTTP server on
// :8080 that answers every request with "HOSTNAME REMOTE-IP", so a test
// learns which pod answered and from which source address the request
// came (pod-to-pod traffic across nodes must keep the pod address). It
// exits on SIGTERM.
//
// It also has a readiness switch for the readiness probe: GET /healthz
// answers 200 while the program is ready and 503 once a POST /unready
// made it unready; POST /ready makes it ready again. Both POSTs answer
// "HOSTNAME ready" or "HOSTNAME unready". Every other request, whatever
// the path, gets the "HOSTNAME REMOTE-IP" answer, ready or not.
//
// It prints "echo HOSTNAME serving on :8080" when it starts (for `capstan
// logs`), and `echo hostname` prints the host name and exits (for `capstan
// exec`: the image holds nothing else to run); `echo exit N` prints
// "HOSTNAME exits N" and exits with status N (a job's pod).
package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"sync/atomic"
	"syscall"
)

func main() {
	host, _ := os.Hostname()
	if len(os.Args) == 2 && os.Args[1] == "hostname" {
		fmt.Println(host)
		return
	}
	if len(os.Args) == 3 && os.Args[1] == "exit" {
		code, _ := strconv.Atoi(os.Args[2])
		fmt.Printf("%s exits %d\n", host, code)
		os.Exit(code)
	}
	var unready atomic.Bool
	srv := &http.Server{Addr: ":8080", Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/healthz":
			if unready.Load() {
				http.Error(w, "unready", http.StatusServiceUnavailable)
				return
			}
			fmt.Fprintln(w, "ok")
		case r.Method == http.MethodPost && (r.URL.Path == "/unready" || r.URL.Path == "/ready"):
			unready.Store(r.URL.Path == "/unready")
			fmt.Fprintf(w, "%s %s\n", host, r.URL.Path[1:])
		default:
			ip, _, _ := net.SplitHostPort(r.RemoteAddr)
			fmt.Fprintf(w, "%s %s\n", host, ip)
		}
	})}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	go func() {
		<-ctx.Done()
		_ = srv.Shutdown(context.Background())
	}()
	ln, err := net.Listen("tcp", srv.Addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Printf("echo %s serving on %s\n", host, srv.Addr)
	if err := srv.Serve(ln); err != nil && err != http.ErrServerClosed {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
