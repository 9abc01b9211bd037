package runtime

import (
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/capstanhq/capstan/internal/testenv"
)

// filesEnv is a runtime without containerd, on a tree others may
// traverse, as /run/capstan and /var/lib/capstan.
func filesEnv(t *testing.T) (c *Containerd, unprivilegedRead func(path string) error) {
	testenv.RequireRoot(t)
	setpriv := testenv.RequireBinaries(t, "setpriv")[0]
	root, err := os.MkdirTemp("", "cstfiles")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(root) })
	if err := os.Chmod(root, 0o711); err != nil {
		t.Fatal(err)
	}
	c = &Containerd{log: slog.New(slog.DiscardHandler), opts: Options{DataDir: filepath.Join(root, "data"), RunDir: filepath.Join(root, "run")}}
	for _, d := range []string{c.opts.DataDir, c.opts.RunDir} {
		if err := os.MkdirAll(d, 0o711); err != nil {
			t.Fatal(err)
		}
	}
	return c, func(p string) error {
		return exec.Command(setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", "cat", p).Run()
	}
}

// oldAgentPod lays out a pod's directories as an agent before this one
// did: every directory 0711, and when premount, the secret tmpfs mounted
// with mode=0711.
func oldAgentPod(t *testing.T, c *Containerd, uid string, premount bool) {
	t.Helper()
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
	if !premount {
		return
	}
	for _, d := range []string{c.secretDir(uid), filepath.Join(c.podDir(uid), "files")} {
		if err := os.MkdirAll(d, 0o711); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(d, 0o711); err != nil {
			t.Fatal(err)
		}
	}
	if err := unix.Mount("tmpfs", c.secretDir(uid), "tmpfs", 0, "mode=0711,size=65536"); err != nil {
		t.Fatal(err)
	}
}

// checkRootOnly fails t unless the pod's files cannot be read by an
// unprivileged user of the node, through directories of mode 0700, and
// keep their own modes (for the containers' users).
func checkRootOnly(t *testing.T, c *Containerd, uid string, read func(string) error, files []SandboxFile) {
	t.Helper()
	for _, f := range files {
		if err := read(f.Source); err == nil {
			t.Errorf("an unprivileged user of the node reads the file %s (at %s in the containers)", f.Source, f.Path)
		}
		if st, err := os.Stat(f.Source); err != nil || st.Mode().Perm() != 0o444 {
			t.Errorf("file %s: %v, %v; want mode 0444 (the default, for containers of any user)", f.Source, st.Mode(), err)
		}
	}
	for _, d := range []string{c.secretDir(uid), filepath.Join(c.podDir(uid), "files")} {
		var st unix.Stat_t
		if err := unix.Stat(d, &st); err != nil || st.Mode&0o7777 != 0o700 || st.Uid != 0 || st.Gid != 0 {
			t.Errorf("%s: mode %o uid %d gid %d (%v); want 0700 owned by root", d, st.Mode&0o7777, st.Uid, st.Gid, err)
		}
	}
}

// A pod's config and secret files are for its containers (which see them
// through bind mounts) and for root: an unprivileged user of the node
// cannot read them, though the secrets' tmpfs is listed in
// /proc/self/mountinfo and the files' names are indexes.
func TestPodFilesOnlyForRoot(t *testing.T) {
	c, read := filesEnv(t)
	for _, tt := range []struct {
		name string
		// premount: the directories and tmpfs an agent before this one
		// made 0711.
		premount bool
	}{{"new pod", false}, {"pod of an older agent", true}} {
		t.Run(tt.name, func(t *testing.T) {
			uid := "uid-secret-perms-" + strconv.FormatBool(tt.premount)
			oldAgentPod(t, c, uid, tt.premount)
			files, err := c.writeFiles(uid, []PodFile{
				{Path: "/etc/app.conf", Content: []byte("greeting=hello\n")},
				{Path: "/run/secrets/token", Content: []byte("s3cret-token"), Secret: true},
			})
			if err != nil {
				t.Fatal(err)
			}
			checkRootOnly(t, c, uid, read, files)
		})
	}
}

// The pods an older agent made keep their files where they are, in
// directories of mode 0711 (the secrets' tmpfs mounted so), until their
// files are written again: at start the runtime gives every pod's
// directories to root alone, mounts and files in place.
func TestProtectPodFilesAtStart(t *testing.T) {
	c, read := filesEnv(t)
	const uid = "uid-old-agent"
	oldAgentPod(t, c, uid, true)
	var files []SandboxFile
	for _, f := range []struct{ dir, path string }{
		{filepath.Join(c.podDir(uid), "files"), "/etc/app.conf"},
		{c.secretDir(uid), "/run/secrets/token"},
	} {
		src := filepath.Join(f.dir, "0")
		if err := writeFileMode(src, []byte("content"), 0o444); err != nil {
			t.Fatal(err)
		}
		if err := read(src); err != nil {
			t.Fatalf("the older agent's layout: another user cannot read %s (%v): the test does not make what it should", src, err)
		}
		files = append(files, SandboxFile{Source: src, Path: f.path})
	}
	// Another pod without files, and a stray file: left alone.
	if err := os.MkdirAll(c.podDir("uid-no-files"), 0o711); err != nil {
		t.Fatal(err)
	}
	c.protectPodFiles()
	checkRootOnly(t, c, uid, read, files)
	if !isTmpfs(c.secretDir(uid)) {
		t.Errorf("the secret tmpfs of %s is no longer mounted", uid)
	}
	if _, err := os.Stat(filepath.Join(c.podDir("uid-no-files"), "files")); !os.IsNotExist(err) {
		t.Errorf("a pod without config files got a files directory: %v", err)
	}
}
