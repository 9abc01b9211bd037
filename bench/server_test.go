package bench

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"syscall"
	"testing"
	"time"

	"github.com/capstanhq/capstan/apiserver"
	"github.com/capstanhq/capstan/apiserver/apiservertest"
	"github.com/capstanhq/capstan/apiserver/client"
	"github.com/capstanhq/capstan/apiserver/store"
)

var (
	serverInProcess = flag.Bool("bench.in-process", false, "run Capstan's API server inside the benchmark's process instead of a process of its own (as etcd runs)")
	serverProfile   = flag.String("bench.server-cpuprofile", "", "write a CPU profile of Capstan's API server process to this file (each benchmark that starts a server overwrites it; go tool pprof FILE)")
)

// serveEnv, set to a data directory, makes the test binary a Capstan API
// server (see TestMain); profileEnv, set to a file, makes that server
// write its CPU profile there.
const (
	serveEnv   = "CAPSTAN_BENCH_SERVE"
	profileEnv = "CAPSTAN_BENCH_CPUPROFILE"
)

// TestMain runs the test binary as a Capstan API server when serveEnv is
// set: the benchmarks load a server in a process of its own, as the etcd
// anchor runs in its own, so that neither shares the load generator's
// runtime (its scheduler, heap and garbage collector).
func TestMain(m *testing.M) {
	if dir := os.Getenv(serveEnv); dir != "" {
		if err := serve(dir); err != nil {
			fmt.Fprintln(os.Stderr, "bench server:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// serve runs an API server on a bbolt store in dir, as the test server of
// apiservertest does (the store's compaction loop included, as under
// capstan server; no controllers), prints "ready" once it listens, and
// stops at SIGTERM or when its standard input closes.
func serve(dir string) error {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if file := os.Getenv(profileEnv); file != "" {
		f, err := os.Create(file)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	st, err := store.Open(filepath.Join(dir, "capstan.db"), store.Options{Logger: warnings()})
	if err != nil {
		return err
	}
	defer st.Close()
	srv, err := apiserver.New(apiserver.Options{DataDir: dir, Store: st, Listen: "127.0.0.1:0"})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		// The parent closes our standard input when it goes, whatever way.
		_, _ = bufio.NewReader(os.Stdin).ReadByte()
		cancel()
	}()
	errc := make(chan error, 2)
	go func() { errc <- srv.Start(ctx) }()
	go func() { errc <- st.Start(ctx) }()
	fmt.Println("ready")
	err = <-errc
	cancel()
	if err2 := <-errc; err == nil {
		err = err2
	}
	if errors.Is(err, context.Canceled) {
		err = nil
	}
	return err
}

// capstanServer is the API server a benchmark loads and an admin client.
type capstanServer struct {
	Config *client.Config
	Client *client.Client
	// Pid is the server's process, 0 when it runs in this one.
	Pid int
}

// startCapstan starts Capstan's API server for b: in a process of its own
// (the test binary again, see TestMain), or with -bench.in-process=true
// inside this one. Warnings of the store (a slow commit: where its time
// went) go to stderr either way. It stops when b ends.
func startCapstan(b *testing.B) *capstanServer {
	b.Helper()
	if *serverInProcess {
		c := apiservertest.Start(b, apiservertest.Options{Store: store.Options{Logger: warnings()}})
		ctx, cancel := context.WithCancel(context.Background())
		compacting := make(chan error, 1)
		go func() { compacting <- c.Store.Start(ctx) }()
		b.Cleanup(func() { cancel(); <-compacting })
		return &capstanServer{Config: c.Config, Client: c.Client}
	}
	dir := b.TempDir()
	exe, err := os.Executable()
	if err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), serveEnv+"="+dir)
	if *serverProfile != "" {
		cmd.Env = append(cmd.Env, profileEnv+"="+*serverProfile)
	}
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	exited := make(chan error, 1)
	b.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		stdin.Close()
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	})
	ready := make(chan error, 1)
	go func() {
		line, err := bufio.NewReader(stdout).ReadString('\n')
		if err == nil && line != "ready\n" {
			err = fmt.Errorf("said %q", line)
		}
		ready <- err
		exited <- cmd.Wait()
	}()
	select {
	case err := <-ready:
		if err != nil {
			b.Fatalf("bench server did not start: %v", err)
		}
	case <-time.After(time.Minute):
		b.Fatal("bench server did not start within a minute")
	}
	cfg, err := client.LoadConfig(filepath.Join(dir, "admin.yaml"))
	if err != nil {
		b.Fatal(err)
	}
	c, err := client.New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	return &capstanServer{Config: cfg, Client: c, Pid: cmd.Process.Pid}
}

// warnings is the store's logger: its warnings to stderr, as under
// capstan server.
func warnings() *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
}
