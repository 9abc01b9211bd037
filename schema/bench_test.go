package schema

import (
	"fmt"
	"testing"
	"testing/fstest"
)

// benchRepo is a tree of n apps, one file each, each app with two pod
// groups, three containers and a service.
func benchRepo(n int) fstest.MapFS {
	fsys := fstest.MapFS{}
	for i := range n {
		fsys[fmt.Sprintf("apps/app%04d.cue", i)] = &fstest.MapFile{Data: []byte(appSource(i, "v1"))}
	}
	return fsys
}

// BenchmarkLoadFull loads 1,000 apps in 1,000 files from scratch.
func BenchmarkLoadFull(b *testing.B) {
	fsys := benchRepo(1000)
	b.ReportAllocs()
	for b.Loop() {
		res, err := Load(fsys, LoadOptions{})
		if err != nil || len(res.Valid()) != 1000 {
			b.Fatalf("load: %v, %d valid", err, len(res.Valid()))
		}
	}
}

// BenchmarkLoadOneChanged re-loads the 1,000-app tree after a commit that
// changes one app: only that app is parsed and evaluated again.
func BenchmarkLoadOneChanged(b *testing.B) {
	fsys := benchRepo(1000)
	l, err := NewLoader()
	if err != nil {
		b.Fatal(err)
	}
	if _, err := l.Load(fsys, LoadOptions{}); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		fsys["apps/app0500.cue"] = &fstest.MapFile{Data: []byte(appSource(500, fmt.Sprintf("v%d", i+1)))}
		res, err := l.Load(fsys, LoadOptions{})
		if err != nil || len(res.Evaluated) != 1 || len(res.Valid()) != 1000 {
			b.Fatalf("load: %v, evaluated %v, %d valid", err, res.Evaluated, len(res.Valid()))
		}
	}
}
