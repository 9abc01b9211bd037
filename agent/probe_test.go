package agent

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/capstanhq/capstan/apiserver/api"
)

func TestProbeConfigDefaults(t *testing.T) {
	got := newProbeConfig(&api.Probe{})
	want := probeConfig{Period: 10 * time.Second, Timeout: time.Second, Failures: 3, Successes: 1}
	if got != want {
		t.Errorf("defaults = %+v, want %+v", got, want)
	}
	got = newProbeConfig(&api.Probe{InitialDelaySeconds: 2, PeriodSeconds: 3, TimeoutSeconds: 4, FailureThreshold: 5, SuccessThreshold: 6})
	want = probeConfig{InitialDelay: 2 * time.Second, Period: 3 * time.Second, Timeout: 4 * time.Second, Failures: 5, Successes: 6}
	if got != want {
		t.Errorf("explicit = %+v, want %+v", got, want)
	}
}

func TestProbeCounterThresholds(t *testing.T) {
	cfg := probeConfig{Failures: 3, Successes: 2}
	tests := []struct {
		name    string
		initial bool
		results []bool
		want    []bool // verdict after each result
	}{
		{"needs two successes to pass", false, []bool{true, true, true}, []bool{false, true, true}},
		{"a failure resets the success run", false, []bool{true, false, true, true}, []bool{false, false, false, true}},
		{"needs three failures to fail", true, []bool{false, false, false}, []bool{true, true, false}},
		{"a success resets the failure run", true, []bool{false, false, true, false, false}, []bool{true, true, true, true, true}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := probeCounter{ok: tc.initial}
			for i, r := range tc.results {
				prev := c.ok
				changed := c.observe(r, cfg)
				if c.ok != tc.want[i] || changed != (prev != c.ok) {
					t.Fatalf("after result %d (%v): verdict %v changed %v, want %v", i, r, c.ok, changed, tc.want[i])
				}
			}
		})
	}
}

// HTTP and TCP checkers against real listeners on loopback.
func TestCheckers(t *testing.T) {
	var healthy atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/healthz" || !healthy.Load() {
			http.Error(w, "no", http.StatusServiceUnavailable)
		}
	}))
	defer srv.Close()
	ap := netip.MustParseAddrPort(srv.Listener.Addr().String())
	c := &api.Container{Name: "web", Ports: []api.ContainerPort{{Name: "http", Port: int32(ap.Port())}}}
	hc := newProbeClient()
	ctx := context.Background()

	httpChk, err := newChecker(&api.Probe{HTTP: &api.HTTPProbe{Path: "/healthz", Port: api.FromString("http")}}, c, ap.Addr(), "id", nil, hc)
	if err != nil {
		t.Fatal(err)
	}
	if err := httpChk.check(ctx); err == nil {
		t.Error("http probe passed on a 503")
	}
	healthy.Store(true)
	if err := httpChk.check(ctx); err != nil {
		t.Errorf("http probe failed on a 200: %v", err)
	}

	tcpChk, err := newChecker(&api.Probe{TCP: &api.TCPProbe{Port: api.FromInt(int32(ap.Port()))}}, c, ap.Addr(), "id", nil, hc)
	if err != nil {
		t.Fatal(err)
	}
	if err := tcpChk.check(ctx); err != nil {
		t.Errorf("tcp probe to a listener failed: %v", err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := netip.MustParseAddrPort(l.Addr().String())
	l.Close()
	closedChk, _ := newChecker(&api.Probe{TCP: &api.TCPProbe{Port: api.FromInt(int32(closed.Port()))}}, c, closed.Addr(), "id", nil, hc)
	if err := closedChk.check(ctx); err == nil {
		t.Error("tcp probe to a closed port passed")
	}
	// A probe that times out fails.
	hang := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { <-hang }))
	defer slow.Close()
	defer close(hang)
	sp := netip.MustParseAddrPort(slow.Listener.Addr().String())
	slowChk, _ := newChecker(&api.Probe{HTTP: &api.HTTPProbe{Port: api.FromInt(int32(sp.Port()))}}, c, sp.Addr(), "id", nil, hc)
	tctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if err := slowChk.check(tctx); err == nil {
		t.Error("http probe of a server that never answers passed")
	}
	if _, err := newChecker(&api.Probe{TCP: &api.TCPProbe{Port: api.FromString("nope")}}, c, ap.Addr(), "id", nil, hc); err == nil {
		t.Error("a probe on an unknown port name was accepted")
	}
}

// An HTTP probe runs from the host's network namespace: it follows a
// redirect only to the probed host, as the kubelet does. A redirect to
// another host (here "localhost" for a probe of 127.0.0.1; in a cluster
// the host's loopback or a metadata address) is not followed, and the
// check passes with a warning.
func TestHTTPProbeRedirects(t *testing.T) {
	var elsewhere atomic.Int32
	other := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { elsewhere.Add(1) }))
	defer other.Close()
	otherPort := netip.MustParseAddrPort(other.Listener.Addr().String()).Port()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/moved":
			http.Redirect(w, r, "/healthz", http.StatusFound)
		case "/moved-to-sick":
			http.Redirect(w, r, "/sick", http.StatusFound)
		case "/sick":
			http.Error(w, "no", http.StatusServiceUnavailable)
		case "/away":
			http.Redirect(w, r, "http://localhost:"+strconv.Itoa(int(otherPort))+"/secret", http.StatusFound)
		case "/loop":
			http.Redirect(w, r, "/loop", http.StatusFound)
		}
	}))
	defer srv.Close()
	ap := netip.MustParseAddrPort(srv.Listener.Addr().String())
	c := &api.Container{Name: "web", Ports: []api.ContainerPort{{Name: "http", Port: int32(ap.Port())}}}
	check := func(path string) error {
		t.Helper()
		chk, err := newChecker(&api.Probe{HTTP: &api.HTTPProbe{Path: path, Port: api.FromString("http")}}, c, ap.Addr(), "id", nil, newProbeClient())
		if err != nil {
			t.Fatal(err)
		}
		return chk.check(context.Background())
	}
	if err := check("/moved"); err != nil {
		t.Errorf("redirect on the same host to a 200: %v, want a pass", err)
	}
	if err := check("/moved-to-sick"); err == nil || !strings.Contains(err.Error(), "503") {
		t.Errorf("redirect on the same host to a 503: %v, want it followed and failing", err)
	}
	if err := check("/loop"); err == nil || !strings.Contains(err.Error(), "stopped after 10 redirects") {
		t.Errorf("endless redirect: %v, want it stopped", err)
	}
	err := check("/away")
	if _, warned := errors.AsType[probeWarning](err); !warned || !strings.Contains(err.Error(), "/secret") {
		t.Errorf("redirect to another host: %v, want a probeWarning naming the location", err)
	}
	if n := elsewhere.Load(); n != 0 {
		t.Errorf("the probe followed a redirect to another host (%d requests there)", n)
	}
}

// A check that passes with a warning counts as a pass, and the warning is
// reported.
func TestProberWarningPasses(t *testing.T) {
	spec := &probeSpec{cfg: probeConfig{Period: time.Hour, Timeout: time.Second, Failures: 1, Successes: 1},
		check: warnCheck{}}
	changed := make(chan struct{}, 10)
	heard := make(chan error, 10)
	p := startProber(context.Background(), "c1", spec, nil, func() { changed <- struct{}{} },
		func(kind string, err error) { heard <- err })
	defer p.close()
	waitChange(t, changed)
	if ready, _ := p.results(); !ready {
		t.Fatal("not ready after a check that passed with a warning")
	}
	select {
	case err := <-heard:
		if _, warned := errors.AsType[probeWarning](err); !warned {
			t.Errorf("reported %v, want the warning", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the warning was not reported within 10s")
	}
}

// A check that does not answer within the timeout is a failure, and the
// failure says it timed out rather than only "context deadline exceeded".
func TestProberTimeoutIsAFailure(t *testing.T) {
	spec := &probeSpec{cfg: probeConfig{Period: time.Hour, Timeout: 50 * time.Millisecond, Failures: 1, Successes: 1},
		check: hangCheck{}, initial: true}
	changed := make(chan struct{}, 10)
	heard := make(chan error, 10)
	p := startProber(context.Background(), "c1", nil, spec, func() { changed <- struct{}{} },
		func(kind string, err error) { heard <- err })
	defer p.close()
	waitChange(t, changed)
	if _, unhealthy := p.results(); !unhealthy {
		t.Fatal("liveness not failed after a check that timed out")
	}
	select {
	case err := <-heard:
		if want := "no answer within the probe's timeout of 50ms"; !strings.Contains(err.Error(), want) || !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("reported %q, want it to say %q and wrap the deadline", err, want)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the timed-out check was not reported within 10s")
	}
}

// hangCheck answers only when its context ends.
type hangCheck struct{}

func (hangCheck) check(ctx context.Context) error {
	<-ctx.Done()
	return fmt.Errorf("GET http://10.0.0.1/: %w", ctx.Err())
}

type warnCheck struct{}

func (warnCheck) check(context.Context) error { return probeWarning{"redirected"} }

// A prober reports a readiness flip through its callback, and stops.
func TestProberFlips(t *testing.T) {
	var pass atomic.Bool
	changed := make(chan struct{}, 10)
	spec := &probeSpec{cfg: probeConfig{Period: 5 * time.Millisecond, Timeout: time.Second, Failures: 1, Successes: 1},
		check: checkFunc(func() bool { return pass.Load() })}
	failures := make(chan string, 100)
	p := startProber(context.Background(), "c1", spec, nil, func() { changed <- struct{}{} },
		func(kind string, err error) {
			select {
			case failures <- kind + ": " + err.Error():
			default:
			}
		})
	defer p.close()
	// Each failed check is reported, named by its probe.
	select {
	case f := <-failures:
		if f != "Readiness: "+strconv.ErrRange.Error() {
			t.Errorf("failure reported as %q", f)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no failed check reported within 10s")
	}
	pass.Store(true)
	waitChange(t, changed)
	if ready, unhealthy := p.results(); !ready || unhealthy {
		t.Fatalf("after passing: ready %v unhealthy %v", ready, unhealthy)
	}
	pass.Store(false)
	waitChange(t, changed)
	if ready, _ := p.results(); ready {
		t.Fatal("still ready after failing")
	}
}

type checkFunc func() bool

func (f checkFunc) check(context.Context) error {
	if f() {
		return nil
	}
	return strconv.ErrRange
}

func waitChange(t *testing.T, ch <-chan struct{}) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(10 * time.Second):
		t.Fatal("no verdict change within 10s")
	}
}

// TestStartupProbesSooner: a container that was never ready is probed
// sooner than its period (an hour here) until its first success, so it
// is ready about when it listens; only the first failure, the one its
// period would have made, is reported; afterwards the period holds.
func TestStartupProbesSooner(t *testing.T) {
	var checks atomic.Int32
	spec := &probeSpec{cfg: probeConfig{Period: time.Hour, Timeout: time.Second, Failures: 1, Successes: 1}, startup: true,
		check: checkFunc(func() bool { return checks.Add(1) > 3 })}
	var failures atomic.Int32
	changed := make(chan struct{}, 10)
	p := startProber(context.Background(), "c1", spec, nil, func() { changed <- struct{}{} },
		func(string, error) { failures.Add(1) })
	defer p.close()
	waitChange(t, changed)
	if ready, _ := p.results(); !ready {
		t.Fatal("not ready after the verdict changed")
	}
	if n, f := checks.Load(), failures.Load(); n != 4 || f != 1 {
		t.Errorf("%d checks and %d failures reported, want 4 and 1 (3 failed checks, of which the period's first)", n, f)
	}
}
