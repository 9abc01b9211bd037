package runtime

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	remoteerrors "github.com/containerd/containerd/v2/core/remotes/errors"
	"github.com/containerd/errdefs"
)

func TestLoadDockerConfig(t *testing.T) {
	path := filepath.Join(t.TempDir(), "config.json")
	os.WriteFile(path, []byte(`{"auths": {
		"https://index.docker.io/v1/": {"auth": "dTE6cDE="},
		"reg.example:5000": {"username": "u2", "password": "p2"}
	}}`), 0o600)
	auths, err := loadDockerConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	for host, want := range map[string]dockerAuth{
		"registry-1.docker.io": {"u1", "p1"},
		"reg.example:5000":     {"u2", "p2"},
	} {
		if got, ok := lookupAuth(auths, host); !ok || got != want {
			t.Errorf("auth for %s = %+v, %v; want %+v", host, got, ok, want)
		}
	}
	if _, ok := lookupAuth(auths, "other:5000"); ok {
		t.Error("auth found for an unlisted host")
	}
	for name, content := range map[string]string{
		"not json":    "{",
		"bad base64":  `{"auths": {"h": {"auth": "!!"}}}`,
		"no colon":    `{"auths": {"h": {"auth": "dXNlcg=="}}}`,
		"wrong shape": `{"auths": []}`,
	} {
		os.WriteFile(path, []byte(content), 0o600)
		if _, err := loadDockerConfig(path); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func FuzzLoadDockerConfig(f *testing.F) {
	f.Add([]byte(`{"auths": {"h:1": {"auth": "dTE6cDE="}}}`))
	f.Add([]byte(`{"auths": {"h": {"username": "u", "password": "p"}}}`))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, b []byte) {
		path := filepath.Join(dir, "config.json")
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		auths, err := loadDockerConfig(path)
		if err == nil {
			for h := range auths {
				lookupAuth(auths, h)
			}
		}
	})
}

func TestClassifyPullError(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		want error
	}{
		{"not found", fmt.Errorf("reg/x:v1: %w", errdefs.ErrNotFound), ErrImageNotFound},
		{"401", remoteerrors.ErrUnexpectedStatus{StatusCode: 401}, ErrImageUnauthorized},
		{"403", remoteerrors.ErrUnexpectedStatus{StatusCode: 403}, ErrImageUnauthorized},
		{"no credentials", fmt.Errorf("pull: %w", errdefs.ErrUnauthenticated), ErrImageUnauthorized},
		{"500", remoteerrors.ErrUnexpectedStatus{StatusCode: 500}, ErrRegistryUnavailable},
		{"refused", &net.OpError{Op: "dial", Err: syscall.ECONNREFUSED}, ErrRegistryUnavailable},
		{"dns", &net.DNSError{Err: "no such host", Name: "reg"}, ErrRegistryUnavailable},
		{"other", errors.New("disk full"), nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := classifyPullError(tc.err, "advice")
			// ErrUnexpectedStatus is not comparable, so check the text.
			if !strings.Contains(got.Error(), tc.err.Error()) {
				t.Errorf("classified error lost its cause: %v", got)
			}
			for _, s := range []error{ErrImageNotFound, ErrImageUnauthorized, ErrRegistryUnavailable} {
				if errors.Is(got, s) != (s == tc.want) {
					t.Errorf("classifyPullError(%v) = %v; want class %v", tc.err, got, tc.want)
				}
			}
		})
	}
}

func TestProcessOptions(t *testing.T) {
	if _, err := NewProcess(ProcessOptions{}); err == nil {
		t.Error("NewProcess without Dir: no error")
	}
	long := "/tmp/" + fmt.Sprintf("%0100d", 0)
	if _, err := NewProcess(ProcessOptions{Dir: long}); err == nil {
		t.Error("NewProcess with a socket path over 108 bytes: no error")
	}
	p, err := NewProcess(ProcessOptions{Dir: "/tmp/c"})
	if err != nil || p.Address() != "/tmp/c/containerd.sock" {
		t.Errorf("NewProcess = %v, %v", p, err)
	}
}
