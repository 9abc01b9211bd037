package applier_test

import (
	"context"
	"fmt"
	"testing"
	"testing/fstest"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/capstanhq/capstan/apiserver/apiservertest"
	"github.com/capstanhq/capstan/gitsync"
	"github.com/capstanhq/capstan/gitsync/applier"
)

// gauge reads one gauge of reg by name and repo label, -1 when absent.
func gauge(t *testing.T, reg *prometheus.Registry, name, repo string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "repo" && l.GetValue() == repo {
					return m.GetGauge().GetValue()
				}
			}
		}
	}
	return -1
}

// TestMetricsSayWhatIsRefused: a commit that syncs but leaves an app's
// descriptor rejected, or a file that does not parse, shows in the
// gauges an operator alerts on; the fix brings them back to 0.
func TestMetricsSayWhatIsRefused(t *testing.T) {
	cl := apiservertest.Start(t, apiservertest.Options{})
	reg := prometheus.NewRegistry()
	ap, err := applier.New(applier.Options{Client: cl.Client, RepoURLs: map[string]string{"demo": "file:///demo"}, Registry: reg})
	if err != nil {
		t.Fatal(err)
	}
	defer ap.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, name := range []string{"capstan_gitsync_rejected_apps", "capstan_gitsync_repository_errors"} {
		if got := gauge(t, reg, name, "demo"); got != 0 {
			t.Errorf("%s before any commit = %v, want 0", name, got)
		}
	}
	commit := 0
	apply := func(files map[string]string) {
		t.Helper()
		commit++
		fsys := fstest.MapFS{}
		for p, data := range files {
			fsys[p] = &fstest.MapFile{Data: []byte(data)}
		}
		snap := gitsync.Snapshot{Repo: "demo", FS: fsys, CommitInfo: gitsync.CommitInfo{Commit: fmt.Sprintf("%040x", commit)}}
		if err := ap.Apply(ctx, snap); err != nil {
			t.Fatalf("commit %d: %v", commit, err)
		}
	}
	check := func(step string, rejected, errs float64) {
		t.Helper()
		if got := gauge(t, reg, "capstan_gitsync_rejected_apps", "demo"); got != rejected {
			t.Errorf("%s: rejected apps = %v, want %v", step, got, rejected)
		}
		if got := gauge(t, reg, "capstan_gitsync_repository_errors", "demo"); got != errs {
			t.Errorf("%s: repository errors = %v, want %v", step, got, errs)
		}
	}
	good := `apps: web: pods: web: containers: c: image: "reg/web:v1"` + "\n"
	apply(map[string]string{
		"web.cue": good,
		"bad.cue": `apps: bad: pods: web: replicas: -3, containers: c: image: "reg/bad:v1"` + "\n",
	})
	check("an app rejected", 1, 0)
	apply(map[string]string{"web.cue": good, "bad.cue": "apps: bad: {"})
	// The apps the file seems to declare stay rejected, and the file is
	// the repository's error.
	check("a file that does not parse", 1, 1)
	apply(map[string]string{"web.cue": good})
	check("fixed", 0, 0)
}
