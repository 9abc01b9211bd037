package main

import (
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/capstanhq/capstan/apiserver/apiservertest"
)

// A user who ran 'sudo make up' and then 'capstan get pods' with
// CAPSTAN_CONFIG=/var/lib/capstan/admin.yaml got "read client config: open
// /var/lib/capstan/admin.yaml: permission denied" and no way forward. The
// error now says whose file it is and how to read it. (The tests run as
// root, whom a file mode does not stop, so the error is made here as the
// client's LoadConfig returns it.)
func TestClientConfigError(t *testing.T) {
	const path = "/var/lib/capstan/admin.yaml"
	for _, tt := range []struct {
		name string
		err  error
		want []string
		is   error
	}{
		{"missing", fmt.Errorf("read client config: %w", &fs.PathError{Op: "open", Path: path, Err: syscall.ENOENT}),
			[]string{"no client config at " + path, "--config DATA_DIR/admin.yaml", "'capstan up'", "CAPSTAN_CONFIG"}, nil},
		{"not readable", fmt.Errorf("read client config: %w", &fs.PathError{Op: "open", Path: path, Err: syscall.EACCES}),
			[]string{path + " is not readable by this user (permission denied)", "run the command with sudo", "sudo cat " + path + " > ~/.config/capstan/config.yaml"}, fs.ErrPermission},
		{"other", errors.New("parse client config: yaml: line 3: bad"), []string{"parse client config: yaml: line 3: bad"}, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := clientConfigError(path, tt.err)
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("error %q is not %v", err, tt.is)
			}
		})
	}
}

// A client config that other users of the machine may read hands them
// its token: every command that loads it warns, saying what to run.
func TestClientConfigReadableByOthers(t *testing.T) {
	c := apiservertest.Start(t, apiservertest.Options{})
	b, err := os.ReadFile(c.Server.AdminConfigPath())
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := run(t, "get", "nodes", "--config", path)
	if err != nil {
		t.Fatal(err)
	}
	if want := "warning: the client config " + path + " (mode 0644) is readable by other users of this machine, who may act with its token: run chmod 600 " + path; !strings.Contains(out, want) {
		t.Errorf("a config of mode 0644: output %q, want %q", out, want)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := run(t, "get", "nodes", "--config", path); err != nil || strings.Contains(out, "warning") {
		t.Errorf("a config of mode 0600: %q, %v; want no warning", out, err)
	}
}

// FuzzServerURL: a --server value is refused, or read as an https URL
// with a host that the client accepts; HOST:PORT gains https://, and an
// https URL is kept as given.
func FuzzServerURL(f *testing.F) {
	for _, s := range []string{"https://127.0.0.1:7443", "127.0.0.1:7443", "[::1]:7443", "http://x:1", "ftp://x", "", "://", "https://", "a b:1", "https://h:1/p?q"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		u, err := serverURL(s)
		if err != nil {
			if !strings.Contains(err.Error(), "--server") {
				t.Errorf("%q: error %q does not name --server", s, err)
			}
			return
		}
		p, perr := url.Parse(u)
		if perr != nil || p.Scheme != "https" || p.Host == "" {
			t.Errorf("%q read as %q, not an https URL with a host (%v)", s, u, perr)
		}
		if strings.HasPrefix(s, "https://") && u != s {
			t.Errorf("%q changed to %q", s, u)
		}
	})
}
