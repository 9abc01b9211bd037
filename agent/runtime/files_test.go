package runtime_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/capstanhq/capstan/agent/runtime"
	"github.com/capstanhq/capstan/internal/testenv"
	"github.com/capstanhq/capstan/internal/testimage"
	"github.com/capstanhq/capstan/registry"
)

// A pod's config file and secret file are mounted read-only in its
// containers; the secret lives on a tmpfs of the pod (never on the
// node's disk) and is gone once the pod is removed.
func TestPodFiles(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	uid := fmt.Sprintf("uid-files-%d", time.Now().UnixNano())
	sb, err := e.rt.CreatePodSandbox(ctx, runtime.PodSpec{UID: uid, Name: "files", App: "shop", Files: []runtime.PodFile{
		{Path: "/etc/app/app.conf", Content: []byte("greeting=hello\n"), Mode: 0o440},
		{Path: "/run/secrets/token", Content: []byte("s3cret-token"), Secret: true},
	}})
	if err != nil {
		t.Fatal(err)
	}
	conf := e.start(sb, runtime.ContainerSpec{Name: "conf", Args: []string{"cat", "/etc/app/app.conf"}})
	if st := e.waitExited(conf.ID, time.Minute); st.ExitCode != 0 || !strings.Contains(logText(t, st), "greeting=hello") {
		t.Fatalf("cat app.conf: exit %d, log:\n%s", st.ExitCode, logText(t, st))
	}
	mounts := e.start(sb, runtime.ContainerSpec{Name: "mounts", Args: []string{"cat", "/proc/mounts"}})
	st := e.waitExited(mounts.ID, time.Minute)
	var secretLine, confLine string
	for _, l := range strings.Split(logText(t, st), "\n") {
		if strings.Contains(l, " /run/secrets/token ") {
			secretLine = l
		}
		if strings.Contains(l, " /etc/app/app.conf ") {
			confLine = l
		}
	}
	if !strings.Contains(secretLine, " tmpfs ro") {
		t.Errorf("secret mount = %q, want a read-only tmpfs", secretLine)
	}
	if !strings.Contains(confLine, " ro") {
		t.Errorf("config mount = %q, want read-only", confLine)
	}
	var src string
	for _, f := range sb.Files {
		if f.Path == "/run/secrets/token" {
			src = f.Source
		}
	}
	var fs unix.Statfs_t
	if err := unix.Statfs(filepath.Dir(src), &fs); err != nil || fs.Type != unix.TMPFS_MAGIC {
		t.Fatalf("secret source %s: statfs type %x (%v), want tmpfs", src, fs.Type, err)
	}
	if strings.HasPrefix(src, sb.Dir) {
		t.Errorf("secret source %s is under the pod's data directory %s", src, sb.Dir)
	}
	if err := e.rt.RemovePod(ctx, uid); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(src); !os.IsNotExist(err) {
		t.Errorf("secret file %s after RemovePod: %v, want gone", src, err)
	}
	if b, err := os.ReadFile("/proc/self/mounts"); err == nil && strings.Contains(string(b), filepath.Dir(src)) {
		t.Errorf("the secret tmpfs %s is still mounted", filepath.Dir(src))
	}
}

// A pod's config and secret files and its scratch volumes are in
// directories for root alone (0700), yet a container whose image runs as
// another user reads the files and writes the volumes through its bind
// mounts. The pods of an older agent, whose directories are 0711 (any
// user of the node read their files, and read and wrote their volumes,
// by path), are mended when the agent starts again, while their
// containers keep running.
func TestPodFilesNonRootContainerAndOlderAgent(t *testing.T) {
	e := newEnv(t)
	setpriv := testenv.RequireBinaries(t, "setpriv")[0]
	// A tree others may traverse, as /run/capstan and /var/lib/capstan.
	if err := os.Chmod(e.dir, 0o711); err != nil {
		t.Fatal(err)
	}
	asNobody := func(args ...string) error {
		return exec.Command(setpriv, append([]string{"--reuid=65534", "--regid=65534", "--clear-groups"}, args...)...).Run()
	}
	hostRead := func(p string) error { return asNobody("cat", p) }
	ctx := context.Background()
	nobody := e.reg + "/test/testbox-nobody:v1"
	testimage.Build(t, testboxPkg, nobody, registry.ImageConfig{User: "65534:65534"})
	uid := fmt.Sprintf("uid-nobody-%d", time.Now().UnixNano())
	sb, err := e.rt.CreatePodSandbox(ctx, runtime.PodSpec{UID: uid, Name: "nobody", App: "shop", Files: []runtime.PodFile{
		{Path: "/etc/app/app.conf", Content: []byte("greeting=hello\n")},
		{Path: "/run/secrets/token", Content: []byte("s3cret-token"), Secret: true},
	}, Volumes: []string{"data"}})
	if err != nil {
		t.Fatal(err)
	}
	data := []runtime.VolumeMount{{Volume: "data", Path: "/data"}}
	ctr := e.start(sb, runtime.ContainerSpec{Name: "c", Image: nobody, Args: []string{"sleep"}, Mounts: data})
	// What the pod keeps in its volume, written by the image's user.
	e.start(sb, runtime.ContainerSpec{Name: "w", Image: nobody, Args: []string{"serve", "127.0.0.1:0", "/data/kept", "s3cret-data"}, Mounts: data})
	volume := filepath.Join(sb.Dir, "volumes", "data")
	kept := filepath.Join(volume, "kept")
	testenv.Eventually(t, time.Minute, "the container of uid 65534 writes its volume", func() bool {
		b, err := os.ReadFile(kept)
		return err == nil && string(b) == "s3cret-data"
	})
	// containerRead checks, through an exec as the image's user, that
	// the container reads every file of the pod.
	containerRead := func(when string) {
		t.Helper()
		var out strings.Builder
		if code, err := e.rt.Exec(ctx, ctr.ID, []string{"/testbox", "cat", "/proc/self/status"}, runtime.ExecIO{Stdout: &out}); err != nil || code != 0 || !strings.Contains(out.String(), "\nUid:\t65534\t") {
			t.Fatalf("%s: the exec does not run as uid 65534 (code %d, %v):\n%s", when, code, err, out.String())
		}
		for path, want := range map[string]string{"/etc/app/app.conf": "greeting=hello\n", "/run/secrets/token": "s3cret-token", "/data/kept": "s3cret-data"} {
			out.Reset()
			var errOut strings.Builder
			if code, err := e.rt.Exec(ctx, ctr.ID, []string{"/testbox", "cat", path}, runtime.ExecIO{Stdout: &out, Stderr: &errOut}); err != nil || code != 0 || out.String() != want {
				t.Errorf("%s: the container's user (65534) reads %s: code %d, %v, %q, stderr %q; want %q", when, path, code, err, out.String(), errOut.String(), want)
			}
		}
	}
	hostCannotRead := func(when string) {
		t.Helper()
		for _, f := range sb.Files {
			if err := hostRead(f.Source); err == nil {
				t.Errorf("%s: an unprivileged user of the node reads %s (%s in the containers)", when, f.Source, f.Path)
			}
			if st, err := os.Stat(filepath.Dir(f.Source)); err != nil || st.Mode().Perm() != 0o700 {
				t.Errorf("%s: %s: %v, %v; want mode 0700", when, filepath.Dir(f.Source), st.Mode(), err)
			}
		}
		if err := hostRead(kept); err == nil {
			t.Errorf("%s: an unprivileged user of the node reads the pod's volume (%s)", when, kept)
		}
		if err := asNobody("touch", filepath.Join(volume, "planted")); err == nil {
			t.Errorf("%s: an unprivileged user of the node writes into the pod's volume (%s)", when, volume)
		}
		if st, err := os.Stat(filepath.Dir(volume)); err != nil || st.Mode().Perm() != 0o700 {
			t.Errorf("%s: %s: %v, %v; want mode 0700", when, filepath.Dir(volume), st.Mode(), err)
		}
	}
	containerRead("new pod")
	hostCannotRead("new pod")

	// As an older agent left them.
	for _, f := range sb.Files {
		if err := os.Chmod(filepath.Dir(f.Source), 0o711); err != nil {
			t.Fatal(err)
		}
		if err := hostRead(f.Source); err != nil {
			t.Fatalf("the older agent's 0711 directory: another user cannot read %s (%v); the test does not make what it means to", f.Source, err)
		}
	}
	if err := os.Chmod(filepath.Dir(volume), 0o711); err != nil {
		t.Fatal(err)
	}
	if err := hostRead(kept); err != nil {
		t.Fatalf("the older agent's 0711 volumes directory: another user cannot read %s (%v); the test does not make what it means to", kept, err)
	}
	e.rt.Close()
	e.rt = e.newRuntime()
	hostCannotRead("after the agent restarts")
	st, err := e.rt.ContainerStatus(ctx, ctr.ID)
	if err != nil || st.State != runtime.StateRunning || st.PID != ctr.PID {
		t.Errorf("the pod's container after the restart: %+v, %v; want still running as pid %d", st, err, ctr.PID)
	}
	containerRead("after the agent restarts")
}

// A container's environment (values from secrets among them) is in
// containerd's metadata and in the runc bundle on the node's disk; no
// file that holds it may be read by a user of the node other than root,
// though the directories above are 0711 (as /var/lib/capstan) and the
// files' paths are well known: containerd writes meta.db and config.json
// 0644, and it is containerd's own root (0700) and bundle directories
// (0700) that keep them from other users.
func TestContainerEnvOnlyForRoot(t *testing.T) {
	e := newEnv(t)
	setpriv := testenv.RequireBinaries(t, "setpriv")[0]
	if err := os.Chmod(e.dir, 0o711); err != nil {
		t.Fatal(err)
	}
	const value = "s3cret-env-value-7d41"
	sb := e.pod("env")
	e.start(sb, runtime.ContainerSpec{Name: "c", Args: []string{"sleep"}, Env: []string{"API_TOKEN=" + value}})
	var holders []string
	err := filepath.WalkDir(e.dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return nil // gone meanwhile, a socket, a FIFO
		}
		if b, err := os.ReadFile(p); err == nil && strings.Contains(string(b), value) {
			holders = append(holders, p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(holders) == 0 {
		t.Fatalf("no file under %s holds the container's environment: the test does not look where containerd keeps it", e.dir)
	}
	for _, p := range holders {
		if err := exec.Command(setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", "cat", p).Run(); err == nil {
			t.Errorf("an unprivileged user of the node reads %s, which holds a container's environment", p)
		}
	}
}
