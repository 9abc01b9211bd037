package sandbox_test

import (
	"context"
	"fmt"
	"testing"
	"testing/fstest"

	"github.com/capstanhq/capstan/schema"
	"github.com/capstanhq/capstan/schema/sandbox"
)

func benchTree(n int) fstest.MapFS {
	fsys := fstest.MapFS{}
	for i := range n {
		fsys[fmt.Sprintf("app%05d.cue", i)] = benchFile(i, 1)
	}
	return fsys
}

func benchFile(i, version int) *fstest.MapFile {
	return &fstest.MapFile{Data: fmt.Appendf(nil, `apps: app%05d: pods: web: {
	replicas: 2
	containers: web: {image: "reg/app:v%d", ports: http: 8080}
	service: ports: http: 80
}
`, i, version)}
}

type loadFunc func(fsys fstest.MapFS, commit string) (*schema.Result, error)

// BenchmarkOneChanged measures the cost of the evaluation sandbox on a
// normal commit: a tree of N apps is loaded once, then each iteration
// changes one app and loads again, in process (the loader the server
// used before the sandbox) and through the sandbox's child process.
func BenchmarkOneChanged(b *testing.B) {
	for _, n := range []int{100, 1000} {
		b.Run(fmt.Sprintf("apps=%d/in-process", n), func(b *testing.B) {
			l, err := schema.NewLoader()
			if err != nil {
				b.Fatal(err)
			}
			benchOneChanged(b, n, func(fsys fstest.MapFS, commit string) (*schema.Result, error) {
				return l.Load(fsys, schema.LoadOptions{Commit: commit})
			})
		})
		b.Run(fmt.Sprintf("apps=%d/sandbox", n), func(b *testing.B) {
			e, err := sandbox.New(sandbox.Options{})
			if err != nil {
				b.Fatal(err)
			}
			defer e.Close()
			benchOneChanged(b, n, func(fsys fstest.MapFS, commit string) (*schema.Result, error) {
				return e.Load(context.Background(), fsys, schema.LoadOptions{Commit: commit})
			})
		})
	}
}

func benchOneChanged(b *testing.B, n int, load loadFunc) {
	fsys := benchTree(n)
	if _, err := load(fsys, "c0"); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := range b.N {
		fsys["app00042.cue"] = benchFile(42, i+2)
		res, err := load(fsys, fmt.Sprint("c", i+1))
		if err != nil || len(res.Evaluated) != 1 || len(res.Valid()) != n {
			b.Fatalf("load: %v, evaluated %v, %d valid", err, res.Evaluated, len(res.Valid()))
		}
	}
}

// BenchmarkFirstLoad is the first load of N apps: in process, and
// through a child process started for it.
func BenchmarkFirstLoad(b *testing.B) {
	const n = 1000
	fsys := benchTree(n)
	b.Run("in-process", func(b *testing.B) {
		for b.Loop() {
			if res, err := schema.Load(fsys, schema.LoadOptions{}); err != nil || len(res.Valid()) != n {
				b.Fatal(err)
			}
		}
	})
	b.Run("sandbox", func(b *testing.B) {
		for b.Loop() {
			e, err := sandbox.New(sandbox.Options{})
			if err != nil {
				b.Fatal(err)
			}
			res, err := e.Load(context.Background(), fsys, schema.LoadOptions{})
			e.Close()
			if err != nil || len(res.Valid()) != n {
				b.Fatal(err)
			}
		}
	})
}
