package forge

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"filippo.io/age"

	"github.com/capstanhq/capstan/apiserver/api"
	"github.com/capstanhq/capstan/apiserver/client"
	"github.com/capstanhq/capstan/gitsync"
	"github.com/capstanhq/capstan/reconcile/app"
	"github.com/capstanhq/capstan/schema"
	"github.com/capstanhq/capstan/secrets"
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
	got, refused := PreviewApps(res, PreviewOptions{Repo: "deploy", PR: 42, Now: now})
	if len(got) != 1 || len(refused) != 0 {
		t.Fatalf("%d previews (refused %v), want only x's", len(got), refused)
	}
	a := got[0]
	if a.Metadata.Name != "x-pr-42" || a.Metadata.App != "x-pr-42" || a.Metadata.Labels[LabelPreviewOf] != "x" || a.Metadata.Labels[LabelPreviewPR] != "42" {
		t.Errorf("metadata %+v", a.Metadata)
	}
	if a.Spec.Workloads[0].Spec.Replicas != 1 || a.Spec.Preview != nil {
		t.Errorf("spec %+v: want 1 replica and no preview of the preview", a.Spec)
	}
	if sel := a.Spec.Services[0].Spec.Selector; sel[api.LabelApp] != "x-pr-42" {
		t.Errorf("the preview's service selects %v, want its own pods", sel)
	}
	if Expired(a, now.Add(47*time.Hour)) || !Expired(a, now.Add(48*time.Hour)) {
		t.Error("a 48h preview expires at 48h")
	}
	if PreviewName(strings.Repeat("a", 60), 42) != "" {
		t.Error("a preview name over 63 characters")
	}
}

// The repository's policy: every app previewed unless it opts out,
// secrets only when allowed, and a quota on pods and requests.
func TestPreviewPolicy(t *testing.T) {
	const descs = `
apps: opted: {preview: enabled: true, pods: web: {replicas: 4, ordered: true, volumes: data: persistent: size: "1Gi", containers: c: {image: "r/o:1", resources: {cpu: "500m", memory: "64Mi"}, mounts: data: "/data"}}}
apps: plain: pods: {
	web: {replicas: 3, containers: c: {image: "r/p:1", resources: {cpu: "250m", memory: "32Mi"}}}
	batch: {job: {parallelism: 2}, containers: c: {image: "r/p:1", resources: {cpu: "250m", memory: "32Mi"}}}
}
apps: out: {preview: enabled: false, pods: web: containers: c: image: "r/q:1"}
apps: bare: pods: web: containers: c: image: "r/b:1"
apps: daemon: pods: agent: {everyNode: true, containers: c: image: "r/d:1"}
apps: secret: {
	secrets: db: from: "secrets/db.secret.yaml"
	pods: web: containers: c: {image: "r/s:1", env: PW: secret: {name: "db", key: "password"}}
}
`
	res, err := schema.Load(fstest.MapFS{"a.cue": {Data: []byte(descs)}}, schema.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if errs := res.AllErrors(); len(errs) != 0 {
		t.Fatal(errs)
	}
	// Six nodes an everyNode group runs on (a cordoned one among them,
	// as for a DaemonSet), and one NotReady that it does not.
	var nodes []*api.Node
	for i := range 7 {
		n := api.KindNode.New().(*api.Node)
		n.Metadata.Name = fmt.Sprintf("n%d", i)
		n.Status.Conditions = []api.Condition{{Type: api.NodeReady, Status: api.ConditionTrue}}
		switch i {
		case 5:
			n.Status.Conditions[0].Status = api.ConditionFalse
		case 6:
			n.Spec.Unschedulable = true
		}
		nodes = append(nodes, n)
	}
	q := func(pods int, cpu, mem string) gitsync.PreviewQuota {
		pq := gitsync.PreviewQuota{Pods: pods}
		if cpu != "" {
			pq.CPU = api.MustParseQuantity(cpu)
		}
		if mem != "" {
			pq.Memory = api.MustParseQuantity(mem)
		}
		return pq
	}
	for _, tt := range []struct {
		name    string
		policy  gitsync.PreviewPolicy
		fork    bool              // the pull request comes from a fork
		want    []string          // previews made
		refused map[string]string // preview: part of the reason
	}{
		{name: "apps opt in", policy: gitsync.PreviewPolicy{}, want: []string{"opted-pr-7"}},
		{name: "every app but the one that opts out", policy: gitsync.PreviewPolicy{AllApps: true},
			want:    []string{"bare-pr-7", "daemon-pr-7", "opted-pr-7", "plain-pr-7"},
			refused: map[string]string{"secret-pr-7": "uses secrets (db) and this repository gives none to previews (forge.previews.secrets)"}},
		{name: "secrets allowed", policy: gitsync.PreviewPolicy{AllApps: true, Secrets: true},
			want: []string{"bare-pr-7", "daemon-pr-7", "opted-pr-7", "plain-pr-7", "secret-pr-7"}},
		// Anyone can push to a fork's pull request once it is labelled:
		// its previews never open the repository's secrets, as GitHub
		// Actions gives a fork's pull request none.
		{name: "secrets allowed, not to a fork", policy: gitsync.PreviewPolicy{AllApps: true, Secrets: true}, fork: true,
			want:    []string{"bare-pr-7", "daemon-pr-7", "opted-pr-7", "plain-pr-7"},
			refused: map[string]string{"secret-pr-7": "uses secrets (db) and the pull request comes from a fork"}},
		// plain: one web replica and two job pods; daemon: one per node.
		{name: "pods", policy: gitsync.PreviewPolicy{AllApps: true, Secrets: true, Quota: q(2, "", "")},
			want: []string{"bare-pr-7", "opted-pr-7", "secret-pr-7"},
			refused: map[string]string{"plain-pr-7": "it runs 3 pods, over the 2 of this repository's preview quota",
				"daemon-pr-7": "it runs 6 pods, over the 2"}},
		{name: "default pods", policy: gitsync.PreviewPolicy{AllApps: true, Secrets: true},
			want: []string{"bare-pr-7", "daemon-pr-7", "opted-pr-7", "plain-pr-7", "secret-pr-7"}},
		{name: "cpu", policy: gitsync.PreviewPolicy{AllApps: true, Secrets: true, Quota: q(-1, "700m", "")},
			want: []string{"opted-pr-7"},
			refused: map[string]string{"plain-pr-7": "its pods request 750m CPU, over the 700m",
				"bare-pr-7":   "container c of pod group web requests no cpu, and the preview quota counts requests",
				"daemon-pr-7": "container c of pod group agent requests no cpu", "secret-pr-7": "requests no cpu"}},
		{name: "memory", policy: gitsync.PreviewPolicy{Quota: q(0, "", "64Mi")}, want: []string{"opted-pr-7"}},
		{name: "memory over", policy: gitsync.PreviewPolicy{Quota: q(0, "", "63Mi")},
			refused: map[string]string{"opted-pr-7": "its pods request 64Mi memory, over the 63Mi"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			apps, refused := PreviewApps(res, PreviewOptions{Repo: "deploy", PR: 7, Now: time.Now(), Policy: tt.policy, Nodes: nodes, Fork: tt.fork})
			var names []string
			for _, a := range apps {
				names = append(names, a.Metadata.Name)
				if a.Spec.Preview != nil {
					t.Errorf("%s: a preview of the preview", a.Metadata.Name)
				}
				for _, w := range a.Spec.Workloads {
					for _, v := range w.Spec.Template.Volumes {
						if v.Persistent != nil && v.Persistent.Reclaim != api.ReclaimDelete {
							t.Errorf("%s: volume %s kept after the preview (reclaim %q)", a.Metadata.Name, v.Name, v.Persistent.Reclaim)
						}
					}
				}
			}
			slices.Sort(names)
			if !slices.Equal(names, tt.want) {
				t.Errorf("previews %v, want %v", names, tt.want)
			}
			if len(refused) != len(tt.refused) {
				t.Errorf("refused %v, want %v", refused, tt.refused)
			}
			for _, r := range refused {
				if want, ok := tt.refused[r.App]; !ok || !strings.Contains(r.Refused, want) {
					t.Errorf("%s refused: %q, want %q", r.App, r.Refused, want)
				}
			}
		})
	}
}

// A pull request labelled "preview" deploys its head as x-pr-N (one
// replica), its node-port URL is posted on the pull request, a push
// updates it, closing the pull request deletes it and the comment says
// so in place of the URL (it went on linking the deleted preview), and
// the production App is never written.
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
	if body := fl.comment(n); !strings.Contains(body, "; in the cluster `web.x-pr-1.svc:80`") {
		t.Errorf("the comment does not name the preview's service in the cluster:\n%s", body)
	}

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
	eventually(t, "the comment says the preview is deleted", func() bool {
		return strings.Contains(fl.comment(n), "`x-pr-1`: deleted: the pull request is no longer open against main")
	})
	if body := fl.comment(n); strings.Contains(body, "http://10.0.0.1:") {
		t.Errorf("the comment of the closed pull request still links the deleted preview:\n%s", body)
	}
	o, err := c.Get(ctx, api.Key{Kind: api.KindApp, App: "x", Name: "x"})
	if err != nil || o.Meta().ResourceVersion != prodRV {
		t.Fatalf("production app written (rv %d -> %v, %v)", prodRV, o.Meta().ResourceVersion, err)
	}
	objs, _, _ := c.List(ctx, api.KindApp, client.ListOptions{})
	if len(objs) != 1 {
		t.Errorf("%d apps left, want production only", len(objs))
	}
}

// A preview of an app that uses secrets: refused by default, with the
// reason on the pull request; where the repository allows it, the
// preview gets the secret sealed for its own name.
func TestPreviewSecrets(t *testing.T) {
	const desc = `apps: x: {
	preview: enabled: true
	secrets: db: from: "secrets/db.secret.yaml"
	pods: web: containers: c: {image: "r/x:v2", env: PW: secret: {name: "db", key: "password"}}
}
`
	for _, tc := range []struct {
		allowed, fork bool
		refusal       string // "": the preview is made
	}{
		{false, false, "it uses secrets (db) and this repository gives none to previews (forge.previews.secrets)"},
		{true, false, ""},
		// The fork's author may push after the label: no secrets.
		{true, true, "it uses secrets (db) and the pull request comes from a fork, whose previews get none"},
	} {
		allowed := tc.allowed
		t.Run(fmt.Sprintf("allowed=%v,fork=%v", allowed, tc.fork), func(t *testing.T) {
			secretsDir := filepath.Join(t.TempDir(), "secrets")
			keys, err := secrets.LoadOrCreate(secretsDir)
			if err != nil {
				t.Fatal(err)
			}
			fl := startFlow(t, "github", "secret-token", func(rc *gitsync.RepoConfig, o *Options) {
				rc.Forge.Previews.Secrets = allowed
				o.SecretsDir = secretsDir
			})
			f, bare, c := fl.forge, fl.bare, fl.cluster.Client
			ctx := context.Background()
			enc, err := secrets.Encrypt(map[string]string{"password": "hunter2"}, []string{keys.Recipient()}, secrets.EncryptOptions{})
			if err != nil {
				t.Fatal(err)
			}
			bare.commit(t, "main", "apps/secrets/db.secret.yaml", string(enc))
			bare.branch(t, "try", "apps/x.cue", desc)
			n := f.open("try", "main", "try x")
			f.prs[n].labels, f.prs[n].fork = []string{"preview"}, tc.fork
			hook(t, fl.hookURL, "github", n, "labeled", "p1", true)
			defer func() {
				if t.Failed() {
					t.Logf("the comment:\n%s", fl.comment(n))
				}
			}()
			if tc.refusal != "" {
				eventually(t, "the refusal on the pull request", func() bool {
					return strings.Contains(fl.comment(n), "`x-pr-1`: not deployed: "+tc.refusal)
				})
				if objs, _, _ := c.List(ctx, api.KindApp, client.ListOptions{}); len(objs) != 0 {
					t.Fatalf("%d apps made, want none", len(objs))
				}
				return
			}
			var p *api.App
			eventually(t, "the preview app", func() bool {
				o, err := c.Get(ctx, api.Key{Kind: api.KindApp, App: "x-pr-1", Name: "x-pr-1"})
				if err == nil {
					p = o.(*api.App)
				}
				return err == nil
			})
			s := p.Spec.Secrets[0].Spec
			if v, err := keys.Open("x-pr-1", "db", "password", s.Data["password"]); err != nil || v != "hunter2" {
				t.Fatalf("the preview's secret opens to %q, %v; want its value sealed for x-pr-1", v, err)
			}
			if ref := p.Spec.Workloads[0].Spec.Template.Containers[0].Env[0].Secret; ref.Version != s.Versions["password"] || ref.Version == "" {
				t.Errorf("the reference's version %q, the secret's %q", ref.Version, s.Versions["password"])
			}
			if strings.Contains(fl.comment(n), "hunter2") {
				t.Error("the comment holds the secret's value")
			}
		})
	}
}

// testClock is a clock the test moves.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// A preview whose ttl passed while the server was down is deleted when
// the server starts again, and the comment says it expired (the start
// used to renew its ttl, so it ran on for as long as restarts came); a
// restart before the ttl keeps the preview and its expiry as they were.
func TestPreviewExpiredWhileDown(t *testing.T) {
	clock := &testClock{t: time.Date(2026, 12, 5, 1, 0, 0, 0, time.UTC)}
	fl := startFlow(t, "github", "secret-token", func(_ *gitsync.RepoConfig, o *Options) { o.Now = clock.now })
	f, c := fl.forge, fl.cluster.Client
	ctx := context.Background()
	n, _ := fl.labelPreview(t)
	preview := func() *api.App {
		o, err := c.Get(ctx, api.Key{Kind: api.KindApp, App: "x-pr-1", Name: "x-pr-1"})
		if err != nil {
			return nil
		}
		return o.(*api.App)
	}
	eventually(t, "the preview app", func() bool { return preview() != nil })
	eventually(t, "the preview on the comment", func() bool { return strings.Contains(fl.comment(n), "`x-pr-1`: starting") })
	expires := preview().Metadata.Annotations[AnnotationExpires]
	defer func() {
		if t.Failed() {
			t.Logf("the comment:\n%s", fl.comment(n))
		}
	}()

	// Down for 47h of the 48h ttl: the preview stays, expiring when it did.
	// The restarted server has looked at the pull request once it has
	// read its comments, after its previews.
	listComments := fmt.Sprintf("GET /repos/org/deploy/issues/%d/comments", n)
	fl.stop()
	clock.add(47 * time.Hour)
	before := f.callCount(listComments)
	fl.restart()
	eventually(t, "the restarted server's look at the pull request", func() bool { return f.callCount(listComments) > before })
	if p := preview(); p == nil || p.Metadata.Annotations[AnnotationExpires] != expires {
		t.Fatalf("after a restart within its ttl the preview is %v, want it kept, expiring at %s", p, expires)
	}

	// Down past the ttl: deleted at the start, not renewed.
	fl.stop()
	clock.add(2 * time.Hour)
	fl.restart()
	eventually(t, "the expired preview deleted", func() bool { return preview() == nil })
	eventually(t, "the comment says it expired", func() bool {
		return strings.Contains(fl.comment(n), "`x-pr-1`: not deployed: its ttl passed (2026-12-07T01:00:00Z); push to the pull request, or remove its preview label and add it again, to deploy it again")
	})
}

// A preview whose ttl passes while the server runs is deleted by the
// next poll, the comment says so instead of listing it as starting, and
// later polls do not deploy it again.
func TestPreviewExpiresWhileRunning(t *testing.T) {
	clock := &testClock{t: time.Date(2026, 12, 5, 1, 0, 0, 0, time.UTC)}
	fl := startFlow(t, "github", "secret-token", fastPoll(clock))
	f, bare, c := fl.forge, fl.bare, fl.cluster.Client
	ctx := context.Background()
	bare.commit(t, "main", "apps/x.cue", previewDesc("v1"))
	bare.branch(t, "try", "apps/x.cue", previewDesc("v2"))
	n := f.open("try", "main", "try v2")
	f.mu.Lock()
	f.prs[n].labels = []string{"preview"}
	f.mu.Unlock()
	key := api.Key{Kind: api.KindApp, App: "x-pr-1", Name: "x-pr-1"}
	exists := func() bool { _, err := c.Get(ctx, key); return err == nil }
	eventually(t, "the preview app", exists)
	eventually(t, "the preview on the comment", func() bool { return strings.Contains(fl.comment(n), "`x-pr-1`: starting") })
	defer func() {
		if t.Failed() {
			t.Logf("the comment:\n%s", fl.comment(n))
		}
	}()
	clock.add(49 * time.Hour)
	eventually(t, "the expired preview deleted", func() bool { return !exists() })
	eventually(t, "the comment says it expired", func() bool {
		return strings.Contains(fl.comment(n), "`x-pr-1`: not deployed: its ttl passed (2026-12-07T01:00:00Z)")
	})
	if e := previewEvent(t, c, "x-pr-1", ReasonPreviewExpired); e == nil || e.Spec.Type != api.EventNormal {
		t.Errorf("no Normal %s event of x-pr-1: %+v", ReasonPreviewExpired, e)
	}
	lists := "GET /repos/org/deploy/pulls"
	seen := f.callCount(lists)
	eventually(t, "two more polls", func() bool { return f.callCount(lists) >= seen+2 })
	if exists() {
		t.Fatal("the expired preview deployed again by a poll")
	}
}

// A pull request closed while the server was down has its preview
// deleted when the server starts again (its listing of the open pull
// requests no longer names it), and its comment, found again by its
// marker, says so in place of the preview's line, as for a close seen
// live (it went on showing the deleted preview as deployed).
func TestPreviewDeletedAfterCloseWhileDown(t *testing.T) {
	fl := startFlow(t, "github", "secret-token")
	f, c := fl.forge, fl.cluster.Client
	ctx := context.Background()
	n, _ := fl.labelPreview(t)
	key := api.Key{Kind: api.KindApp, App: "x-pr-1", Name: "x-pr-1"}
	exists := func() bool { _, err := c.Get(ctx, key); return err == nil }
	eventually(t, "the preview app", exists)
	const listed = "- `x-pr-1`: starting (no node port yet); in the cluster `web.x-pr-1.svc:80`"
	eventually(t, "the preview on the pull request", func() bool { return strings.Contains(fl.comment(n), listed) })
	before := fl.comment(n)

	fl.stop()
	f.mu.Lock()
	f.prs[n].open = false
	f.mu.Unlock()
	fl.restart()
	eventually(t, "the preview of the pull request closed while the server was down deleted", func() bool { return !exists() })
	const deleted = "- `x-pr-1`: deleted: the pull request is no longer open against main"
	eventually(t, "the comment says the preview is deleted", func() bool { return strings.Contains(fl.comment(n), deleted) })
	if want := strings.Replace(before, listed, deleted, 1); fl.comment(n) != want {
		t.Errorf("comment after the close:\n%s\nwant the plan kept, the preview's line replaced:\n%s", fl.comment(n), want)
	}
}

// A pull request retargeted from the tracked branch to another has its
// preview deleted on the webhook that says so, on each forge (the
// webhook was ignored for naming another base, so the preview ran until
// the next poll).
func TestPreviewDeletedOnRetarget(t *testing.T) {
	for _, kind := range kinds {
		t.Run(kind, func(t *testing.T) {
			fl := startFlow(t, kind, "secret-token")
			f, bare, c := fl.forge, fl.bare, fl.cluster.Client
			ctx := context.Background()
			bare.commit(t, "main", "apps/x.cue", previewDesc("v1"))
			bare.branch(t, "try", "apps/x.cue", previewDesc("v2"))
			n := f.open("try", "main", "try v2")
			f.mu.Lock()
			f.prs[n].labels = []string{"preview"}
			f.mu.Unlock()
			hook(t, fl.hookURL, kind, n, "labeled", "p1", true)
			key := api.Key{Kind: api.KindApp, App: "x-pr-1", Name: "x-pr-1"}
			exists := func() bool { _, err := c.Get(ctx, key); return err == nil }
			eventually(t, "the preview app", exists)

			f.mu.Lock()
			f.prs[n].base = "release"
			f.mu.Unlock()
			edited := map[string]string{"github": "edited", "gitea": "edited", "gitlab": "update"}[kind]
			if code := hookInto(t, fl.hookURL, kind, n, edited, "p2", "release", true); code != http.StatusAccepted {
				t.Errorf("the retarget webhook answered %d, want 202", code)
			}
			eventually(t, "the preview of the retargeted pull request deleted", func() bool { return !exists() })
			// Other events of pull requests into other branches stay ignored.
			if code := hookInto(t, fl.hookURL, kind, n, "opened", "p3", "release", true); code != http.StatusOK {
				t.Errorf("a webhook of a pull request into release answered %d, want 200", code)
			}
		})
	}
}

// A pull request whose secret file is not encrypted for the cluster's
// key gets a plan that says so, as sync would refuse the app after the
// merge (the plan used to call the head valid).
func TestPlanSecretNotForCluster(t *testing.T) {
	secretsDir := filepath.Join(t.TempDir(), "secrets")
	keys, err := secrets.LoadOrCreate(secretsDir)
	if err != nil {
		t.Fatal(err)
	}
	fl := startFlow(t, "github", "secret-token", func(_ *gitsync.RepoConfig, o *Options) { o.SecretsDir = secretsDir })
	other, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	enc, err := secrets.Encrypt(map[string]string{"password": "hunter2"}, []string{other.Recipient().String()}, secrets.EncryptOptions{})
	if err != nil {
		t.Fatal(err)
	}
	fl.bare.commit(t, "main", "apps/secrets/db.secret.yaml", string(enc))
	fl.bare.branch(t, "try", "apps/x.cue", `apps: x: {
	secrets: db: from: "secrets/db.secret.yaml"
	pods: web: containers: c: {image: "r/x:v2", env: PW: secret: {name: "db", key: "password"}}
}
`)
	n := fl.forge.open("try", "main", "try x")
	hook(t, fl.hookURL, "github", n, "opened", "p1", true)
	eventually(t, "the plan names the recipient missing", func() bool {
		return strings.Contains(fl.comment(n), "not encrypted for the cluster's recipient "+keys.Recipient())
	})
}

// While a cluster key rotation is under way (capstan secret rotate wrote
// the new key before the old in cluster.agekey; its commit is not merged
// yet), sync still decrypts the files encrypted for the old key: a pull
// request's plan takes them too (it used to say every such file was not
// encrypted for the cluster and sync would refuse it).
func TestPlanSecretForTheOldKeyDuringRotation(t *testing.T) {
	secretsDir := filepath.Join(t.TempDir(), "secrets")
	old, err := secrets.LoadOrCreate(secretsDir)
	if err != nil {
		t.Fatal(err)
	}
	idPath := filepath.Join(secretsDir, secrets.IdentityFile)
	oldText, err := os.ReadFile(idPath)
	if err != nil {
		t.Fatal(err)
	}
	next, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(idPath, []byte(next.String()+"\n"+string(oldText)), 0o600); err != nil {
		t.Fatal(err)
	}
	fl := startFlow(t, "github", "secret-token", func(_ *gitsync.RepoConfig, o *Options) { o.SecretsDir = secretsDir })
	enc, err := secrets.Encrypt(map[string]string{"password": "hunter2"}, []string{old.Recipient()}, secrets.EncryptOptions{})
	if err != nil {
		t.Fatal(err)
	}
	fl.bare.commit(t, "main", "apps/secrets/db.secret.yaml", string(enc))
	fl.bare.branch(t, "try", "apps/x.cue", `apps: x: {
	secrets: db: from: "secrets/db.secret.yaml"
	pods: web: containers: c: {image: "r/x:v2", env: PW: secret: {name: "db", key: "password"}}
}
`)
	n := fl.forge.open("try", "main", "try x")
	hook(t, fl.hookURL, "github", n, "opened", "p1", true)
	eventually(t, "the plan comment", func() bool { return strings.Contains(fl.comment(n), "#### App `x`") })
	if body := fl.comment(n); !strings.Contains(body, "**valid:") || !strings.Contains(body, "secret `db`") || strings.Contains(body, "not encrypted") {
		t.Fatalf("the plan refuses a file the cluster's old key decrypts:\n%s", body)
	}
}

// A push of a head that fails validation keeps the pull request's last
// good preview running, as it was, and the comment says which commit it
// still runs beside the error (the preview used to be deleted, as if
// the label had been removed); a fix updates it again.
func TestPreviewKeptOnInvalidHead(t *testing.T) {
	fl := startFlow(t, "github", "secret-token")
	f, bare, c := fl.forge, fl.bare, fl.cluster.Client
	ctx := context.Background()
	n, good := fl.labelPreview(t)
	key := api.Key{Kind: api.KindApp, App: "x-pr-1", Name: "x-pr-1"}
	preview := func() *api.App {
		o, err := c.Get(ctx, key)
		if err != nil {
			return nil
		}
		return o.(*api.App)
	}
	eventually(t, "the preview app", func() bool { return preview() != nil })
	before := preview()
	defer func() {
		if t.Failed() {
			t.Logf("the comment:\n%s", fl.comment(n))
		}
	}()

	bad := bare.branch(t, "try", "apps/x.cue", strings.Replace(previewDesc("v3"), "replicas: 3", `replicas: "three"`, 1))
	f.syncHead(n)
	hook(t, fl.hookURL, "github", n, "synchronize", "p2", true)
	fl.waitStatus(bad, StateFailure, "a failure status on the invalid head")
	eventually(t, "the comment naming the error and the preview kept", func() bool {
		body := fl.comment(n)
		return strings.Contains(body, "apps/x.cue:") && strings.Contains(body, "`x-pr-1`: ") &&
			strings.Contains(body, "still runs "+api.ShortCommit(good))
	})
	p := preview()
	if p == nil {
		t.Fatal("the preview was deleted by a push that fails validation")
	}
	if p.Metadata.ResourceVersion != before.Metadata.ResourceVersion {
		t.Errorf("the preview was written (rv %d -> %d) by a head that fails validation", before.Metadata.ResourceVersion, p.Metadata.ResourceVersion)
	}

	fixed := bare.branch(t, "try", "apps/x.cue", previewDesc("v4"))
	f.syncHead(n)
	hook(t, fl.hookURL, "github", n, "synchronize", "p3", true)
	eventually(t, "the preview at the fixed head", func() bool {
		p := preview()
		return p != nil && p.Metadata.Annotations[AnnotationHead] == fixed && p.Spec.Workloads[0].Spec.Template.Containers[0].Image == "r/x:v4"
	})
	eventually(t, "the comment without the note", func() bool {
		body := fl.comment(n)
		return strings.Contains(body, "`x-pr-1`: ") && !strings.Contains(body, "still runs")
	})
}

// How the comment says to reach a preview: its node-port URLs, its
// services' names inside the cluster, and the commit it still runs when
// the head cannot be deployed (a preview with internal services only used
// to read "starting" for ever).
func TestPreviewLinkWhere(t *testing.T) {
	for _, tt := range []struct {
		name string
		link PreviewLink
		want string
	}{
		{"external with its port", PreviewLink{URLs: []string{"http://10.0.0.1:30080"}, Names: []string{"web.x-pr-1.svc:80"}, External: true},
			"http://10.0.0.1:30080; in the cluster `web.x-pr-1.svc:80`"},
		{"external, no node port yet", PreviewLink{Names: []string{"web.x-pr-1.svc:80"}, External: true},
			"starting (no node port yet); in the cluster `web.x-pr-1.svc:80`"},
		{"internal only", PreviewLink{Names: []string{"api.x-pr-1.svc:80", "api.x-pr-1.svc:9090"}},
			"in the cluster `api.x-pr-1.svc:80`, `api.x-pr-1.svc:9090`"},
		{"no services", PreviewLink{}, "deployed (no services)"},
		{"an older head", PreviewLink{Names: []string{"api.x-pr-1.svc:80"}, Head: "0123456789abcdef0123456789abcdef01234567"},
			"in the cluster `api.x-pr-1.svc:80`; still runs " + api.ShortCommit("0123456789abcdef0123456789abcdef01234567") + ", the last head that could be deployed"},
		{"refused", PreviewLink{Refused: "it runs 3 pods, over the 2 of q", Names: []string{"x"}}, "not deployed: it runs 3 pods, over the 2 of q"},
		{"not taken yet", PreviewLink{Refused: "the cluster's API did not take it: read-only", Pending: true}, "not deployed yet: the cluster's API did not take it: read-only; tried again shortly"},
		{"deleted", PreviewLink{Refused: "the pull request is no longer open against main", Deleted: true, URLs: []string{"http://10.0.0.1:30080"}},
			"deleted: the pull request is no longer open against main"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.link.where(); got != tt.want {
				t.Errorf("got  %q\nwant %q", got, tt.want)
			}
		})
	}
}

// previewEvent is the forge's Event of reason in app's namespace; nil
// when there is none.
func previewEvent(t *testing.T, c *client.Client, app, reason string) *api.Event {
	t.Helper()
	objs, _, err := c.List(context.Background(), api.KindEvent, client.ListOptions{App: app})
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range objs {
		if e := o.(*api.Event); e.Spec.Reason == reason && e.Spec.Reporter == Reporter {
			return e
		}
	}
	return nil
}

// A preview over the repository's quota is not made, and the refusal is
// a Warning event of the preview's App as well as a line of the comment
// (it was only in the comment and the server's log), recorded once
// however often the pull request is looked at again.
func TestPreviewRefusedEvent(t *testing.T) {
	fl := startFlow(t, "github", "secret-token", func(rc *gitsync.RepoConfig, _ *Options) {
		rc.Forge.Previews.Quota.CPU = api.MustParseQuantity("100m")
	})
	f, c := fl.forge, fl.cluster.Client
	n, _ := fl.labelPreview(t)
	const why = "container c of pod group web requests no cpu, and the preview quota counts requests"
	eventually(t, "the refusal on the pull request", func() bool { return strings.Contains(fl.comment(n), "`x-pr-1`: not deployed: "+why) })
	var e *api.Event
	eventually(t, "the refusal's event", func() bool { e = previewEvent(t, c, "x-pr-1", ReasonPreviewRefused); return e != nil })
	if e.Spec.Type != api.EventWarning || !strings.Contains(e.Spec.Message, "pull request #1 of deploy not deployed: "+why) {
		t.Errorf("event %s %q", e.Spec.Type, e.Spec.Message)
	}
	hook(t, fl.hookURL, "github", n, "labeled", "p2", true)
	lists := "GET /repos/org/deploy/pulls/1"
	seen := f.callCount(lists)
	hook(t, fl.hookURL, "github", n, "edited", "p3", true)
	eventually(t, "the pull request looked at again", func() bool { return f.callCount(lists) > seen })
	if e := previewEvent(t, c, "x-pr-1", ReasonPreviewRefused); e.Spec.Count != 1 {
		t.Errorf("the refusal recorded %d times, want once", e.Spec.Count)
	}
	if _, err := c.Get(context.Background(), api.Key{Kind: api.KindApp, App: "x-pr-1", Name: "x-pr-1"}); !client.IsNotFound(err) {
		t.Errorf("the preview over its quota: %v, want not found", err)
	}
}

// A push whose preview the repository's quota refuses keeps the preview
// of the last good head running, unwritten, and the comment gives both
// the refusal and the commit still running (the preview used to be
// deleted, leaving the pull request with none); removing the label then
// deletes it, and takes it off the comment (which went on listing it).
func TestPreviewKeptOverQuota(t *testing.T) {
	fl := startFlow(t, "github", "secret-token", func(rc *gitsync.RepoConfig, _ *Options) { rc.Forge.Previews.Quota.Pods = 2 })
	f, bare, c := fl.forge, fl.bare, fl.cluster.Client
	ctx := context.Background()
	n, good := fl.labelPreview(t)
	key := api.Key{Kind: api.KindApp, App: "x-pr-1", Name: "x-pr-1"}
	var before api.Object
	eventually(t, "the preview app", func() bool { var err error; before, err = c.Get(ctx, key); return err == nil })
	defer func() {
		if t.Failed() {
			t.Logf("the comment:\n%s", fl.comment(n))
		}
	}()

	bare.branch(t, "try", "apps/x.cue", strings.Replace(previewDesc("v3"), `ttl: "48h"`, `ttl: "48h", replicas: 3`, 1))
	f.syncHead(n)
	hook(t, fl.hookURL, "github", n, "synchronize", "p2", true)
	eventually(t, "the refusal and the preview kept on the comment", func() bool {
		body := fl.comment(n)
		return strings.Contains(body, "`x-pr-1`: not deployed: it runs 3 pods, over the 2") && strings.Contains(body, "still runs "+api.ShortCommit(good))
	})
	o, err := c.Get(ctx, key)
	if err != nil {
		t.Fatalf("the preview of the last good head was deleted by a head over the quota: %v", err)
	}
	if o.Meta().ResourceVersion != before.Meta().ResourceVersion {
		t.Errorf("the preview was written by a head over its quota")
	}

	f.mu.Lock()
	f.prs[n].labels = nil
	f.mu.Unlock()
	hook(t, fl.hookURL, "github", n, "unlabeled", "p3", true)
	eventually(t, "the preview deleted with the label", func() bool { _, err := c.Get(ctx, key); return client.IsNotFound(err) })
	eventually(t, "the comment no longer lists it", func() bool { return !strings.Contains(fl.comment(n), "`x-pr-1`") })
}

// An App that already has a preview's name and is not that preview (a
// production app named x-pr-1) is never touched, and the pull request
// says why its preview is not made (the comment listed the production
// app as the preview, with its services, and the round failed with a
// ForgeError event, as if the forge's calls failed).
func TestPreviewNameTaken(t *testing.T) {
	fl := startFlow(t, "github", "secret-token")
	c := fl.cluster.Client
	ctx := context.Background()
	res, err := schema.Load(fstest.MapFS{"p.cue": {Data: []byte(`apps: "x-pr-1": pods: web: {
	containers: c: {image: "r/prod:v1", ports: http: 8080}
	service: {ports: http: 80, external: true}
}
`)}}, schema.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	prod, err := c.Create(ctx, res.Apps[0].App)
	if err != nil {
		t.Fatal(err)
	}
	n, _ := fl.labelPreview(t)
	defer func() {
		if t.Failed() {
			t.Logf("the comment:\n%s", fl.comment(n))
		}
	}()
	eventually(t, "the refusal on the pull request", func() bool {
		return strings.Contains(fl.comment(n), "`x-pr-1`: not deployed: an app named x-pr-1 exists and is not a preview, and it is never touched: rename one of them")
	})
	if e := previewEvent(t, c, "x-pr-1", ReasonPreviewRefused); e == nil {
		t.Error("no PreviewRefused event")
	}
	if e := previewEvent(t, c, "deploy", ReasonForgeError); e != nil {
		t.Errorf("a ForgeError event: %s", e.Spec.Message)
	}
	o, err := c.Get(ctx, api.KeyOf(prod))
	if err != nil || o.Meta().ResourceVersion != prod.Meta().ResourceVersion {
		t.Fatalf("the production app x-pr-1 written: %v", err)
	}
}

// A preview deleted at its ttl stays deleted when the server starts
// again (a restart deployed the same head once more, for a new ttl: the
// deletion was not remembered), and removing the label and adding it
// again brings it back.
func TestPreviewExpiredStaysDeletedAfterRestart(t *testing.T) {
	clock := &testClock{t: time.Date(2026, 12, 5, 1, 0, 0, 0, time.UTC)}
	fl := startFlow(t, "github", "secret-token", fastPoll(clock))
	f, bare, c := fl.forge, fl.bare, fl.cluster.Client
	ctx := context.Background()
	bare.commit(t, "main", "apps/x.cue", previewDesc("v1"))
	bare.branch(t, "try", "apps/x.cue", previewDesc("v2"))
	n := f.open("try", "main", "try v2")
	setLabels := func(l ...string) {
		f.mu.Lock()
		f.prs[n].labels = l
		f.mu.Unlock()
	}
	setLabels("preview")
	key := api.Key{Kind: api.KindApp, App: "x-pr-1", Name: "x-pr-1"}
	exists := func() bool { _, err := c.Get(ctx, key); return err == nil }
	eventually(t, "the preview app", exists)
	defer func() {
		if t.Failed() {
			t.Logf("the comment:\n%s", fl.comment(n))
		}
	}()
	clock.add(49 * time.Hour)
	const gone = "`x-pr-1`: not deployed: its ttl passed (2026-12-07T01:00:00Z)"
	eventually(t, "the comment says it expired", func() bool { return !exists() && strings.Contains(fl.comment(n), gone) })

	fl.restart()
	lists := "GET /repos/org/deploy/pulls"
	seen := f.callCount(lists)
	eventually(t, "three polls of the restarted server", func() bool { return f.callCount(lists) >= seen+3 })
	if exists() {
		t.Fatal("the expired preview deployed again by the restarted server")
	}
	if !strings.Contains(fl.comment(n), gone) {
		t.Error("the comment no longer says the preview expired")
	}

	setLabels()
	seen = f.callCount(lists)
	eventually(t, "two polls without the label", func() bool { return f.callCount(lists) >= seen+2 })
	setLabels("preview")
	eventually(t, "the preview labelled again", exists)
}

// The comment's hidden lines of expired previews read back as written,
// and nothing else of a body is taken for one.
func FuzzExpiredMarks(f *testing.F) {
	f.Add("x-pr-1", "0123456789abcdef0123456789abcdef01234567", "2026-12-07T01:00:00Z", "<!-- capstan:preview-expired a b c -->")
	f.Fuzz(func(t *testing.T, app, head, expires, body string) {
		marks := parseExpiredMarks(body)
		if len(marks) > 100 {
			t.Fatalf("%d marks", len(marks))
		}
		written := expiredMarks([]PreviewLink{{App: app, Head: head, Expires: expires, Expired: true}})
		got := parseExpiredMarks(body + "\n" + written)
		if written != "" {
			if m := got[app]; m.head != head || m.expires != expires {
				t.Fatalf("wrote %q, read %+v", written, m)
			}
		}
	})
}

// labelPreview commits app x at v1 on main and v2 on branch try, opens a
// pull request of try labelled preview and sends its webhook; it returns
// the pull request's number and try's head.
func (fl *prFlow) labelPreview(t *testing.T) (n int, head string) {
	t.Helper()
	fl.bare.commit(t, "main", "apps/x.cue", previewDesc("v1"))
	head = fl.bare.branch(t, "try", "apps/x.cue", previewDesc("v2"))
	n = fl.forge.open("try", "main", "try v2")
	fl.forge.mu.Lock()
	fl.forge.prs[n].labels = []string{"preview"}
	fl.forge.mu.Unlock()
	hook(t, fl.hookURL, "github", n, "labeled", "p1", true)
	return n, head
}

// fastPoll is a startFlow tweak: the server's time from clock, and the
// forge polled every 50 ms (faster than sync's config allows).
func fastPoll(clock *testClock) func(*gitsync.RepoConfig, *Options) {
	return func(rc *gitsync.RepoConfig, o *Options) {
		o.Now = clock.now
		fc := *rc.Forge
		fc.PollInterval = 50 * time.Millisecond
		r := *rc
		r.Forge = &fc
		o.Repos = []gitsync.RepoConfig{r}
	}
}
