package forge

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/capstanhq/capstan/apiserver/api"
	"github.com/capstanhq/capstan/apiserver/client"
	"github.com/capstanhq/capstan/gitsync"
	"github.com/capstanhq/capstan/gitsync/applier"
	"github.com/capstanhq/capstan/plan"
	"github.com/capstanhq/capstan/reconcile"
	"github.com/capstanhq/capstan/schema/sandbox"
)

// Options configure the forge component.
type Options struct {
	// API is the cluster's API client (informers, events). Required.
	API *client.Client
	// Repos are the tracked repositories; those with a Forge are served.
	Repos []gitsync.RepoConfig
	// DataDir holds one bare clone per repository (NAME.git) with the
	// heads of its pull requests. Required.
	DataDir string
	// Load evaluates a revision's descriptors for a plan. Default: one
	// bounded evaluator (schema/sandbox, with Eval) per repository.
	Load plan.Loader
	// Eval bounds the default evaluators.
	Eval sandbox.Options
	// SecretsDir holds the cluster's secrets key ring (DATA_DIR/secrets),
	// for the previews of repositories that give them secrets. Default
	// none: such previews are refused.
	SecretsDir string
	// Client builds each repository's forge client; ClientOptions
	// documents its defaults.
	Client ClientOptions
	// ClusterDebounce is how long the cluster must be quiet before the
	// open pull requests are re-planned against it. Default 2s.
	ClusterDebounce time.Duration
	// Retry is the wait before a deploy status the forge refused (a
	// 5xx, a network error, after the transport's own retries) is posted
	// again, and before a preview the API did not take for a moment
	// (its store unavailable, a conflict, a timeout) is written again;
	// doubled after each failure in a row up to RetryMax. Defaults 10s
	// and 5m.
	Retry, RetryMax time.Duration
	// Now is the clock. Default time.Now.
	Now func() time.Time
	// Logger; default discards.
	Logger *slog.Logger
}

// Component keeps the plans and statuses of pull requests and the deploy
// statuses of commits up to date. Start runs it.
type Component struct {
	opts    Options
	log     *slog.Logger
	workers map[string]*worker
	started time.Time
	// informers of the cluster (plans) and of the sync results (deploys);
	// nil when no repository needs them.
	nodes, pods, volumes, apps, workloads, revisions *client.Informer
}

// New validates the options and builds a client per repository; nothing
// runs until Start. A repository without a forge is left out; none at all
// gives a component that does nothing.
func New(o Options) (*Component, error) {
	if o.API == nil || o.DataDir == "" {
		return nil, errors.New("forge: API client and data directory are required")
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.ClusterDebounce <= 0 {
		o.ClusterDebounce = 2 * time.Second
	}
	if o.Retry <= 0 {
		o.Retry = 10 * time.Second
	}
	if o.RetryMax < o.Retry {
		o.RetryMax = max(5*time.Minute, o.Retry)
	}
	if o.Client.Retry.Now == nil {
		o.Client.Retry.Now = o.Now
	}
	c := &Component{opts: o, log: o.Logger, workers: map[string]*worker{}}
	for _, rc := range o.Repos {
		if rc.Forge == nil {
			continue
		}
		fc := *rc.Forge
		if fc.CABundle == "" {
			fc.CABundle = rc.Auth.CABundle
		}
		if fc.PollInterval == 0 {
			fc.PollInterval = gitsync.DefaultForgePollInterval
		}
		cl, err := NewClient(fc, o.Client)
		if err != nil {
			return nil, fmt.Errorf("repo %q: %w", rc.Name, err)
		}
		rc.Forge = &fc
		c.workers[rc.Name] = newWorker(c, rc, cl)
	}
	return c, nil
}

// Enabled reports whether any repository has a forge.
func (c *Component) Enabled() bool { return len(c.workers) > 0 }

// HandleHook takes a webhook delivery gitsync authenticated (it is
// gitsync.Options.OnHook): a pull-request event marks that pull request
// for a new plan and wakes its repository's worker. It never blocks.
func (c *Component) HandleHook(repo string, forge gitsync.Forge, event string, body []byte) bool {
	p, ok := c.Accept(repo, forge, event, body)
	if ok {
		c.Mark(repo, p)
	}
	return ok
}

// Pull is a pull request a webhook asks to look at again.
type Pull struct {
	Number int
	// PreviewAgain: the event added the preview label (maybe removed a
	// moment before): the reviewer asks for the previews again, those
	// whose ttl passed too, for a new ttl.
	PreviewAgain bool
}

// Accept tells whether a webhook delivery gitsync authenticated is a
// pull-request event this component plans, and which pull request; it
// marks nothing. A server that does not lead passes it on to the
// leader's component (Mark).
func (c *Component) Accept(repo string, forge gitsync.Forge, event string, body []byte) (Pull, bool) {
	w := c.workers[repo]
	if w == nil || !w.cfg.Forge.Enabled(gitsync.ForgeEventPlans) {
		return Pull{}, false
	}
	h, ok, err := ParseHook(forge, event, body)
	if !ok {
		return Pull{}, false
	}
	if err != nil {
		c.log.Warn("pull-request webhook refused", "repo", repo, "forge", forge, "event", event, "err", err)
		return Pull{}, false
	}
	if h.Base != "" && h.Base != w.cfg.Branch && !mayRetarget(h.Action) {
		return Pull{}, false
	}
	return Pull{Number: h.Number, PreviewAgain: slices.Contains(h.Labeled, w.previewLabel())}, true
}

// Mark marks pull request p of repo for a new plan and wakes its
// repository's worker; an unknown repository is ignored. It never blocks.
func (c *Component) Mark(repo string, p Pull) {
	w := c.workers[repo]
	if w == nil {
		return
	}
	if p.PreviewAgain {
		w.mu.Lock()
		w.previewAgain[p.Number] = true
		w.mu.Unlock()
	}
	w.mark(p.Number)
}

// mayRetarget tells the pull-request actions that may have moved its
// base (GitHub's and Gitea's edited, GitLab's update): when it moved
// away from the tracked branch, the payload names the new base, and the
// pull request's comment state and previews must still go. The forge's
// API says which it was.
func mayRetarget(action string) bool { return action == "edited" || action == "update" }

// Start runs the workers until ctx ends.
func (c *Component) Start(ctx context.Context) error {
	if !c.Enabled() {
		<-ctx.Done()
		return nil
	}
	c.started = c.opts.Now()
	plans, deploys := false, false
	for _, w := range c.workers {
		plans = plans || w.cfg.Forge.Enabled(gitsync.ForgeEventPlans)
		deploys = deploys || w.cfg.Forge.Enabled(gitsync.ForgeEventDeploys)
	}
	g, ctx := errgroup.WithContext(ctx)
	var infs []*client.Informer
	inf := func(k api.Kind) *client.Informer {
		i := client.NewInformer(c.opts.API, k, client.ListOptions{}, c.log)
		infs = append(infs, i)
		return i
	}
	if plans || deploys {
		c.apps = inf(api.KindApp)
	}
	if plans {
		c.nodes, c.pods = inf(api.KindNode), inf(api.KindPod)
		changed := func(api.Object) {
			for _, w := range c.workers {
				w.clusterChanged()
			}
		}
		c.nodes.AddHandler(client.Handler{OnAdd: changed, OnDelete: changed, OnUpdate: func(old, obj api.Object) {
			if nodeFitChanged(old.(*api.Node), obj.(*api.Node)) {
				changed(obj)
			}
		}})
		c.pods.AddHandler(client.Handler{OnAdd: changed, OnDelete: changed, OnUpdate: func(old, obj api.Object) {
			if old.(*api.Pod).Spec.NodeName != obj.(*api.Pod).Spec.NodeName {
				changed(obj)
			}
		}})
		// An app another repository takes (or frees) is refused (or
		// accepted) by sync; a preview deleted by hand comes back.
		c.apps.AddHandler(client.Handler{OnAdd: changed, OnUpdate: func(old, obj api.Object) {
			if old.Meta().Labels[labelRepo] != obj.Meta().Labels[labelRepo] {
				changed(obj)
			}
		}, OnDelete: func(obj api.Object) {
			changed(obj)
			l := obj.Meta().Labels
			n, err := strconv.Atoi(l[LabelPreviewPR])
			if w := c.workers[l[LabelPreviewRepo]]; w != nil && err == nil {
				w.markPreview(obj.Meta().Name, n)
			}
		}})
		// A persistent volume pins its replica to its node.
		c.volumes = inf(api.KindVolume)
		c.volumes.AddHandler(client.Handler{OnAdd: changed, OnDelete: changed, OnUpdate: func(old, obj api.Object) {
			if old.(*api.PersistentVolume).Spec.NodeName != obj.(*api.PersistentVolume).Spec.NodeName {
				changed(obj)
			}
		}})
		// A preview's services get their node ports: show the URLs.
		services := inf(api.KindService)
		svc := func(obj api.Object) {
			m := previewNS.FindStringSubmatch(obj.Meta().App)
			if m == nil {
				return
			}
			n, _ := strconv.Atoi(m[1])
			for _, w := range c.workers {
				w.markPreview(obj.Meta().App, n)
			}
		}
		services.AddHandler(client.Handler{OnAdd: svc, OnUpdate: func(_, obj api.Object) { svc(obj) }})
	}
	if deploys {
		c.workloads, c.revisions = inf(api.KindWorkload), inf(api.KindRevision)
		c.revisions.AddHandler(client.Handler{OnAdd: func(obj api.Object) {
			r := obj.(*api.Revision)
			w := c.workers[r.Metadata.Labels[labelRepo]]
			switch rec, has := parseDeployRecord(r.Metadata.Annotations); {
			case w == nil:
			case has && rec.State == StatePending:
				// Left pending by a server that stopped or lost
				// the lead: complete it.
				w.track(r.Spec.Commit, StatePending)
			case !has && !r.Spec.SyncedAt.Before(c.started):
				w.track(r.Spec.Commit, "")
			}
		}})
		poke := func(api.Object) {
			for _, w := range c.workers {
				w.deploysChanged()
			}
		}
		for _, i := range []*client.Informer{c.apps, c.workloads} {
			i.AddHandler(client.Handler{OnAdd: poke, OnDelete: poke, OnUpdate: func(_, obj api.Object) { poke(obj) }})
		}
	}
	for _, i := range infs {
		g.Go(func() error { return i.Start(ctx) })
	}
	g.Go(func() error {
		for _, i := range infs {
			if err := i.WaitForSync(ctx); err != nil {
				return nil
			}
		}
		for _, w := range c.workers {
			g.Go(func() error { w.run(ctx); return nil })
		}
		return nil
	})
	err := g.Wait()
	for _, w := range c.workers {
		w.close()
	}
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// nodeFitChanged tells a node change that may move a scheduling decision
// (readiness, capacity, cordon, labels) from a heartbeat.
func nodeFitChanged(a, b *api.Node) bool {
	return !api.EqualJSON(a.Spec, b.Spec) || !api.EqualJSON(a.Status.Allocatable, b.Status.Allocatable) ||
		nodeReady(a) != nodeReady(b) || !api.EqualJSON(a.Metadata.Labels, b.Metadata.Labels)
}

func nodeReady(n *api.Node) bool {
	c := api.FindCondition(n.Status.Conditions, api.NodeReady)
	return c != nil && c.Status == api.ConditionTrue
}

// live is the cluster as the informers see it.
func (c *Component) live() *plan.Live {
	if c.nodes == nil {
		return nil
	}
	l := &plan.Live{}
	for _, o := range c.nodes.List() {
		l.Nodes = append(l.Nodes, o.(*api.Node))
	}
	for _, o := range c.pods.List() {
		l.Pods = append(l.Pods, o.(*api.Pod))
	}
	for _, o := range c.volumes.List() {
		l.Volumes = append(l.Volumes, o.(*api.PersistentVolume))
	}
	for _, o := range c.apps.List() {
		l.Apps = append(l.Apps, o.(*api.App))
	}
	return l
}

// record reports a forge problem (or its end) as an Event of the
// repository, which `capstan history` shows, and in the log.
func (c *Component) record(ctx context.Context, repo, reason, typ, msg string) {
	c.recordApp(ctx, repo, reason, typ, msg)
}

// recordApp records an Event of the App name (which may not exist: a
// preview refused is never made), in its namespace.
func (c *Component) recordApp(ctx context.Context, name, reason, typ, msg string) {
	rec := &reconcile.Recorder{Client: c.opts.API, Reporter: Reporter, Logger: c.log, Now: c.opts.Now}
	rec.Record(ctx, reconcile.Event{Object: api.ObjectRef{Kind: api.KindApp, App: name, Name: name}, Type: typ, Reason: reason, Message: msg})
}

// Reporter names the component in Events.
const Reporter = "forge"

// Event reasons.
const (
	ReasonForgeError = "ForgeError"
	ReasonForgeOK    = "ForgeConnected"
	// ReasonPreviewRefused: a pull request's preview is not deployed
	// (its quota, its secrets, its name); an Event of the preview's App.
	ReasonPreviewRefused = "PreviewRefused"
	// ReasonPreviewExpired: a preview's ttl passed and it was deleted.
	ReasonPreviewExpired = "PreviewExpired"
)

func dataName(dir, repo string) string { return filepath.Join(dir, repo+".git") }

// previewNS matches a preview App's name, APP-pr-N.
var previewNS = regexp.MustCompile(`-pr-([0-9]+)$`)

// labelRepo is the label git sync puts on Apps and Revisions.
const labelRepo = applier.LabelRepo
