package runtime_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/capstanhq/capstan/agent/runtime"
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
