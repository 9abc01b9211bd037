package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"github.com/capstanhq/capstan/agent/runtime"
	"github.com/capstanhq/capstan/apiserver/api"
)

// Probe defaults, as in Kubernetes.
const (
	defaultProbePeriod  = 10 * time.Second
	defaultProbeTimeout = time.Second
	defaultFailures     = 3
	defaultSuccesses    = 1
)

// probeConfig is an api.Probe with its defaults applied.
type probeConfig struct {
	InitialDelay time.Duration
	Period       time.Duration
	Timeout      time.Duration
	Failures     int
	Successes    int
}

func newProbeConfig(p *api.Probe) probeConfig {
	c := probeConfig{
		InitialDelay: time.Duration(p.InitialDelaySeconds) * time.Second,
		Period:       time.Duration(p.PeriodSeconds) * time.Second,
		Timeout:      time.Duration(p.TimeoutSeconds) * time.Second,
		Failures:     int(p.FailureThreshold),
		Successes:    int(p.SuccessThreshold),
	}
	if c.Period <= 0 {
		c.Period = defaultProbePeriod
	}
	if c.Timeout <= 0 {
		c.Timeout = defaultProbeTimeout
	}
	if c.Failures <= 0 {
		c.Failures = defaultFailures
	}
	if c.Successes <= 0 {
		c.Successes = defaultSuccesses
	}
	return c
}

// probeCounter turns single probe results into a verdict that flips only
// after Successes passes or Failures failures in a row.
type probeCounter struct {
	ok        bool
	successes int
	failures  int
}

// observe records one result and reports whether the verdict changed.
func (c *probeCounter) observe(pass bool, cfg probeConfig) bool {
	if pass {
		c.failures = 0
		c.successes++
		if !c.ok && c.successes >= cfg.Successes {
			c.ok = true
			return true
		}
		return false
	}
	c.successes = 0
	c.failures++
	if c.ok && c.failures >= cfg.Failures {
		c.ok = false
		return true
	}
	return false
}

// checker runs one probe once.
type checker interface {
	check(ctx context.Context) error
}

// maxProbeRedirects is how many redirects to the same host an HTTP probe
// follows, as Go's client and the kubelet do.
const maxProbeRedirects = 10

// newProbeClient is the HTTP client of the HTTP probes. It runs in the
// host's network namespace, so a container must not steer it to another
// host (127.0.0.1 of the host, a metadata address): as the kubelet does,
// it follows a redirect only to the probed host; a redirect elsewhere
// ends the check, which passes with a warning (probeWarning).
func newProbeClient() *http.Client {
	return &http.Client{
		Transport:     &http.Transport{DisableKeepAlives: true},
		CheckRedirect: checkProbeRedirect,
	}
}

func checkProbeRedirect(req *http.Request, via []*http.Request) error {
	if req.URL.Hostname() != via[0].URL.Hostname() {
		return http.ErrUseLastResponse
	}
	if len(via) >= maxProbeRedirects {
		return fmt.Errorf("stopped after %d redirects", maxProbeRedirects)
	}
	return nil
}

// probeWarning is the result of a check that passes with a warning: an
// HTTP probe answered with a redirect it did not follow.
type probeWarning struct{ msg string }

func (w probeWarning) Error() string { return w.msg }

type httpChecker struct {
	client *http.Client
	url    string
}

func (h httpChecker) check(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, h.url, nil)
	if err != nil {
		return err
	}
	req.Header.Set("User-Agent", "capstan-probe")
	resp, err := h.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 10<<10))
	if resp.StatusCode < 200 || resp.StatusCode >= 400 {
		return fmt.Errorf("GET %s: %s", h.url, resp.Status)
	}
	if resp.StatusCode >= 300 {
		return probeWarning{fmt.Sprintf("GET %s: %s to %q, not followed (another host than the pod's); counted as a pass: point the probe at the final path",
			h.url, resp.Status, resp.Header.Get("Location"))}
	}
	return nil
}

type tcpChecker struct{ addr string }

func (t tcpChecker) check(ctx context.Context) error {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", t.addr)
	if err != nil {
		return err
	}
	return c.Close()
}

type execChecker struct {
	rt  runtime.Runtime
	id  string
	cmd []string
}

func (e execChecker) check(ctx context.Context) error {
	code, err := e.rt.Exec(ctx, e.id, e.cmd, runtime.ExecIO{})
	if err != nil {
		return err
	}
	if code != 0 {
		return fmt.Errorf("exec %v: exit code %d", e.cmd, code)
	}
	return nil
}

// newChecker builds the checker for probe p of container c, reached at the
// pod's IP from the host (HTTP, TCP) or inside container id (exec).
func newChecker(p *api.Probe, c *api.Container, podIP netip.Addr, id string, rt runtime.Runtime, hc *http.Client) (checker, error) {
	switch {
	case p.HTTP != nil:
		port, ok := api.ResolvePort(c, p.HTTP.Port)
		if !ok {
			return nil, fmt.Errorf("http probe port %s is not a port of container %s", p.HTTP.Port, c.Name)
		}
		path := p.HTTP.Path
		if path == "" {
			path = "/"
		}
		return httpChecker{client: hc, url: "http://" + net.JoinHostPort(podIP.String(), strconv.Itoa(int(port))) + path}, nil
	case p.TCP != nil:
		port, ok := api.ResolvePort(c, p.TCP.Port)
		if !ok {
			return nil, fmt.Errorf("tcp probe port %s is not a port of container %s", p.TCP.Port, c.Name)
		}
		return tcpChecker{addr: net.JoinHostPort(podIP.String(), strconv.Itoa(int(port)))}, nil
	case p.Exec != nil:
		return execChecker{rt: rt, id: id, cmd: p.Exec.Command}, nil
	}
	return nil, errors.New("probe has no http, tcp or exec handler")
}

// prober runs one container's readiness and liveness probes until stopped,
// and calls changed when a verdict flips.
type prober struct {
	id      string
	stop    context.CancelFunc
	done    chan struct{}
	changed func()

	mu        sync.Mutex
	ready     bool
	unhealthy bool
}

// probeSpec is one probe to run.
type probeSpec struct {
	cfg     probeConfig
	check   checker
	initial bool // verdict before the first result
	// startup probes sooner than the period until the first success
	// (startupFirstRetry, doubling up to the period): a readiness probe
	// of a container that was never ready, so a pod that listens 50 ms
	// after its start is not left unready for a whole period. Only the
	// checks the period would have made report their failures.
	startup bool
}

// startupFirstRetry is the first wait after a failed startup check.
const startupFirstRetry = 100 * time.Millisecond

// startProber runs the given probes (either may be nil) in goroutines;
// notify, when set, hears of every failed check and of every check that
// passed with a probeWarning, by probe kind ("Readiness" or "Liveness").
func startProber(ctx context.Context, id string, readiness, liveness *probeSpec, changed func(), notify func(kind string, err error)) *prober {
	ctx, cancel := context.WithCancel(ctx)
	p := &prober{id: id, stop: cancel, done: make(chan struct{}), changed: changed}
	var wg sync.WaitGroup
	if readiness != nil {
		p.ready = readiness.initial
		wg.Go(func() {
			p.loop(ctx, *readiness, func(ok bool) { p.ready = ok }, report(notify, "Readiness"))
		})
	}
	if liveness != nil {
		wg.Go(func() {
			p.loop(ctx, *liveness, func(ok bool) { p.unhealthy = !ok }, report(notify, "Liveness"))
		})
	}
	go func() { wg.Wait(); close(p.done) }()
	return p
}

// report binds notify to a probe kind; nil stays nil.
func report(notify func(string, error), kind string) func(error) {
	if notify == nil {
		return nil
	}
	return func(err error) { notify(kind, err) }
}

// loop probes every period; set records a changed verdict under p.mu;
// notify, when set, hears of each failed check and each warning.
func (p *prober) loop(ctx context.Context, s probeSpec, set func(bool), notify func(error)) {
	counter := probeCounter{ok: s.initial}
	delay := s.cfg.InitialDelay
	startup, retry := s.startup, startupFirstRetry
	var waited, due time.Duration // since the first check; when the period's next one would be
	for {
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		cctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
		err := s.check.check(cctx)
		timedOut := errors.Is(cctx.Err(), context.DeadlineExceeded)
		cancel()
		if ctx.Err() != nil {
			return
		}
		if err != nil && timedOut {
			err = fmt.Errorf("no answer within the probe's timeout of %s, which counts as a failure (raise timeout if the container is only slow): %w", s.cfg.Timeout, err)
		}
		onSchedule := !startup || waited >= due
		if onSchedule {
			due += s.cfg.Period
		}
		if _, warned := errors.AsType[probeWarning](err); warned {
			if notify != nil {
				notify(err)
			}
			err = nil
		}
		if err != nil && notify != nil && onSchedule {
			notify(err)
		}
		delay = s.cfg.Period
		if startup = startup && err != nil; startup {
			delay = min(retry, s.cfg.Period)
			retry *= 2
		}
		waited += delay
		if counter.observe(err == nil, s.cfg) {
			p.mu.Lock()
			set(counter.ok)
			p.mu.Unlock()
			p.changed()
		}
	}
}

// results returns the current verdicts.
func (p *prober) results() (ready, unhealthy bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.ready, p.unhealthy
}

// close stops the probes and waits for them.
func (p *prober) close() {
	p.stop()
	<-p.done
}
