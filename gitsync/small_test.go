package gitsync

import (
	"os"
	"path/filepath"
	"testing"
)

func TestRefEvent(t *testing.T) {
	gd := "/r/.git"
	tests := []struct {
		name string
		file string
		want bool
	}{
		{"branch ref", "/r/.git/refs/heads/main", true},
		{"nested branch ref", "/r/.git/refs/heads/feature/x", true},
		{"tag ref", "/r/.git/refs/tags/v1", true},
		{"packed refs", "/r/.git/packed-refs", true},
		{"HEAD", "/r/.git/HEAD", true},
		{"ref lock", "/r/.git/refs/heads/main.lock", false},
		{"index", "/r/.git/index", false},
		{"index lock", "/r/.git/index.lock", false},
		{"commit message", "/r/.git/COMMIT_EDITMSG", false},
		{"outside", "/r/README", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := refEvent(gd, tt.file); got != tt.want {
				t.Fatalf("refEvent(%s) = %v", tt.file, got)
			}
		})
	}
}

func TestClassifyURL(t *testing.T) {
	tests := []struct {
		name string
		url  string
		kind transportKind
		path string
	}{
		{"absolute path", "/srv/git/x", transportLocal, "/srv/git/x"},
		{"file url", "file:///srv/git/x/", transportLocal, "/srv/git/x"},
		{"file url with localhost", "file://localhost/srv/x", transportLocal, "/srv/x"},
		{"file url with host", "file://other/srv/x", transportInvalid, ""},
		{"https", "https://h/x.git", transportHTTP, ""},
		{"http without host", "http:///x", transportInvalid, ""},
		{"ssh", "ssh://git@h:2222/x.git", transportSSH, ""},
		{"scp-like", "git@github.com:org/x.git", transportSSH, ""},
		{"relative path", "x/y", transportInvalid, ""},
		{"git protocol", "git://h/x", transportInvalid, ""},
		{"empty", "", transportInvalid, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			kind, p := classifyURL(tt.url)
			if kind != tt.kind || p != tt.path {
				t.Fatalf("classifyURL(%q) = %v %q, want %v %q", tt.url, kind, p, tt.kind, tt.path)
			}
		})
	}
}

func TestGitDir(t *testing.T) {
	work := newGitRepo(t)
	bare := filepath.Join(t.TempDir(), "b.git")
	work.git("init", "-q", "--bare", bare)
	linked := filepath.Join(t.TempDir(), "linked")
	if err := os.MkdirAll(linked, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(linked, ".git"), []byte("gitdir: "+filepath.Join(work.dir, ".git")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		dir  string
		want string
		ok   bool
	}{
		{"worktree", work.dir, filepath.Join(work.dir, ".git"), true},
		{"bare", bare, bare, true},
		{"gitdir file", linked, filepath.Join(work.dir, ".git"), true},
		{"not a repo", t.TempDir(), "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := gitDir(tt.dir)
			if got != tt.want || ok != tt.ok {
				t.Fatalf("gitDir(%s) = %q %v, want %q %v", tt.dir, got, ok, tt.want, tt.ok)
			}
		})
	}
}

// The git cache's data directory, made beforehand world-readable, is made
// private when the Syncer starts.
func TestDataDirMadePrivate(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "gitsync")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	unlock, err := lockDataDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	st, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o700 {
		t.Fatalf("data dir mode %04o, want 0700", st.Mode().Perm())
	}
}

func TestSSHHostPort(t *testing.T) {
	for url, want := range map[string]string{
		"ssh://git@git.example.com:2222/org/deploy.git": "git.example.com:2222",
		"ssh://git@git.example.com/org/deploy.git":      "git.example.com:22",
		"git@github.com:org/deploy.git":                 "github.com:22",
		"ssh://git@[::1]:2222/deploy.git":               "[::1]:2222",
	} {
		if got := sshHostPort(url); got != want {
			t.Errorf("sshHostPort(%q) = %q, want %q", url, got, want)
		}
	}
}
