package main

import (
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"syscall"
	"testing"
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
