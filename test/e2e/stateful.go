package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/capstanhq/capstan/apiserver/api"
	"github.com/capstanhq/capstan/registry"
)

// Helpers of the stateful tests: example images in the registry, a server
// crash, a git repository the server tracks, and the kv example's API.

// PushExample builds examples/images/NAME statically and pushes it to the
// registry as e2e/NAME:TAG with env in its config; it returns the
// reference. Not with Options.ClusterRegistry.
func (c *Cluster) PushExample(name, tag string, env ...string) string {
	c.t.Helper()
	root := filepath.Join(Base, "images", name+"-"+tag)
	if err := os.MkdirAll(root, 0o755); err != nil {
		c.t.Fatal(err)
	}
	c.goBuild("./examples/images/"+name, filepath.Join(root, name), true)
	img, err := registry.PackDir(root, registry.ImageConfig{Entrypoint: []string{"/" + name}, Env: env})
	if err != nil {
		c.t.Fatalf("e2e: pack %s: %v", name, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	ref := c.Registry + "/e2e/" + name + ":" + tag
	if _, err := registry.Push(ctx, img, ref, registry.RemoteOptions{Insecure: true, Username: registryUser, Password: registryPassword}); err != nil {
		c.t.Fatalf("e2e: push %s: %v", ref, err)
	}
	return ref
}

// KillServer SIGKILLs the server, as a crash would, and starts it again
// on the same data directory; it returns once the API is ready.
func (c *Cluster) KillServer() {
	c.t.Helper()
	c.server.stop(syscall.SIGKILL)
	c.startServer()
}

// RestoreServer stops the server (SIGTERM), moves its data directory
// aside, restores the backup file (made by `capstan backup` with the
// passphrase in passFile) in its place, and starts the server on it; it
// returns once the API is ready.
func (c *Cluster) RestoreServer(file, passFile string) {
	c.t.Helper()
	c.server.stop(syscall.SIGTERM)
	dir := filepath.Join(Base, "server")
	if err := os.Rename(dir, dir+"-before-restore"); err != nil {
		c.t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, c.Bin, "restore", file, "--data-dir", dir, "--passphrase-file", passFile).CombinedOutput()
	if err != nil {
		c.t.Fatalf("e2e: capstan restore: %v\n%s", err, out)
	}
	c.startServer()
}

// RestartServer stops the server (SIGTERM) and starts it again on the
// same data directory with args in place of Options.ServerArgs; it
// returns once the API is ready.
func (c *Cluster) RestartServer(args ...string) {
	c.t.Helper()
	c.server.stop(syscall.SIGTERM)
	c.opts.ServerArgs = args
	c.startServer()
}

// GitRepo is a git repository on the machine that a server tracks with
// --repo (a local path: the server sees commits through fsnotify).
type GitRepo struct {
	Dir string
	t   interface {
		Helper()
		Fatalf(string, ...any)
	}
}

// NewGitRepo makes a repository with branch main and files committed.
func NewGitRepo(t interface {
	Helper()
	Fatalf(string, ...any)
	TempDir() string
}, files map[string]string) *GitRepo {
	t.Helper()
	r := &GitRepo{Dir: filepath.Join(t.TempDir(), "repo"), t: t}
	r.git("init", "-q", "-b", "main", r.Dir)
	r.Commit("initial", files)
	return r
}

func (r *GitRepo) git(args ...string) {
	r.t.Helper()
	cmd := exec.Command("git", args...)
	if len(args) > 0 && args[0] != "init" {
		cmd.Dir = r.Dir
	}
	cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=e2e", "GIT_AUTHOR_EMAIL=e2e@example.com",
		"GIT_COMMITTER_NAME=e2e", "GIT_COMMITTER_EMAIL=e2e@example.com")
	if out, err := cmd.CombinedOutput(); err != nil {
		r.t.Fatalf("e2e: git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// Commit writes files (an empty content removes the file) and commits.
func (r *GitRepo) Commit(msg string, files map[string]string) {
	r.t.Helper()
	for name, content := range files {
		p := filepath.Join(r.Dir, name)
		if content == "" {
			r.git("rm", "-q", name)
			continue
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			r.t.Fatalf("e2e: %v", err)
		}
		r.git("add", name)
	}
	r.git("commit", "-q", "-m", msg)
}

// KV talks to the kv example's pod p on port 8080, from inside its own
// network namespace.
func (c *Cluster) KV(p *api.Pod, method, key, value string) (status int, body, version string, err error) {
	req, err := http.NewRequest(method, fmt.Sprintf("http://%s:8080/kv/%s", p.Status.PodIP, key), strings.NewReader(value))
	if err != nil {
		return 0, "", "", err
	}
	resp, err := httpClientIn(c.PodNetNS(p)).Do(req)
	if err != nil {
		return 0, "", "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header.Get("X-KV-Version"), err
}

// ReadyPod returns pod app/name when it is Ready, and nil otherwise.
func (c *Cluster) ReadyPod(app, name string) *api.Pod {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	o, err := c.Admin.Get(ctx, api.Key{Kind: api.KindPod, App: app, Name: name})
	if err != nil {
		return nil
	}
	p := o.(*api.Pod)
	if !api.IsPodReady(p) || api.Terminating(p) || p.Status.PodIP == "" {
		return nil
	}
	return p
}

// WaitFor polls cond every 50 ms until it holds, failing the test after
// timeout.
func (c *Cluster) WaitFor(what string, timeout time.Duration, cond func() bool) {
	c.t.Helper()
	c.waitFor(what, timeout, cond)
}
