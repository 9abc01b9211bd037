package demo

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/capstanhq/capstan/examples/repo"
	"github.com/capstanhq/capstan/internal/testimage"
	"github.com/capstanhq/capstan/registry"
)

func TestRepoCreatedOnceAndKept(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "demo-repo")
	res, err := Repo(dir, repo.FS(), ExampleRegistry, "")
	if err != nil {
		t.Fatal(err)
	}
	if !res.Created || len(res.Head) != 40 || res.OtherRegistry {
		t.Fatalf("first call: %+v", res)
	}
	want, err := os.ReadFile("../repo/shop.cue")
	if err != nil {
		t.Fatal(err)
	}
	if got, err := git(dir, "show", "main:shop.cue"); err != nil || got != strings.TrimSpace(string(want)) {
		t.Fatalf("committed shop.cue differs from examples/repo (%v)", err)
	}
	if _, err := os.Stat(dir + ".tmp"); !os.IsNotExist(err) {
		t.Errorf("temporary directory left behind: %v", err)
	}

	// The user commits; a restart keeps the commit.
	if err := os.WriteFile(filepath.Join(dir, "shop.cue"), append(want, []byte("// scaled\n")...), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := git(dir, "-c", "user.name=U", "-c", "user.email=u@x", "commit", "-qam", "edit"); err != nil {
		t.Fatal(err)
	}
	head, _ := git(dir, "rev-parse", "HEAD")
	again, err := Repo(dir, fstest.MapFS{"other.cue": {Data: []byte("x")}}, ExampleRegistry, "")
	if err != nil {
		t.Fatal(err)
	}
	if again.Created || again.Head != head || head == res.Head {
		t.Errorf("second call %+v, want the user's head %s kept", again, head)
	}
	if _, err := os.Stat(filepath.Join(dir, "other.cue")); !os.IsNotExist(err) {
		t.Errorf("an existing repository was written to: %v", err)
	}
}

// The README walkthrough's first git commit failed on a fresh machine
// (root, no git identity): the demo repository now has an author of its
// own unless the user's git config names one.
func TestRepoIdentity(t *testing.T) {
	global := filepath.Join(t.TempDir(), "gitconfig")
	t.Setenv("GIT_CONFIG_NOSYSTEM", "1")
	t.Setenv("GIT_CONFIG_GLOBAL", global)
	for _, tc := range []struct {
		name, global, want string
	}{
		{"no identity", "", "capstan@localhost"},
		{"the user's", "[user]\n\tname = U\n\temail = u@example.com\n", "u@example.com"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := os.WriteFile(global, []byte(tc.global), 0o644); err != nil {
				t.Fatal(err)
			}
			dir := filepath.Join(t.TempDir(), "demo-repo")
			if _, err := Repo(dir, repo.FS(), ExampleRegistry, ""); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, "shop.cue"), []byte("// edited\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			commit := exec.Command("git", "commit", "-qam", "edit")
			commit.Dir = dir
			for _, kv := range os.Environ() {
				if !strings.HasPrefix(kv, "EMAIL=") && !strings.HasPrefix(kv, "GIT_AUTHOR_") && !strings.HasPrefix(kv, "GIT_COMMITTER_") {
					commit.Env = append(commit.Env, kv)
				}
			}
			if out, err := commit.CombinedOutput(); err != nil {
				t.Fatalf("the user's first commit: %v: %s", err, out)
			}
			show := exec.Command("git", "log", "-1", "--format=%ae")
			show.Dir = dir
			out, err := show.Output()
			if err != nil || strings.TrimSpace(string(out)) != tc.want {
				t.Errorf("author %q (%v), want %s", out, err, tc.want)
			}
		})
	}
}

// Item 12 of issue 12: `capstan up --registry-addr` elsewhere than
// 127.0.0.1:5000 got a demo repository naming 127.0.0.1:5000.
func TestRepoNamesTheGivenRegistry(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "demo-repo")
	const addr = "10.1.2.3:5443"
	res, err := Repo(dir, repo.FS(), addr, "")
	if err != nil {
		t.Fatal(err)
	}
	if !res.Created || res.OtherRegistry {
		t.Fatalf("first call: %+v", res)
	}
	committed, err := git(dir, "show", "main:shop.cue")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(committed, ExampleRegistry) {
		t.Errorf("committed shop.cue still names %s:\n%s", ExampleRegistry, committed)
	}
	for _, img := range []string{"hello", "api", "worker", "shipper"} {
		if want := `"` + addr + "/examples/" + img + `:v1"`; !strings.Contains(committed, want) {
			t.Errorf("committed shop.cue lacks %s", want)
		}
	}
	if st, err := git(dir, "status", "--porcelain"); err != nil || st != "" {
		t.Errorf("working tree not clean after the commit: %q, %v", st, err)
	}
	// The source files are untouched.
	orig, err := os.ReadFile("../repo/shop.cue")
	if err != nil || !strings.Contains(string(orig), `"`+ExampleRegistry+"/examples/hello:v1") {
		t.Fatalf("examples/repo/shop.cue changed? %v", err)
	}

	// Kept on a restart with the same address; flagged with another.
	if again, err := Repo(dir, repo.FS(), addr, ""); err != nil || again.Created || again.OtherRegistry {
		t.Errorf("restart with the same address: %+v, %v", again, err)
	}
	if other, err := Repo(dir, repo.FS(), ExampleRegistry, ""); err != nil || other.Created || !other.OtherRegistry {
		t.Errorf("restart with another address: %+v, %v; want OtherRegistry", other, err)
	}
}

func TestRetargetText(t *testing.T) {
	in := `image: "127.0.0.1:5000/examples/hello:v1"
// a comment about 127.0.0.1:5000 stays
other: "registry.example/127.0.0.1:5000/x:v1"
`
	got := string(RetargetText([]byte(in), "192.168.7.1:5000"))
	want := `image: "192.168.7.1:5000/examples/hello:v1"
// a comment about 127.0.0.1:5000 stays
other: "registry.example/127.0.0.1:5000/x:v1"
`
	if got != want {
		t.Errorf("RetargetText =\n%s\nwant\n%s", got, want)
	}
}

func TestRepoRefusesABrokenRepository(t *testing.T) {
	dir := t.TempDir()
	if out, err := exec.Command("git", "init", "-q", "-b", "main", dir).CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if _, err := Repo(dir, repo.FS(), ExampleRegistry, ""); err == nil || !strings.Contains(err.Error(), "remove the directory") {
		t.Errorf("repository without commits: %v", err)
	}
}

func packTarball(t *testing.T, dir, ref, content string) {
	t.Helper()
	src := t.TempDir()
	if err := os.WriteFile(filepath.Join(src, "app"), []byte(content), 0o755); err != nil {
		t.Fatal(err)
	}
	img, err := registry.PackDir(src, registry.ImageConfig{Entrypoint: []string{"/app"}})
	if err != nil {
		t.Fatal(err)
	}
	name := strings.NewReplacer("/", "_", ":", "_").Replace(ref)
	if err := registry.WriteTarball(img, ref, filepath.Join(dir, name+".tar")); err != nil {
		t.Fatal(err)
	}
}

func TestPushImages(t *testing.T) {
	addr := testimage.StartRegistry(t)
	dir := t.TempDir()
	packTarball(t, dir, "127.0.0.1:5000/examples/hello:v1", "hello")
	packTarball(t, dir, "127.0.0.1:5000/examples/api:v1", "api")
	ctx := context.Background()
	imgs, err := PushImages(ctx, dir, addr, testimage.Pusher)
	if err != nil {
		t.Fatal(err)
	}
	if len(imgs) != 2 || imgs[0].Ref != addr+"/examples/api:v1" || imgs[1].Ref != addr+"/examples/hello:v1" || !imgs[0].Pushed || !imgs[1].Pushed {
		t.Fatalf("first push: %+v", imgs)
	}
	repos, err := registry.List(ctx, addr, registry.RemoteOptions{})
	if err != nil || len(repos) != 2 || repos[1].Name != "examples/hello" || repos[1].Tags[0] != "v1" {
		t.Fatalf("registry holds %+v (%v)", repos, err)
	}
	// Pushing again sends nothing; a changed image is pushed.
	again, err := PushImages(ctx, dir, addr, testimage.Pusher)
	if err != nil {
		t.Fatal(err)
	}
	for _, im := range again {
		if im.Pushed {
			t.Errorf("%s pushed again", im.Ref)
		}
	}
	packTarball(t, dir, "127.0.0.1:5000/examples/hello:v1", "hello v2")
	third, err := PushImages(ctx, dir, addr, testimage.Pusher)
	if err != nil {
		t.Fatal(err)
	}
	if third[0].Pushed || !third[1].Pushed || third[1].Digest == imgs[1].Digest {
		t.Errorf("after changing hello: %+v", third)
	}

	if _, err := PushImages(ctx, t.TempDir(), addr, testimage.Pusher); err == nil || !strings.Contains(err.Error(), "no *.tar") {
		t.Errorf("empty directory: %v", err)
	}
	bad := t.TempDir()
	if err := os.WriteFile(filepath.Join(bad, "x.tar"), []byte("not a tarball"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := PushImages(ctx, bad, addr, testimage.Pusher); err == nil || !strings.Contains(err.Error(), "capstan image pack -o") {
		t.Errorf("bad tarball: %v", err)
	}
}

func TestRetag(t *testing.T) {
	tests := []struct{ ref, addr, want string }{
		{"127.0.0.1:5000/examples/hello:v1", "127.0.0.1:40123", "127.0.0.1:40123/examples/hello:v1"},
		{"registry.example/team/app:2", "127.0.0.1:5000", "127.0.0.1:5000/team/app:2"},
	}
	for _, tt := range tests {
		if got, err := Retag(tt.ref, tt.addr); err != nil || got != tt.want {
			t.Errorf("Retag(%s, %s) = %s, %v; want %s", tt.ref, tt.addr, got, err, tt.want)
		}
	}
	if _, err := Retag("hello", "127.0.0.1:5000"); err == nil {
		t.Error("a reference without a tag was accepted")
	}
}

// FuzzRetargetText: after retargeting, no quoted reference to the example
// registry is left, and text without one is unchanged.
func FuzzRetargetText(f *testing.F) {
	f.Add(`image: "127.0.0.1:5000/examples/hello:v1"`, "10.0.0.1:5000")
	f.Add(`x "127.0.0.1:5000/"127.0.0.1:5000/`, "h:1")
	f.Fuzz(func(t *testing.T, text, addr string) {
		if strings.Contains(addr, ExampleRegistry) || strings.Contains(addr, `"`) {
			return
		}
		out := string(RetargetText([]byte(text), addr))
		if strings.Contains(out, `"`+ExampleRegistry+`/`) {
			t.Fatalf("%q -> %q still names %s", text, out, ExampleRegistry)
		}
		if !strings.Contains(text, `"`+ExampleRegistry+`/`) && out != text {
			t.Fatalf("%q changed to %q", text, out)
		}
	})
}

// FuzzRetag: the tag in an image tarball comes from whoever wrote it. An
// accepted one moves to addr with its repository and tag unchanged, and
// the result is a valid reference on addr.
func FuzzRetag(f *testing.F) {
	for _, s := range []string{"127.0.0.1:5000/examples/hello:v1", "hello:v1", "docker.io/library/busybox", "a/b/c:d", "", ":", "UPPER/x:v1", "h:1/r:t@sha256:00"} {
		f.Add(s)
	}
	const addr = "127.0.0.1:40123"
	f.Fuzz(func(t *testing.T, ref string) {
		got, err := Retag(ref, addr)
		if err != nil {
			return
		}
		orig, err := name.NewTag(ref, name.StrictValidation)
		if err != nil {
			t.Fatalf("Retag(%q) = %q, but the tag does not parse: %v", ref, got, err)
		}
		r, err := name.NewTag(got, name.StrictValidation)
		if err != nil {
			t.Fatalf("Retag(%q) = %q, which does not parse: %v", ref, got, err)
		}
		if r.RegistryStr() != addr || r.RepositoryStr() != orig.RepositoryStr() || r.TagStr() != orig.TagStr() {
			t.Fatalf("Retag(%q) = %q: registry %s repository %s tag %s, want %s %s %s",
				ref, got, r.RegistryStr(), r.RepositoryStr(), r.TagStr(), addr, orig.RepositoryStr(), orig.TagStr())
		}
	})
}
