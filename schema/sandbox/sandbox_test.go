package sandbox_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/capstanhq/capstan/schema"
	"github.com/capstanhq/capstan/schema/sandbox"
)

func TestMain(m *testing.M) {
	sandbox.Main()
	os.Exit(m.Run())
}

func appFile(name, image string) *fstest.MapFile {
	return &fstest.MapFile{Data: []byte(fmt.Sprintf("apps: %s: pods: web: containers: c: image: %q\n", name, image))}
}

func testdata(t *testing.T, name string) *fstest.MapFile {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return &fstest.MapFile{Data: b}
}

func newEvaluator(t *testing.T, opts sandbox.Options) *sandbox.Evaluator {
	t.Helper()
	e, err := sandbox.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

// TestLoadLikeSchema: the child's result is the in-process loader's, and
// a second load evaluates only what changed.
func TestLoadLikeSchema(t *testing.T) {
	fsys := fstest.MapFS{"a.cue": appFile("a", "reg/a:v1"), "b.cue": appFile("b", "reg/b:v1"),
		"bad.cue": {Data: []byte("apps: bad: pods: web: replicas: \"two\"\n")}}
	e := newEvaluator(t, sandbox.Options{})
	lo := schema.LoadOptions{Repo: "demo", Commit: "c1", PathPrefix: "apps"}
	got, err := e.Load(context.Background(), fsys, lo)
	if err != nil {
		t.Fatal(err)
	}
	want, err := schema.Load(fsys, lo)
	if err != nil {
		t.Fatal(err)
	}
	if g, w := summary(got), summary(want); g != w {
		t.Fatalf("sandbox:\n%s\nin process:\n%s", g, w)
	}
	fsys["b.cue"] = appFile("b", "reg/b:v2")
	lo.Commit = "c2"
	got, err = e.Load(context.Background(), fsys, lo)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(got.Evaluated) != "[b]" {
		t.Errorf("evaluated %v, want [b]", got.Evaluated)
	}
	for _, a := range got.Valid() {
		if a.Metadata.Source.Commit != "c2" {
			t.Errorf("app %s: source commit %s, want c2", a.Metadata.Name, a.Metadata.Source.Commit)
		}
	}
	if img := got.Valid()[1].Spec.Workloads[0].Spec.Template.Containers[0].Image; img != "reg/b:v2" {
		t.Errorf("b's image %s, want reg/b:v2", img)
	}

	// A rename (the child holds the content already), a removal, a new
	// directory whose files sort before a.cue in walk order, and a file
	// that adds to an app declared elsewhere.
	fsys["z.cue"] = fsys["b.cue"]
	delete(fsys, "b.cue")
	delete(fsys, "bad.cue")
	fsys["a/x.cue"] = &fstest.MapFile{Data: []byte("apps: a: pods: web: replicas: 3\n")}
	fsys["a/y.cue"] = appFile("y", "reg/y:v1")
	lo.Commit = "c3"
	got, err = e.Load(context.Background(), fsys, lo)
	if err != nil {
		t.Fatal(err)
	}
	if want, err = schema.Load(fsys, lo); err != nil {
		t.Fatal(err)
	}
	if g, w := summary(got), summary(want); g != w {
		t.Fatalf("after a rename and a removal, sandbox:\n%s\nin process:\n%s", g, w)
	}
}

func summary(r *schema.Result) string {
	var b strings.Builder
	for _, a := range r.Apps {
		fmt.Fprintf(&b, "%s %v valid=%v", a.Name, a.Files, a.Valid())
		if a.App != nil {
			fmt.Fprintf(&b, " %s@%s %d workloads", a.App.Metadata.Source.Path, a.App.Metadata.Source.Commit, len(a.App.Spec.Workloads))
		}
		for _, e := range a.Errors {
			fmt.Fprintf(&b, "\n  %s", e)
		}
		b.WriteString("\n")
	}
	for _, e := range r.Errors {
		fmt.Fprintf(&b, "repo: %s\n", e)
	}
	return b.String()
}

// TestBombsRefused: the doubling bomb (memory) and the triple
// comprehension (time) are refused with a message naming the bound and
// the file, the other apps load, and a new Evaluator on the same state
// file refuses them again without evaluating them.
func TestBombsRefused(t *testing.T) {
	fsys := fstest.MapFS{
		"apps/bomb.cue": testdata(t, "bomb.cue"),
		"apps/slow.cue": testdata(t, "slow.cue"),
		"apps/good.cue": appFile("good", "reg/good:v1"),
	}
	state := filepath.Join(t.TempDir(), "refused.json")
	opts := sandbox.Options{Timeout: time.Second, Memory: 256 << 20, StateFile: state}
	check := func(e *sandbox.Evaluator) {
		t.Helper()
		res, err := e.Load(context.Background(), fsys, schema.LoadOptions{})
		if err != nil {
			t.Fatal(err)
		}
		byName := map[string]schema.AppResult{}
		for _, a := range res.Apps {
			byName[a.Name] = a
		}
		if !byName["good"].Valid() {
			t.Errorf("good: %v", byName["good"].Errors)
		}
		for name, want := range map[string]string{
			// Which bound a runaway hits first depends on the machine.
			"bomb": "evaluation exceeded 1s / 256 MiB in apps/bomb.cue (out of ",
			"slow": "evaluation exceeded 1s / 256 MiB in apps/slow.cue (out of ",
		} {
			a := byName[name]
			if a.Valid() || len(a.Errors) != 1 || !strings.Contains(a.Errors[0].Message, want) {
				t.Errorf("%s: errors %v, want one with %q", name, a.Errors, want)
			}
		}
	}
	e := newEvaluator(t, opts)
	check(e)
	if n := e.Starts(); n != 3 {
		t.Errorf("%d evaluation processes started, want 3 (the first, one after each refusal)", n)
	}
	check(e) // refused inputs are not evaluated again by the same evaluator
	if n := e.Starts(); n != 3 {
		t.Errorf("%d evaluation processes started after a second load, want still 3", n)
	}
	e.Close()

	restarted := newEvaluator(t, opts)
	check(restarted)
	if n := restarted.Starts(); n != 1 {
		t.Errorf("after a restart: %d evaluation processes started, want 1 (nothing refused again)", n)
	}
}

// TestMemoryBound: with time to spare, the doubling bomb runs out of
// memory, and the process that loads it does not.
func TestMemoryBound(t *testing.T) {
	fsys := fstest.MapFS{"bomb.cue": testdata(t, "bomb.cue")}
	e := newEvaluator(t, sandbox.Options{Timeout: time.Minute, Memory: 128 << 20})
	res, err := e.Load(context.Background(), fsys, schema.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want := "evaluation exceeded 1m0s / 128 MiB in bomb.cue (out of memory)"
	if errs := res.AllErrors(); len(errs) != 1 || !strings.Contains(errs[0].Message, want) {
		t.Fatalf("errors %v, want one with %q", errs, want)
	}
}

// TestCancelStopsEvaluation: ending the context kills a runaway
// evaluation at once (without it, the load would run for the hour the
// bound allows and the test would time out).
func TestCancelStopsEvaluation(t *testing.T) {
	fsys := fstest.MapFS{"slow.cue": testdata(t, "slow.cue")}
	e := newEvaluator(t, sandbox.Options{Timeout: time.Hour})
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	_, err := e.Load(ctx, fsys, schema.LoadOptions{})
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "evaluation stopped") {
		t.Fatalf("load: %v, want it stopped by the context", err)
	}
}

// TestChildWithoutMain: a binary that does not serve requests is an
// error that says what is missing, not a hang.
func TestChildWithoutMain(t *testing.T) {
	e := newEvaluator(t, sandbox.Options{Exe: "/bin/true"})
	_, err := e.Load(context.Background(), fstest.MapFS{"a.cue": appFile("a", "x")}, schema.LoadOptions{})
	if err == nil || !strings.Contains(err.Error(), "must call sandbox.Main") {
		t.Fatalf("load: %v, want an error naming sandbox.Main", err)
	}
}

// TestBoundTooSmallForTheChild: a memory bound the evaluation process
// cannot start under fails every load before any descriptor is read; the
// error says so and names the flag to raise, instead of a bare "out of
// memory" that reads like a descriptor's fault.
func TestBoundTooSmallForTheChild(t *testing.T) {
	e := newEvaluator(t, sandbox.Options{Memory: 1 << 20})
	_, err := e.Load(context.Background(), fstest.MapFS{"a.cue": appFile("a", "x")}, schema.LoadOptions{})
	if err == nil {
		t.Fatal("load under a 1 MiB bound succeeded, want an error")
	}
	for _, want := range []string{"out of memory", "before it read any descriptor", "1 MiB", "--eval-memory"} {
		if !strings.Contains(err.Error(), want) {
			t.Fatalf("load: %v, want an error containing %q", err, want)
		}
	}
}
