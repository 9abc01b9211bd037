package apiserver_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/capstanhq/capstan/apiserver"
	"github.com/capstanhq/capstan/apiserver/api"
	"github.com/capstanhq/capstan/apiserver/apiservertest"
	"github.com/capstanhq/capstan/apiserver/client"
	"github.com/capstanhq/capstan/internal/remotecmd"
)

// metric returns the value of the series whose text starts with series
// (name and labels as /metrics prints them), 0 when absent.
func metric(t *testing.T, c *apiservertest.Cluster, series string) float64 {
	t.Helper()
	code, body := raw(t, c, c.Config.Token, "GET", "/metrics", nil)
	if code != 200 {
		t.Fatalf("metrics: %d %s", code, body)
	}
	for _, line := range strings.Split(body, "\n") {
		if rest, ok := strings.CutPrefix(line, series+" "); ok {
			v, err := strconv.ParseFloat(rest, 64)
			if err != nil {
				t.Fatalf("metric line %q: %v", line, err)
			}
			return v
		}
	}
	return 0
}

// eventually polls cond until it holds or 20 s pass.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting: %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func isCode(err error, code int) bool {
	var se *client.StatusError
	return errors.As(err, &se) && se.Code == code
}

// One viewer cannot hold more than its share of streams: its N+1th watch
// is 429 with a message that names the limit, while an admin and another
// viewer still get in, and a closed watch frees its place.
func TestStreamCapPerToken(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	const max = 3
	c := apiservertest.Start(t, apiservertest.Options{Server: apiserver.Options{MaxStreamsPerToken: max, BookmarkInterval: time.Hour}})
	viewer := c.Token(t, "viewer")
	var open []*client.Watch
	for i := range max {
		w, err := viewer.Watch(ctx, api.KindPod, client.ListOptions{}, 0)
		if err != nil {
			t.Fatalf("watch %d of %d: %v", i+1, max, err)
		}
		open = append(open, w)
	}
	_, err := viewer.Watch(ctx, api.KindPod, client.ListOptions{}, 0)
	var se *client.StatusError
	if !errors.As(err, &se) || se.Code != http.StatusTooManyRequests || se.Reason != "TooManyRequests" || !strings.Contains(se.Message, strconv.Itoa(max)) {
		t.Fatalf("watch %d: %v, want 429 naming the limit", max+1, err)
	}
	// Admins are not capped; other viewers have their own share.
	for i := range max + 2 {
		w, err := c.Client.Watch(ctx, api.KindPod, client.ListOptions{}, 0)
		if err != nil {
			t.Fatalf("admin watch %d while the viewer is capped: %v", i+1, err)
		}
		defer w.Close()
	}
	other, err := c.Token(t, "viewer").Watch(ctx, api.KindPod, client.ListOptions{}, 0)
	if err != nil {
		t.Fatalf("another viewer: %v", err)
	}
	other.Close()
	if got := metric(t, c, `capstan_api_streams_refused_total{role="viewer",type="watch"}`); got != 1 {
		t.Fatalf("refused streams metric %v, want 1", got)
	}
	// A closed watch gives its place back.
	open[0].Close()
	eventually(t, "a closed watch frees its place", func() bool {
		w, err := viewer.Watch(ctx, api.KindPod, client.ListOptions{}, 0)
		if err != nil {
			if !isCode(err, http.StatusTooManyRequests) {
				t.Fatal(err)
			}
			return false
		}
		open = append(open, w)
		return true
	})
	for _, w := range open {
		w.Close()
	}
}

// tlsConfig trusts the test cluster's CA and speaks HTTP/1.1, so that each
// dial is one connection the test controls.
func tlsConfig(c *apiservertest.Cluster) *tls.Config {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM([]byte(c.Config.CA))
	return &tls.Config{RootCAs: pool, NextProtos: []string{"http/1.1"}}
}

func serverAddr(c *apiservertest.Cluster) string {
	return strings.TrimPrefix(c.Config.Server, "https://")
}

// openWatch dials a new connection and starts a watch on it; it returns
// the connection (open while the watch is) and the response's status.
func openWatch(t *testing.T, c *apiservertest.Cluster, token string) (*tls.Conn, *http.Response) {
	t.Helper()
	conn, err := tls.Dial("tcp", serverAddr(c), tlsConfig(c))
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(conn, "GET /api/v1/pods?watch=true HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n\r\n", token)
	_ = conn.SetReadDeadline(time.Now().Add(20 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Time{})
	return conn, resp
}

// Viewers cannot take the connections kept for admins and nodes: once
// only the reserve is left a viewer's connection is refused (503, closed),
// and an admin still gets in.
func TestConnectionReserve(t *testing.T) {
	const max, reserve = 8, 4
	c := apiservertest.Start(t, apiservertest.Options{Server: apiserver.Options{MaxConnections: max, ReservedConnections: reserve, BookmarkInterval: time.Hour}})
	viewer, _, err := c.Server.Tokens().Create("viewer", "", 0, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	refused := false
	for i := 0; i < max && !refused; i++ {
		conn, resp := openWatch(t, c, viewer)
		defer conn.Close()
		switch resp.StatusCode {
		case http.StatusOK:
		case http.StatusServiceUnavailable:
			if !resp.Close {
				t.Fatal("a refused connection is kept open")
			}
			if i > max-reserve {
				t.Fatalf("the viewer held %d connections of %d, %d reserved", i, max, reserve)
			}
			refused = true
		default:
			t.Fatalf("viewer connection %d: %s", i+1, resp.Status)
		}
	}
	if !refused {
		t.Fatalf("the viewer opened %d connections of %d, the reserve included", max, max)
	}
	conn, resp := openWatch(t, c, c.Config.Token)
	defer conn.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("admin while viewers hold all they may: %s", resp.Status)
	}
	if got := metric(t, c, `capstan_api_connections_refused_total{reason="reserve"}`); got < 1 {
		t.Fatalf("refused connections metric %v", got)
	}
	if got := metric(t, c, `capstan_api_connections{class="privileged"}`); got < 1 {
		t.Fatalf("privileged connections metric %v", got)
	}
}

// stallBody sends a request's headers and part of its body, then nothing.
func stallBody(t *testing.T, c *apiservertest.Cluster, token, path string) *tls.Conn {
	t.Helper()
	conn, err := tls.Dial("tcp", serverAddr(c), tlsConfig(c))
	if err != nil {
		t.Fatal(err)
	}
	auth := ""
	if token != "" {
		auth = "Authorization: Bearer " + token + "\r\n"
	}
	fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: x\r\n%sContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{\"kind\":\"Pod\",", path, auth)
	return conn
}

// readToClose reads what the server answers until it closes the
// connection; it fails the test if the server keeps it open 20 s.
func readToClose(t *testing.T, conn *tls.Conn) string {
	t.Helper()
	_ = conn.SetReadDeadline(time.Now().Add(20 * time.Second))
	b, err := io.ReadAll(conn)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("the server kept a stalled request open (read %q)", b)
	}
	return string(b)
}

// readingHandler reads its whole body like the git webhook does, and
// signals each request it starts.
func readingHandler(entered chan<- struct{}) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		entered <- struct{}{}
		if _, err := io.ReadAll(r.Body); err != nil {
			http.Error(w, "cannot read body", http.StatusBadRequest)
			return
		}
		w.WriteHeader(http.StatusAccepted)
	})
}

// A client that sends part of a body and stalls is cut off once the body
// read timeout passes: on the API (408) and on a mounted handler without
// credentials (the git webhook's case).
func TestStalledBodyIsCut(t *testing.T) {
	entered := make(chan struct{}, 10)
	c := apiservertest.Start(t, apiservertest.Options{
		Server:   apiserver.Options{BodyReadTimeout: 200 * time.Millisecond},
		Handlers: map[string]http.Handler{"POST /hooks/test": readingHandler(entered)},
	})
	api := stallBody(t, c, c.Config.Token, "/api/v1/pods")
	defer api.Close()
	if got := readToClose(t, api); !strings.Contains(got, "408 Request Timeout") || !strings.Contains(got, "RequestTimeout") {
		t.Fatalf("stalled API body answered %q", got)
	}
	hook := stallBody(t, c, "", "/hooks/test")
	defer hook.Close()
	readToClose(t, hook)
	if got := metric(t, c, "capstan_api_body_read_timeouts_total"); got != 2 {
		t.Fatalf("body read timeouts metric %v, want 2", got)
	}
	// A body sent in time still works.
	if code, body := raw(t, c, "", "POST", "/hooks/test", []byte("{}")); code != http.StatusAccepted {
		t.Fatalf("prompt body: %d %s", code, body)
	}
}

// Requests without credentials share a bounded number of places: past it
// they are 429, while admins and health checks are still served.
func TestUnauthenticatedCap(t *testing.T) {
	entered := make(chan struct{}, 10)
	c := apiservertest.Start(t, apiservertest.Options{
		Server:   apiserver.Options{MaxUnauthenticatedRequests: 2},
		Handlers: map[string]http.Handler{"POST /hooks/test": readingHandler(entered)},
	})
	for range 2 {
		conn := stallBody(t, c, "", "/hooks/test")
		defer conn.Close()
		select {
		case <-entered:
		case <-time.After(20 * time.Second):
			t.Fatal("the stalled request never reached its handler")
		}
	}
	if code, body := raw(t, c, "", "POST", "/hooks/test", []byte("{}")); code != http.StatusTooManyRequests || !strings.Contains(body, "TooManyRequests") {
		t.Fatalf("third request without credentials: %d %s", code, body)
	}
	if code, body := raw(t, c, "bad.token", "GET", "/api/v1/pods", nil); code != http.StatusTooManyRequests {
		t.Fatalf("bad token while full: %d %s", code, body)
	}
	if code, body := raw(t, c, c.Config.Token, "GET", "/api/v1/pods", nil); code != http.StatusOK {
		t.Fatalf("admin while full: %d %s", code, body)
	}
	if code, body := raw(t, c, "", "GET", "/healthz", nil); code != http.StatusOK {
		t.Fatalf("health check while full: %d %s", code, body)
	}
	if got := metric(t, c, "capstan_api_unauthenticated_refused_total"); got != 2 {
		t.Fatalf("refused metric %v, want 2", got)
	}
}

// Revoking a token ends its open watch at once.
func TestRevokeEndsWatch(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c := apiservertest.Start(t, apiservertest.Options{Server: apiserver.Options{BookmarkInterval: time.Hour}})
	bearer, tok, err := c.Server.Tokens().Create("viewer", "", 0, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	cfg := *c.Config
	cfg.Token = bearer
	viewer, err := client.New(&cfg)
	if err != nil {
		t.Fatal(err)
	}
	w, err := viewer.Watch(ctx, api.KindPod, client.ListOptions{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if _, err := c.Client.Create(ctx, pod("shop", "a", "")); err != nil {
		t.Fatal(err)
	}
	if e, err := w.Next(); err != nil || e.Object.Meta().Name != "a" {
		t.Fatalf("before revocation: %+v %v", e, err)
	}
	if err := c.Client.Do(ctx, "DELETE", "/tokens/"+tok.ID, nil, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Client.Create(ctx, pod("shop", "b", "")); err != nil {
		t.Fatal(err)
	}
	e, err := w.Next()
	if err == nil {
		t.Fatalf("the revoked token's watch delivered %s %s", e.Type, e.Object.Meta().Name)
	}
	if ctx.Err() != nil {
		t.Fatal("the watch did not end before the test's deadline")
	}
	if got := metric(t, c, `capstan_api_streams{role="viewer",type="watch"}`); got != 0 {
		t.Fatalf("open viewer watches %v after revocation", got)
	}
	if _, err := viewer.Watch(ctx, api.KindPod, client.ListOptions{}, 0); !isCode(err, http.StatusUnauthorized) {
		t.Fatalf("watch with the revoked token: %v", err)
	}
}

// A watch ends after its lifetime with a bookmark to resume from, and an
// informer resumes and keeps its cache current.
func TestWatchMaxLifetime(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c := apiservertest.Start(t, apiservertest.Options{Server: apiserver.Options{WatchMaxLifetime: 500 * time.Millisecond, BookmarkInterval: time.Hour}})
	w, err := c.Client.Watch(ctx, api.KindPod, client.ListOptions{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	e, err := w.Next()
	if err != nil || e.Type != "BOOKMARK" {
		t.Fatalf("end of a watch's lifetime: %+v %v, want a bookmark", e, err)
	}
	if _, err := w.Next(); !errors.Is(err, io.EOF) {
		t.Fatalf("after the last bookmark: %v, want the end of the stream", err)
	}
	w.Close()

	inf := client.NewInformer(c.Client, api.KindPod, client.ListOptions{}, nil)
	go func() { _ = inf.Start(ctx) }()
	if err := inf.WaitForSync(ctx); err != nil {
		t.Fatal(err)
	}
	watches := func() float64 { return metric(t, c, `capstan_api_requests_total{code="200",kind="pods",verb="watch"}`) }
	base := watches()
	for i := range 3 {
		name := fmt.Sprintf("p%d", i)
		if _, err := c.Client.Create(ctx, pod("shop", name, "")); err != nil {
			t.Fatal(err)
		}
		eventually(t, "the informer sees "+name, func() bool { _, ok := inf.Get("shop/" + name); return ok })
		// Let at least one lifetime pass between writes.
		before := watches()
		eventually(t, "a watch ends and the informer resumes", func() bool { return watches() > before })
	}
	if got := watches(); got < base+3 {
		t.Fatalf("%v watches ended, want at least 3", got-base)
	}
}

// Revoking a token ends its log stream and its exec session at once,
// though the agent keeps them going.
func TestRevokeEndsLogAndExec(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// An agent whose log follow and exec session go on until the server
	// hangs up.
	agent := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/exec") {
			conn, err := remotecmd.Accept(w)
			if err != nil {
				return
			}
			_ = remotecmd.Serve(r.Context(), conn, false, func(ctx context.Context, s remotecmd.Streams) (int, error) {
				fmt.Fprintln(s.Stdout, "started")
				<-ctx.Done()
				return 0, nil
			})
			return
		}
		w.WriteHeader(http.StatusOK)
		for i := 0; ; i++ {
			if _, err := fmt.Fprintf(w, "line %d\n", i); err != nil {
				return
			}
			w.(http.Flusher).Flush()
			select {
			case <-r.Context().Done():
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	})
	// The server talks only to the certificate its CA issued to the node.
	c := apiservertest.Start(t, apiservertest.Options{})
	c.FakeAgent(t, "n1", agent)
	if _, err := c.Client.Create(ctx, pod("shop", "web", "n1")); err != nil {
		t.Fatal(err)
	}
	bearer, tok, err := c.Server.Tokens().Create("viewer", "", 0, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	cfg := *c.Config
	cfg.Token = bearer
	viewer, err := client.New(&cfg)
	if err != nil {
		t.Fatal(err)
	}
	rc, err := viewer.Logs(ctx, api.Key{Kind: api.KindPod, App: "shop", Name: "web"}, client.LogOptions{Follow: true, Tail: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	br := bufio.NewReader(rc)
	if line, err := br.ReadString('\n'); err != nil || !strings.HasPrefix(line, "line ") {
		t.Fatalf("first log line %q, %v", line, err)
	}
	if err := c.Server.Tokens().Revoke(tok.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(io.Discard, br); ctx.Err() != nil {
		t.Fatalf("the revoked token's log stream went on until the test's deadline (%v)", err)
	}
	if got := metric(t, c, `capstan_api_streams{role="viewer",type="log"}`); got != 0 {
		t.Fatalf("open viewer log streams %v after revocation", got)
	}

	// Exec is for admins; a revoked admin token loses its session too.
	bearer, tok, err = c.Server.Tokens().Create("admin", "", 0, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	cfg.Token = bearer
	admin, err := client.New(&cfg)
	if err != nil {
		t.Fatal(err)
	}
	started := make(chan struct{})
	out := writerFunc(func(p []byte) (int, error) {
		if strings.Contains(string(p), "started") {
			close(started)
		}
		return len(p), nil
	})
	done := make(chan error, 1)
	go func() {
		_, err := admin.Exec(ctx, api.Key{Kind: api.KindPod, App: "shop", Name: "web"}, client.ExecOptions{Command: []string{"sh"}, Stdout: out})
		done <- err
	}()
	select {
	case <-started:
	case err := <-done:
		t.Fatalf("exec ended before revocation: %v", err)
	case <-ctx.Done():
		t.Fatal("exec never started")
	}
	if err := c.Server.Tokens().Revoke(tok.ID); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	case <-ctx.Done():
		t.Fatal("the revoked token's exec session went on until the test's deadline")
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// A token that expires while its watch is open ends the watch then.
func TestExpiryEndsWatch(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c := apiservertest.Start(t, apiservertest.Options{Server: apiserver.Options{BookmarkInterval: time.Hour}})
	bearer, _, err := c.Server.Tokens().Create("viewer", "", 2*time.Second, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	cfg := *c.Config
	cfg.Token = bearer
	viewer, err := client.New(&cfg)
	if err != nil {
		t.Fatal(err)
	}
	w, err := viewer.Watch(ctx, api.KindPod, client.ListOptions{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if _, err := w.Next(); ctx.Err() != nil {
		t.Fatalf("the expired token's watch went on until the test's deadline (%v)", err)
	}
}

// Over HTTP/2 (what the Go client speaks) a stalled body is cut too: the
// stream is reset and the request fails instead of hanging.
func TestStalledBodyIsCutHTTP2(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c := apiservertest.Start(t, apiservertest.Options{Server: apiserver.Options{BodyReadTimeout: 200 * time.Millisecond}})
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM([]byte(c.Config.CA))
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: true}}
	pr, pw := io.Pipe()
	defer pw.Close()
	go func() { _, _ = pw.Write([]byte(`{"kind":"Pod",`)) }() // and nothing more
	req, err := http.NewRequestWithContext(ctx, "POST", c.Config.Server+"/api/v1/pods", pr)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+c.Config.Token)
	resp, err := hc.Do(req)
	if ctx.Err() != nil {
		t.Fatal("the stalled HTTP/2 request hung until the test's deadline")
	}
	if err == nil {
		defer resp.Body.Close()
		if resp.ProtoMajor != 2 || resp.StatusCode != http.StatusRequestTimeout {
			t.Fatalf("stalled HTTP/2 body: %s %s", resp.Proto, resp.Status)
		}
	}
}

// Handlers mounted beside the API (webhooks) read at most MaxBodyBytes
// even if they set no limit of their own.
func TestMountedHandlerBodyLimit(t *testing.T) {
	entered := make(chan struct{}, 10)
	c := apiservertest.Start(t, apiservertest.Options{
		Server:   apiserver.Options{MaxBodyBytes: 1 << 10},
		Handlers: map[string]http.Handler{"POST /hooks/test": readingHandler(entered)},
	})
	if code, body := raw(t, c, "", "POST", "/hooks/test", make([]byte, 1<<10)); code != http.StatusAccepted {
		t.Fatalf("body at the limit: %d %s", code, body)
	}
	if code, body := raw(t, c, "", "POST", "/hooks/test", make([]byte, 1<<10+1)); code != http.StatusBadRequest {
		t.Fatalf("body over the limit: %d %s", code, body)
	}
}

// A watch whose client stops reading ends, over HTTP/1.1 and HTTP/2: at
// once when its token is revoked (the write it is blocked in is cut), and
// by itself once a write has waited WatchWriteTimeout.
func TestWatchOfAClientThatStopsReadingEnds(t *testing.T) {
	for _, proto := range []string{"http/1.1", "h2"} {
		for _, end := range []string{"revoke", "write timeout"} {
			t.Run(proto+" "+end, func(t *testing.T) {
				ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
				defer cancel()
				opts := apiserver.Options{BookmarkInterval: time.Hour, WatchWriteTimeout: time.Hour}
				if end == "write timeout" {
					opts.WatchWriteTimeout = 300 * time.Millisecond
				}
				c := apiservertest.Start(t, apiservertest.Options{Server: opts})
				bearer, tok, err := c.Server.Tokens().Create("viewer", "", 0, time.Now())
				if err != nil {
					t.Fatal(err)
				}
				stalled := openStalledWatch(t, ctx, c, bearer, proto)
				defer stalled.Close()
				watches := func() float64 { return metric(t, c, `capstan_api_watches{kind="pods"}`) }
				if got := watches(); got != 1 {
					t.Fatalf("open watches %v, want the stalled one", got)
				}
				// About 12 MB of events: more than the socket buffers and
				// HTTP/2 windows hold, so the server's write blocks.
				blob := strings.Repeat("x", 240<<10)
				for i := range 48 {
					p := pod("shop", fmt.Sprintf("big-%d", i), "")
					p.Metadata.Annotations = map[string]string{"blob": blob}
					if _, err := c.Client.Create(ctx, p); err != nil {
						t.Fatal(err)
					}
				}
				if end == "revoke" {
					if err := c.Client.Do(ctx, "DELETE", "/tokens/"+tok.ID, nil, nil); err != nil {
						t.Fatal(err)
					}
				}
				eventually(t, "the stalled watch ends ("+end+")", func() bool { return watches() == 0 })
				if got := metric(t, c, `capstan_api_streams{role="viewer",type="watch"}`); got != 0 {
					t.Fatalf("the viewer still holds %v watch streams", got)
				}
			})
		}
	}
}

// openStalledWatch starts a pod watch over proto ("http/1.1" or "h2")
// and never reads its body.
func openStalledWatch(t *testing.T, ctx context.Context, c *apiservertest.Cluster, token, proto string) io.Closer {
	t.Helper()
	if proto == "http/1.1" {
		conn, resp := openWatch(t, c, token)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("watch: %s", resp.Status)
		}
		return conn
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM([]byte(c.Config.CA))
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: true}
	req, err := http.NewRequestWithContext(ctx, "GET", c.Config.Server+"/api/v1/pods?watch=true", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.ProtoMajor != 2 || resp.StatusCode != http.StatusOK {
		t.Fatalf("watch: %s %s, want HTTP/2 200", resp.Proto, resp.Status)
	}
	t.Cleanup(tr.CloseIdleConnections)
	return resp.Body
}
