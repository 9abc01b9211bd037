package main

import (
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/capstanhq/capstan/controlplane"
)

// The server's flags land in the control plane's Options unchanged.
func TestServerFlagsToOptions(t *testing.T) {
	cmd := &cobra.Command{Use: "server"}
	var f serverFlags
	f.register(cmd)
	repo := t.TempDir()
	err := cmd.Flags().Parse([]string{
		"--data-dir", "/d", "--listen", "10.0.0.1:7443", "--tls-san", "a.example,10.0.0.2",
		"--registry-addr", "127.0.0.1:5000", "--pod-cidr", "10.244.0.0/16", "--node-cidr-bits", "25",
		"--service-cidr", "10.97.0.0/16", "--node-grace-period", "17s", "--pod-eviction-timeout", "33s",
		"--max-streams-per-token", "9", "--watch-max-lifetime", "7m", "--body-read-timeout", "5s",
		"--repo", repo, "--branch", "prod", "--path", "apps",
	})
	if err != nil {
		t.Fatal(err)
	}
	o, err := f.options(slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	a := o.API
	switch {
	case o.DataDir != "/d", a.Listen != "10.0.0.1:7443", !slices.Equal(a.SANs, []string{"a.example", "10.0.0.2"}),
		!slices.Equal(o.RegistryAddrs, []string{"127.0.0.1:5000"}),
		a.Network.PodCIDR != "10.244.0.0/16", a.Network.NodeCIDRBits != 25, a.Network.ServiceCIDR != "10.97.0.0/16",
		o.Nodes.GracePeriod != 17*time.Second, o.Nodes.EvictionTimeout != 33*time.Second,
		a.MaxStreamsPerToken != 9, a.WatchMaxLifetime != 7*time.Minute, a.BodyReadTimeout != 5*time.Second,
		o.Logger == nil:
		t.Fatalf("options = %+v", o)
	}
	if len(o.Repos) != 1 || o.Repos[0].URL != repo || o.Repos[0].Branch != "prod" || o.Repos[0].Path != "apps" {
		t.Fatalf("repos = %+v", o.Repos)
	}
}

// A webhook secret on the command line is in the server's process list
// for every user of the machine to read: the server warns about
// --webhook-secret and takes it from --webhook-secret-file, a file
// others may not read, which is read again for every webhook.
func TestServerWebhookSecretFile(t *testing.T) {
	repo := t.TempDir()
	file := filepath.Join(t.TempDir(), "hook-secret")
	if err := os.WriteFile(file, []byte("s3cret-hook\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	options := func(args ...string) (controlplane.Options, string, error) {
		t.Helper()
		cmd := &cobra.Command{Use: "server"}
		var f serverFlags
		f.register(cmd)
		if err := cmd.Flags().Parse(append([]string{"--data-dir", t.TempDir(), "--repo", repo}, args...)); err != nil {
			t.Fatal(err)
		}
		var log strings.Builder
		o, err := f.options(slog.New(slog.NewTextHandler(&log, nil)))
		return o, log.String(), err
	}

	o, log, err := options("--webhook-secret", "s3cret-argv")
	if err != nil || o.Repos[0].WebhookSecret != "s3cret-argv" {
		t.Fatalf("--webhook-secret: %v, %+v", err, o.Repos)
	}
	if !strings.Contains(log, "readable by every user") || !strings.Contains(log, "--webhook-secret-file") {
		t.Errorf("--webhook-secret on the command line: log %q, want a warning that points to --webhook-secret-file", log)
	}

	if _, _, err := options("--webhook-secret-file", file); err == nil || !strings.Contains(err.Error(), "chmod 600 "+file) {
		t.Fatalf("--webhook-secret-file others may read: %v, want a refusal that says to chmod 600 it", err)
	}
	if err := os.Chmod(file, 0o600); err != nil {
		t.Fatal(err)
	}
	o, log, err = options("--webhook-secret-file", file)
	if err != nil {
		t.Fatal(err)
	}
	if r := o.Repos[0]; r.WebhookSecret != "s3cret-hook" || r.WebhookSecretFile != file {
		t.Errorf("--webhook-secret-file: secret %q from %q, want s3cret-hook from %s (read again for every webhook)", r.WebhookSecret, r.WebhookSecretFile, file)
	}
	if strings.Contains(log, "readable by every user") {
		t.Errorf("--webhook-secret-file: log %q, want no warning", log)
	}
	if _, _, err := options("--webhook-secret", "x", "--webhook-secret-file", file); err == nil || !strings.Contains(err.Error(), "give one") {
		t.Errorf("--webhook-secret and --webhook-secret-file: %v, want a refusal", err)
	}
}

// A --repo-config that holds credentials written in it (not in files of
// their own) and that other users of the machine may read is named in a
// warning at start, with what it exposes and how to fix it.
func TestServerRepoConfigReadableByOthers(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "repos.yaml")
	secretFile := filepath.Join(dir, "hook")
	if err := os.WriteFile(secretFile, []byte("s3cret-hook"), 0o600); err != nil {
		t.Fatal(err)
	}
	write := func(text string, mode os.FileMode) {
		t.Helper()
		if err := os.WriteFile(cfg, []byte(text), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(cfg, mode); err != nil {
			t.Fatal(err)
		}
	}
	startLog := func() string {
		t.Helper()
		cmd := &cobra.Command{Use: "server"}
		var f serverFlags
		f.register(cmd)
		if err := cmd.Flags().Parse([]string{"--data-dir", t.TempDir(), "--repo-config", cfg}); err != nil {
			t.Fatal(err)
		}
		var log strings.Builder
		if _, err := f.options(slog.New(slog.NewTextHandler(&log, nil))); err != nil {
			t.Fatal(err)
		}
		return log.String()
	}
	inline := "repos:\n- name: deploy\n  url: https://git.example/deploy.git\n  auth: {token: s3cret-token}\n  webhookSecret: s3cret-hook\n"
	write(inline, 0o644)
	if log := startLog(); !strings.Contains(log, "repo deploy's auth.token, webhookSecret") || !strings.Contains(log, "chmod 600 "+cfg) {
		t.Errorf("a config of mode 0644 with credentials in it: log %q, want a warning naming them and chmod 600", log)
	}
	write(inline, 0o600)
	if log := startLog(); strings.Contains(log, "readable by other users") {
		t.Errorf("a config of mode 0600: log %q, want no warning", log)
	}
	write("repos:\n- name: deploy\n  url: https://git.example/deploy.git\n  webhookSecretFile: "+secretFile+"\n", 0o644)
	if log := startLog(); strings.Contains(log, "readable by other users") {
		t.Errorf("a config of mode 0644 that names credential files only: log %q, want no warning", log)
	}
}
