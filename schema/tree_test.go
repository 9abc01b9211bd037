package schema

import (
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"testing"
	"testing/fstest"
)

func treeSummary(files []File) string {
	s := ""
	for _, f := range files {
		s += fmt.Sprintf("%s %x link=%v", f.Path, f.Hash[:4], f.Link)
		if f.Err != nil {
			s += " err=" + f.Err.Message
		}
		s += "\n"
	}
	return s
}

// changedPaths lists the paths whose entries differ between two MapFS.
func changedPaths(a, b fstest.MapFS) []string {
	var out []string
	for p, f := range a {
		if g, ok := b[p]; !ok || string(g.Data) != string(f.Data) || g.Mode != f.Mode {
			out = append(out, p)
		}
	}
	for p := range b {
		if _, ok := a[p]; !ok {
			out = append(out, p)
		}
	}
	return out
}

// TestUpdateTreeMatchesReadTree: reading only the changed paths gives
// what reading the whole new tree gives, over random trees and changes,
// including hidden directories, other extensions, binary files and links.
func TestUpdateTreeMatchesReadTree(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	names := []string{"a.cue", "b/c.cue", "b/d.yaml", "b.cue", ".hidden/x.cue", "e.txt", "f/g/h.json", "f.cue", "z/y.yml", "bin.cue"}
	random := func() fstest.MapFS {
		fsys := fstest.MapFS{}
		for _, n := range names {
			if rng.IntN(3) == 0 {
				continue
			}
			data := fmt.Sprintf("apps: x%d: {}\n", rng.IntN(3))
			if n == "bin.cue" {
				data = "a\x00b"
			}
			fsys[n] = &fstest.MapFile{Data: []byte(data)}
		}
		return fsys
	}
	opts := LoadOptions{}
	for i := range 300 {
		old, next := random(), random()
		if i%10 == 0 { // a link: the whole tree is read
			next["link.cue"] = &fstest.MapFile{Data: []byte("a.cue"), Mode: fs.ModeSymlink}
		}
		prev, err := ReadTree(old, opts)
		if err != nil {
			t.Fatal(err)
		}
		got, err := UpdateTree(next, prev, changedPaths(old, next), opts)
		if err != nil {
			t.Fatal(err)
		}
		want, err := ReadTree(next, opts)
		if err != nil {
			t.Fatal(err)
		}
		if g, w := treeSummary(got), treeSummary(want); g != w {
			t.Fatalf("case %d: UpdateTree:\n%s\nReadTree:\n%s", i, g, w)
		}
	}
	// The limits hold for the updated tree too.
	old := fstest.MapFS{"a.cue": {Data: []byte("apps: a: {}")}}
	prev, _ := ReadTree(old, opts)
	next := fstest.MapFS{"a.cue": old["a.cue"], "b.cue": {Data: []byte("apps: b: {}")}}
	if _, err := UpdateTree(next, prev, []string{"b.cue"}, LoadOptions{MaxFiles: 1}); !errors.Is(err, ErrTooManyFiles) {
		t.Fatalf("2 files over a limit of 1: %v", err)
	}
}
