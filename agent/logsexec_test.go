package agent_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/capstanhq/capstan/agent/runtime"
	"github.com/capstanhq/capstan/apiserver/api"
	"github.com/capstanhq/capstan/apiserver/client"
	"github.com/capstanhq/capstan/apiserver/wire"
)

// TestLogsAndExec goes the whole way a user's `capstan logs` and `capstan
// exec` go: the API server authenticates and authorizes, then forwards to
// this agent's endpoint over mutually pinned TLS.
func TestLogsAndExec(t *testing.T) {
	e := newEnv(t, false)
	logged := &recordingHandler{Handler: e.log.Handler()}
	e.opts.Logger = slog.New(logged)
	e.startAgent()
	ctx := context.Background()
	admin := e.api.Client

	p := e.create(e.pod("ops", "spam", api.Container{Name: "c", Args: []string{"spam", "5"}}))
	e.waitPod(p, "running", func(p *api.Pod) bool { return p.Status.Phase == api.PodRunning })
	key := api.KeyOf(p)
	logs := func(c *client.Client, opts client.LogOptions) (string, error) {
		rc, err := c.Logs(ctx, key, opts)
		if err != nil {
			return "", err
		}
		defer rc.Close()
		b, err := io.ReadAll(rc)
		return string(b), err
	}
	want := ""
	for i := range 5 {
		want += fmt.Sprintf("line %06d %s\n", i, strings.Repeat("x", 80))
	}
	want += "waiting\n"
	e.waitFor("all lines in the log", func() bool {
		got, err := logs(admin, client.LogOptions{Tail: -1})
		return err == nil && got == want
	})

	t.Run("tail and timestamps", func(t *testing.T) {
		got, err := logs(admin, client.LogOptions{Tail: 1, Timestamps: true})
		ts, line, _ := strings.Cut(got, " ")
		if _, perr := time.Parse(time.RFC3339Nano, ts); err != nil || perr != nil || line != "waiting\n" {
			t.Fatalf("tail 1 with timestamps = %q, %v", got, err)
		}
	})

	t.Run("since a time or a while ago", func(t *testing.T) {
		all, err := logs(admin, client.LogOptions{Tail: -1, Timestamps: true})
		if err != nil {
			t.Fatal(err)
		}
		stamped := strings.SplitAfter(all, "\n")
		if stamped = stamped[:len(stamped)-1]; len(stamped) != 6 {
			t.Fatalf("timestamped log: %q", all)
		}
		ts, _, _ := strings.Cut(stamped[3], " ")
		since, err := time.Parse(time.RFC3339Nano, ts)
		if err != nil {
			t.Fatal(err)
		}
		var want, whole string
		for _, l := range stamped {
			lts, line, _ := strings.Cut(l, " ")
			if at, _ := time.Parse(time.RFC3339Nano, lts); !at.Before(since) {
				want += line
			}
			whole += line
		}
		if got, err := logs(admin, client.LogOptions{Tail: -1, SinceTime: since}); err != nil || got != want {
			t.Errorf("since %s = %q, %v; want %q", ts, got, err, want)
		}
		if got, err := logs(admin, client.LogOptions{Tail: 1, SinceTime: since}); err != nil || got != "waiting\n" {
			t.Errorf("since %s, tail 1 = %q, %v", ts, got, err)
		}
		if got, err := logs(admin, client.LogOptions{Tail: -1, SinceTime: time.Now().Add(time.Hour)}); err != nil || got != "" {
			t.Errorf("since an hour from now = %q, %v", got, err)
		}
		if got, err := logs(admin, client.LogOptions{Tail: -1, SinceSeconds: 3600}); err != nil || got != whole {
			t.Errorf("since an hour ago = %q, %v", got, err)
		}
		_, err = admin.Logs(ctx, key, client.LogOptions{Tail: -1, SinceSeconds: 5, SinceTime: since})
		if se, ok := err.(*client.StatusError); !ok || se.Code != 400 || !strings.Contains(se.Message, "give one of them") {
			t.Errorf("both bounds: %v", err)
		}
	})

	t.Run("viewers read logs, nodes do not, only admins exec", func(t *testing.T) {
		if got, err := logs(e.api.Token(t, "viewer"), client.LogOptions{Tail: 1}); err != nil || got != "waiting\n" {
			t.Errorf("viewer logs = %q, %v", got, err)
		}
		if _, err := logs(e.opts.Client, client.LogOptions{Tail: 1}); !client.IsForbidden(err) {
			t.Errorf("node logs: err = %v, want 403", err)
		}
		_, err := e.api.Token(t, "viewer").Exec(ctx, key, client.ExecOptions{Command: []string{"/testbox", "echo"}})
		if !client.IsForbidden(err) {
			t.Errorf("viewer exec: err = %v, want 403", err)
		}
	})

	t.Run("exec arguments stay out of the agent's log", func(t *testing.T) {
		const secret = "s3cret-token-value"
		if code, err := admin.Exec(ctx, key, client.ExecOptions{Command: []string{"/testbox", "echo", secret}, Stdout: io.Discard, Stderr: io.Discard}); err != nil || code != 0 {
			t.Fatalf("exec: code %d, %v", code, err)
		}
		// Nor does a failed one's.
		if _, err := admin.Exec(ctx, key, client.ExecOptions{Command: []string{"/no/such/program", secret}, Stdout: io.Discard, Stderr: io.Discard}); err == nil {
			t.Fatal("exec of a missing program: no error")
		}
		if got := logged.find(secret); got != "" {
			t.Errorf("an exec argument reached the agent's log: %s", got)
		}
		if got := logged.find("program=/testbox"); !strings.HasPrefix(got, "DEBUG exec") {
			t.Errorf("the exec's program is not logged at debug level: %q", got)
		}
	})

	t.Run("exec carries output, errors, exit code and input", func(t *testing.T) {
		var out, errb bytes.Buffer
		code, err := admin.Exec(ctx, key, client.ExecOptions{Command: []string{"/testbox", "echo", "a", "b"}, Stdout: &out, Stderr: &errb})
		if err != nil || code != 0 || out.String() != "a b\n" || errb.String() != "to stderr\n" {
			t.Errorf("echo: code %d err %v stdout %q stderr %q", code, err, out.String(), errb.String())
		}
		code, err = admin.Exec(ctx, key, client.ExecOptions{Command: []string{"/testbox", "exit", "7"}, Stdout: io.Discard})
		if err != nil || code != 7 {
			t.Errorf("exit 7: code %d err %v", code, err)
		}
		out.Reset()
		code, err = admin.Exec(ctx, key, client.ExecOptions{Command: []string{"/testbox", "stdin"}, Stdin: strings.NewReader("hello\nworld\n"), Stdout: &out})
		if err != nil || code != 0 || out.String() != "hello\nworld\neof\n" {
			t.Errorf("stdin: code %d err %v stdout %q", code, err, out.String())
		}
		// A program that cannot run: the shell's status, 127 not found,
		// 126 not executable (a file of mode 0644), and what to check.
		code, err = admin.Exec(ctx, key, client.ExecOptions{Command: []string{"/no/such/program"}})
		if err == nil || code != 127 || !strings.Contains(err.Error(), `command cannot run: "/no/such/program" in image `) || !strings.Contains(err.Error(), "no such file or directory") {
			t.Errorf("missing program: code %d, err = %v; want 127", code, err)
		}
		// Named as users know it, not by the container's runtime ID.
		if err == nil || !strings.Contains(err.Error(), "pod ops/spam: container c: ") || strings.Contains(err.Error(), p.Metadata.UID[:12]) {
			t.Errorf("missing program: err = %v; want it to name pod ops/spam and container c, not the runtime ID", err)
		}
		code, err = admin.Exec(ctx, key, client.ExecOptions{Command: []string{"/etc/hosts"}})
		if err == nil || code != 126 || !strings.Contains(err.Error(), `command cannot run: "/etc/hosts" in image `) || !strings.Contains(err.Error(), "permission denied") {
			t.Errorf("a program that is not executable: code %d, err = %v; want 126", code, err)
		}
	})

	t.Run("exec with a terminal of the client's size", func(t *testing.T) {
		resize := make(chan client.TermSize, 1)
		resize <- client.TermSize{Width: 101, Height: 33}
		pr, pw := io.Pipe()
		defer pw.Close()
		var out bytes.Buffer
		code, err := admin.Exec(ctx, key, client.ExecOptions{Command: []string{"/testbox", "tty"}, TTY: true, Stdin: pr, Stdout: &out, Resize: resize})
		got := strings.ReplaceAll(out.String(), "\r", "")
		if err != nil || code != 0 || got != "terminal=true\nsize=101x33\n" {
			t.Errorf("tty: code %d err %v stdout %q", code, err, got)
		}
	})

	t.Run("bad requests get clear errors", func(t *testing.T) {
		if _, err := logs(admin, client.LogOptions{Container: "nope", Tail: -1}); !client.IsNotFound(err) || !strings.Contains(err.Error(), "no container nope") {
			t.Errorf("unknown container: %v", err)
		}
		if _, err := logs(admin, client.LogOptions{Previous: true, Tail: -1}); !client.IsNotFound(err) || !strings.Contains(err.Error(), "no previous run") {
			t.Errorf("previous of a container that never restarted: %v", err)
		}
		// A container that never started: the error names the pod and
		// says why it waits (here an image that is not in the registry).
		ref := e.reg + "/test/absent:v1"
		absent := e.create(e.pod("ops", "absent", api.Container{Name: "c", Image: ref, Args: []string{"sleep"}}))
		e.waitPod(absent, "waiting on the pull", func(p *api.Pod) bool {
			return len(p.Status.Containers) == 1 && p.Status.Containers[0].State.Waiting != nil &&
				strings.Contains(p.Status.Containers[0].State.Waiting.Reason, "Image")
		})
		_, err := admin.Logs(ctx, api.KeyOf(absent), client.LogOptions{Tail: -1})
		for _, want := range []string{"of pod ops/absent has not been created", "it is waiting (", ref, "not found"} {
			if !client.IsNotFound(err) || !strings.Contains(err.Error(), want) {
				t.Errorf("logs of a container that never started: %v; want a 404 saying %q", err, want)
			}
		}
		duo := e.create(e.pod("ops", "duo", api.Container{Name: "a", Args: []string{"sleep"}}, api.Container{Name: "b", Args: []string{"sleep"}}))
		_, err = admin.Logs(ctx, api.KeyOf(duo), client.LogOptions{Tail: -1})
		if se, ok := err.(*client.StatusError); !ok || se.Code != 400 || !strings.Contains(se.Message, "pick one with -c") {
			t.Errorf("two containers, none named: %v", err)
		}
	})

	t.Run("previous run of a restarted container", func(t *testing.T) {
		p := e.create(e.pod("ops", "crash", api.Container{Name: "c", Args: []string{"exit", "3"}}))
		e.waitPod(p, "restarted", func(p *api.Pod) bool {
			return len(p.Status.Containers) == 1 && p.Status.Containers[0].RestartCount >= 1
		})
		got, err := admin.Logs(ctx, api.KeyOf(p), client.LogOptions{Previous: true, Tail: -1})
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(got)
		got.Close()
		if string(b) != "exiting 3\n" {
			t.Errorf("previous = %q", b)
		}
		if _, err := admin.Exec(ctx, api.KeyOf(p), client.ExecOptions{Command: []string{"/testbox", "echo"}}); err == nil {
			t.Error("exec in an exited container: no error")
		}
	})

	t.Run("follow streams until the container stops", func(t *testing.T) {
		rc, err := admin.Logs(ctx, key, client.LogOptions{Follow: true, Tail: 1})
		if err != nil {
			t.Fatal(err)
		}
		defer rc.Close()
		lines := make(chan string, 16)
		go func() {
			b, _ := io.ReadAll(rc) // ends when the container stops
			lines <- string(b)
		}()
		if _, err := admin.Delete(ctx, key, client.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		select {
		case got := <-lines:
			if got != "waiting\ngot SIGTERM\n" {
				t.Errorf("followed %q", got)
			}
		case <-time.After(60 * time.Second):
			t.Fatal("follow did not end after the container stopped")
		}
	})

	t.Run("the agent accepts only the API server", func(t *testing.T) {
		n, err := admin.Get(ctx, api.Key{Kind: api.KindNode, Name: e.node})
		if err != nil {
			t.Fatal(err)
		}
		node := n.(*api.Node)
		addr := fmt.Sprintf("127.0.0.1:%d", node.Status.DaemonPorts.Agent)
		if node.Status.DaemonPorts.Agent == 0 {
			t.Fatalf("node status does not publish the endpoint: %+v", node.Status)
		}
		dial := func(certs []tls.Certificate) error {
			conn, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true, Certificates: certs, MinVersion: tls.VersionTLS13})
			if err != nil {
				return err
			}
			defer conn.Close()
			// TLS 1.3 reports a refused client certificate on the first read.
			fmt.Fprintf(conn, "GET /pods/x/log HTTP/1.1\r\nHost: x\r\n\r\n")
			_, err = conn.Read(make([]byte, 1))
			return err
		}
		if err := dial(nil); err == nil {
			t.Error("a client without a certificate was served")
		}
		// Signed by the cluster CA, but not the API server's name.
		if err := dial([]tls.Certificate{issue(t, filepath.Join(e.api.DataDir, "pki"), "capstan-impostor")}); err == nil {
			t.Error("a client certificate of another name was served")
		}
		if err := dial([]tls.Certificate{issue(t, filepath.Join(e.api.DataDir, "pki"), wire.APIServerClientName)}); err != nil {
			t.Errorf("the API server's name signed by the CA was refused: %v", err)
		}

		// The agent serves with the certificate the cluster CA issued to
		// its node name, which is what the server checks (not a pin in
		// the Node's status).
		conn, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS13,
			Certificates: []tls.Certificate{issue(t, filepath.Join(e.api.DataDir, "pki"), wire.APIServerClientName)}})
		if err != nil {
			t.Fatal(err)
		}
		chain := conn.ConnectionState().PeerCertificates
		conn.Close()
		if err := e.api.Server.PKI().VerifyNode(chain, e.node, time.Now()); err != nil {
			t.Errorf("the agent's serving certificate is not the CA's for node %s: %v", e.node, err)
		}
	})
}

// TestLogFollowAcrossAgentRestart: an agent stopped while 'capstan logs
// -f' follows a running container cuts the stream, so the user is told
// it broke; it used to end cleanly, exactly as when the container stops,
// and the user took the container for stopped. The agent started again
// serves the same log, the container untouched.
func TestLogFollowAcrossAgentRestart(t *testing.T) {
	e := newEnv(t, false)
	stop := e.startAgent()
	ctx := context.Background()
	p := e.create(e.pod("ops", "follow", api.Container{Name: "c", Args: []string{"spam", "3"}}))
	e.waitPod(p, "running", func(p *api.Pod) bool { return p.Status.Phase == api.PodRunning })
	key := api.KeyOf(p)
	var want string
	for i := range 3 {
		want += fmt.Sprintf("line %06d %s\n", i, strings.Repeat("x", 80))
	}
	want += "waiting\n"
	read := func() string {
		rc, err := e.api.Client.Logs(ctx, key, client.LogOptions{Tail: -1})
		if err != nil {
			return err.Error()
		}
		defer rc.Close()
		b, _ := io.ReadAll(rc)
		return string(b)
	}
	e.waitFor("the whole log", func() bool { return read() == want })
	ps, ok := e.podState(p.Metadata.UID)
	if !ok || len(ps.Containers) != 1 {
		t.Fatalf("runtime state: %+v", ps)
	}
	pid := ps.Containers[0].PID

	rc, err := e.api.Client.Logs(ctx, key, client.LogOptions{Follow: true, Tail: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	head := make([]byte, len(want))
	if _, err := io.ReadFull(rc, head); err != nil || string(head) != want {
		t.Fatalf("follow began with %q, %v", head, err)
	}
	ended := make(chan error, 1)
	go func() {
		_, err := io.ReadAll(rc)
		ended <- err
	}()
	stop()
	select {
	case err := <-ended:
		if err == nil {
			t.Error("the follow ended cleanly when the agent stopped, as if the container had stopped")
		}
	case <-time.After(60 * time.Second):
		t.Fatal("the follow did not end when the agent stopped")
	}

	e.startAgent()
	e.waitFor("the log served again", func() bool { return read() == want })
	ps, ok = e.podState(p.Metadata.UID)
	if !ok || len(ps.Containers) != 1 || ps.Containers[0].PID != pid || ps.Containers[0].State != runtime.StateRunning {
		t.Errorf("container after the agent's restart: %+v, want the same task (pid %d) running", ps, pid)
	}
}

// issue makes a client certificate for name signed by the CA in dir.
func issue(t *testing.T, dir, name string) tls.Certificate {
	t.Helper()
	ca, err := tls.LoadX509KeyPair(filepath.Join(dir, "ca.crt"), filepath.Join(dir, "ca.key"))
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(ca.Certificate[0])
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: name},
		NotBefore:    time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, ca.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// recordingHandler keeps every record (at any level) as text, and passes
// the enabled ones on.
type recordingHandler struct {
	slog.Handler
	mu    sync.Mutex
	lines []string
}

func (h *recordingHandler) Enabled(context.Context, slog.Level) bool { return true }

func (h *recordingHandler) Handle(ctx context.Context, r slog.Record) error {
	line := r.Level.String() + " " + r.Message
	r.Attrs(func(a slog.Attr) bool { line += " " + a.String(); return true })
	h.mu.Lock()
	h.lines = append(h.lines, line)
	h.mu.Unlock()
	if h.Handler.Enabled(ctx, r.Level) {
		return h.Handler.Handle(ctx, r)
	}
	return nil
}

func (h *recordingHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &attrsHandler{parent: h, attrs: as}
}

func (h *recordingHandler) WithGroup(string) slog.Handler { return h }

// find returns the first record that contains s, or "".
func (h *recordingHandler) find(s string) string {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, l := range h.lines {
		if strings.Contains(l, s) {
			return l
		}
	}
	return ""
}

// attrsHandler is a recordingHandler with attributes added by With.
type attrsHandler struct {
	parent *recordingHandler
	attrs  []slog.Attr
}

func (h *attrsHandler) Enabled(ctx context.Context, l slog.Level) bool { return true }

func (h *attrsHandler) Handle(ctx context.Context, r slog.Record) error {
	r = r.Clone()
	r.AddAttrs(h.attrs...)
	return h.parent.Handle(ctx, r)
}

func (h *attrsHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &attrsHandler{parent: h.parent, attrs: append(append([]slog.Attr(nil), h.attrs...), as...)}
}

func (h *attrsHandler) WithGroup(string) slog.Handler { return h }
