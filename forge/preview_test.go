package forge

import (
	"context"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/capstanhq/capstan/apiserver/api"
	"github.com/capstanhq/capstan/apiserver/client"
	"github.com/capstanhq/capstan/reconcile/app"
	"github.com/capstanhq/capstan/schema"
)

func previewDesc(tag string) string {
	return `apps: x: {
	preview: {enabled: true, ttl: "48h"}
	pods: web: {
		replicas: 3
		containers: c: {image: "r/x:` + tag + `", ports: http: 8080}
		service: {ports: http: 80, external: true}
	}
}
`
}

func TestPreviewApps(t *testing.T) {
	now := time.Date(2026, 12, 5, 1, 0, 0, 0, time.UTC)
	res, err := schema.Load(fstest.MapFS{"x.cue": {Data: []byte(previewDesc("v2"))},
		"y.cue": {Data: []byte(`apps: y: pods: p: containers: c: image: "r/y:v1"`)}}, schema.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	got := PreviewApps(res, "deploy", 42, now)
	if len(got) != 1 {
		t.Fatalf("%d previews, want only x's", len(got))
	}
	a := got[0]
	if a.Metadata.Name != "x-pr-42" || a.Metadata.App != "x-pr-42" || a.Metadata.Labels[LabelPreviewOf] != "x" || a.Metadata.Labels[LabelPreviewPR] != "42" {
		t.Errorf("metadata %+v", a.Metadata)
	}
	if a.Spec.Workloads[0].Spec.Replicas != 1 || a.Spec.Preview != nil {
		t.Errorf("spec %+v: want 1 replica and no preview of the preview", a.Spec)
	}
	if Expired(a, now.Add(47*time.Hour)) || !Expired(a, now.Add(48*time.Hour)) {
		t.Error("a 48h preview expires at 48h")
	}
	if PreviewName(strings.Repeat("a", 60), 42) != "" {
		t.Error("a preview name over 63 characters")
	}
}

// A pull request labelled "preview" deploys its head as x-pr-N (one
// replica), its node-port URL is posted on the pull request, a push
// updates it, closing the pull request deletes it, and the production App
// is never written.
func TestPreviewFlow(t *testing.T) {
	fl := startFlow(t, "github", "secret-token")
	f, bare, c := fl.forge, fl.bare, fl.cluster.Client
	ctx := context.Background()
	bare.commit(t, "main", "apps/x.cue", previewDesc("v1"))
	res, err := schema.Load(fstest.MapFS{"x.cue": {Data: []byte(previewDesc("v1"))}}, schema.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	prod, err := c.Create(ctx, res.Apps[0].App)
	if err != nil {
		t.Fatal(err)
	}
	prodRV := prod.Meta().ResourceVersion

	bare.branch(t, "try", "apps/x.cue", previewDesc("v2"))
	n := f.open("try", "main", "try v2")
	f.prs[n].labels = []string{"preview"}
	hook(t, fl.hookURL, "github", n, "labeled", "p1", true)
	preview := func() *api.App {
		o, err := c.Get(ctx, api.Key{Kind: api.KindApp, App: "x-pr-1", Name: "x-pr-1"})
		if err != nil {
			return nil
		}
		return o.(*api.App)
	}
	eventually(t, "the preview app", func() bool { return preview() != nil })
	p := preview()
	if w := p.Spec.Workloads[0].Spec; w.Replicas != 1 || w.Template.Containers[0].Image != "r/x:v2" {
		t.Fatalf("preview workload %+v: want 1 replica of r/x:v2", w)
	}
	// The app controller makes its service; the server allocates the
	// node port.
	_, svcs := app.Desired(p)
	for _, s := range svcs {
		if _, err := c.Create(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, "the preview URL on the pull request", func() bool { return strings.Contains(fl.comment(n), "`x-pr-1`: http://10.0.0.1:") })

	bare.branch(t, "try", "apps/x.cue", previewDesc("v3"))
	f.syncHead(n)
	hook(t, fl.hookURL, "github", n, "synchronize", "p2", true)
	eventually(t, "the preview updated", func() bool {
		p := preview()
		return p != nil && p.Spec.Workloads[0].Spec.Template.Containers[0].Image == "r/x:v3"
	})

	f.mu.Lock()
	f.prs[n].open = false
	f.mu.Unlock()
	hook(t, fl.hookURL, "github", n, "closed", "p3", true)
	eventually(t, "the preview deleted", func() bool { return preview() == nil })
	o, err := c.Get(ctx, api.Key{Kind: api.KindApp, App: "x", Name: "x"})
	if err != nil || o.Meta().ResourceVersion != prodRV {
		t.Fatalf("production app written (rv %d -> %v, %v)", prodRV, o.Meta().ResourceVersion, err)
	}
	objs, _, _ := c.List(ctx, api.KindApp, client.ListOptions{})
	if len(objs) != 1 {
		t.Errorf("%d apps left, want production only", len(objs))
	}
}
