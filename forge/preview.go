package forge

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/capstanhq/capstan/apiserver/api"
	"github.com/capstanhq/capstan/apiserver/client"
	"github.com/capstanhq/capstan/gitsync"
	"github.com/capstanhq/capstan/schema"
)

// Labels of preview Apps. They do not carry the repository label of git
// sync, so sync never prunes or re-applies them, and production Apps are
// never touched: a preview is another App, APP-pr-N, with its own
// namespace, services and DNS names.
const (
	LabelPreviewOf   = "capstan.io/preview-of"
	LabelPreviewRepo = "capstan.io/preview-repo"
	LabelPreviewPR   = "capstan.io/preview-pr"
	// AnnotationExpires is when a preview is deleted (RFC 3339).
	AnnotationExpires = "capstan.io/preview-expires"
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

// PreviewApps are the Apps a pull request's head deploys as previews: one
// per valid app whose descriptor enables previews, renamed APP-pr-N,
// every pod group scaled to the preview's replicas, no automatic revert,
// expiring after the preview's ttl from now. Pure.
func PreviewApps(head *schema.Result, repo string, n int, now time.Time) []*api.App {
	if head == nil {
		return nil
	}
	var out []*api.App
	for _, ar := range head.Apps {
		if !ar.Valid() || ar.App.Spec.Preview == nil || !ar.App.Spec.Preview.Enabled {
			continue
		}
		name := PreviewName(ar.Name, n)
		if name == "" {
			continue
		}
		p := ar.App.Spec.Preview
		ttl, err := time.ParseDuration(p.TTL)
		if err != nil || ttl <= 0 {
			continue
		}
		a := api.Clone(ar.App)
		a.Metadata = api.ObjectMeta{Name: name, App: name, Source: ar.App.Metadata.Source,
			Labels:      map[string]string{LabelPreviewOf: ar.Name, LabelPreviewRepo: repo, LabelPreviewPR: strconv.Itoa(n)},
			Annotations: map[string]string{AnnotationExpires: now.Add(ttl).UTC().Format(time.RFC3339)}}
		a.Spec.Preview, a.Spec.Rollback = nil, ""
		for i := range a.Spec.Workloads {
			a.Spec.Workloads[i].Spec.Replicas = p.Replicas
		}
		a.Status = api.AppStatus{}
		out = append(out, a)
	}
	return out
}

// Expired reports whether a preview App's time is up.
func Expired(a *api.App, now time.Time) bool {
	t, err := time.Parse(time.RFC3339, a.Metadata.Annotations[AnnotationExpires])
	return err == nil && !now.Before(t)
}

// PreviewLink is a preview shown on the pull request.
type PreviewLink struct {
	App string
	// URLs are the node-port URLs of its external services; none yet
	// while the server allocates them.
	URLs []string
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
// others. It never writes an App without the preview labels.
func (w *worker) syncPreviews(ctx context.Context, st *prState) error {
	var want []*api.App
	if w.wantsPreview(st.pr) && st.input != nil && st.input.Head.Result != nil && len(st.input.Head.Result.AllErrors()) == 0 {
		want = PreviewApps(st.input.Head.Result, w.cfg.Name, st.pr.Number, w.c.opts.Now())
	}
	have, err := w.previewsOf(ctx, st.pr.Number)
	if err != nil {
		return err
	}
	var errs []error
	for _, a := range want {
		var cur *api.App
		for _, h := range have {
			if h.Metadata.Name == a.Metadata.Name {
				cur = h
			}
		}
		switch {
		case cur == nil:
			if existing, err := w.c.opts.API.Get(ctx, api.KeyOf(a)); err == nil {
				if existing.Meta().Labels[LabelPreviewRepo] == "" {
					errs = append(errs, fmt.Errorf("preview %s: an app of that name exists and is not a preview; not touched", a.Metadata.Name))
					continue
				}
			}
			_, err = w.c.opts.API.Create(ctx, a)
		case !api.EqualJSON(cur.Spec, a.Spec) || cur.Metadata.Annotations[AnnotationExpires] != a.Metadata.Annotations[AnnotationExpires]:
			u := api.Clone(cur)
			u.Spec, u.Metadata.Annotations, u.Metadata.Source = a.Spec, a.Metadata.Annotations, a.Metadata.Source
			_, err = w.c.opts.API.Update(ctx, u)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("preview %s: %w", a.Metadata.Name, err))
		}
	}
	for _, h := range have {
		if !slices.ContainsFunc(want, func(a *api.App) bool { return a.Metadata.Name == h.Metadata.Name }) {
			errs = append(errs, w.deletePreview(ctx, h))
		}
	}
	st.previews = nil
	w.mu.Lock()
	for _, a := range want {
		st.previews = append(st.previews, a.Metadata.Name)
		w.previewed[a.Metadata.Name] = true
	}
	w.mu.Unlock()
	return errors.Join(errs...)
}

func (w *worker) deletePreview(ctx context.Context, a *api.App) error {
	if a.Metadata.Labels[LabelPreviewRepo] != w.cfg.Name {
		return nil
	}
	_, err := w.c.opts.API.Delete(ctx, api.KeyOf(a), client.DeleteOptions{})
	if err != nil && !client.IsNotFound(err) {
		return fmt.Errorf("delete preview %s: %w", a.Metadata.Name, err)
	}
	w.c.log.Info("preview deleted", "repo", w.cfg.Name, "app", a.Metadata.Name)
	return nil
}

// expirePreviews deletes the repository's previews whose time is up and
// those of pull requests no longer open (open: the open numbers).
func (w *worker) expirePreviews(ctx context.Context, open map[int]bool) error {
	all, err := w.previewsOf(ctx, 0)
	if err != nil {
		return err
	}
	var errs []error
	for _, a := range all {
		n, _ := strconv.Atoi(a.Metadata.Labels[LabelPreviewPR])
		if Expired(a, w.c.opts.Now()) || (open != nil && !open[n]) {
			errs = append(errs, w.deletePreview(ctx, a))
		}
	}
	return errors.Join(errs...)
}

// previewLinks are st's previews with the URLs of their external
// services: http://NODE:PORT on the first ready node.
func (w *worker) previewLinks(ctx context.Context, st *prState) []PreviewLink {
	if len(st.previews) == 0 {
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
	return out
}

// renderPreviews is the comment's preview section.
func renderPreviews(links []PreviewLink) string {
	if len(links) == 0 {
		return ""
	}
	var b strings.Builder
	b.WriteString("\n#### Preview environments\n\n")
	for _, l := range links {
		urls := "starting (no external service yet)"
		if len(l.URLs) > 0 {
			urls = strings.Join(l.URLs, ", ")
		}
		fmt.Fprintf(&b, "- `%s`: %s\n", l.App, urls)
	}
	return b.String()
}
