package forge

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/capstanhq/capstan/apiserver"
	"github.com/capstanhq/capstan/apiserver/api"
	"github.com/capstanhq/capstan/apiserver/apiservertest"
	"github.com/capstanhq/capstan/apiserver/client"
	"github.com/capstanhq/capstan/gitsync"
)

// fastRetry is a startFlow tweak: a round that failed to write a preview
// is done again after 50 ms (doubling), not 10 s.
func fastRetry(_ *gitsync.RepoConfig, o *Options) { o.Retry = 50 * time.Millisecond }

// previewApp is the App x-pr-1; nil while there is none.
func (fl *prFlow) previewApp() *api.App {
	o, err := fl.cluster.Client.Get(context.Background(), api.Key{Kind: api.KindApp, App: "x-pr-1", Name: "x-pr-1"})
	if err != nil {
		return nil
	}
	return o.(*api.App)
}

// A preview the API does not take for a moment (its store read-only, as
// during a migration) is not listed as deployed: the comment says it is
// not yet, and the worker writes it again on its own once the store
// takes writes, with no push, webhook or poll (it waited for the next
// push, the comment listing it as starting meanwhile).
func TestPreviewCreateRetried(t *testing.T) {
	fl := startFlow(t, "github", "secret-token", fastRetry)
	ctx := context.Background()
	if err := fl.cluster.Store.SetReadOnly(ctx, "a test migration"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = fl.cluster.Store.SetReadOnly(context.Background(), "") })
	n, _ := fl.labelPreview(t)
	defer func() {
		if t.Failed() {
			t.Logf("the comment:\n%s", fl.comment(n))
		}
	}()
	eventually(t, "the comment says the preview is not deployed yet", func() bool {
		body := fl.comment(n)
		return strings.Contains(body, "`x-pr-1`: not deployed yet: the cluster's API did not take it: ") &&
			strings.Contains(body, "a test migration") && strings.Contains(body, "; tried again shortly")
	})
	if fl.previewApp() != nil {
		t.Fatal("a preview written to a read-only store")
	}
	if err := fl.cluster.Store.SetReadOnly(ctx, ""); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the preview written once the store takes writes", func() bool { return fl.previewApp() != nil })
	eventually(t, "the comment lists it", func() bool { return strings.Contains(fl.comment(n), "`x-pr-1`: starting") })
	if e := previewEvent(t, fl.cluster.Client, "x-pr-1", ReasonPreviewRefused); e != nil {
		t.Errorf("a refusal that passed recorded as %s: %s", ReasonPreviewRefused, e.Spec.Message)
	}
}

// A preview the API refuses for good (an App over the API's body limit)
// is shown on the comment with the API's reason and recorded as a
// PreviewRefused event, and not written again by later rounds of the
// same head (it was listed as starting, with no reason anywhere but the
// server's log).
func TestPreviewCreateRefused(t *testing.T) {
	fl := startFlowOn(t, apiservertest.Options{Server: apiserver.Options{MaxBodyBytes: 8 << 10}}, "github", "secret-token", fastRetry)
	f, bare, c := fl.forge, fl.bare, fl.cluster.Client
	big := strings.Replace(previewDesc("v2"), `ports: http: 8080}`, `ports: http: 8080, env: BIG: "`+strings.Repeat("b", 12<<10)+`"}`, 1)
	bare.commit(t, "main", "apps/x.cue", previewDesc("v1"))
	bare.branch(t, "try", "apps/x.cue", big)
	n := f.open("try", "main", "try a big env")
	f.mu.Lock()
	f.prs[n].labels = []string{"preview"}
	f.mu.Unlock()
	hook(t, fl.hookURL, "github", n, "labeled", "p1", true)
	defer func() {
		if t.Failed() {
			t.Logf("the comment:\n%s", fl.comment(n))
		}
	}()
	const why = "`x-pr-1`: not deployed: the cluster's API refused it: "
	eventually(t, "the refusal on the comment", func() bool { return strings.Contains(fl.comment(n), why) })
	var e *api.Event
	eventually(t, "the refusal's event", func() bool { e = previewEvent(t, c, "x-pr-1", ReasonPreviewRefused); return e != nil })
	if e.Spec.Type != api.EventWarning || !strings.Contains(e.Spec.Message, "the cluster's API refused it") {
		t.Errorf("event %s %q", e.Spec.Type, e.Spec.Message)
	}
	lists := "GET /repos/org/deploy/pulls/1"
	seen := f.callCount(lists)
	hook(t, fl.hookURL, "github", n, "edited", "p2", true)
	eventually(t, "the pull request looked at again", func() bool { return f.callCount(lists) > seen })
	if e := previewEvent(t, c, "x-pr-1", ReasonPreviewRefused); e.Spec.Count != 1 {
		t.Errorf("the refusal recorded %d times, want once", e.Spec.Count)
	}
	if fl.previewApp() != nil {
		t.Fatal("a preview over the body limit made")
	}
}

// A preview App deleted by hand comes back on the next round, as Argo
// CD's ApplicationSet puts back a generated Application, with the expiry
// it had (it came back only on the next push); one changed by hand is
// written back, and a round that finds it as it should be writes
// nothing; once the label is gone, a deleted preview stays deleted.
func TestPreviewDeletedByHandComesBack(t *testing.T) {
	fl := startFlow(t, "github", "secret-token")
	f, c := fl.forge, fl.cluster.Client
	ctx := context.Background()
	n, _ := fl.labelPreview(t)
	eventually(t, "the preview app", func() bool { return fl.previewApp() != nil })
	first := fl.previewApp()
	if _, err := c.Delete(ctx, api.KeyOf(first), client.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the preview back", func() bool { p := fl.previewApp(); return p != nil && p.Metadata.UID != first.Metadata.UID })
	back := fl.previewApp()
	if back.Metadata.Annotations[AnnotationExpires] != first.Metadata.Annotations[AnnotationExpires] {
		t.Errorf("the preview came back expiring at %s, want %s as before", back.Metadata.Annotations[AnnotationExpires], first.Metadata.Annotations[AnnotationExpires])
	}
	lists := "GET /repos/org/deploy/pulls/1"
	lookAgain := func(delivery string) {
		t.Helper()
		seen := f.callCount(lists)
		hook(t, fl.hookURL, "github", n, "edited", delivery, true)
		eventually(t, "the pull request looked at again", func() bool { return f.callCount(lists) > seen })
	}
	lookAgain("p1b")
	if p := fl.previewApp(); p == nil || p.Metadata.ResourceVersion != back.Metadata.ResourceVersion {
		t.Fatalf("a round of the same head wrote the preview (rv %d -> %v)", back.Metadata.ResourceVersion, p)
	}

	// Scaled by hand: the next round writes it back, as sync reverts
	// production's drift.
	scaled := api.Clone(back)
	scaled.Spec.Workloads[0].Spec.Replicas = 5
	if _, err := c.Update(ctx, scaled); err != nil {
		t.Fatal(err)
	}
	lookAgain("p1c")
	eventually(t, "the preview's replicas written back", func() bool {
		p := fl.previewApp()
		return p != nil && p.Spec.Workloads[0].Spec.Replicas == 1
	})

	f.mu.Lock()
	f.prs[n].labels = nil
	f.mu.Unlock()
	hook(t, fl.hookURL, "github", n, "unlabeled", "p2", true)
	eventually(t, "the preview deleted with the label", func() bool { return fl.previewApp() == nil })
	lookAgain("p3")
	if fl.previewApp() != nil {
		t.Fatal("a preview whose label is gone came back")
	}
}

// A preview deleted at its ttl comes back, for a new ttl, when the
// preview label is removed and added again within one round (no round
// saw the pull request without it), as a reviewer asks for it again; on
// GitHub and GitLab, whose webhooks say which label was added (it stayed
// deleted until the next push, the comment saying so).
func TestPreviewLabelledAgainWithinARound(t *testing.T) {
	for _, kind := range []string{"github", "gitlab"} {
		t.Run(kind, func(t *testing.T) {
			clock := &testClock{t: time.Date(2026, 12, 5, 1, 0, 0, 0, time.UTC)}
			fl := startFlow(t, kind, "secret-token", fastPoll(clock))
			f, bare := fl.forge, fl.bare
			bare.commit(t, "main", "apps/x.cue", previewDesc("v1"))
			bare.branch(t, "try", "apps/x.cue", previewDesc("v2"))
			n := f.open("try", "main", "try v2")
			f.mu.Lock()
			f.prs[n].labels = []string{"preview"}
			f.mu.Unlock()
			eventually(t, "the preview app", func() bool { return fl.previewApp() != nil })
			defer func() {
				if t.Failed() {
					t.Logf("the comment:\n%s", fl.comment(n))
				}
			}()
			clock.add(49 * time.Hour)
			const gone = "`x-pr-1`: not deployed: its ttl passed"
			eventually(t, "the comment says it expired", func() bool { return fl.previewApp() == nil && strings.Contains(fl.comment(n), gone) })

			// Removed and added again: the forge's pull request has the
			// label throughout, as every round sees it.
			unlabeled := "unlabeled"
			if kind == "gitlab" {
				unlabeled = "update"
			}
			hook(t, fl.hookURL, kind, n, unlabeled, "p8", true)
			hookLabeled(t, fl.hookURL, kind, n, "preview", "p9")
			eventually(t, "the preview deployed again", func() bool { return fl.previewApp() != nil })
			if got, want := fl.previewApp().Metadata.Annotations[AnnotationExpires], "2026-12-09T02:00:00Z"; got != want {
				t.Errorf("the preview deployed again expires at %s, want %s (48h from now)", got, want)
			}
			eventually(t, "the comment no longer says it expired", func() bool { return !strings.Contains(fl.comment(n), gone) })
		})
	}
}
