// The ttl of preview environments: when one expires, its deletion, and
// how the pull request's comment remembers it across restarts.

package forge

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/capstanhq/capstan/apiserver/api"
)

// Expired reports whether a preview App's time is up.
func Expired(a *api.App, now time.Time) bool { return markOf(a).expired(now) }

// expiredLink is an expired preview as the comment shows it.
func expiredLink(a *api.App) PreviewLink { return markOf(a).link() }

// previewMark is the head a preview runs and when it expires. The worker
// keeps those of the previews it deployed (a preview deleted by hand
// comes back with the same expiry) and of those deleted at their ttl;
// the latter also on the pull request's comment (a hidden line under its
// marker) so that a server started again does not deploy the same head
// once more: the App is gone, and the forge's comment is the only state
// that outlives it.
type previewMark struct{ app, head, expires string }

func markOf(a *api.App) previewMark {
	return previewMark{app: a.Metadata.Name, head: a.Metadata.Annotations[AnnotationHead], expires: a.Metadata.Annotations[AnnotationExpires]}
}

func (m previewMark) expired(now time.Time) bool {
	t, err := time.Parse(time.RFC3339, m.expires)
	return err == nil && !now.Before(t)
}

// lastDeployed is what preview name runs (cur, when it exists) or ran
// when the worker last saw it.
func (st *prState) lastDeployed(name string, cur *api.App) (previewMark, bool) {
	if cur != nil {
		return markOf(cur), true
	}
	m, ok := st.deployed[name]
	return m, ok
}

// markExpired remembers that m's preview was deleted at its ttl: the
// same head is not deployed again.
func (st *prState) markExpired(m previewMark) {
	if st.expired == nil {
		st.expired = map[string]previewMark{}
	}
	st.expired[m.app] = m
}

func (m previewMark) link() PreviewLink {
	return PreviewLink{App: m.app, Expired: true, Head: m.head, Expires: m.expires,
		Refused: fmt.Sprintf("its ttl passed (%s); push to the pull request, or remove its preview label and add it again, to deploy it again", m.expires)}
}

var expiredMarkRE = regexp.MustCompile(`(?m)^<!-- capstan:preview-expired ([a-z0-9-]{1,63}) ([0-9a-f]{7,64}) ([0-9A-Za-z:.+-]{1,40}) -->$`)

// expiredMarkLineRE is a line of expiredMarkRE with its line end.
var expiredMarkLineRE = regexp.MustCompile(expiredMarkRE.String() + `\n`)

// expiredMarks are the hidden lines of the comment for its expired
// previews.
func expiredMarks(links []PreviewLink) string {
	var b strings.Builder
	for _, l := range links {
		m := fmt.Sprintf("<!-- capstan:preview-expired %s %s %s -->", l.App, l.Head, l.Expires)
		if l.Expired && expiredMarkRE.MatchString(m) {
			b.WriteString(m + "\n")
		}
	}
	return b.String()
}

// parseExpiredMarks reads the expired previews back from a comment body
// written by expiredMarks (the server's own comment; anything else in it
// is ignored).
func parseExpiredMarks(body string) map[string]previewMark {
	out := map[string]previewMark{}
	for _, m := range expiredMarkRE.FindAllStringSubmatch(body, 100) {
		out[m[1]] = previewMark{app: m[1], head: m[2], expires: m[3]}
	}
	return out
}

// readExpired reads the expired previews from the pull request's plan
// comment, for a pull request the worker sees for the first time.
func (w *worker) readExpired(ctx context.Context, n int) (map[string]previewMark, error) {
	c, _, err := w.ownComment(ctx, n)
	if err != nil {
		return nil, err
	}
	return parseExpiredMarks(c.Body), nil
}

// expirePreviews deletes the repository's previews whose time is up and
// those of pull requests no longer open (open: the open numbers); the
// comment of an open one says its preview expired.
func (w *worker) expirePreviews(ctx context.Context, open map[int]bool) error {
	all, err := w.previewsOf(ctx, 0)
	if err != nil {
		return err
	}
	var errs []error
	changed := map[int]*prState{}
	for _, a := range all {
		n, _ := strconv.Atoi(a.Metadata.Labels[LabelPreviewPR])
		expired := Expired(a, w.c.opts.Now())
		if !expired && (open == nil || open[n]) {
			continue
		}
		if err := w.deletePreview(ctx, a); err != nil {
			errs = append(errs, err)
			continue
		}
		if open != nil && !open[n] && w.prs[n] == nil {
			// Closed while the server was down (closed did not see it).
			w.uncommented[n] = append(w.uncommented[n], a.Metadata.Name)
		}
		if st := w.prs[n]; st != nil && expired && slices.Contains(st.previews, a.Metadata.Name) {
			st.previews = slices.DeleteFunc(st.previews, func(p string) bool { return p == a.Metadata.Name })
			st.markExpired(markOf(a))
			refused := append(slices.Clip(st.refused), expiredLink(a))
			w.recordRefused(ctx, st, refused)
			st.refused = refused
			changed[n] = st
		}
	}
	for _, st := range changed {
		errs = append(errs, w.publish(ctx, st, w.c.live(), false))
	}
	// Tried again on the next listing until the forge takes the edit.
	for n, names := range w.uncommented {
		if w.prs[n] != nil {
			delete(w.uncommented, n) // open again: publish writes its comment
			continue
		}
		slices.Sort(names)
		err := w.commentClosed(ctx, n, names)
		if err == nil {
			delete(w.uncommented, n)
		}
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
