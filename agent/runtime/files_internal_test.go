package runtime

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/capstanhq/capstan/internal/testenv"
)

// A pod's secret files are for its containers (which see them through
// bind mounts) and for root: an unprivileged user of the node cannot
// read them, though their tmpfs is listed in /proc/self/mountinfo and
// their names are indexes. Its config files stay readable (their mode
// is the descriptor's).
func TestSecretFilesOnlyForRoot(t *testing.T) {
	testenv.RequireRoot(t)
	setpriv := testenv.RequireBinaries(t, "setpriv")[0]
	// A tree others may traverse, as /run/capstan and /var/lib/capstan.
	root, err := os.MkdirTemp("", "cstfiles")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(root) })
	if err := os.Chmod(root, 0o711); err != nil {
		t.Fatal(err)
	}
	c := &Containerd{opts: Options{DataDir: filepath.Join(root, "data"), RunDir: filepath.Join(root, "run")}}
	for _, d := range []string{c.opts.DataDir, c.opts.RunDir} {
		if err := os.MkdirAll(d, 0o711); err != nil {
			t.Fatal(err)
		}
	}
	for _, tt := range []struct {
		name string
		// premount: the tmpfs an agent before this one mounted 0711.
		premount bool
	}{{"new pod", false}, {"pod of an older agent", true}} {
		t.Run(tt.name, func(t *testing.T) {
			uid := "uid-secret-perms-" + strconv.FormatBool(tt.premount)
			for _, d := range []string{c.podDir(uid), c.podRunDir(uid)} {
				if err := os.MkdirAll(d, 0o711); err != nil {
					t.Fatal(err)
				}
			}
			t.Cleanup(func() {
				if err := c.removeSecretFS(uid); err != nil {
					t.Error(err)
				}
			})
			if tt.premount {
				if err := os.MkdirAll(c.secretDir(uid), 0o711); err != nil {
					t.Fatal(err)
				}
				if err := unix.Mount("tmpfs", c.secretDir(uid), "tmpfs", 0, "mode=0711,size=65536"); err != nil {
					t.Fatal(err)
				}
			}
			files, err := c.writeFiles(uid, []PodFile{
				{Path: "/etc/app.conf", Content: []byte("greeting=hello\n")},
				{Path: "/run/secrets/token", Content: []byte("s3cret-token"), Secret: true},
			})
			if err != nil {
				t.Fatal(err)
			}
			read := func(p string) error {
				return exec.Command(setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", "cat", p).Run()
			}
			if err := read(files[0].Source); err != nil {
				t.Errorf("a config file of mode 0444: another user cannot read it: %v", err)
			}
			if err := read(files[1].Source); err == nil {
				t.Errorf("an unprivileged user of the node reads the secret file %s", files[1].Source)
			}
			if st, err := os.Stat(c.secretDir(uid)); err != nil || st.Mode().Perm() != 0o700 {
				t.Errorf("secret tmpfs %s: %v, %v; want mode 0700", c.secretDir(uid), st.Mode(), err)
			}
			if st, err := os.Stat(files[1].Source); err != nil || st.Mode().Perm() != 0o444 {
				t.Errorf("secret file: %v, %v; want mode 0444 (the default, for containers of any user)", st.Mode(), err)
			}
		})
	}
}
