package runtime_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/capstanhq/capstan/agent/runtime"
	"github.com/capstanhq/capstan/internal/testimage"
	"github.com/capstanhq/capstan/registry"
)

func TestEnsureImagePolicies(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	first, err := e.rt.EnsureImage(ctx, e.image, runtime.PullIfNotPresent)
	if err != nil || !first.Pulled || first.Digest == "" {
		t.Fatalf("first EnsureImage = %+v, %v; want pulled with a digest", first, err)
	}
	again, err := e.rt.EnsureImage(ctx, e.image, runtime.PullIfNotPresent)
	if err != nil || again.Pulled || again.Digest != first.Digest {
		t.Errorf("IfNotPresent on a present image = %+v, %v; want not pulled, same digest", again, err)
	}
	always, err := e.rt.EnsureImage(ctx, e.image, runtime.PullAlways)
	if err != nil || !always.Pulled || always.Digest != first.Digest {
		t.Errorf("Always = %+v, %v; want pulled, same digest", always, err)
	}
	if _, err := e.rt.EnsureImage(ctx, e.image, "Sometimes"); err == nil {
		t.Errorf("unknown policy accepted")
	}
}

func TestEnsureImageErrorsClassified(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	// A registry that demands credentials, holding one image.
	authReg := startAuthRegistry(t, map[string]string{"alice": "s3cret"})
	ref := authReg + "/private/testbox:v1"
	pushTestbox(t, ref, registry.RemoteOptions{Username: "alice", Password: "s3cret"})

	// Closed port: nothing listens on it once the listener is closed.
	closed := closedPort(t)
	opts := e.opts
	opts.Insecure = []string{e.reg, authReg, closed}
	rt := e.runtimeWith(opts)

	for _, tc := range []struct {
		name string
		ref  string
		want error
	}{
		{"missing tag", e.reg + "/test/testbox:nope", runtime.ErrImageNotFound},
		{"missing repo", e.reg + "/no/such:v1", runtime.ErrImageNotFound},
		{"no credentials", ref, runtime.ErrImageUnauthorized},
		{"unreachable", closed + "/test/testbox:v1", runtime.ErrRegistryUnavailable},
	} {
		_, err := rt.EnsureImage(ctx, tc.ref, runtime.PullIfNotPresent)
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: err = %v, want %v", tc.name, err, tc.want)
		}
	}

	// With the docker config, the private image pulls.
	cfg := filepath.Join(t.TempDir(), "config.json")
	b, _ := json.Marshal(map[string]any{"auths": map[string]any{
		authReg: map[string]string{"auth": base64.StdEncoding.EncodeToString([]byte("alice:s3cret"))},
	}})
	if err := os.WriteFile(cfg, b, 0o600); err != nil {
		t.Fatal(err)
	}
	opts.DockerConfig = cfg
	if _, err := e.runtimeWith(opts).EnsureImage(ctx, ref, runtime.PullIfNotPresent); err != nil {
		t.Errorf("pull with credentials: %v", err)
	}
	// A wrong password is refused as unauthorized.
	b, _ = json.Marshal(map[string]any{"auths": map[string]any{
		authReg: map[string]string{"username": "alice", "password": "wrong"},
	}})
	os.WriteFile(cfg, b, 0o600)
	if _, err := e.runtimeWith(opts).EnsureImage(ctx, ref, runtime.PullAlways); !errors.Is(err, runtime.ErrImageUnauthorized) {
		t.Errorf("wrong password: err = %v, want ErrImageUnauthorized", err)
	}

	// A registry not listed as insecure is spoken to over HTTPS only, which
	// the plain-HTTP test registry cannot answer.
	opts.Insecure = []string{}
	opts.DockerConfig = ""
	if _, err := e.runtimeWith(opts).EnsureImage(ctx, e.image, runtime.PullAlways); !errors.Is(err, runtime.ErrRegistryUnavailable) {
		t.Errorf("pull from a plain-HTTP registry not listed as insecure: err = %v, want ErrRegistryUnavailable", err)
	}
}

// Item 19 of issue 12: a node pulls from the cluster registry over HTTPS,
// trusting the cluster CA, with the pull credentials of its join answer.
func TestEnsureImageFromTLSRegistryWithLogins(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	reg := testimage.StartTLSRegistry(t)
	ref := reg.Addr + "/private/testbox:v1"
	pushTestbox(t, ref, reg.Pusher)

	opts := e.opts
	opts.Insecure = []string{e.reg} // not the TLS registry: HTTPS only
	logins := map[string]runtime.RegistryLogin{reg.Addr: {Username: testimage.PullUser, Password: testimage.PullPassword}}

	noCA := opts
	noCA.RegistryLogins = logins
	if _, err := e.runtimeWith(noCA).EnsureImage(ctx, ref, runtime.PullAlways); err == nil {
		t.Fatal("pull without trusting the CA succeeded")
	}
	noLogin := opts
	noLogin.RegistryCA = string(reg.CAPEM)
	if _, err := e.runtimeWith(noLogin).EnsureImage(ctx, ref, runtime.PullAlways); !errors.Is(err, runtime.ErrImageUnauthorized) || !strings.Contains(err.Error(), "no credentials were sent to "+reg.Addr) {
		t.Fatalf("pull without credentials: err = %v, want ErrImageUnauthorized saying none were sent to %s", err, reg.Addr)
	}
	// Credentials the registry refuses: the error names the node config
	// they came from, not a docker config the node may not have.
	wrong := noLogin
	wrong.RegistryLogins = map[string]runtime.RegistryLogin{reg.Addr: {Username: testimage.PullUser, Password: "stale"}}
	if _, err := e.runtimeWith(wrong).EnsureImage(ctx, ref, runtime.PullAlways); !errors.Is(err, runtime.ErrImageUnauthorized) || !strings.Contains(err.Error(), "node.yaml") || !strings.Contains(err.Error(), "registry-credentials.json") {
		t.Fatalf("pull with refused node credentials: err = %v, want ErrImageUnauthorized naming node.yaml and registry-credentials.json", err)
	}
	opts.RegistryCA = string(reg.CAPEM)
	opts.RegistryLogins = logins
	info, err := e.runtimeWith(opts).EnsureImage(ctx, ref, runtime.PullAlways)
	if err != nil || !info.Pulled || info.Digest == "" {
		t.Fatalf("pull over TLS with the pull credentials = %+v, %v", info, err)
	}
	opts.RegistryCA = "not pem"
	if _, err := e.runtimeWith(opts).EnsureImage(ctx, ref, runtime.PullAlways); err == nil {
		t.Error("a broken registry CA was accepted")
	}
}

// runtimeWith connects another Runtime with opts; it is closed at the end.
func (e *env) runtimeWith(opts runtime.Options) *runtime.Containerd {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rt, err := runtime.New(ctx, opts)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { rt.Close() })
	return rt
}

func startAuthRegistry(t *testing.T, users map[string]string) string {
	t.Helper()
	reg, err := registry.New(registry.Options{Addr: "127.0.0.1:0", RootDir: t.TempDir(), Users: users})
	// users may push; pulls need them too (no AnonymousPull).
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- reg.Start(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	select {
	case <-reg.Ready():
		return reg.Addr()
	case err := <-done:
		t.Fatalf("auth registry: %v", err)
		return ""
	}
}

// pushTestbox builds the testbox program and pushes it to ref with o.
func pushTestbox(t *testing.T, ref string, o registry.RemoteOptions) {
	t.Helper()
	root := t.TempDir()
	cmd := exec.Command("go", "build", "-trimpath", "-o", filepath.Join(root, "testbox"), testboxPkg)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build testbox: %v\n%s", err, out)
	}
	img, err := registry.PackDir(root, registry.ImageConfig{Entrypoint: []string{"/testbox"}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := registry.Push(ctx, img, ref, o); err != nil {
		t.Fatal(err)
	}
}
