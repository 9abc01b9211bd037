package main

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/capstanhq/capstan/apiserver/client"
	"github.com/capstanhq/capstan/internal/testimage"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// imageRun runs `capstan image ARGS...` in process and returns its output.
func imageRun(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := newImageCmd()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetArgs(args)
	err := cmd.ExecuteContext(t.Context())
	return out.String(), err
}

// adminConfig writes a client config naming reg as the cluster registry
// with its push credentials and CA, as 'capstan server' does, and points
// $CAPSTAN_CONFIG at it.
func adminConfig(t *testing.T, reg testimage.TLSRegistry) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "admin.yaml")
	cfg := &client.Config{Server: "https://127.0.0.1:1", CA: string(reg.CAPEM), Token: "unused",
		Registry: &client.RegistryAccess{Hosts: []string{reg.Addr}, Username: testimage.PushUser, Password: testimage.PushPassword}}
	if err := client.SaveConfig(path, cfg); err != nil {
		t.Fatal(err)
	}
	t.Setenv("CAPSTAN_CONFIG", path)
}

// Item 19 of issue 12: an admin pushes to the cluster registry over HTTPS
// with the cluster CA and the push credentials of the client config.
func TestImagePackPushLs(t *testing.T) {
	reg := testimage.StartTLSRegistry(t)
	addr := reg.Addr
	adminConfig(t, reg)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "app"), []byte("#!/bin/true\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	tarball := filepath.Join(t.TempDir(), "app.tar")
	ref := addr + "/examples/app:v1"

	out, err := imageRun(t, "pack", dir, "--entrypoint", "/app --serve", "--arg", "x",
		"--tag", ref, "--env", "VERSION=v1", "--port", "8080", "--port", "53/udp",
		"--label", "team=core", "-o", tarball, "--push")
	if err != nil {
		t.Fatalf("pack: %v\n%s", err, out)
	}
	var digest string
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) == 3 && f[0] == "packed" {
			digest = f[2]
		}
	}
	if !strings.HasPrefix(digest, "sha256:") || !strings.Contains(out, "pushed "+addr+"/examples/app@"+digest) {
		t.Fatalf("pack output lacks the digest it pushed:\n%s", out)
	}

	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(reg.CAPEM)
	tr := remote.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{RootCAs: pool}
	img, err := remote.Image(r, remote.WithContext(t.Context()), remote.WithTransport(tr),
		remote.WithAuth(&authn.Basic{Username: testimage.PullUser, Password: testimage.PullPassword}))
	if err != nil {
		t.Fatalf("pull %s: %v", ref, err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	c := cf.Config
	if strings.Join(c.Entrypoint, " ") != "/app --serve" || strings.Join(c.Cmd, " ") != "x" ||
		strings.Join(c.Env, ",") != "VERSION=v1" || c.Labels["team"] != "core" || len(c.ExposedPorts) != 2 {
		t.Errorf("pushed config %+v does not match the flags", c)
	}

	// The tarball pushes under another name with the same digest.
	out, err = imageRun(t, "push", tarball, "--tag", addr+"/copies/app:v2")
	if err != nil {
		t.Fatalf("push: %v\n%s", err, out)
	}
	if !strings.Contains(out, "pushed "+addr+"/copies/app@"+digest) {
		t.Errorf("push from tarball gave another digest than pack (%s):\n%s", digest, out)
	}

	out, err = imageRun(t, "ls", "--registry", addr)
	if err != nil {
		t.Fatalf("ls: %v\n%s", err, out)
	}
	var rows []string
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		rows = append(rows, strings.Join(strings.Fields(line), " "))
	}
	want := []string{"REPOSITORY TAGS", addr + "/copies/app v2", addr + "/examples/app v1"}
	if strings.Join(rows, "\n") != strings.Join(want, "\n") {
		t.Errorf("ls output:\n%s\nwant rows %q", out, want)
	}

	// --username wins over the config; a wrong password is refused.
	t.Setenv(imagePasswordEnv, "wrong")
	if out, err := imageRun(t, "push", tarball, "--tag", addr+"/copies/app:v3", "--username", testimage.PushUser); err == nil {
		t.Errorf("push with a wrong --username password succeeded:\n%s", out)
	}
}

// Item 10 of issue 12: without the push credentials a push is refused, and
// the error says where they are.
func TestImagePushWithoutCredentialsRefused(t *testing.T) {
	addr := testimage.StartRegistry(t)
	t.Setenv("CAPSTAN_CONFIG", filepath.Join(t.TempDir(), "none.yaml"))
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "app"), []byte("x"), 0o755); err != nil {
		t.Fatal(err)
	}
	out, err := imageRun(t, "pack", dir, "--entrypoint", "/app", "--tag", addr+"/evil/app:v1", "--push")
	if err == nil || !strings.Contains(err.Error(), "UNAUTHORIZED") || !strings.Contains(err.Error(), "admin.yaml") {
		t.Fatalf("anonymous push = %v, want refused with a hint at the admin config\n%s", err, out)
	}
	t.Setenv(imagePasswordEnv, testimage.PushPassword)
	if out, err := imageRun(t, "pack", dir, "--entrypoint", "/app", "--tag", addr+"/ok/app:v1", "--push", "--username", testimage.PushUser); err != nil {
		t.Fatalf("push with --username: %v\n%s", err, out)
	}
}

// A user with $CAPSTAN_CONFIG set to the admin config of `capstan up`
// (registry hosts [127.0.0.1:5000]) pushed to localhost:5000, the usual way
// to name a registry on this host, and got 401 with a hint to set
// $CAPSTAN_CONFIG, which they had. localhost is the same registry: its push
// credentials are used. A host the config does not serve is refused with a
// hint naming the config and the hosts it does serve.
func TestImagePushLocalhostUsesConfigCredentials(t *testing.T) {
	addr := testimage.StartRegistry(t) // 127.0.0.1:PORT
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	// Another registry, which the config does not serve; its CA is the
	// config's cluster CA, so the refusal below is about credentials.
	other := testimage.StartTLSRegistry(t)
	path := filepath.Join(t.TempDir(), "admin.yaml")
	cfg := &client.Config{Server: "https://127.0.0.1:1", CA: string(other.CAPEM), Token: "unused",
		Registry: &client.RegistryAccess{Hosts: []string{addr}, Username: testimage.PushUser, Password: testimage.PushPassword}}
	if err := client.SaveConfig(path, cfg); err != nil {
		t.Fatal(err)
	}
	t.Setenv("CAPSTAN_CONFIG", path)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "app"), []byte("x"), 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := imageRun(t, "pack", dir, "--entrypoint", "/app", "--tag", "localhost:"+port+"/examples/app:v1", "--push"); err != nil {
		t.Fatalf("push to localhost:%s with the admin config of 127.0.0.1:%s: %v\n%s", port, port, err, out)
	}

	// The other registry gets no credentials, and the hint says which
	// hosts the config serves.
	_, err = imageRun(t, "pack", dir, "--entrypoint", "/app", "--tag", other.Addr+"/examples/app:v1", "--push")
	if err == nil {
		t.Fatalf("push to %s, which the config does not serve, succeeded", other.Addr)
	}
	for _, w := range []string{"401", path, "holds them for " + addr + ", not for " + other.Addr} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("refused push: error lacks %q:\n%v", w, err)
		}
	}
}

// An admin whose copy of admin.yaml predates the server's current
// registry credentials (or holds another server's) got a bare 401 from
// 'capstan image push' and 'image ls', with nothing about where the
// credentials came from. The refusal names the config they came from
// and the file on the server that holds the right ones; a pull-only user
// given with --username is told the same.
func TestImagePushWithRefusedCredentialsNamesTheFiles(t *testing.T) {
	reg := testimage.StartTLSRegistry(t)
	path := filepath.Join(t.TempDir(), "admin.yaml")
	cfg := &client.Config{Server: "https://127.0.0.1:1", CA: string(reg.CAPEM), Token: "unused",
		Registry: &client.RegistryAccess{Hosts: []string{reg.Addr}, Username: testimage.PushUser, Password: "stale"}}
	if err := client.SaveConfig(path, cfg); err != nil {
		t.Fatal(err)
	}
	t.Setenv("CAPSTAN_CONFIG", path)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "app"), []byte("x"), 0o755); err != nil {
		t.Fatal(err)
	}
	_, err := imageRun(t, "pack", dir, "--entrypoint", "/app", "--tag", reg.Addr+"/examples/app:v1", "--push")
	if err == nil {
		t.Fatal("push with a stale password succeeded")
	}
	for _, w := range []string{"401", path, "registry-credentials.json"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("push with refused credentials: error lacks %q:\n%v", w, err)
		}
	}
	_, err = imageRun(t, "ls", "--registry", reg.Addr)
	if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "registry-credentials.json") {
		t.Errorf("ls with refused credentials: error does not name %s and registry-credentials.json:\n%v", path, err)
	}
	t.Setenv(imagePasswordEnv, testimage.PullPassword)
	_, err = imageRun(t, "pack", dir, "--entrypoint", "/app", "--tag", reg.Addr+"/examples/app:v1", "--push", "--username", testimage.PullUser)
	if err == nil || !strings.Contains(err.Error(), "DENIED") || !strings.Contains(err.Error(), "pull user may not push") {
		t.Errorf("push as the pull user: error does not say it may not push:\n%v", err)
	}
}

func TestImagePackRejectsBadFlags(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name    string
		args    []string
		wantErr string
	}{
		{"bad env", []string{"--env", "NOVALUE"}, "KEY=VALUE"},
		{"bad port", []string{"--port", "99999"}, "1 to 65535"},
		{"bad label", []string{"--label", "=x"}, "--label"},
		{"duplicate label", []string{"--label", "a=1", "--label", "a=2"}, "given twice"},
		{"tag without registry", []string{"--tag", "examples/app:v1"}, "names no registry"},
		{"username without password", []string{"--username", "ci", "--push"}, imagePasswordEnv},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv(imagePasswordEnv, "")
			args := append([]string{"pack", dir, "--entrypoint", "/app", "--tag", "127.0.0.1:1/x:v1"}, tc.args...)
			out, err := imageRun(t, args...)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("pack %v = %v, want an error containing %q\n%s", tc.args, err, tc.wantErr, out)
			}
		})
	}
}

// FuzzImageParseLabels checks that accepted label flags keep every key and
// value exactly.
func FuzzImageParseLabels(f *testing.F) {
	f.Add("a=1", "b=2")
	f.Add("a=1", "a=2")
	f.Add("=", "x")
	f.Fuzz(func(t *testing.T, a, b string) {
		labels, err := imageParseLabels([]string{a, b})
		if err != nil {
			return
		}
		if len(labels) != 2 {
			t.Fatalf("%q, %q gave %d labels", a, b, len(labels))
		}
		for _, s := range []string{a, b} {
			k, v, _ := strings.Cut(s, "=")
			if got, ok := labels[k]; !ok || got != v {
				t.Fatalf("label %q lost: %v", s, labels)
			}
		}
	})
}

func TestRegistryServes(t *testing.T) {
	ra := &client.RegistryAccess{Hosts: []string{"127.0.0.1:5000", "10.0.0.5:5000"}}
	for _, tc := range []struct {
		host string
		want bool
	}{
		{"127.0.0.1:5000", true},
		{"10.0.0.5:5000", true},
		{"localhost:5000", true},
		{"LOCALHOST:5000", true},
		{"[::1]:5000", true},
		{"localhost:5001", false},
		{"127.0.0.2:5000", false},
		{"10.0.0.6:5000", false},
		{"example.com:5000", false},
		{"localhost", false},
		{"", false},
	} {
		if got := registryServes(ra, tc.host); got != tc.want {
			t.Errorf("registryServes(%v, %q) = %v, want %v", ra.Hosts, tc.host, got, tc.want)
		}
	}
	if !registryServes(&client.RegistryAccess{Hosts: []string{"localhost:5000"}}, "127.0.0.1:5000") {
		t.Error("a config listing localhost:5000 does not serve 127.0.0.1:5000")
	}
}
