package schema

import (
	"path"
	"strings"
	"testing"

	"github.com/capstanhq/capstan/apiserver/api"
)

// FuzzFilePaths: a from path that cleanRepoPath accepts stays inside the
// tree, and a mount path that api.CleanFilePath accepts is clean and
// absolute, whatever the input.
func FuzzFilePaths(f *testing.F) {
	for _, s := range []string{"config/a.conf", "../x", "a/../../b", "/etc/x", "a//b", "./a", `a\..\b`, "/etc/hosts", "/proc/1", "/a/", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		if cleanRepoPath(p) == "" {
			c := path.Clean(p)
			if c != p || strings.HasPrefix(c, "/") || c == ".." || strings.HasPrefix(c, "../") {
				t.Fatalf("from %q accepted, but it is not a clean path inside the tree", p)
			}
		}
		if api.CleanFilePath(p) == "" {
			if !strings.HasPrefix(p, "/") || path.Clean(p) != p || p == "/" {
				t.Fatalf("mount path %q accepted, but it is not a clean absolute file path", p)
			}
		}
	})
}
