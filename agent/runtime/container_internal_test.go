package runtime

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

// TestCommandError: runc's failures to exec a container's program become
// ErrCommand naming the program, the image and what to check; other
// failures are left alone.
func TestCommandError(t *testing.T) {
	const shim = "failed to create shim task: OCI runtime create failed: runc create failed: unable to start container process: "
	for _, tc := range []struct {
		name, err, want string
		code            int // the shell's exit status
	}{
		{"absent path", shim + `exec: "/no/such/cmd": stat /no/such/cmd: no such file or directory: unknown`,
			`command cannot run: "/no/such/cmd" in image reg/app:v1: stat /no/such/cmd: no such file or directory (check the command of the descriptor`, 127},
		{"not on PATH", shim + `exec: "nosuch": executable file not found in $PATH: unknown`,
			`command cannot run: "nosuch" in image reg/app:v1: executable file not found in $PATH (check`, 127},
		{"not executable", shim + `exec: "/etc/passwd": permission denied: unknown`,
			`"/etc/passwd" in image reg/app:v1: permission denied (check`, 126},
		{"not a program", shim + `exec: "/data": is a directory: unknown`, `"/data" in image reg/app:v1: is a directory (check`, 126},
		{"quote in the name", shim + `exec: "/a\"b": stat /a"b: no such file or directory: unknown`,
			`"/a\"b" in image reg/app:v1: stat /a"b: no such file`, 127},
		{"other failure", shim + `chdir to cwd ("/nope") set in config.json failed: no such file or directory: unknown`, "", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := commandError(errors.New(tc.err), "reg/app:v1", "the descriptor")
			if tc.want == "" {
				if got != nil {
					t.Fatalf("got %v, want none", got)
				}
				return
			}
			if got == nil || !errors.Is(got, ErrCommand) || !strings.Contains(got.Error(), tc.want) || strings.Contains(got.Error(), "shim") {
				t.Fatalf("got %v\nwant %s", got, tc.want)
			}
			if code, ok := CommandExitCode(fmt.Errorf("container x: %w", got)); !ok || code != tc.code {
				t.Errorf("exit code %d (%v), want %d", code, ok, tc.code)
			}
		})
	}
}

// FuzzCommandError: whatever runc says, commandError does not panic, and
// what it returns is an ErrCommand that names the image.
func FuzzCommandError(f *testing.F) {
	f.Add(`exec: "/no/such/cmd": stat /no/such/cmd: no such file or directory: unknown`)
	f.Add(`exec: "\\": x`)
	f.Add(`exec: "": : unknown`)
	f.Fuzz(func(t *testing.T, msg string) {
		err := commandError(errors.New(msg), "img", "the descriptor")
		if code, ok := CommandExitCode(err); err != nil && (!errors.Is(err, ErrCommand) || !strings.Contains(err.Error(), " in image img: ") || !ok || (code != 126 && code != 127)) {
			t.Fatalf("%q gave %v", msg, err)
		}
	})
}

// Errors and logs named a pod by its UID, which users never see; they
// now name it APP/NAME, as the CLI and the API do.
func TestPodRef(t *testing.T) {
	for _, tc := range []struct {
		name string
		sb   Sandbox
		want string
	}{
		{"app and name", Sandbox{PodUID: "0f3c9e", PodName: "web-1", App: "shop"}, "shop/web-1"},
		{"no app", Sandbox{PodUID: "0f3c9e", PodName: "web-1"}, "web-1"},
		{"found without its sandbox", Sandbox{PodUID: "0f3c9e"}, "0f3c9e"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.sb.Ref(); got != tc.want {
				t.Errorf("Ref() = %q, want %q", got, tc.want)
			}
			ps := PodSpec{UID: tc.sb.PodUID, Name: tc.sb.PodName, App: tc.sb.App}
			if got := ps.ref(); got != tc.want {
				t.Errorf("PodSpec.ref() = %q, want %q", got, tc.want)
			}
		})
	}
}
