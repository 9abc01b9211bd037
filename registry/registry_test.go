package registry_test

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/capstanhq/capstan/registry"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"golang.org/x/crypto/bcrypt"
)

// The push user start gives a registry without Users.
const (
	pushUser = "pusher"
	pushPass = "push-pw"
)

// pusher are the RemoteOptions of the push user.
var pusher = registry.RemoteOptions{Username: pushUser, Password: pushPass}

// start runs a registry with opts (Addr defaults to 127.0.0.1:0, RootDir to
// a temporary directory; without Users, the push user pusher and anonymous
// pulls from loopback) until the test ends, and returns it once it listens.
func start(t *testing.T, opts registry.Options) *registry.Registry {
	t.Helper()
	if opts.Addr == "" && len(opts.TLSAddrs) == 0 {
		opts.Addr = "127.0.0.1:0"
	}
	if opts.Users == nil {
		opts.Users = map[string]string{pushUser: pushPass}
		opts.AnonymousPull = true
	}
	if opts.RootDir == "" {
		opts.RootDir = t.TempDir()
	}
	reg, err := registry.New(opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- reg.Start(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Start returned %v after cancel, want nil", err)
		}
	})
	select {
	case <-reg.Ready():
	case err := <-done:
		done <- err
		t.Fatalf("Start: %v", err)
	}
	return reg
}

// packFiles packs a directory holding files (name -> content).
func packFiles(t *testing.T, files map[string]string, cfg registry.ImageConfig) v1.Image {
	t.Helper()
	dir := t.TempDir()
	for n, content := range files {
		p := filepath.Join(dir, n)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if len(cfg.Entrypoint) == 0 {
		cfg.Entrypoint = []string{"/app"}
	}
	img, err := registry.PackDir(dir, cfg)
	if err != nil {
		t.Fatalf("PackDir: %v", err)
	}
	return img
}

func digest(t *testing.T, img v1.Image) v1.Hash {
	t.Helper()
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestPushPullRoundTrip(t *testing.T) {
	reg := start(t, registry.Options{})
	img := packFiles(t, map[string]string{"app": "#!/bin/true\n", "etc/motd": "hello\n"}, registry.ImageConfig{})
	ref := reg.Addr() + "/examples/round:v1"

	pushed, err := registry.Push(t.Context(), img, ref, pusher)
	if err != nil {
		t.Fatalf("Push: %v", err)
	}
	if want := digest(t, img).String(); pushed.DigestStr() != want {
		t.Errorf("Push returned digest %s, image has %s", pushed.DigestStr(), want)
	}

	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	pulled, err := remote.Image(r, remote.WithContext(t.Context()))
	if err != nil {
		t.Fatalf("pull: %v", err)
	}
	if got, want := digest(t, pulled), digest(t, img); got != want {
		t.Errorf("pulled digest %s, pushed %s", got, want)
	}
	files := layerFiles(t, pulled)
	if got := files["etc/motd"].content; got != "hello\n" {
		t.Errorf("etc/motd in pulled image = %q, want %q", got, "hello\n")
	}

	// Pulling by the digest Push returned works too.
	if _, err := remote.Head(pushed, remote.WithContext(t.Context())); err != nil {
		t.Fatalf("head by digest: %v", err)
	}
}

func TestRestartKeepsImages(t *testing.T) {
	root := t.TempDir()
	img := packFiles(t, map[string]string{"app": "x"}, registry.ImageConfig{})
	func() {
		// A registry that lives only for this block.
		reg, err := registry.New(registry.Options{Addr: "127.0.0.1:0", RootDir: root, Users: map[string]string{pushUser: pushPass}})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- reg.Start(ctx) }()
		<-reg.Ready()
		if _, err := registry.Push(t.Context(), img, reg.Addr()+"/keep/me:v1", pusher); err != nil {
			t.Errorf("Push: %v", err)
		}
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Start: %v", err)
		}
	}()
	reg := start(t, registry.Options{RootDir: root})
	repos, err := registry.List(t.Context(), reg.Addr(), registry.RemoteOptions{})
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	want := []registry.Repository{{Name: "keep/me", Tags: []string{"v1"}}}
	if !equalRepos(repos, want) {
		t.Errorf("after restart List = %+v, want %+v", repos, want)
	}
}

// TestTwoRegistriesInOneProcess guards against distribution's package-level
// state leaking between instances: each registry must serve only its own
// images, and both must start, serve and stop.
func TestTwoRegistriesInOneProcess(t *testing.T) {
	a := start(t, registry.Options{})
	b := start(t, registry.Options{})
	imgA := packFiles(t, map[string]string{"app": "a"}, registry.ImageConfig{})
	imgB := packFiles(t, map[string]string{"app": "b"}, registry.ImageConfig{})
	if _, err := registry.Push(t.Context(), imgA, a.Addr()+"/only/a:v1", pusher); err != nil {
		t.Fatalf("push to a: %v", err)
	}
	if _, err := registry.Push(t.Context(), imgB, b.Addr()+"/only/b:v2", pusher); err != nil {
		t.Fatalf("push to b: %v", err)
	}
	for _, tc := range []struct {
		reg  *registry.Registry
		want []registry.Repository
	}{
		{a, []registry.Repository{{Name: "only/a", Tags: []string{"v1"}}}},
		{b, []registry.Repository{{Name: "only/b", Tags: []string{"v2"}}}},
	} {
		got, err := registry.List(t.Context(), tc.reg.Addr(), registry.RemoteOptions{})
		if err != nil {
			t.Fatalf("List %s: %v", tc.reg.Addr(), err)
		}
		if !equalRepos(got, tc.want) {
			t.Errorf("List %s = %+v, want %+v", tc.reg.Addr(), got, tc.want)
		}
	}
}

func equalRepos(a, b []registry.Repository) bool {
	return slices.EqualFunc(a, b, func(x, y registry.Repository) bool {
		return x.Name == y.Name && slices.Equal(x.Tags, y.Tags)
	})
}

func TestNewValidatesOptions(t *testing.T) {
	hash, err := bcrypt.GenerateFromPassword([]byte("pw"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	ci := map[string]string{"ci": "pw"}
	tests := []struct {
		name    string
		opts    registry.Options
		wantErr error // nil means New succeeds
	}{
		{"loopback v4", registry.Options{Addr: "127.0.0.1:0", RootDir: root, Users: ci}, nil},
		{"loopback v6", registry.Options{Addr: "[::1]:0", RootDir: root, Users: ci}, nil},
		{"localhost", registry.Options{Addr: "localhost:5000", RootDir: root, Users: ci}, nil},
		{"default addr", registry.Options{RootDir: root, Users: ci}, nil},
		{"loopback without users", registry.Options{Addr: "127.0.0.1:0", RootDir: root}, registry.ErrAuthRequired},
		{"loopback with anonymous pull but no users", registry.Options{Addr: "127.0.0.1:0", RootDir: root, AnonymousPull: true}, registry.ErrAuthRequired},
		{"pull users only", registry.Options{Addr: "127.0.0.1:0", RootDir: root, PullUsers: ci}, registry.ErrAuthRequired},
		{"all interfaces without users", registry.Options{Addr: ":5000", RootDir: root}, registry.ErrAuthRequired},
		{"0.0.0.0 without users", registry.Options{Addr: "0.0.0.0:5000", RootDir: root}, registry.ErrAuthRequired},
		{"private address without users", registry.Options{Addr: "10.0.0.1:5000", RootDir: root}, registry.ErrAuthRequired},
		{"host name without users", registry.Options{Addr: "registry.example:5000", RootDir: root}, registry.ErrAuthRequired},
		{"all interfaces with plain user", registry.Options{Addr: ":5000", RootDir: root, Users: ci}, nil},
		{"all interfaces with bcrypt user", registry.Options{Addr: ":5000", RootDir: root, Users: map[string]string{"ci": string(hash)}}, nil},
		{"user both push and pull", registry.Options{RootDir: root, Users: ci, PullUsers: ci}, registry.ErrInvalidOptions},
		{"TLS address without certificate", registry.Options{TLSAddrs: []string{"10.0.0.1:5000"}, RootDir: root, Users: ci}, registry.ErrInvalidOptions},
		{"bad TLS address", registry.Options{TLSAddrs: []string{"10.0.0.1"}, TLSConfig: &tls.Config{GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return nil, nil }}, RootDir: root, Users: ci}, registry.ErrInvalidOptions},
		{"no root dir", registry.Options{Addr: "127.0.0.1:0", Users: ci}, registry.ErrInvalidOptions},
		{"no port", registry.Options{Addr: "127.0.0.1", RootDir: root, Users: ci}, registry.ErrInvalidOptions},
		{"bad port", registry.Options{Addr: "127.0.0.1:99999", RootDir: root, Users: ci}, registry.ErrInvalidOptions},
		{"user with colon", registry.Options{RootDir: root, Users: map[string]string{"a:b": "pw"}}, registry.ErrInvalidOptions},
		{"empty password", registry.Options{RootDir: root, Users: map[string]string{"a": ""}}, registry.ErrInvalidOptions},
		{"broken bcrypt", registry.Options{RootDir: root, Users: map[string]string{"a": "$2y$10$short"}}, registry.ErrInvalidOptions},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			reg, err := registry.New(tc.opts)
			if tc.wantErr == nil {
				if err != nil || reg == nil {
					t.Fatalf("New = %v, %v; want a registry", reg, err)
				}
				return
			}
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("New error = %v, want %v", err, tc.wantErr)
			}
		})
	}
}

func TestAuthRequiredErrorSaysHowToFix(t *testing.T) {
	_, err := registry.New(registry.Options{Addr: "127.0.0.1:5000", RootDir: t.TempDir()})
	if err == nil || !strings.Contains(err.Error(), "Users") || !strings.Contains(err.Error(), "push") {
		t.Fatalf("error %q should name Users and say pushes need them", err)
	}
}

func TestAuthEnforcedWhenUsersSet(t *testing.T) {
	hash, err := bcrypt.GenerateFromPassword([]byte("bob-pw"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	reg := start(t, registry.Options{Users: map[string]string{"alice": "alice-pw", "bob": string(hash)}})
	base := "http://" + reg.Addr() + "/v2/"

	for _, tc := range []struct {
		name       string
		user, pass string
		wantStatus int
	}{
		{"no credentials", "", "", http.StatusUnauthorized},
		{"wrong password", "alice", "nope", http.StatusUnauthorized},
		{"unknown user", "mallory", "alice-pw", http.StatusUnauthorized},
		{"plain password", "alice", "alice-pw", http.StatusOK},
		{"bcrypt password", "bob", "bob-pw", http.StatusOK},
		{"bcrypt password again (cached)", "bob", "bob-pw", http.StatusOK},
		{"bcrypt wrong password", "bob", "alice-pw", http.StatusUnauthorized},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, base, nil)
			if err != nil {
				t.Fatal(err)
			}
			if tc.user != "" {
				req.SetBasicAuth(tc.user, tc.pass)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.wantStatus {
				t.Fatalf("status %d, want %d (body %s)", resp.StatusCode, tc.wantStatus, body)
			}
			if tc.wantStatus == http.StatusUnauthorized {
				if got := resp.Header.Get("WWW-Authenticate"); !strings.HasPrefix(got, "Basic ") {
					t.Errorf("WWW-Authenticate = %q, want a Basic challenge", got)
				}
				if !strings.Contains(string(body), "UNAUTHORIZED") {
					t.Errorf("body %s lacks the registry error code UNAUTHORIZED", body)
				}
			}
		})
	}

	img := packFiles(t, map[string]string{"app": "secret"}, registry.ImageConfig{})
	ref := reg.Addr() + "/private/app:v1"
	if _, err := registry.Push(t.Context(), img, ref, registry.RemoteOptions{}); err == nil {
		t.Fatal("anonymous push succeeded, want it refused")
	}
	if _, err := registry.Push(t.Context(), img, ref, registry.RemoteOptions{Username: "alice", Password: "alice-pw"}); err != nil {
		t.Fatalf("push with credentials: %v", err)
	}
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := remote.Image(r, remote.WithAuth(&authn.Basic{Username: "bob", Password: "bob-pw"})); err != nil {
		t.Fatalf("pull with bcrypt user: %v", err)
	}
	if _, err := registry.List(t.Context(), reg.Addr(), registry.RemoteOptions{}); err == nil {
		t.Fatal("anonymous catalog succeeded, want it refused")
	}
}

func TestStartTwiceFails(t *testing.T) {
	reg := start(t, registry.Options{})
	if err := reg.Start(t.Context()); !errors.Is(err, registry.ErrStarted) {
		t.Fatalf("second Start = %v, want ErrStarted", err)
	}
}

func TestStartFailsOnBusyPort(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	reg, err := registry.New(registry.Options{
		Addr:    ln.Addr().String(),
		RootDir: t.TempDir(),
		Users:   map[string]string{pushUser: pushPass},
		Logger:  slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	err = reg.Start(t.Context())
	if err == nil || !strings.Contains(err.Error(), "listen") {
		t.Fatalf("Start on a busy port = %v, want a listen error", err)
	}
	select {
	case <-reg.Ready():
		t.Fatal("Ready closed although the registry never listened")
	default:
	}
}
