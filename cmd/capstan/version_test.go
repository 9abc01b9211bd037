package main

import (
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/capstanhq/capstan/apiserver"
	"github.com/capstanhq/capstan/apiserver/apiservertest"
	"github.com/capstanhq/capstan/version"
)

// capstan version printed this binary's version alone: in the middle of
// an upgrade nothing said which version the server ran. It prints both,
// as kubectl version does; --client only this binary's, without a config;
// a server that cannot be asked is an error after the client's line.
func TestVersionShowsClientAndServer(t *testing.T) {
	c := apiservertest.Start(t, apiservertest.Options{Server: apiserver.Options{
		Version: version.Info{Version: "v1.4.2", GoVersion: "go1.25.4", Platform: "linux/arm64"}}})
	client := "Client Version: " + version.Version + " (" + runtime.Version() + ", " + runtime.GOOS + "/" + runtime.GOARCH + ")\n"

	out, errOut, err := runSplit(t, "version", "--config", c.Server.AdminConfigPath())
	if want := client + "Server Version: v1.4.2 (go1.25.4, linux/arm64)\n"; err != nil || out != want || errOut != "" {
		t.Errorf("capstan version: %v\nstdout %q, want %q\nstderr %q", err, out, want, errOut)
	}

	t.Setenv("CAPSTAN_CONFIG", "")
	t.Setenv("HOME", t.TempDir())
	out, errOut, err = runSplit(t, "version", "--client")
	if err != nil || out != client || errOut != "" {
		t.Errorf("capstan version --client without a config: %v\nstdout %q, want %q\nstderr %q", err, out, client, errOut)
	}
	out, _, err = runSplit(t, "version")
	if err == nil || out != client || !strings.Contains(err.Error(), "no client config") || !strings.Contains(err.Error(), "--client") {
		t.Errorf("capstan version without a config: %v, stdout %q; want the client's line, then an error naming --client", err, out)
	}
}

// An admin.yaml a newer server wrote holds fields this capstan does not
// know: it was refused ('client config ...: unknown field "registry"', a
// week-old capstan on this release's admin.yaml), so a CLI one release
// behind could not reach the upgraded cluster. It is read, with a warning
// saying what was left aside.
func TestClientConfigOfNewerRelease(t *testing.T) {
	c := apiservertest.Start(t, apiservertest.Options{})
	data, err := os.ReadFile(c.Server.AdminConfigPath())
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "admin.yaml")
	if err := os.WriteFile(path, append(data, "fieldOfTomorrow: 1\n"...), 0o600); err != nil {
		t.Fatal(err)
	}
	out, errOut, err := runSplit(t, "version", "--config", path)
	if err != nil || !strings.Contains(out, "Server Version: ") {
		t.Fatalf("capstan version with a newer release's config: %v\nstdout %q\nstderr %q", err, out, errOut)
	}
	if !strings.Contains(errOut, "warning: the client config "+path+" holds what this capstan") || !strings.Contains(errOut, `unknown field "fieldOfTomorrow"`) {
		t.Errorf("stderr %q, want a warning naming the field left aside", errOut)
	}
}
