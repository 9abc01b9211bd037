package forge

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/capstanhq/capstan/apiserver/api"
	"github.com/capstanhq/capstan/apiserver/client"
	"github.com/capstanhq/capstan/gitsync"
	"github.com/capstanhq/capstan/plan"
	"github.com/capstanhq/capstan/schema"
	"github.com/capstanhq/capstan/secrets"
)

// Labels of preview Apps. They do not carry the repository label of git
// sync, so sync never prunes or re-applies them, and production Apps are
// never touched: a preview is another App, APP-pr-N, with its own
// namespace, services and DNS names.
const (
	LabelPreviewOf   = api.LabelPreviewOf
	LabelPreviewRepo = api.LabelPreviewRepo
	LabelPreviewPR   = api.LabelPreviewPR
	// AnnotationExpires is when a preview is deleted (RFC 3339).
	AnnotationExpires = api.AnnotationPreviewExpires
	// AnnotationHead is the pull request's head commit the preview runs:
	// its ttl restarts only when the head moves, never on a server's
	// restart.
	AnnotationHead = api.AnnotationPreviewHead
)

// PreviewName is the App of app's preview for pull request n; "" when it
// would not be a DNS label.
func PreviewName(app string, n int) string {
	name := app + "-pr-" + strconv.Itoa(n)
	if len(name) > 63 {
		return ""
	}
	return name
}

// PreviewOptions say how a pull request's previews are made.
type PreviewOptions struct {
	Repo string
	PR   int
	// Head is the pull request's head commit.
	Head string
	Now  time.Time
	// Policy is the repository's (forge.previews).
	Policy gitsync.PreviewPolicy
	// Fork: the pull request's head lives in another repository, whose
	// owner may push to it after the label was given, so its previews
	// get no secrets whatever the policy.
	Fork bool
	// Nodes are the live nodes: an everyNode pod group runs a pod on each
	// that it matches (plan.Pods), and they count against the quota.
	Nodes []*api.Node
}

// Defaults of an app previewed because its repository previews every
// app (the descriptor's preview defaults).
const (
	defaultPreviewTTL      = "72h"
	defaultPreviewReplicas = 1
)

// PreviewApps are the Apps a pull request's head deploys as previews: one
// per valid app whose descriptor enables previews (or, where the policy
// previews every app, does not turn them off), renamed APP-pr-N, every
// pod group scaled to the preview's replicas, its persistent volumes
// deleted with it, its services selecting its own pods, no automatic revert,
// expiring after the preview's ttl from now. An app that uses secrets the
// policy does not give to previews, or whose preview would not fit the
// quota, is refused with the reason. Pure.
func PreviewApps(head *schema.Result, o PreviewOptions) (apps []*api.App, refused []PreviewLink) {
	if head == nil {
		return nil, nil
	}
	for _, ar := range head.Apps {
		if !ar.Valid() {
			continue
		}
		p := ar.App.Spec.Preview
		switch {
		case p == nil && o.Policy.AllApps:
			p = &api.AppPreview{Enabled: true, TTL: defaultPreviewTTL, Replicas: defaultPreviewReplicas}
		case p == nil || !p.Enabled:
			continue
		}
		name := PreviewName(ar.Name, o.PR)
		if name == "" {
			refused = append(refused, PreviewLink{App: ar.Name, Refused: fmt.Sprintf("%s-pr-%d is longer than 63 characters", ar.Name, o.PR)})
			continue
		}
		ttl, err := time.ParseDuration(p.TTL)
		if err != nil || ttl <= 0 {
			continue // validation refuses it
		}
		a := api.Clone(ar.App)
		a.Metadata = api.ObjectMeta{Name: name, App: name, Source: ar.App.Metadata.Source,
			Labels:      map[string]string{LabelPreviewOf: ar.Name, LabelPreviewRepo: o.Repo, LabelPreviewPR: strconv.Itoa(o.PR)},
			Annotations: map[string]string{AnnotationExpires: o.Now.Add(ttl).UTC().Format(time.RFC3339), AnnotationHead: o.Head}}
		a.Spec.Preview, a.Spec.Rollback = nil, ""
		for i := range a.Spec.Workloads {
			w := &a.Spec.Workloads[i].Spec
			w.Replicas = p.Replicas
			// A preview's data goes with it.
			for j := range w.Template.Volumes {
				if pv := w.Template.Volumes[j].Persistent; pv != nil {
					pv.Reclaim = api.ReclaimDelete
				}
			}
		}
		// Its services select its own pods, never production's.
		for i := range a.Spec.Services {
			if sel := a.Spec.Services[i].Spec.Selector; sel[api.LabelApp] == ar.Name {
				sel[api.LabelApp] = name
			}
		}
		a.Status = api.AppStatus{}
		if why := refusePreview(a, o); why != "" {
			refused = append(refused, PreviewLink{App: name, Refused: why})
			continue
		}
		apps = append(apps, a)
	}
	return apps, refused
}

// refusePreview says why the policy does not let preview a run; "" when
// it does.
func refusePreview(a *api.App, o PreviewOptions) string {
	if len(a.Spec.Secrets) > 0 && (!o.Policy.Secrets || o.Fork) {
		names := make([]string, len(a.Spec.Secrets))
		for i, s := range a.Spec.Secrets {
			names[i] = s.Name
		}
		if o.Fork {
			return fmt.Sprintf("it uses secrets (%s) and the pull request comes from a fork, whose previews get none (its author could push code that reads them after the label): push the branch to the repository itself to preview it", strings.Join(names, ", "))
		}
		return fmt.Sprintf("it uses secrets (%s) and this repository gives none to previews (forge.previews.secrets)", strings.Join(names, ", "))
	}
	q := o.Policy.Quota
	pods := 0
	var cpu, mem int64 // milli
	for _, w := range a.Spec.Workloads {
		n := plan.Pods(&w.Spec, o.Nodes)
		pods += n
		for _, c := range w.Spec.Template.Containers {
			r := c.Resources.Requests
			if !q.CPU.IsZero() && r.CPU.IsZero() || !q.Memory.IsZero() && r.Memory.IsZero() {
				return fmt.Sprintf("container %s of pod group %s requests no %s, and the preview quota counts requests: give it resources", c.Name, w.Name, missing(q, r))
			}
			cpu += int64(n) * r.CPU.MilliValue()
			mem += int64(n) * r.Memory.MilliValue()
		}
	}
	quota := "this repository's preview quota (forge.previews.quota)"
	switch {
	case q.MaxPods() > 0 && pods > q.MaxPods():
		return fmt.Sprintf("it runs %d pods, over the %d of %s", pods, q.MaxPods(), quota)
	case !q.CPU.IsZero() && cpu > q.CPU.MilliValue():
		return fmt.Sprintf("its pods request %s CPU, over the %s of %s", api.NewMilliQuantity(cpu, api.DecimalSI), q.CPU, quota)
	case !q.Memory.IsZero() && mem > q.Memory.MilliValue():
		return fmt.Sprintf("its pods request %s memory, over the %s of %s", api.NewMilliQuantity(mem, api.BinarySI), q.Memory, quota)
	}
	return ""
}

func missing(q gitsync.PreviewQuota, r api.ResourceList) string {
	if !q.CPU.IsZero() && r.CPU.IsZero() {
		return "cpu"
	}
	return "memory"
}

// PreviewLink is a preview shown on the pull request.
type PreviewLink struct {
	App string
	// URLs are the node-port URLs of its external services; none yet
	// while the server allocates them.
	URLs []string
	// Names are its services' DNS names and ports inside the cluster
	// (SERVICE.APP.svc:PORT; pods' search path completes the zone).
	Names []string
	// External: it has external services (URLs come once their node
	// ports are allocated).
	External bool
	// Head is the commit it runs when that is not the pull request's
	// head (a head that cannot be deployed keeps the last good one).
	Head string
	// Refused says why the preview is not deployed; Pending, that it is
	// not yet (the API did not take it for a moment: it is tried again);
	// Deleted, that it was deleted (its pull request closed); Expired,
	// that its ttl passed, at Expires (RFC 3339), running Head.
	Refused string
	Pending bool
	Deleted bool
	Expired bool
	Expires string
}

func (w *worker) previewLabel() string {
	if l := w.cfg.Forge.PreviewLabel; l != "" {
		return l
	}
	return gitsync.DefaultPreviewLabel
}

// wantsPreview reports whether a pull request asks for previews.
func (w *worker) wantsPreview(pr PullRequest) bool {
	return pr.Open && slices.Contains(pr.Labels, w.previewLabel())
}

// previewsOf lists the preview Apps of pull request n (n 0: of every pull
// request of the repository).
func (w *worker) previewsOf(ctx context.Context, n int) ([]*api.App, error) {
	sel := map[string]string{LabelPreviewRepo: w.cfg.Name}
	if n > 0 {
		sel[LabelPreviewPR] = strconv.Itoa(n)
	}
	objs, _, err := w.c.opts.API.List(ctx, api.KindApp, client.ListOptions{Labels: sel})
	if err != nil {
		return nil, fmt.Errorf("list previews: %w", err)
	}
	out := make([]*api.App, 0, len(objs))
	for _, o := range objs {
		out = append(out, o.(*api.App))
	}
	return out, nil
}

// syncPreviews makes the previews of st's head exist (created or updated
// through the API) when the pull request asks for them, and deletes the
// others. It never writes an App without the preview labels. Level-based:
// each round puts back a preview deleted by hand, as Argo CD's
// ApplicationSet puts back a generated Application. A write or a delete
// that failed for a moment (see transient) is tried again after a wait
// that doubles with each failure in a row.
func (w *worker) syncPreviews(ctx context.Context, st *prState) error {
	err := w.writePreviews(ctx, st)
	if err == nil {
		st.retry.reset()
		return nil
	}
	n := st.pr.Number
	wait := st.retry.fail(w.c.opts.Retry, w.c.opts.RetryMax, func() { w.mark(n) })
	return fmt.Errorf("%w (tried again in %s)", err, wait)
}

func (w *worker) writePreviews(ctx context.Context, st *prState) error {
	have, err := w.previewsOf(ctx, st.pr.Number)
	if err != nil {
		return err
	}
	want, refused := w.wantedPreviews(st, have)
	var errs []error
	now := w.c.opts.Now()
	kept := want[:0]
	for _, a := range want {
		name := a.Metadata.Name
		var cur *api.App
		if i := slices.IndexFunc(have, func(h *api.App) bool { return h.Metadata.Name == name }); i >= 0 {
			cur = have[i]
		}
		if m, ok := st.lastDeployed(name, cur); ok && m.head == a.Metadata.Annotations[AnnotationHead] && !st.renew {
			// The same head seen again (a server restart, the label
			// read again, the App deleted by hand): its ttl runs from
			// when the head was deployed.
			if m.expired(now) {
				st.markExpired(m)
				refused = append(refused, m.link())
				continue // deleted below
			}
			a.Metadata.Annotations[AnnotationExpires] = m.expires
		}
		why := st.writeRefused[name]
		if cur == nil && why == "" {
			why = w.nameTaken(ctx, a)
		}
		if why != "" {
			refused = append(refused, PreviewLink{App: name, Refused: why})
			if cur != nil {
				kept = append(kept, cur) // it runs on as it was
			}
			continue
		}
		err := w.writePreview(ctx, cur, a)
		switch {
		case err == nil:
			kept = append(kept, a)
		case transient(err):
			errs = append(errs, fmt.Errorf("preview %s: %w", name, err))
			if cur == nil {
				refused = append(refused, PreviewLink{App: name, Pending: true, Refused: "the cluster's API did not take it: " + err.Error()})
			}
		default:
			// The same App would be refused again: shown, and not
			// written again until the next push.
			why := "the cluster's API refused it: " + err.Error()
			if st.writeRefused == nil {
				st.writeRefused = map[string]string{}
			}
			st.writeRefused[name] = why
			refused = append(refused, PreviewLink{App: name, Refused: why})
		}
		if err != nil && cur != nil {
			kept = append(kept, cur) // it runs on as it was
		}
	}
	want = kept
	for _, h := range have {
		if !slices.ContainsFunc(want, func(a *api.App) bool { return a.Metadata.Name == h.Metadata.Name }) {
			errs = append(errs, w.deletePreview(ctx, h))
		}
	}
	w.recordRefused(ctx, st, refused)
	deployed := map[string]previewMark{}
	for _, r := range refused {
		if m, ok := st.deployed[r.App]; ok && r.Pending {
			deployed[r.App] = m // deleted by hand, and not yet back
		}
	}
	st.previews, st.refused, st.deployed = nil, refused, deployed
	w.mu.Lock()
	for _, a := range want {
		st.previews = append(st.previews, a.Metadata.Name)
		st.deployed[a.Metadata.Name] = markOf(a)
		w.previewed[a.Metadata.Name] = true
	}
	w.mu.Unlock()
	if len(errs) == 0 {
		st.renew = false
	}
	return errors.Join(errs...)
}

// writePreview creates preview a, or updates cur to it where they differ.
func (w *worker) writePreview(ctx context.Context, cur, a *api.App) error {
	var err error
	switch {
	case cur == nil:
		_, err = w.c.opts.API.Create(ctx, a)
	case !api.EqualJSON(cur.Spec, a.Spec) || cur.Metadata.Annotations[AnnotationExpires] != a.Metadata.Annotations[AnnotationExpires] ||
		cur.Metadata.Annotations[AnnotationHead] != a.Metadata.Annotations[AnnotationHead]:
		u := api.Clone(cur)
		u.Spec, u.Metadata.Annotations, u.Metadata.Source = a.Spec, a.Metadata.Annotations, a.Metadata.Source
		_, err = w.c.opts.API.Update(ctx, u)
	}
	return err
}

// transient tells an API refusal that may pass (no answer, a timeout,
// the store unavailable or read-only for a moment, a conflict with
// another write, a lost leadership, a rate limit) from one the same
// write meets again (invalid, too large, forbidden): the first is tried
// again on the next rounds, the second is shown on the pull request.
func transient(err error) bool {
	var se *client.StatusError
	if !errors.As(err, &se) {
		return true
	}
	switch se.Code {
	case http.StatusRequestTimeout, http.StatusConflict, http.StatusPreconditionFailed, http.StatusTooManyRequests:
		return true
	}
	return se.Code >= 500
}

// nameTaken says why preview a cannot be made under its name: an App of
// that name that is not this pull request's preview (production's, or
// another repository's preview) is never touched; "" when the name is
// free.
func (w *worker) nameTaken(ctx context.Context, a *api.App) string {
	o, err := w.c.opts.API.Get(ctx, api.KeyOf(a))
	if err != nil {
		return ""
	}
	l := o.Meta().Labels
	if l[LabelPreviewRepo] == "" {
		return fmt.Sprintf("an app named %s exists and is not a preview, and it is never touched: rename one of them", a.Metadata.Name)
	}
	return fmt.Sprintf("%s is the preview of pull request #%s of repository %s: rename the app in one of them", a.Metadata.Name, l[LabelPreviewPR], l[LabelPreviewRepo])
}

// recordRefused records each preview of st newly refused (not refused for
// that reason by the last round) as an Event of the preview's App, so
// that the cluster's events say it too, not only the pull request; a
// ttl passed is a Normal PreviewExpired, anything else a Warning.
func (w *worker) recordRefused(ctx context.Context, st *prState, refused []PreviewLink) {
	for _, r := range refused {
		if r.Pending || slices.ContainsFunc(st.refused, func(o PreviewLink) bool { return o.App == r.App && o.Refused == r.Refused }) {
			continue
		}
		reason, typ := ReasonPreviewRefused, api.EventWarning
		if r.Expired {
			reason, typ = ReasonPreviewExpired, api.EventNormal
		}
		w.c.recordApp(ctx, r.App, reason, typ, fmt.Sprintf("preview of pull request #%d of %s not deployed: %s", st.pr.Number, w.cfg.Name, r.Refused))
	}
}

// wantedPreviews are the preview Apps st's pull request should run,
// given those it has, and those refused with the reason.
//
// A head that cannot be deployed (it fails validation, or it could not
// be read) leaves the previews of the last good head running as they
// are, as sync keeps production's last good revision; so does a preview
// the head refuses (over its quota, secrets the repository does not
// give), as a Kubernetes ResourceQuota refuses new pods and leaves the
// running ones. Only the label removed, the pull request closed or the
// ttl deletes them.
func (w *worker) wantedPreviews(st *prState, have []*api.App) (want []*api.App, refused []PreviewLink) {
	switch {
	case !w.wantsPreview(st.pr):
		st.expired = nil // labelled again, they come back
		return nil, nil
	case st.input == nil || st.input.Head.Result == nil || len(st.input.Head.Result.AllErrors()) > 0:
		return slices.Clone(have), nil // syncPreviews filters want in place
	}
	var nodes []*api.Node
	if l := w.c.live(); l != nil {
		nodes = l.Nodes
	}
	want, refused = PreviewApps(st.input.Head.Result, PreviewOptions{Repo: w.cfg.Name, PR: st.pr.Number, Head: st.input.Head.Commit, Now: w.c.opts.Now(),
		Policy: w.cfg.Forge.Previews, Nodes: nodes, Fork: st.pr.Fork})
	want, refused = w.sealPreviewSecrets(st.input.Head.Commit, want, refused)
	// A preview deleted at its ttl stays deleted for its head, also
	// across a restart of the server.
	want = slices.DeleteFunc(want, func(a *api.App) bool {
		m, ok := st.expired[a.Metadata.Name]
		if ok && m.head == st.input.Head.Commit && !slices.ContainsFunc(have, func(h *api.App) bool { return h.Metadata.Name == a.Metadata.Name }) {
			refused = append(refused, m.link())
			return true
		}
		return false
	})
	for _, r := range refused {
		if i := slices.IndexFunc(have, func(h *api.App) bool { return h.Metadata.Name == r.App }); i >= 0 && !r.Expired {
			want = append(want, have[i])
		}
	}
	return want, refused
}

// sealPreviewSecrets opens again, from the head's tree, the secrets of
// the previews that use them and seals their values for the preview's
// name (a sealed value opens only for the app it was sealed for). A
// preview whose secrets cannot be opened is refused.
func (w *worker) sealPreviewSecrets(commit string, apps []*api.App, refused []PreviewLink) ([]*api.App, []PreviewLink) {
	var fsys fs.FS
	var keys *secrets.Keyring
	var problem error
	out := apps[:0]
	for _, a := range apps {
		if len(a.Spec.Secrets) == 0 {
			out = append(out, a)
			continue
		}
		if fsys == nil && problem == nil {
			fsys, keys, problem = w.secretSource(commit)
		}
		err := problem
		if err == nil {
			err = schema.ResealSecrets(fsys, a, schema.ResolveOptions{PathPrefix: w.cfg.Path, Keys: keys, RequireKeys: true})
		}
		if err != nil {
			refused = append(refused, PreviewLink{App: a.Metadata.Name, Refused: err.Error()})
			continue
		}
		out = append(out, a)
	}
	return out, refused
}

// secretSource is the descriptor tree at commit and the cluster's keys.
func (w *worker) secretSource(commit string) (fs.FS, *secrets.Keyring, error) {
	if w.c.opts.SecretsDir == "" {
		return nil, nil, errors.New("this server has no cluster key to open secrets with")
	}
	keys, err := secrets.Load(w.c.opts.SecretsDir) // made by the server at its first start; never made here
	if err != nil {
		return nil, nil, fmt.Errorf("the cluster key: %w", err)
	}
	fsys, err := gitsync.TreeAt(w.dir, commit)
	if err != nil {
		return nil, nil, fmt.Errorf("read %s: %w", api.ShortCommit(commit), err)
	}
	if dir := strings.Trim(path.Clean(w.cfg.Path), "/"); dir != "" && dir != "." {
		if fsys, err = fs.Sub(fsys, dir); err != nil {
			return nil, nil, fmt.Errorf("read %s: %w", api.ShortCommit(commit), err)
		}
	}
	return fsys, keys, nil
}

func (w *worker) deletePreview(ctx context.Context, a *api.App) error {
	if a.Metadata.Labels[LabelPreviewRepo] != w.cfg.Name {
		return nil
	}
	// Its deletion is the worker's own: no need to look at its pull
	// request again (markPreview).
	w.mu.Lock()
	delete(w.previewed, a.Metadata.Name)
	w.mu.Unlock()
	_, err := w.c.opts.API.Delete(ctx, api.KeyOf(a), client.DeleteOptions{})
	if err != nil && !client.IsNotFound(err) {
		return fmt.Errorf("delete preview %s: %w", a.Metadata.Name, err)
	}
	w.c.log.Info("preview deleted", "repo", w.cfg.Name, "app", a.Metadata.Name)
	return nil
}

// previewLinks are st's previews with the URLs of their external
// services: http://NODE:PORT on the first ready node.
func (w *worker) previewLinks(ctx context.Context, st *prState) []PreviewLink {
	if len(st.previews)+len(st.refused) == 0 {
		return nil
	}
	host := ""
	if l := w.c.live(); l != nil {
		for _, nd := range l.Nodes {
			if nodeReady(nd) && len(nd.Status.Addresses) > 0 {
				host = nd.Status.Addresses[0].Address
				break
			}
		}
	}
	var out []PreviewLink
	for _, name := range st.previews {
		link := PreviewLink{App: name}
		if o, err := w.c.opts.API.Get(ctx, api.Key{Kind: api.KindApp, App: name, Name: name}); err == nil {
			a := o.(*api.App)
			if h := a.Metadata.Annotations[AnnotationHead]; h != "" && h != st.pr.HeadSHA {
				link.Head = h
			}
			for _, s := range a.Spec.Services {
				link.External = link.External || s.Spec.External
				for _, p := range s.Spec.Ports {
					link.Names = append(link.Names, fmt.Sprintf("%s.%s.svc:%d", s.Name, name, p.Port))
				}
			}
		}
		objs, _, err := w.c.opts.API.List(ctx, api.KindService, client.ListOptions{App: name})
		if err == nil && host != "" {
			for _, o := range objs {
				s := o.(*api.Service)
				for _, p := range s.Spec.Ports {
					if s.Spec.External && p.NodePort > 0 {
						link.URLs = append(link.URLs, fmt.Sprintf("http://%s:%d", host, p.NodePort))
					}
				}
			}
		}
		slices.Sort(link.URLs)
		out = append(out, link)
	}
	return append(out, st.refused...)
}

// previewsHeading starts the comment's preview section.
const previewsHeading = "\n#### Preview environments\n\n"

// renderPreviews is the comment's preview section.
func renderPreviews(links []PreviewLink) string {
	if len(links) == 0 {
		return ""
	}
	var b strings.Builder
	b.WriteString(previewsHeading)
	for _, l := range links {
		fmt.Fprintf(&b, "- `%s`: %s\n", l.App, l.where())
	}
	return b.String()
}

// ClosedBody is a plan comment's body (the server's own, read back from
// the forge) with its preview section listing the previews deleted as
// deleted, why, in place of their links, and the other previews' lines
// (refused, expired) and the hidden expired marks gone: what the comment
// of a pull request seen closed live says. It is for a pull request
// closed while the server was down, whose plan the server no longer has.
// ok is false when the body lists no preview (nothing to change).
func ClosedBody(body string, deleted []string, why string) (string, bool) {
	i := strings.LastIndex(body, previewsHeading)
	if i < 0 || len(deleted) == 0 {
		return "", false
	}
	rest := body[i+len(previewsHeading):]
	for strings.HasPrefix(rest, "- `") {
		_, rest, _ = strings.Cut(rest, "\n")
	}
	links := make([]PreviewLink, 0, len(deleted))
	for _, name := range deleted {
		links = append(links, PreviewLink{App: name, Deleted: true, Refused: why})
	}
	head := expiredMarkLineRE.ReplaceAllString(body[:i], "")
	out := head + renderPreviews(links) + rest
	return out, out != body
}

// where says how to reach a preview, or why it is not deployed.
func (l PreviewLink) where() string {
	switch {
	case l.Deleted:
		return "deleted: " + l.Refused
	case l.Pending:
		return "not deployed yet: " + l.Refused + "; tried again shortly"
	case l.Refused != "":
		return "not deployed: " + l.Refused
	}
	var parts []string
	switch {
	case len(l.URLs) > 0:
		parts = append(parts, strings.Join(l.URLs, ", "))
	case l.External:
		parts = append(parts, "starting (no node port yet)")
	}
	if len(l.Names) > 0 {
		parts = append(parts, "in the cluster `"+strings.Join(l.Names, "`, `")+"`")
	} else if !l.External {
		parts = append(parts, "deployed (no services)")
	}
	s := strings.Join(parts, "; ")
	if l.Head != "" {
		s += "; still runs " + api.ShortCommit(l.Head) + ", the last head that could be deployed"
	}
	return s
}
